"""perf.search: the capacity search climbs, bisects and stops within its budgets."""

from __future__ import annotations

import pytest

from perf import PerfError
from perf.search import CapacitySearch


def run(search: CapacitySearch, true_capacity: int) -> list[int]:
    """Drive the search against a machine that passes every n <= true_capacity."""
    tried = []
    while (n := search.next_n()) is not None:
        tried.append(n)
        search.record(n, n <= true_capacity)
    return tried


def test_climbs_geometrically_then_bisects_to_granularity() -> None:
    search = CapacitySearch(start=200, max_n=5000, granularity=50, max_trials=20)
    tried = run(search, true_capacity=1130)
    assert tried[:5] == [200, 300, 450, 700, 1050]  # x1.5, rounded to 50
    assert tried[5] == 1600  # first fail
    assert tried[6:] == [1350, 1200, 1150]  # bisect: midpoints rounded to 50
    assert search.capacity == 1050  # within resolution (10 %) of the lowest fail, 1150
    assert search.lowest_fail == 1150


def test_stops_at_max_n_and_says_so() -> None:
    search = CapacitySearch(start=100, max_n=300, granularity=10)
    tried = run(search, true_capacity=10_000)
    assert tried == [100, 150, 230, 300]
    assert search.capacity == 300
    assert search.hit_max


def test_start_failing_searches_down_and_may_find_nothing() -> None:
    search = CapacitySearch(start=400, max_n=1000, granularity=50, max_trials=10)
    run(search, true_capacity=120)
    assert search.capacity == 100
    nothing = CapacitySearch(start=400, max_n=1000, granularity=50, max_trials=10)
    run(nothing, true_capacity=10)
    assert nothing.capacity is None


def test_trial_budget_bounds_the_search() -> None:
    search = CapacitySearch(start=10, max_n=100_000, granularity=10, max_trials=3)
    assert len(run(search, true_capacity=50_000)) == 3


def test_noisy_pass_above_a_fail_does_not_count() -> None:
    search = CapacitySearch(start=100, max_n=1000, granularity=10)
    for n, ok in [(100, True), (150, False), (200, True)]:
        search.record(n, ok)
    assert search.capacity == 100
    assert not search.hit_max


@pytest.mark.parametrize(
    "kwargs",
    [dict(start=0, max_n=10), dict(start=20, max_n=10), dict(start=1, max_n=10, factor=1.0)],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(PerfError):
        CapacitySearch(**kwargs)  # type: ignore[arg-type]
