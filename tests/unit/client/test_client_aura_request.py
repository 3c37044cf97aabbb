"""AuraRequest: exact tables of audio arrivals -> ttfb, ttfa, flushed, stall."""

from __future__ import annotations

import numpy as np
import pytest

from voiceload.client.aura_request import AuraRequest

MS = 1_000_000
RATE = 24_000


def _silence(ms: int) -> bytes:
    return bytes(RATE * ms // 1000 * 2)


def _tone(ms: int) -> bytes:
    t = np.arange(RATE * ms // 1000) / RATE
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()


def test_request_metrics_table() -> None:
    r_ns = 5_000 * MS
    req = AuraRequest("Hello there.", r_ns, RATE)
    table = [
        # (frame, arrival ms after r, samples completed)
        (_silence(100), 90, [("aura.ttfb", 90_000)]),
        (_silence(100), 140, []),
        (_tone(100), 400, [("aura.ttfa", 90_000 + 200_000)]),  # 200 ms leading silence
        (_tone(100), 450, []),
    ]
    for frame, arrival_ms, expected in table:
        assert req.on_audio(frame, r_ns + arrival_ms * MS) == expected
    # player: 90..190, ahead until 290, dry 290..400 (110 ms), then 400..600
    assert req.on_flushed(r_ns + 500 * MS) == [("aura.flushed", 500_000), ("aura.stall", 110_000)]
    rec = req.record
    assert (rec.chars, rec.leading_silence_us, rec.audio_s) == (12, 200_000, pytest.approx(0.4))
    assert rec.realtime_factor == pytest.approx(0.4 / 0.36)
    assert req.audible_ns == r_ns + 290 * MS and req.done
    assert req.on_flushed(r_ns + 900 * MS) == []  # a second Flushed changes nothing


def test_onset_confirmed_across_frames() -> None:
    req = AuraRequest("Hi", 0, RATE)
    # 30 ms of tone: too short for the VAD to call it speech yet
    assert req.on_audio(_silence(50) + _tone(30), 20 * MS) == [("aura.ttfb", 20_000)]
    assert req.on_audio(_tone(70), 30 * MS) == [("aura.ttfa", 20_000 + 50_000)]


def test_click_shorter_than_speech_is_not_audible() -> None:
    req = AuraRequest("Hi", 0, RATE)
    req.on_audio(_silence(50) + _tone(30) + _silence(200), 20 * MS)
    assert [m for m, _ in req.on_flushed(40 * MS)] == ["aura.flushed", "aura.stall"]
    assert req.record.ttfa_us is None


def test_silent_or_missing_audio() -> None:
    silent = AuraRequest("...", 0, RATE)
    silent.on_audio(_silence(200), 10 * MS)
    assert [m for m, _ in silent.on_flushed(30 * MS)] == ["aura.flushed", "aura.stall"]
    assert silent.record.ttfa_us is None and silent.audible_ns is None
    empty = AuraRequest("", 0, RATE)
    assert empty.on_flushed(7 * MS) == [("aura.flushed", 7_000)]
    assert empty.record.ttfb_us is None and empty.record.stall_us is None


def test_odd_byte_frames_count_whole_samples() -> None:
    req = AuraRequest("x", 0, RATE)
    pcm = _silence(10)  # 480 bytes
    req.on_audio(pcm[:241], MS)
    req.on_audio(pcm[241:], 2 * MS)
    assert req.record.audio_s == pytest.approx(0.010)
