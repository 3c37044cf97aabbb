"""Percentiles of a plain sorted list (nearest rank), in the caller's unit (pure).

The baseline client deliberately keeps raw samples in a list instead of a histogram; the same
rule is used for the accuracy errors so every table on the page reads alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from perf import PerfError


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ascending ``sorted_values``.

    Rank ``ceil(q/100 · n)`` (1-based): p50 of ``[1, 2, 3, 4]`` is 2, p100 is the maximum.
    An empty list or q outside (0, 100] is a :class:`PerfError`.
    """
    if not sorted_values:
        raise PerfError("percentile of no samples: the measurement recorded nothing")
    if not 0 < q <= 100:
        raise PerfError(f"percentile must be in (0, 100], got {q}")
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    """``{"count", "p50", "p99", "max"}`` of unsorted ``values``; empty: :class:`PerfError`."""
    ordered = sorted(values)
    return {
        "count": float(len(ordered)),
        "p50": percentile(ordered, 50),
        "p99": percentile(ordered, 99),
        "max": ordered[-1],
    }
