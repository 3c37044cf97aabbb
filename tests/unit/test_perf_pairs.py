"""perf.pairs: alternating voiceload/baseline trials, per-pair ratios, median, spread, verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from perf.pairs import (
    BASELINE,
    VOICELOAD,
    first_side,
    ratio,
    ratio_range,
    run_pair,
    summarise,
    verdicts,
)
from perf.search import CapacitySearch


def fake_trials(limits: dict[str, int], log: list[tuple[str, int]]) -> dict[str, Any]:
    """Trials that pass up to ``limits[side]`` streams and log (side, n) in call order."""

    def make(side: str) -> Any:
        def trial(n: int) -> dict[str, Any]:
            log.append((side, n))
            return {"passed": n <= limits[side], "send_lag_p99_ms": 1.0}

        return trial

    return {side: make(side) for side in (VOICELOAD, BASELINE)}


def searches(max_trials: int = 4) -> dict[str, CapacitySearch]:
    return {side: CapacitySearch(start=400, max_n=3000, granularity=50, max_trials=max_trials)
            for side in (VOICELOAD, BASELINE)}  # fmt: skip


def test_trials_interleave_and_the_first_side_alternates_by_step_and_pair() -> None:
    log: list[tuple[str, int]] = []
    run_pair(0, searches(), fake_trials({VOICELOAD: 700, BASELINE: 700}, log))
    sides = [side for side, _ in log]
    assert sides == [VOICELOAD, BASELINE, BASELINE, VOICELOAD, VOICELOAD, BASELINE,
                     BASELINE, VOICELOAD]  # fmt: skip
    log.clear()
    run_pair(1, searches(), fake_trials({VOICELOAD: 700, BASELINE: 700}, log))
    assert [side for side, _ in log][:2] == [BASELINE, VOICELOAD]  # next pair starts the other way
    assert first_side(2, 0) == VOICELOAD and first_side(2, 1) == BASELINE


def test_a_side_whose_search_ended_is_skipped_and_the_other_goes_on() -> None:
    log: list[tuple[str, int]] = []
    both = searches()
    both[VOICELOAD] = CapacitySearch(start=400, max_n=3000, granularity=50, max_trials=1)
    # voiceload fails its only trial: its search ends; the baseline's runs its 4 trials
    pair = run_pair(0, both, fake_trials({VOICELOAD: 100, BASELINE: 2000}, log))
    assert log == [(VOICELOAD, 400), (BASELINE, 400), (BASELINE, 600), (BASELINE, 900),
                   (BASELINE, 1350)]  # fmt: skip
    assert pair[VOICELOAD]["capacity"] is None and pair["ratio"] is None
    assert [t["order"] for t in pair[BASELINE]["trials"]] == [1, 2, 3, 4]


def test_pair_records_capacities_the_trial_there_and_the_ratio() -> None:
    log: list[tuple[str, int]] = []
    pair = run_pair(0, searches(), fake_trials({VOICELOAD: 650, BASELINE: 1000}, log))
    # 400, 600 pass, 900 fails, 750 fails -> 600; baseline 400, 600, 900 pass, 1350 fails -> 900
    assert pair[VOICELOAD]["capacity"] == 600
    assert pair[BASELINE]["capacity"] == 900
    assert pair[VOICELOAD]["at_capacity"]["streams"] == 600
    assert pair["ratio"] == pytest.approx(600 / 900)


def pair(v: int | None, b: int | None, hit_max: bool = False) -> dict[str, Any]:
    return {VOICELOAD: {"capacity": v, "hit_max": False},
            BASELINE: {"capacity": b, "hit_max": hit_max}, "ratio": ratio(v, b)}  # fmt: skip


def test_summary_is_the_median_ratio_with_min_max_spread_and_each_sides_capacities() -> None:
    s = summarise([pair(800, 1000), pair(900, 1000), pair(600, 1000)])
    assert s["pairs"] == 3
    assert s["median_ratio"] == pytest.approx(0.8)
    assert (s["min_ratio"], s["max_ratio"]) == (pytest.approx(0.6), pytest.approx(0.9))
    assert s[VOICELOAD]["capacities"] == [800, 900, 600] and s[VOICELOAD]["median"] == 800
    assert s[BASELINE]["median"] == 1000 and not s[BASELINE]["hit_max"]


def test_a_pair_with_no_passing_load_counts_as_ratio_zero_not_left_out() -> None:
    s = summarise([pair(None, 1000), pair(900, 1000), pair(950, 1000)])
    assert s["ratios"][0] is None
    assert s["min_ratio"] == 0.0
    assert s["median_ratio"] == pytest.approx(0.9)


def test_verdicts_ratio_goals_and_the_1000_streams_goal_only_when_the_baseline_reaches_it() -> None:
    met = summarise([pair(1100, 1200), pair(1050, 1200), pair(1000, 1150)])
    low = summarise([pair(500, 1000), pair(600, 1000), pair(550, 1000)])
    slow_host = summarise([pair(600, 700), pair(650, 700), pair(640, 700)])
    assert verdicts({80: met, 20: low}) == {"ratio_80": True, "ratio_20": False,
                                           "streams_80": True}  # fmt: skip
    assert verdicts({80: low})["streams_80"] is False
    assert verdicts({80: slow_host})["streams_80"] is None  # baseline < 1000: not judged
    assert verdicts({80: slow_host})["ratio_80"] is True  # 650/700 = 93 %
    assert verdicts({80: met})["ratio_20"] is None  # 20 ms not measured (PERF_QUICK)


def test_ratio_range_comes_from_both_sides_pass_and_fail_brackets() -> None:
    # voiceload passed 425, failed 450; the baseline passed 450, failed 575: its search stopped
    # with a wide bracket, so the true ratio lies anywhere from 425/575 to 450/450
    low, high = ratio_range({"capacity": 425, "lowest_fail": 450},
                            {"capacity": 450, "lowest_fail": 575})  # fmt: skip
    assert low == pytest.approx(425 / 575) and high == pytest.approx(1.0)
    # no fail on the baseline side (capped by max_n): no lower bound; no pass on voiceload's: 0
    capped = ratio_range({"capacity": 600, "lowest_fail": 650},
                         {"capacity": 3000, "lowest_fail": None})  # fmt: skip
    assert capped == (None, pytest.approx(650 / 3000))
    none_passed = ratio_range({"capacity": None, "lowest_fail": 200},
                              {"capacity": 900, "lowest_fail": 1350})  # fmt: skip
    assert none_passed == (0.0, pytest.approx(200 / 900))


def test_a_pair_records_each_sides_lowest_fail_and_the_ratio_range() -> None:
    pair = run_pair(0, searches(), fake_trials({VOICELOAD: 650, BASELINE: 1000}, []))
    # voiceload: 600 pass, 750 fail (lowest); baseline: 900 pass, 1350 fail
    assert pair[VOICELOAD]["lowest_fail"] == 750 and pair[BASELINE]["lowest_fail"] == 1350
    assert pair["ratio_range"] == (pytest.approx(600 / 1350), pytest.approx(750 / 900))
    s = summarise([pair])
    assert s["ratio_ranges"] == [pair["ratio_range"]]
    assert s[VOICELOAD]["lowest_fails"] == [750] and s[BASELINE]["lowest_fails"] == [1350]
