"""The fixtures manifest (``fixtures/audio/manifest.toml``): load, check, measure and add.

Every audio fixture has one entry: its file, sha256, provenance (source, licence, what it was
modified from and how), native format, and its speech turns. A turn's ``onset_s`` and
``offset_s`` are the first and last speech sample as measured by :func:`voiceload.audio
.detect_speech` on the file converted to 16 kHz linear16 (exactly what a Flux session streams);
they are written by :func:`measure_fixture`, never typed by hand, and :func:`check_manifest`
re-measures them.

Where the fixtures live: ``$VOICELOAD_FIXTURES_DIR`` if set (a directory holding ``audio/`` and
``text/``), else the ``fixtures/`` directory of the repository this module runs from, else the
first ``fixtures/`` found walking up from the current directory.

Reply texts for Aura are plain ``.txt`` files in ``fixtures/text/`` (name = file stem).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import soundfile as sf
import tomli_w

from voiceload.audio import VadParams, detect_speech, load_linear16, read_info
from voiceload.errors import FixtureError

__all__ = [
    "MEASURE_SAMPLE_RATE",
    "TOLERANCE_S",
    "Fixture",
    "Manifest",
    "Turn",
    "add_fixture",
    "check_fixture",
    "check_manifest",
    "default_fixtures_dir",
    "ensure_fixture",
    "load_manifest",
    "measure_fixture",
    "sha256_file",
    "write_manifest",
]

ENV_VAR = "VOICELOAD_FIXTURES_DIR"
MEASURE_SAMPLE_RATE = 16000  # turns are measured on the audio as Flux receives it
TOLERANCE_S = 0.020  # how far a re-measured onset/offset may move before check fails
SCHEMA = 1
_HEADER = (
    "# voiceload fixtures manifest. Written by `voiceload fixtures add` and\n"
    "# scripts/make_fixtures.py: onset_s/offset_s are MEASURED by voiceload.audio.detect_speech\n"
    "# (16 kHz linear16), never typed. `voiceload fixtures check` re-validates every entry.\n"
    "# modified_from is empty for unmodified third-party files; see COPYING for CMU ARCTIC.\n\n"
)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class Turn:
    """One speaker turn: first/last speech sample (s), reference transcript, scripted reply."""

    onset_s: float
    offset_s: float
    transcript: str
    reply: str = ""  # what the voice-agent user says back (conversation fixtures), else ""


@dataclass(frozen=True)
class Fixture:
    """One manifest entry; ``path`` is the resolved audio file."""

    name: str
    file: str  # relative to the manifest's directory
    sha256: str
    source: str
    licence: str
    modified_from: str  # "" when the file is unmodified (or original work)
    modifications: str  # what was changed, as the CMU ARCTIC licence requires; "" if none
    sample_rate: int  # native, as stored in the file
    channels: int
    duration_s: float
    turns: tuple[Turn, ...]
    path: Path

    @property
    def transcript(self) -> str:
        """All turns' reference transcripts joined by spaces ("" when there is no speech)."""
        return " ".join(t.transcript for t in self.turns if t.transcript)


@dataclass(frozen=True)
class Manifest:
    """All fixtures, in manifest order, plus the Aura texts of ``fixtures/text/``."""

    path: Path
    fixtures: tuple[Fixture, ...]
    texts: dict[str, str] = field(default_factory=dict)
    generator: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fixtures]

    def get(self, name: str) -> Fixture:
        """The fixture called ``name``; :class:`FixtureError` listing known names if absent."""
        for fixture in self.fixtures:
            if fixture.name == name:
                return fixture
        raise FixtureError(
            f"no fixture named {name!r} in {self.path}; known: {', '.join(self.names)} "
            "(add one with `voiceload fixtures add FILE --transcript ...`)"
        )

    def text(self, name: str) -> str:
        """A reply text for Aura by name (file stem in ``fixtures/text/``)."""
        if name not in self.texts:
            raise FixtureError(
                f"no text named {name!r} in {self.path.parent.parent / 'text'}; "
                f"known: {', '.join(sorted(self.texts))}"
            )
        return self.texts[name]


# --------------------------------------------------------------------------------------------
# Locating and loading
# --------------------------------------------------------------------------------------------


