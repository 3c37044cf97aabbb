"""harness.loop_lag: the lateness recorder (fake clock and sleeper) and its validity rule."""

from __future__ import annotations

import pytest

from voiceload.metrics import METRICS
from voiceload.runner.looplag import LOOP_LAG_INTERVAL_S, LoopLagMonitor
from voiceload.runner.validity import Budgets, judge


class FakeLoop:
    """A monotonic clock that each sleep advances by the interval plus a scripted stall."""

    def __init__(self, stalls_ns: list[int]) -> None:
        self.now_ns = 1_000_000_000
        self.stalls_ns = list(stalls_ns)
        self.slept: list[float] = []

    def clock_ns(self) -> int:
        return self.now_ns

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_ns += round(seconds * 1e9) + self.stalls_ns.pop(0)


def test_records_lateness_of_each_sleep_in_us() -> None:
    loop = FakeLoop([0, 2_500_000, 37_000, 12_000_000])
    recorded: list[int] = []
    monitor = LoopLagMonitor(recorded.append, clock_ns=loop.clock_ns, sleep=loop.sleep)
    for _ in range(4):
        monitor.step()
    assert recorded == [0, 2500, 37, 12000]
    assert loop.slept == [LOOP_LAG_INTERVAL_S] * 4
    assert monitor.samples == 4


def test_waking_early_counts_as_zero() -> None:
    loop = FakeLoop([-3_000_000])
    recorded: list[int] = []
    LoopLagMonitor(recorded.append, clock_ns=loop.clock_ns, sleep=loop.sleep).step()
    assert recorded == [0]


def test_run_stops_when_told() -> None:
    loop = FakeLoop([1000] * 10)
    recorded: list[int] = []
    monitor = LoopLagMonitor(
        recorded.append, interval_s=0.02, clock_ns=loop.clock_ns, sleep=loop.sleep
    )
    monitor.run(should_stop=lambda: len(recorded) >= 3)
    assert recorded == [1, 1, 1]
    assert loop.slept == [0.02] * 3


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LoopLagMonitor(lambda _: None, interval_s=0)


def test_metric_is_a_known_harness_metric() -> None:
    assert METRICS["harness.loop_lag"].harness


def test_loop_lag_above_budget_makes_the_run_invalid() -> None:
    verdict = judge(send_lag_p99_ms=1.0, workers=[], out_of_range={}, loop_lag_p99_ms=7.5)
    assert not verdict.valid
    assert len(verdict.reasons) == 1
    assert "harness.loop_lag p99 7.50 ms exceeds the 5 ms budget" in verdict.reasons[0]
    assert verdict.to_json()["loop_lag_p99_ms"] == 7.5


def test_loop_lag_within_budget_or_unmeasured_is_valid() -> None:
    assert judge(send_lag_p99_ms=1.0, workers=[], out_of_range={}, loop_lag_p99_ms=4.9).valid
    assert judge(send_lag_p99_ms=1.0, workers=[], out_of_range={}).valid


def test_loop_lag_budget_is_configurable() -> None:
    budgets = Budgets(loop_lag_p99_ms=10.0)
    kw = {"send_lag_p99_ms": None, "workers": [], "out_of_range": {}, "budgets": budgets}
    assert judge(**kw, loop_lag_p99_ms=7.5).valid  # type: ignore[arg-type]
    assert not judge(**kw, loop_lag_p99_ms=10.5).valid  # type: ignore[arg-type]


def test_generators_freeze_the_startup_heap() -> None:
    import gc

    from voiceload.runner.plugin import freeze_heap

    gc.unfreeze()
    kept: list[int] = [1]  # a container, tracked by the collector, alive before the run
    try:
        freeze_heap()
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # out of the collected generations
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())  # collected again after unfreeze
