"""Aura audio format from real bytes: raw PCM, WAV headers, mu-law/A-law, compressed refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from voiceload.client.aura_format import (
    AudioFormat,
    AuraAudio,
    UnmeasurableAudio,
    parse_wav_header,
    sniff_compressed,
)
from voiceload.client.aura_request import AuraRequest

MS = 1_000_000


def _speech(rate: int, silence_ms: int, tone_ms: int) -> np.ndarray:
    t = np.arange(rate * tone_ms // 1000) / rate
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return np.concatenate([np.zeros(rate * silence_ms // 1000, dtype=np.int16), tone])


def _encode(pcm: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, pcm, rate, format=fmt, subtype=subtype)
    return out.getvalue()


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate", "name"),
    [
        ("OGG", "VORBIS", 16_000, "Ogg"),
        ("OGG", "OPUS", 48_000, "Ogg"),
        ("FLAC", "PCM_16", 16_000, "FLAC"),
        ("MP3", "MPEG_LAYER_III", 16_000, "MP3 (MPEG frame)"),  # no ID3 tag: frame sync x 2
    ],
)
def test_compressed_audio_is_recognised_and_refused(
    fmt: str, subtype: str, rate: int, name: str
) -> None:
    data = _encode(_speech(rate, 100, 400), rate, fmt, subtype)
    assert sniff_compressed(data) == name
    audio = AuraAudio("linear16", 24_000)
    with pytest.raises(UnmeasurableAudio, match=f"Aura sent {name.split(' ')[0]}.*linear16"):
        for chunk in _chunks(data, 3):  # even fed 3 bytes at a time
            audio.feed(chunk)
    assert sniff_compressed(b"ID3\x04\x00rest") == "MP3 (ID3 tag)"


def test_raw_linear16_that_starts_like_an_mpeg_frame_stays_raw() -> None:
    # samples -1025, 25744 are FF FB 90 64: a valid MPEG-1 Layer III header (128 kbit/s,
    # 44.1 kHz, 417-byte frames), but no second header follows 417 bytes later
    pcm = np.array([-1025, 25744] + [0] * 2000, dtype="<i2").tobytes()
    assert sniff_compressed(pcm) is None
    assert sniff_compressed(pcm[:417] + pcm[:4] + bytes(10)) == "MP3 (MPEG frame)"
    audio = AuraAudio("linear16", 24_000)
    count, linear = audio.feed(pcm[:3])  # too short to tell: held
    assert (count, linear, audio.format) == (0, b"", None)
    count, linear = audio.feed(pcm[3:])
    assert audio.format == AudioFormat("linear16", 24_000) and count == len(pcm) // 2
    assert linear == pcm


@pytest.mark.parametrize(("subtype", "encoding"), [("PCM_16", "linear16"), ("ULAW", "mulaw"),
                                                   ("ALAW", "alaw")])  # fmt: skip
def test_wav_header_is_parsed_and_stripped(subtype: str, encoding: str) -> None:
    pcm = _speech(16_000, 50, 100)
    data = _encode(pcm, 16_000, "WAV", subtype)
    found = parse_wav_header(data)
    assert found is not None
    fmt, header = found
    assert fmt == AudioFormat(encoding, 16_000, container="wav")
    audio = AuraAudio("linear16", 24_000)  # the header wins over what the URL asked for
    counts, linear = zip(*(audio.feed(c) for c in _chunks(data, 1000)), strict=True)
    assert sum(counts) == len(pcm) == (len(data) - header) // fmt.bytes_per_sample
    decoded = np.frombuffer(b"".join(linear), dtype="<i2")
    # G.711 is lossy: the decoded samples are close to the originals, linear16 exact
    assert np.abs(decoded.astype(int) - pcm).max() <= (0 if encoding == "linear16" else 300)


def test_a_wav_header_split_across_frames_waits_for_the_data_chunk() -> None:
    data = _encode(_speech(24_000, 10, 10), 24_000, "WAV", "PCM_16")
    assert parse_wav_header(data[:30]) is None
    audio = AuraAudio()
    assert audio.feed(data[:30]) == (0, b"") and audio.format is None
    count, _ = audio.feed(data[30:])
    assert count == 480 and audio.format is not None and audio.format.container == "wav"


def test_wav_that_cannot_be_timed_is_refused() -> None:
    stereo = _encode(np.zeros((100, 2), dtype=np.int16), 24_000, "WAV", "PCM_16")
    with pytest.raises(UnmeasurableAudio, match="2 channel"):
        AuraAudio().feed(stereo)
    floats = _encode(np.zeros(100, dtype=np.float32), 24_000, "WAV", "FLOAT")
    with pytest.raises(UnmeasurableAudio, match="format code 3"):
        AuraAudio().feed(floats)


def test_raw_mulaw_is_counted_one_byte_per_sample() -> None:
    pcm = _speech(8_000, 100, 200)
    raw = _encode(pcm, 8_000, "RAW", "ULAW")
    audio = AuraAudio("mulaw", 8_000)
    count, linear = audio.feed(raw)
    assert count == len(pcm) == len(raw) and len(linear) == 2 * len(pcm)


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(UnmeasurableAudio, match="'opus' cannot be timed"):
        AuraAudio("opus", 48_000)


@pytest.mark.parametrize("header_alone", [False, True])
def test_ttfa_stall_and_audio_seconds_for_wav_headered_pcm(header_alone: bool) -> None:
    """The same 16 kHz speech, raw or behind a WAV header, gives the same numbers; the URL
    asked for 24 kHz, so reading the header is what makes them right."""
    rate, r_ns = 16_000, 1_000 * MS
    pcm = _speech(rate, 200, 300).astype("<i2").tobytes()
    wav = _encode(np.frombuffer(pcm, dtype="<i2"), rate, "WAV", "PCM_16")
    header = len(wav) - len(pcm)
    half = len(pcm) // 2
    if header_alone:  # the header in a frame of its own, 40 ms before the first samples
        frames = [(wav[:header], 50), (pcm[:half], 90), (pcm[half:], 500)]
    else:
        frames = [(wav[: header + half], 90), (pcm[half:], 500)]
    req = AuraRequest("Hello.", r_ns, 24_000)
    for data, at_ms in frames:
        req.on_audio(data, r_ns + at_ms * MS)
    samples = dict(req.on_flushed(r_ns + 600 * MS))
    rec = req.record
    assert rec.ttfb_us == (50_000 if header_alone else 90_000)
    assert rec.audio_s == pytest.approx(0.5)  # 8,000 samples at 16 kHz, not at 24 kHz
    assert rec.leading_silence_us == 200_000
    assert rec.ttfa_us == 90_000 + 200_000  # playback starts with the first samples
    # player: 90..340 (first half), dry 340..500, then 500..750
    assert samples["aura.stall"] == 160_000 and rec.stall_us == 160_000

    raw = AuraRequest("Hello.", r_ns, rate)
    raw.on_audio(pcm[:half], r_ns + 90 * MS)
    raw.on_audio(pcm[half:], r_ns + 500 * MS)
    raw.on_flushed(r_ns + 600 * MS)
    assert (raw.record.audio_s, raw.record.ttfa_us, raw.record.stall_us) == (
        rec.audio_s, rec.ttfa_us, rec.stall_us)  # fmt: skip