def default_fixtures_dir() -> Path:
    """The ``fixtures/`` directory (see the module docstring for the search order)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    repo_fixtures = Path(__file__).resolve().parents[2] / "fixtures"
    if (repo_fixtures / "audio" / "manifest.toml").is_file():
        return repo_fixtures
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "fixtures" / "audio" / "manifest.toml").is_file():
            return folder / "fixtures"
    return repo_fixtures


def default_manifest_path() -> Path:
    return default_fixtures_dir() / "audio" / "manifest.toml"


def load_manifest(path: Path | str | None = None) -> Manifest:
    """Parse the manifest (default: :func:`default_manifest_path`) and the texts beside it.

    Raises :class:`FixtureError` for a missing or malformed manifest. Audio files are not
    opened here; :func:`check_manifest` / :func:`ensure_fixture` validate them.
    """
    mpath = Path(path) if path is not None else default_manifest_path()
    if not mpath.is_file():
        raise FixtureError(
            f"fixtures manifest {mpath} does not exist: run from the repository, set "
            f"{ENV_VAR}, or pass --manifest"
        )
    try:
        data = tomllib.loads(mpath.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FixtureError(f"fixtures manifest {mpath} is not valid TOML: {exc}") from exc
    fixtures: list[Fixture] = []
    for i, entry in enumerate(data.get("fixture", [])):
        fixtures.append(_fixture_from_toml(entry, mpath, i))
    names = [f.name for f in fixtures]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FixtureError(f"fixtures manifest {mpath} names {', '.join(dupes)} more than once")
    text_dir = mpath.parent.parent / "text"
    texts = (
        {p.stem: p.read_text(encoding="utf-8").strip() for p in sorted(text_dir.glob("*.txt"))}
        if text_dir.is_dir()
        else {}
    )
    generator = {str(k): str(v) for k, v in data.get("generator", {}).items()}
    return Manifest(path=mpath, fixtures=tuple(fixtures), texts=texts, generator=generator)


def _fixture_from_toml(entry: dict[str, Any], mpath: Path, index: int) -> Fixture:
    where = f"fixtures manifest {mpath}, entry {index + 1}"
    try:
        turns = tuple(
            Turn(
                onset_s=float(t["onset_s"]),
                offset_s=float(t["offset_s"]),
                transcript=str(t.get("transcript", "")),
                reply=str(t.get("reply", "")),
            )
            for t in entry.get("turns", [])
        )
        return Fixture(
            name=str(entry["name"]),
            file=str(entry["file"]),
            sha256=str(entry["sha256"]),
            source=str(entry.get("source", "")),
            licence=str(entry.get("licence", "")),
            modified_from=str(entry.get("modified_from", "")),
            modifications=str(entry.get("modifications", "")),
            sample_rate=int(entry["sample_rate"]),
            channels=int(entry["channels"]),
            duration_s=float(entry["duration_s"]),
            turns=turns,
            path=(mpath.parent / str(entry["file"])).resolve(),
        )
    except KeyError as exc:
        raise FixtureError(f"{where}: missing key {exc.args[0]!r}; re-add the fixture") from exc
    except (TypeError, ValueError) as exc:
        raise FixtureError(f"{where}: bad value ({exc}); re-add the fixture") from exc


def write_manifest(manifest: Manifest, path: Path | str | None = None) -> Path:
    """Write ``manifest`` as TOML (deterministic: manifest order, fixed keys). Returns the path."""
    mpath = Path(path) if path is not None else manifest.path
    doc: dict[str, Any] = {"schema": SCHEMA}
    if manifest.generator:
        doc["generator"] = dict(manifest.generator)
    doc["fixture"] = [_fixture_to_toml(f) for f in manifest.fixtures]
    mpath.parent.mkdir(parents=True, exist_ok=True)
    mpath.write_text(_HEADER + tomli_w.dumps(doc), encoding="utf-8")
    return mpath


def _fixture_to_toml(f: Fixture) -> dict[str, Any]:
    return {
        "name": f.name,
        "file": f.file,
        "sha256": f.sha256,
        "source": f.source,
        "licence": f.licence,
        "modified_from": f.modified_from,
        "modifications": f.modifications,
        "sample_rate": f.sample_rate,
        "channels": f.channels,
        "duration_s": round(f.duration_s, 6),
        "turns": [
            {
                "onset_s": round(t.onset_s, 6),
                "offset_s": round(t.offset_s, 6),
                "transcript": t.transcript,
                **({"reply": t.reply} if t.reply else {}),
            }
            for t in f.turns
        ],
    }


# --------------------------------------------------------------------------------------------
# Measuring and checking
# --------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def measure_fixture(
    path: Path,
    *,
    name: str,
    transcripts: Sequence[str],
    replies: Sequence[str] = (),
    source: str,
    licence: str,
    modified_from: str = "",
    modifications: str = "",
    file: str | None = None,
    params: VadParams | None = None,
) -> Fixture:
    """Build a manifest entry for ``path`` with turns measured by the VAD.

    ``transcripts`` gives one reference transcript per turn (empty for a no-speech fixture);
    ``replies`` optionally one reply per turn. Raises :class:`FixtureError` when the file is
    unreadable or the number of measured turns differs from the number of transcripts.
    """
    info = read_info(path)
    measured = detect_speech(load_linear16(path, MEASURE_SAMPLE_RATE), MEASURE_SAMPLE_RATE, params)
    if len(measured) != len(transcripts):
        found = ", ".join(f"{s.onset_s:.2f}-{s.offset_s:.2f} s" for s in measured) or "no speech"
        raise FixtureError(
            f"{path}: the VAD found {len(measured)} turn(s) ({found}) but {len(transcripts)} "
            "transcript(s) were given; pass one --turn-transcript per turn"
            + (" (is the recording silent or too quiet?)" if not measured else "")
        )
    if replies and len(replies) != len(transcripts):
        raise FixtureError(
            f"{path}: {len(replies)} replies for {len(transcripts)} turns; pass one --reply per "
            "turn, in order, or none"
        )
    # rounded as the manifest stores them (1 us), so a written entry reads back equal
    turns = tuple(
        Turn(round(seg.onset_s, 6), round(seg.offset_s, 6), text, replies[i] if replies else "")
        for i, (seg, text) in enumerate(zip(measured, transcripts, strict=True))
    )
    return Fixture(
        name=name,
        file=file if file is not None else path.name,
        sha256=sha256_file(path),
        source=source,
        licence=licence,
        modified_from=modified_from,
        modifications=modifications,
        sample_rate=info.sample_rate,
        channels=info.channels,
        duration_s=round(info.duration_s, 6),
        turns=turns,
        path=path.resolve(),
    )


def check_fixture(
    fixture: Fixture, *, measure: bool = True, tolerance_s: float = TOLERANCE_S
) -> list[str]:
    """Problems with one entry, each one line naming the file and what to do; [] when fine.

    Checks: the file exists and is readable audio with samples; its sha256, rate, channels and
    duration match; and (``measure``) the VAD finds as many turns, each onset/offset within
    ``tolerance_s`` of the manifest.
    """
    p = fixture.path
    tag = f"fixture {fixture.name!r} ({p})"
    if not p.is_file():
        return [f"{tag}: file does not exist; restore it (git checkout) or remove the entry"]
    try:
        info = read_info(p)
    except FixtureError as exc:
        return [f"{tag}: {exc}"]
    actual_sha = sha256_file(p)
    if actual_sha != fixture.sha256:
        return [
            f"{tag}: sha256 {actual_sha[:12]}... does not match the manifest's "
            f"{fixture.sha256[:12]}...; the file was edited: re-add it with "
            "`voiceload fixtures add` (or `make fixtures`) to update the manifest"
        ]
    problems = []
    if (info.sample_rate, info.channels) != (fixture.sample_rate, fixture.channels):
        problems.append(
            f"{tag}: file is {info.sample_rate} Hz/{info.channels} ch, manifest says "
            f"{fixture.sample_rate} Hz/{fixture.channels} ch; re-add the fixture"
        )
    if abs(info.duration_s - fixture.duration_s) > 0.001:
        problems.append(
            f"{tag}: file lasts {info.duration_s:.3f} s, manifest says "
            f"{fixture.duration_s:.3f} s; re-add the fixture"
        )
    if not measure:
        return problems
    try:
        measured = detect_speech(load_linear16(p, MEASURE_SAMPLE_RATE), MEASURE_SAMPLE_RATE)
    except FixtureError as exc:
        return [*problems, f"{tag}: {exc}"]
    if not measured and fixture.turns:
        return [
            *problems,
            f"{tag}: manifest lists {len(fixture.turns)} turn(s) but the VAD finds no speech; "
            "replace the file or re-add it",
        ]
    if len(measured) != len(fixture.turns):
        return [
            *problems,
            f"{tag}: manifest lists {len(fixture.turns)} turn(s), the VAD finds "
            f"{len(measured)}; re-measure with `make fixtures` or re-add the fixture",
        ]
    for i, (turn, seg) in enumerate(zip(fixture.turns, measured, strict=True)):
        for what, listed, found in (
            ("onset", turn.onset_s, seg.onset_s),
            ("offset", turn.offset_s, seg.offset_s),
        ):
            if abs(listed - found) > tolerance_s:
                problems.append(
                    f"{tag}: turn {i + 1} {what} is {found:.3f} s by the VAD, manifest says "
                    f"{listed:.3f} s (> {tolerance_s * 1000:.0f} ms apart); re-measure it"
                )
    return problems


def check_manifest(manifest: Manifest, *, measure: bool = True) -> list[str]:
    """Problems with every entry of ``manifest`` (see :func:`check_fixture`); [] when all fine."""
    problems: list[str] = []
    if not manifest.fixtures:
        problems.append(f"fixtures manifest {manifest.path} lists no fixtures")
    for fixture in manifest.fixtures:
        problems += check_fixture(fixture, measure=measure)
    return problems


def ensure_fixture(fixture: Fixture, *, measure: bool = False) -> None:
    """Raise :class:`FixtureError` (one line) unless the fixture is usable: call before a load.

    By default skips the VAD re-measurement (the hash already pins the audio).
    """
    problems = check_fixture(fixture, measure=measure)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise FixtureError(problems[0] + more)


# --------------------------------------------------------------------------------------------
# Adding a user's recording
# --------------------------------------------------------------------------------------------


def _default_name(src: Path) -> str:
    stem = re.sub(r"[^a-z0-9_.-]+", "_", src.stem.lower()).strip("_.-")
    return stem or "recording"


def add_fixture(
    src: Path | str,
    transcripts: Sequence[str],
    *,
    name: str | None = None,
    replies: Sequence[str] = (),
    source: str = "user recording",
    licence: str = "user-supplied; check before sharing",
    manifest_path: Path | str | None = None,
    channel: int | None = None,
) -> Fixture:
    """Copy ``src`` into the fixtures' audio directory, measure its turns, write the entry.

    Any format soundfile reads works (stereo, 8 kHz, 44.1 kHz, FLAC, 24-bit...); the file is
    copied unchanged and converted only when streamed (channels are then mixed). ``channel``
    (1-based) instead stores just that channel, e.g. one party of a two-party call recording,
    in the source's format and sample type; the entry then records the extraction in
    ``modified_from``/``modifications``. Everything is validated before anything is copied or
    written. Raises :class:`FixtureError` for a missing/unreadable file or a directory, a name
    already in use, a channel the file does not have, or a turn count that does not match
    ``transcripts``.
    """
    src_path = Path(src)
    mpath = Path(manifest_path) if manifest_path is not None else default_manifest_path()
    manifest = load_manifest(mpath) if mpath.is_file() else Manifest(path=mpath, fixtures=())
    fixture_name = name if name is not None else _default_name(src_path)
    if not _NAME_RE.match(fixture_name):
        raise FixtureError(
            f"fixture name {fixture_name!r} must be lower-case letters, digits, '_', '.', '-'"
        )
    if fixture_name in manifest.names:
        raise FixtureError(
            f"a fixture named {fixture_name!r} already exists in {mpath}; pass --name NEW_NAME"
        )
    if not transcripts or not any(t.strip() for t in transcripts):
        raise FixtureError(f"{src_path}: give the reference transcript with --transcript")
    dest = mpath.parent / f"{fixture_name}{src_path.suffix.lower()}"
    if dest.exists():
        raise FixtureError(f"{dest} already exists; pass --name NEW_NAME")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = dest.with_name(f".{dest.name}.adding")  # the bytes dest will hold
    try:
        if channel is None:
            read_info(src_path)  # a missing file, a directory or non-audio: one-line error
            shutil.copyfile(src_path, staged)
            modified_from = modifications = ""
        else:
            _extract_channel(src_path, channel, staged)
            modified_from = src_path.name
            modifications = f"channel {channel} of {read_info(src_path).channels} extracted"
        # measure before the entry exists: nothing is kept unless the recording is usable
        fixture = measure_fixture(
            staged,
            name=fixture_name,
            transcripts=transcripts,
            replies=replies,
            source=source,
            licence=licence,
            modified_from=modified_from,
            modifications=modifications,
            file=dest.name,
        )
        staged.replace(dest)
    finally:
        staged.unlink(missing_ok=True)
    fixture = replace(fixture, path=dest.resolve())
    write_manifest(replace(manifest, fixtures=(*manifest.fixtures, fixture)), mpath)
    return fixture


def _extract_channel(src: Path, channel: int, dest: Path) -> None:
    """Write channel ``channel`` (1-based) of ``src`` to ``dest``, same format and sample type."""
    info = read_info(src)
    if not 1 <= channel <= info.channels:
        raise FixtureError(
            f"{src} has {info.channels} channel(s), there is no channel {channel}; "
            f"pass --channel 1..{info.channels}, or leave it out to mix them"
        )
    data, rate = sf.read(str(src), dtype="float64", always_2d=True)
    sf.write(str(dest), data[:, channel - 1], rate, format=info.format, subtype=info.subtype)
