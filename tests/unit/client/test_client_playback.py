"""Playback-stall simulation and leading-silence detection: exact tables, no clocks."""

from __future__ import annotations

import numpy as np
import pytest

from voiceload.client.playback import (
    OnsetDetector,
    PlaybackSimulator,
    leading_silence_ns,
    pcm_duration_ns,
)


@pytest.mark.parametrize(
    ("chunks", "stall_ns", "rtf"),
    [
        ([], 0, None),
        ([(100, 50)], 0, None),
        ([(100, 50), (150, 50), (200, 50)], 0, 150 / 100),  # exactly in time
        ([(100, 50), (120, 50), (130, 50)], 0, 150 / 30),  # ahead: buffer grows
        ([(100, 50), (170, 50)], 20, 100 / 70),  # dry 150..170
        ([(0, 10), (30, 10), (100, 40), (120, 10)], 20 + 60, 70 / 120),  # two gaps, then ahead
    ],
)
def test_playback_stall(chunks: list[tuple[int, int]], stall_ns: int, rtf: float | None) -> None:
    player = PlaybackSimulator()
    for arrival_ns, duration_ns in chunks:
        player.add(arrival_ns, duration_ns)
    assert player.stall_ns == stall_ns
    if rtf is None:
        assert player.realtime_factor() is None
    else:
        assert player.realtime_factor() == pytest.approx(rtf)


def test_pcm_duration() -> None:
    assert pcm_duration_ns(48_000, 24_000) == 1_000_000_000
    assert pcm_duration_ns(3, 16_000) == 62_500  # odd trailing byte ignored


def _pcm(silence_ms: int, tone_ms: int, rate_hz: int, amplitude: int = 8000) -> bytes:
    silent = np.zeros(rate_hz * silence_ms // 1000, dtype="<i2")
    t = np.arange(rate_hz * tone_ms // 1000) / rate_hz
    tone = (amplitude * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    return np.concatenate([silent, tone]).tobytes()


@pytest.mark.parametrize(
    ("silence_ms", "expected_ns"),
    [(0, 0), (120, 120_000_000), (250, 250_000_000), (1000, 1_000_000_000)],
)
def test_leading_silence(silence_ms: int, expected_ns: int) -> None:
    assert leading_silence_ns(_pcm(silence_ms, 200, 24_000), 24_000) == expected_ns


def test_leading_silence_ignores_noise_below_threshold_and_all_silence() -> None:
    quiet = _pcm(0, 300, 16_000, amplitude=30)  # far below the VAD's start threshold
    assert leading_silence_ns(quiet, 16_000) is None
    assert leading_silence_ns(bytes(3200), 16_000) is None


@pytest.mark.parametrize("chunk_bytes", [1, 7, 480, 4801])
def test_onset_detector_same_answer_in_any_chunking(chunk_bytes: int) -> None:
    pcm = _pcm(330, 100, 24_000)
    detector = OnsetDetector(24_000)
    results = [detector.feed(pcm[i : i + chunk_bytes]) for i in range(0, len(pcm), chunk_bytes)]
    detector.finish()
    assert detector.onset_ns == 330_000_000
    first_known = next(i for i, r in enumerate(results) if r is not None)
    assert all(r is None for r in results[:first_known])
