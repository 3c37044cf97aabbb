"""make perf's emulator trials: a saturated emulator does not pass on its per-message time."""

from __future__ import annotations

from typing import Any

from perf.run_perf import emulator_point_passed


def point(**overrides: Any) -> dict[str, Any]:
    base = {"proc_p99_ms": 0.24, "loop_lag_p99_ms": 2.9, "client_errors": 0,
            "send_lag_p99_ms": 1.1}  # fmt: skip
    return {**base, **overrides}


def test_a_trial_within_every_budget_passes() -> None:
    assert emulator_point_passed(point())


def test_a_queueing_event_loop_fails_although_each_message_is_processed_fast() -> None:
    # 2026-11-27 04:17: 1,350 streams on one process, proc p99 0.22 ms, loop lag p99 3.3 s
    assert not emulator_point_passed(point(proc_p99_ms=0.22, loop_lag_p99_ms=3271.3))
    assert not emulator_point_passed(point(loop_lag_p99_ms=None))  # no lag records: unknown


def test_slow_processing_or_a_client_that_fell_behind_fails() -> None:
    assert not emulator_point_passed(point(proc_p99_ms=2.5))
    assert not emulator_point_passed(point(send_lag_p99_ms=7.5))
    assert not emulator_point_passed(point(client_errors=3))
