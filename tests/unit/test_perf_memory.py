"""perf.memory: RSS slope per stream by least squares."""

from __future__ import annotations

import pytest

from perf import PerfError
from perf.memory import rss_slope

MIB = 1 << 20


def test_exact_line_is_recovered() -> None:
    points = [(n, 40 * MIB + 60_000 * n) for n in (100, 200, 400, 800)]
    fit = rss_slope(points)
    assert fit.slope_bytes_per_stream == pytest.approx(60_000)
    assert fit.intercept_bytes == pytest.approx(40 * MIB)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.points == 4


def test_noise_lowers_r2_but_slope_stays_close() -> None:
    points = [(100, 46 * MIB), (200, 52 * MIB + 300_000), (300, 58 * MIB - 200_000)]
    fit = rss_slope(points)
    assert fit.slope_bytes_per_stream == pytest.approx(6 * MIB / 100, rel=0.1)
    assert 0.9 < fit.r2 < 1.0


def test_one_stream_count_is_not_a_slope() -> None:
    with pytest.raises(PerfError, match="two or more"):
        rss_slope([(100, MIB), (100, 2 * MIB)])
