"""Capacity search: the largest load that still meets a budget, found in few trials (pure).

A trial runs ``n`` streams and says whether the budget held (send-lag p99 <= 5 ms, no session
errors). The search climbs geometrically from ``start`` (``n·factor``, rounded to ``granularity``)
until a trial fails or ``max_n`` passes, then bisects between the largest pass below the lowest
fail and that fail until the gap is within ``granularity`` or ``resolution`` of the pass, or the
trial budget ``max_trials`` is spent. Noisy results are handled conservatively: the capacity is
the largest passing ``n`` *below* the lowest failing ``n``.

    search = CapacitySearch(start=200, max_n=3000, granularity=50)
    while (n := search.next_n()) is not None:
        search.record(n, run_trial(n))
    search.capacity  # None when even the smallest load failed
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from perf import PerfError


@dataclass(frozen=True)
class Trial:
    n: int
    passed: bool


@dataclass
class CapacitySearch:
    """Upward-then-bisect search over stream counts; see the module docstring."""

    start: int
    max_n: int
    granularity: int = 10
    factor: float = 1.5
    resolution: float = 0.1
    max_trials: int = 8
    trials: list[Trial] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.start <= self.max_n:
            raise PerfError(f"search start {self.start} must be in 1..max_n ({self.max_n})")
        if self.granularity < 1 or self.factor <= 1.0 or self.max_trials < 1:
            raise PerfError(
                f"bad search settings: granularity {self.granularity} (>= 1), factor "
                f"{self.factor} (> 1), max_trials {self.max_trials} (>= 1)"
            )

    @property
    def lowest_fail(self) -> int | None:
        fails = [t.n for t in self.trials if not t.passed]
        return min(fails) if fails else None

    @property
    def capacity(self) -> int | None:
        """The largest passing ``n`` below the lowest failing one (None: nothing passed)."""
        ceiling = self.lowest_fail
        passes = [t.n for t in self.trials if t.passed and (ceiling is None or t.n < ceiling)]
        return max(passes) if passes else None

    @property
    def hit_max(self) -> bool:
        """True when ``max_n`` itself passed: the capacity is at least ``max_n``."""
        return self.capacity == self.max_n

    def record(self, n: int, passed: bool) -> None:
        self.trials.append(Trial(n, passed))

    def next_n(self) -> int | None:
        """The next load to try, or None when the search is done."""
        if len(self.trials) >= self.max_trials:
            return None
        if not self.trials:
            return self.start
        tried = {t.n for t in self.trials}
        hi = self.lowest_fail
        lo = self.capacity or 0
        if hi is None:  # still climbing
            if lo >= self.max_n:
                return None
            up = min(self.max_n, max(lo + self.granularity, self._round(lo * self.factor)))
            return None if up in tried else up
        gap = hi - lo
        if gap <= self.granularity or (lo > 0 and gap <= self.resolution * lo):
            return None
        mid = self._round((lo + hi) / 2)
        return mid if lo < mid < hi and mid not in tried else None

    def _round(self, x: float) -> int:
        """``x`` rounded to a multiple of ``granularity`` (at least ``granularity``)."""
        return max(self.granularity, self.granularity * math.floor(x / self.granularity + 0.5))
