"""voiceload.fixtures and `voiceload fixtures`: the committed set, the check, adding recordings."""

from __future__ import annotations

import hashlib
import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from voiceload import cli
from voiceload.audio import VadParams, read_info
from voiceload.errors import FixtureError
from voiceload.fixtures import (
    add_fixture,
    check_manifest,
    ensure_fixture,
    load_manifest,
    write_manifest,
)

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "fixtures" / "audio" / "manifest.toml"
#: Attribution, licence and hashes of the original CMU ARCTIC recordings.
ARCTIC_DATA = REPO / "tests" / "data" / "cmu_arctic"


def _speech_s(name: str) -> float:
    turns = load_manifest(MANIFEST).get(name).turns
    return turns[-1].offset_s - turns[0].onset_s


# --- the committed set ----------------------------------------------------------------------


def test_fixtures_check_passes_on_the_committed_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["fixtures", "check", "--manifest", str(MANIFEST)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{len(load_manifest(MANIFEST).fixtures)} fixtures OK")


def test_default_manifest_is_found_from_the_repository() -> None:
    assert load_manifest().path.resolve() == MANIFEST.resolve()


def test_committed_set_covers_what_a_voice_app_meets() -> None:
    m = load_manifest(MANIFEST)
    assert len(m.fixtures) >= 10
    assert 1.0 <= _speech_s("command_lights") <= 2.0
    assert 1.0 <= _speech_s("command_weather") <= 2.0
    assert 4.0 <= _speech_s("medium_booking") <= 6.0
    assert 15.0 <= _speech_s("monologue_long") <= 20.0
    assert m.get("silence").turns == () and m.get("noise_only").turns == ()
    conversation = m.get("conversation").turns
    assert len(conversation) >= 4
    pauses_s = [b.onset_s - a.offset_s for a, b in itertools.pairwise(conversation)]
    assert all(1.5 <= p <= 3.0 for p in pauses_s), pauses_s
    assert all(t.transcript and t.reply for t in conversation)
    formats = {f.name: read_info(f.path) for f in m.fixtures}
    assert any(i.sample_rate == 44100 and i.channels == 2 for i in formats.values())
    assert any(i.sample_rate == 8000 for i in formats.values())
    assert any(i.format == "FLAC" for i in formats.values())
    assert any(i.subtype == "PCM_24" for i in formats.values())
    # every derived file says what it was modified from
    for f in m.fixtures:
        assert bool(f.modified_from) == bool(f.modifications), f.name


def _original_arctic_sha256() -> dict[str, str]:
    """File name -> SHA-256 of the original CMU ARCTIC recordings (tests/data/cmu_arctic)."""
    lines = (ARCTIC_DATA / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def test_every_changed_cmu_arctic_file_says_how_it_was_modified() -> None:
    # the CMU ARCTIC licence (COPYING) requires changes to be marked: any file under it whose
    # bytes are not one of the original recordings must name its source and its modifications
    originals = set(_original_arctic_sha256().values())
    assert len(originals) == 2
    arctic_licensed = [f for f in load_manifest(MANIFEST).fixtures if "CMU ARCTIC" in f.licence]
    changed = [
        f
        for f in arctic_licensed
        if hashlib.sha256(f.path.read_bytes()).hexdigest() not in originals
    ]
    assert len(changed) >= 3  # the noisy, 24-bit and conversation files at least
    for f in changed:
        assert f.modifications.startswith("modified by voiceload:"), f.name
        assert f.modified_from, f.name
    for f in arctic_licensed:
        if f not in changed:
            assert (f.modified_from, f.modifications) == ("", ""), f.name


def test_command_and_monologue_files_last_as_issue_3_asks() -> None:
    # the FILES, silence included: short commands 1-2 s, the long monologue 15-20 s; each keeps
    # more trailing silence after its turn than the VAD's hang-over
    m = load_manifest(MANIFEST)
    commands = ("command_lights", "command_weather", "command_call_44k_stereo", "command_cancel_8k")
    ranges_s = {"monologue_long": (15.0, 20.0)} | {name: (1.0, 2.0) for name in commands}
    for name, (low_s, high_s) in ranges_s.items():
        f = m.get(name)
        duration_s = read_info(f.path).duration_s
        assert low_s <= duration_s <= high_s, (name, duration_s)
        assert duration_s - f.turns[-1].offset_s > VadParams().hangover_s, name


def test_noisy_variant_is_about_10_db_snr_and_keeps_the_turn() -> None:
    m = load_manifest(MANIFEST)
    clean, _ = sf.read(m.get("arctic_a0009").path)
    noisy, _ = sf.read(m.get("arctic_a0009_noisy_10db").path)
    turn = m.get("arctic_a0009").turns[0]
    speech = clean[round(turn.onset_s * 16000) : round(turn.offset_s * 16000) + 1]
    snr_db = 10 * np.log10(np.mean(speech**2) / np.mean((noisy - clean) ** 2))
    assert snr_db == pytest.approx(10.0, abs=0.3)
    noisy_turn = m.get("arctic_a0009_noisy_10db").turns[0]
    assert noisy_turn.onset_s == pytest.approx(turn.onset_s, abs=0.15)
    assert noisy_turn.offset_s == pytest.approx(turn.offset_s, abs=0.15)


def test_arctic_copies_are_unmodified_with_readme_transcripts() -> None:
    m = load_manifest(MANIFEST)
    readme = (ARCTIC_DATA / "README.md").read_text()
    originals = _original_arctic_sha256()
    for name in ("arctic_a0007", "arctic_a0009"):
        f = m.get(name)
        assert hashlib.sha256(f.path.read_bytes()).hexdigest() == originals[f"{name}.wav"]
        assert f.modified_from == ""
        assert f"| `{name}.wav` |" in readme and f.transcript in readme
    assert (MANIFEST.parent / "COPYING").read_bytes() == (ARCTIC_DATA / "COPYING").read_bytes()


def test_aura_texts_have_the_three_lengths() -> None:
    texts = load_manifest(MANIFEST).texts
    assert texts["sentence"].count(".") == 1 and len(texts["sentence"]) < 120
    assert 150 <= len(texts["paragraph"]) <= 400
    assert 550 <= len(texts["long_600"]) <= 650


def test_get_unknown_name_lists_known_names() -> None:
    m = load_manifest(MANIFEST)
    with pytest.raises(FixtureError, match=r"no fixture named 'nope'.*arctic_a0009") as exc:
        m.get("nope")
    assert "\n" not in str(exc.value)


# --- checking: each bad input gives one actionable line ---------------------------------------


@pytest.fixture
def small_set(tmp_path: Path) -> Path:
    """A copy of three committed fixtures and their manifest entries, free to break."""
    m = load_manifest(MANIFEST)
    keep = [m.get("arctic_a0009"), m.get("command_lights"), m.get("silence")]
    audio = tmp_path / "fixtures" / "audio"
    audio.mkdir(parents=True)
    for f in keep:
        shutil.copyfile(f.path, audio / f.file)
    moved = tuple(f.__class__(**{**f.__dict__, "path": audio / f.file}) for f in keep)
    return write_manifest(m.__class__(path=audio / "manifest.toml", fixtures=moved))


def _only_problem(manifest_path: Path) -> str:
    problems = check_manifest(load_manifest(manifest_path))
    assert len(problems) == 1, problems
    assert "\n" not in problems[0]
    return problems[0]


def test_small_set_starts_clean(small_set: Path) -> None:
    assert check_manifest(load_manifest(small_set)) == []


def test_missing_file(small_set: Path) -> None:
    (small_set.parent / "command_lights.wav").unlink()
    assert "command_lights.wav): file does not exist; restore it" in _only_problem(small_set)


def test_corrupt_file(small_set: Path) -> None:
    (small_set.parent / "command_lights.wav").write_bytes(b"RIFF....WAVEfmt garbage" * 10)
    problem = _only_problem(small_set)
    assert "cannot read audio file" in problem and "command_lights.wav" in problem


def test_zero_length_audio(small_set: Path) -> None:
    sf.write(small_set.parent / "command_lights.wav", np.zeros(0, dtype=np.int16), 16000)
    assert "zero-length" in _only_problem(small_set)


def test_unsupported_format(small_set: Path) -> None:
    (small_set.parent / "command_lights.wav").write_bytes(b"ID3\x03\x00" + bytes(400))
    assert "unsupported format or corrupt" in _only_problem(small_set)


def test_hash_mismatch_after_an_edit(small_set: Path) -> None:
    path = small_set.parent / "arctic_a0009.wav"
    pcm, rate = sf.read(path, dtype="int16")
    sf.write(path, (pcm // 2).astype(np.int16), rate)
    problem = _only_problem(small_set)
    assert "arctic_a0009.wav): sha256" in problem and "update the manifest" in problem


def test_no_speech_where_the_manifest_lists_turns(small_set: Path) -> None:
    text = small_set.read_text()
    sha = load_manifest(small_set).get("silence").sha256
    lights = load_manifest(small_set).get("command_lights")
    # point the speech entry at the silent file (hash updated, so only the VAD can tell)
    text = text.replace('file = "command_lights.wav"', 'file = "silence.wav"')
    text = text.replace(lights.sha256, sha)
    text = text.replace(f"duration_s = {lights.duration_s}", "duration_s = 3.0")
    small_set.write_text(text)
    problem = _only_problem(small_set)
    assert "lists 1 turn(s) but the VAD finds no speech" in problem and "silence.wav" in problem


def test_vad_disagreement_beyond_20_ms(small_set: Path) -> None:
    m = load_manifest(small_set)
    f = m.get("arctic_a0009")
    turn = f.turns[0]
    moved = turn.__class__(turn.onset_s + 0.025, turn.offset_s, turn.transcript)
    edited = f.__class__(**{**f.__dict__, "turns": (moved,)})
    write_manifest(m.__class__(path=m.path, fixtures=(edited, *m.fixtures[1:])))
    assert "turn 1 onset is" in _only_problem(small_set)
    nudged = turn.__class__(turn.onset_s + 0.015, turn.offset_s, turn.transcript)
    ok = f.__class__(**{**f.__dict__, "turns": (nudged,)})
    write_manifest(m.__class__(path=m.path, fixtures=(ok, *m.fixtures[1:])))
    assert check_manifest(load_manifest(small_set)) == []


def test_check_cli_prints_one_line_per_problem_and_exits_1(
    small_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (small_set.parent / "command_lights.wav").unlink()
    (small_set.parent / "silence.wav").write_bytes(b"")
    assert cli.main(["fixtures", "check", "--manifest", str(small_set)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "command_lights.wav" in lines[0] and "silence.wav" in lines[1]


def test_ensure_fixture_raises_before_any_load(small_set: Path) -> None:
    f = load_manifest(small_set).get("command_lights")
    ensure_fixture(f)
    f.path.unlink()
    with pytest.raises(FixtureError, match=r"command_lights.wav.*does not exist"):
        ensure_fixture(f)


def test_missing_or_malformed_manifest(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="does not exist"):
        load_manifest(tmp_path / "manifest.toml")
    bad = tmp_path / "manifest.toml"
    bad.write_text("[[fixture]]\nname = 'x'\n")
    with pytest.raises(FixtureError, match="missing key 'file'"):
        load_manifest(bad)
    bad.write_text("this is = = not toml")
    with pytest.raises(FixtureError, match="not valid TOML"):
        load_manifest(bad)


def test_env_var_points_at_another_fixtures_dir(
    small_set: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICELOAD_FIXTURES_DIR", str(small_set.parent.parent))
    assert load_manifest().names == ["arctic_a0009", "command_lights", "silence"]


# --- adding a user's own recording ----------------------------------------------------------


def _arctic_pcm() -> tuple[np.ndarray, int]:
    data, rate = sf.read(MANIFEST.parent / "arctic_a0009.wav", dtype="float64")
    return data, rate


@pytest.mark.parametrize(
    ("file", "rate", "channels", "subtype"),
    [
        ("call.wav", 44100, 2, "PCM_16"),
        ("phone.wav", 8000, 1, "PCM_16"),
        ("Meeting Notes.flac", 48000, 1, "PCM_24"),
    ],
)
def test_add_a_users_recording_in_any_format(
    small_set: Path, tmp_path: Path, file: str, rate: int, channels: int, subtype: str
) -> None:
    mono, native = _arctic_pcm()
    resampled = soxr.resample(mono, native, rate)
    data = np.column_stack([resampled, 0.5 * resampled]) if channels == 2 else resampled
    src = tmp_path / file
    sf.write(src, data, rate, subtype=subtype)
    fixture = add_fixture(src, ["He turned sharply."], manifest_path=small_set)
    assert fixture.path.parent == small_set.parent and fixture.path.read_bytes() == src.read_bytes()
    assert (fixture.sample_rate, fixture.channels) == (rate, channels)
    original = load_manifest(small_set).get("arctic_a0009").turns[0]
    assert fixture.turns[0].onset_s == pytest.approx(original.onset_s, abs=0.03)
    assert fixture.turns[0].offset_s == pytest.approx(original.offset_s, abs=0.03)
    m = load_manifest(small_set)
    assert m.get(fixture.name).turns == fixture.turns
    assert check_manifest(m) == []


def test_add_multi_turn_via_cli(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mono, rate = _arctic_pcm()
    src = tmp_path / "two_turns.wav"
    sf.write(src, np.concatenate([mono, np.zeros(2 * rate), mono]), rate)
    argv = ["fixtures", "add", str(src), "--name", "mine", "--manifest", str(small_set)]
    assert cli.main([*argv, "--turn-transcript", "one", "--turn-transcript", "two"]) == 0
    assert "added fixture 'mine'" in capsys.readouterr().out
    turns = load_manifest(small_set).get("mine").turns
    assert [t.transcript for t in turns] == ["one", "two"]
    assert turns[1].onset_s - turns[0].offset_s > 2.0


def test_add_refuses_bad_input_before_copying(small_set: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in small_set.parent.iterdir())
    mono, rate = _arctic_pcm()
    src = tmp_path / "two_turns.wav"
    sf.write(src, np.concatenate([mono, np.zeros(2 * rate), mono]), rate)
    with pytest.raises(FixtureError, match=r"found 2 turn.*1 transcript.*--turn-transcript"):
        add_fixture(src, ["only one"], manifest_path=small_set)
    with pytest.raises(FixtureError, match=r"already exists.*--name"):
        add_fixture(src, ["a", "b"], name="silence", manifest_path=small_set)
    with pytest.raises(FixtureError, match="does not exist"):
        add_fixture(tmp_path / "nope.wav", ["a"], manifest_path=small_set)
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(rate), rate)
    with pytest.raises(FixtureError, match="no speech"):
        add_fixture(quiet, ["hello"], manifest_path=small_set)
    assert sorted(p.name for p in small_set.parent.iterdir()) == before


def test_add_refuses_a_directory_and_unmatched_replies(small_set: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in small_set.parent.iterdir())
    with pytest.raises(FixtureError, match="is a directory") as exc:
        add_fixture(tmp_path, ["hello"], manifest_path=small_set)
    assert str(tmp_path) in str(exc.value)
    mono, rate = _arctic_pcm()
    src = tmp_path / "one_turn.wav"
    sf.write(src, mono, rate)
    with pytest.raises(FixtureError, match=r"2 replies for 1 turns; pass one --reply per turn"):
        add_fixture(src, ["one"], replies=["a", "b"], manifest_path=small_set)
    assert sorted(p.name for p in small_set.parent.iterdir()) == before


def _two_party_call(tmp_path: Path) -> tuple[Path, float]:
    """A stereo call: the left party speaks first, the right one 4 s later (silent otherwise)."""
    mono, rate = _arctic_pcm()
    delay = 4 * rate
    left = np.concatenate([mono, np.zeros(delay)])
    right = np.concatenate([np.zeros(delay), 0.7 * mono])
    src = tmp_path / "call.flac"
    sf.write(src, np.column_stack([left, right]), rate, subtype="PCM_24")
    return src, delay / rate


@pytest.mark.parametrize("channel", [1, 2])
def test_add_one_channel_of_a_two_party_call(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], channel: int
) -> None:
    src, delay_s = _two_party_call(tmp_path)
    mixed = add_fixture(src, ["left", "right"], name="mixed", manifest_path=small_set)
    assert len(mixed.turns) == 2  # default: both parties, mixed
    argv = ["fixtures", "add", str(src), "--name", "party", "--manifest", str(small_set)]
    assert cli.main([*argv, "--channel", str(channel), "--transcript", "one party"]) == 0
    assert "added fixture 'party'" in capsys.readouterr().out
    m = load_manifest(small_set)
    party = m.get("party")
    (turn,) = party.turns
    expected = mixed.turns[channel - 1]
    assert turn.onset_s == pytest.approx(expected.onset_s, abs=0.03)
    assert turn.offset_s == pytest.approx(expected.offset_s, abs=0.03)
    if channel == 1:  # only the left party: it ends before the right one starts
        assert turn.offset_s < delay_s
    else:  # only the right party (its room tone may start the turn at the splice)
        assert turn.onset_s >= delay_s - VadParams().extend_max_s
    info = read_info(party.path)
    assert (info.channels, info.format, info.subtype) == (1, "FLAC", "PCM_24")
    assert party.modified_from == "call.flac"
    assert party.modifications == f"channel {channel} of 2 extracted"
    assert check_manifest(m) == []


def test_add_refuses_a_channel_the_file_does_not_have(small_set: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in small_set.parent.iterdir())
    src, _ = _two_party_call(tmp_path)
    error = r"has 2 channel\(s\), there is no channel 3; pass --channel 1\.\.2"
    with pytest.raises(FixtureError, match=error):
        add_fixture(src, ["x"], channel=3, manifest_path=small_set)
    assert sorted(p.name for p in small_set.parent.iterdir()) == before
