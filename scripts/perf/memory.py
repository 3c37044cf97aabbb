"""Memory per concurrent stream: the least-squares slope of RSS over stream count (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from perf import PerfError


@dataclass(frozen=True)
class SlopeFit:
    """``rss ≈ intercept_bytes + slope_bytes_per_stream · n``; ``r2`` is the fit's R²."""

    slope_bytes_per_stream: float
    intercept_bytes: float
    r2: float
    points: int


def rss_slope(points: Sequence[tuple[int, int]]) -> SlopeFit:
    """Fit ``(streams, rss_bytes)`` points; needs at least two distinct stream counts.

    R² is 1.0 when every point lies on the line (including a flat line through equal RSS).
    """
    ns = {n for n, _ in points}
    if len(ns) < 2:
        raise PerfError(
            f"an RSS slope needs runs at two or more stream counts, got {sorted(ns)}"
        )
    count = len(points)
    mean_n = sum(n for n, _ in points) / count
    mean_rss = sum(r for _, r in points) / count
    sxx = sum((n - mean_n) ** 2 for n, _ in points)
    sxy = sum((n - mean_n) * (r - mean_rss) for n, r in points)
    slope = sxy / sxx
    intercept = mean_rss - slope * mean_n
    ss_tot = sum((r - mean_rss) ** 2 for _, r in points)
    ss_res = sum((r - (intercept + slope * n)) ** 2 for n, r in points)
    r2 = 1.0 if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return SlopeFit(slope, intercept, r2, count)
