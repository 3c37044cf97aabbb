"""Alternating voiceload/baseline capacity pairs: trial order, ratios, median and spread (pure).

Issue 16 judges voiceload by its capacity as a fraction of the plain-asyncio baseline's, and this
VM's speed drifts by 10-15 % within minutes. So ``make perf`` measures the two sides in *pairs*:
each pair runs a voiceload capacity search and a baseline capacity search **interleaved trial by
trial** (one voiceload trial, one baseline trial, ...), so both searches see the same minutes of
the host; which side goes first alternates from step to step and from pair to pair, so neither
side is systematically the first after a pause. Each pair gives one ratio (voiceload capacity ÷
baseline capacity); the page states the median of the pairs' ratios and their spread (min-max).

    pair = run_pair(0, searches, trials)         # {"voiceload": {...}, "baseline": {...}, ...}
    summary = summarise([pair, ...])            # median ratio, spread, each side's capacities
    verdicts({80: summary80, 20: summary20})    # the issue's goals: met / missed / not judged
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from typing import Any

from perf.search import CapacitySearch

VOICELOAD = "voiceload"
BASELINE = "baseline"
SIDES = (VOICELOAD, BASELINE)
GOAL_RATIO = 0.85
GOAL_STREAMS_80 = 1000

Trial = Callable[[int], dict[str, Any]]


def first_side(pair_index: int, step: int) -> str:
    """Which side runs first at ``step`` of pair ``pair_index``: alternates along both."""
    return VOICELOAD if (pair_index + step) % 2 == 0 else BASELINE


def run_pair(
    pair_index: int,
    searches: Mapping[str, CapacitySearch],
    trials: Mapping[str, Trial],
    on_trial: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Advance both sides' searches in lockstep, one trial each per step (order:
    :func:`first_side`); a side whose search is done is skipped. Each trial result must carry
    ``passed``; ``streams`` and ``order`` (its place in the pair, from 0) are added here."""
    results: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    step = order = 0
    while True:
        first = first_side(pair_index, step)
        sides = (first, BASELINE if first == VOICELOAD else VOICELOAD)
        ran = False
        for side in sides:
            n = searches[side].next_n()
            if n is None:
                continue
            result = trials[side](n)
            result["streams"] = n
            result["order"] = order
            order += 1
            searches[side].record(n, bool(result["passed"]))
            results[side].append(result)
            ran = True
            if on_trial is not None:
                on_trial(side, result)
        if not ran:
            break
        step += 1
    pair: dict[str, Any] = {"index": pair_index}
    for side in SIDES:
        s = searches[side]
        best = next((r for r in results[side] if r["streams"] == s.capacity and r["passed"]),
                    None)  # fmt: skip
        pair[side] = {"capacity": s.capacity, "lowest_fail": s.lowest_fail, "hit_max": s.hit_max,
                      "at_capacity": best, "trials": results[side]}  # fmt: skip
    pair["ratio"] = ratio(pair[VOICELOAD]["capacity"], pair[BASELINE]["capacity"])
    pair["ratio_range"] = ratio_range(pair[VOICELOAD], pair[BASELINE])
    return pair


def ratio(voiceload: int | None, baseline: int | None) -> float | None:
    """voiceload ÷ baseline capacity; None when either found no passing load."""
    if not voiceload or not baseline:
        return None
    return voiceload / baseline


def ratio_range(
    voiceload: Mapping[str, Any], baseline: Mapping[str, Any]
) -> tuple[float | None, float | None]:
    """Where the true ratio lies, given each side's search bracket: a side's true capacity is at
    least its ``capacity`` (largest pass) and below its ``lowest_fail``. So the ratio is above
    voiceload capacity ÷ baseline lowest fail and below voiceload lowest fail ÷ baseline
    capacity. A bound is None where a side has no fail (or no pass) to bound it."""
    v_pass, v_fail = voiceload.get("capacity"), voiceload.get("lowest_fail")
    b_pass, b_fail = baseline.get("capacity"), baseline.get("lowest_fail")
    low = v_pass / b_fail if v_pass and b_fail else (0.0 if not v_pass and b_fail else None)
    high = v_fail / b_pass if v_fail and b_pass else None
    return low, high


def summarise(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each side's capacities, the pairs' ratios, their median and spread (min, max).

    A pair without a ratio (a side passed no load) counts as ratio 0 for the median and the
    spread: leaving it out would hide a failure. ``hit_max`` is true when any capacity of that
    side was capped by the search's ``max_n`` (the capacity is then a lower bound).
    """
    ratios = [p["ratio"] for p in pairs]
    counted = [0.0 if r is None else r for r in ratios]
    out: dict[str, Any] = {
        "pairs": len(pairs),
        "ratios": ratios,
        "median_ratio": statistics.median(counted) if counted else None,
        "min_ratio": min(counted) if counted else None,
        "max_ratio": max(counted) if counted else None,
        "ratio_ranges": [p.get("ratio_range") for p in pairs],
    }
    for side in SIDES:
        caps = [p[side]["capacity"] for p in pairs]
        out[side] = {
            "capacities": caps,
            "median": statistics.median([c or 0 for c in caps]) if caps else None,
            "lowest_fails": [p[side].get("lowest_fail") for p in pairs],
            "hit_max": any(p[side]["hit_max"] for p in pairs),
        }
    return out


def verdicts(summaries: Mapping[int, dict[str, Any]]) -> dict[str, bool | None]:
    """Issue 16's goals from the per-frame-size summaries (None: not measured / not judged).

    ``ratio_<f>``: the median ratio at ``f`` ms frames is at least 85 %. ``streams_80``: judged
    only in a run where the baseline reaches 1,000 streams of 80 ms (its median capacity); met
    when voiceload's median capacity does too.
    """
    out: dict[str, bool | None] = {}
    for frame_ms in (80, 20):
        s = summaries.get(frame_ms)
        med = None if s is None else s["median_ratio"]
        out[f"ratio_{frame_ms}"] = None if med is None else med >= GOAL_RATIO
    s80 = summaries.get(80)
    if s80 is None or (s80[BASELINE]["median"] or 0) < GOAL_STREAMS_80:
        out["streams_80"] = None
    else:
        out["streams_80"] = (s80[VOICELOAD]["median"] or 0) >= GOAL_STREAMS_80
    return out
