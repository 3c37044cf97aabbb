from __future__ import annotations

import pytest

from voiceload.runner.validity import (
    AllFailingDetector,
    Budgets,
    WorkerHealth,
    judge,
    sustained_cpu_percent,
)


@pytest.mark.parametrize(
    ("samples", "window", "expected"),
    [
        ([], 3, None),
        ([50.0], 3, 50.0),
        ([90.0, 10.0], 3, 10.0),
        ([10.0, 90.0, 10.0, 90.0, 10.0], 3, 10.0),  # spikes never sustained
        ([10.0, 80.0, 85.0, 90.0, 10.0], 3, 80.0),
        ([10.0, 80.0, 85.0, 90.0, 10.0], 1, 90.0),
        ([76.0, 76.0, 76.0], 3, 76.0),
    ],
)
def test_sustained_cpu_is_the_max_of_window_minima(
    samples: list[float], window: int, expected: float | None
) -> None:
    assert sustained_cpu_percent(samples, window) == expected


def test_sustained_cpu_rejects_empty_window() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        sustained_cpu_percent([1.0], 0)


HEALTHY = WorkerHealth("local", [20.0, 30.0, 25.0, 40.0])


@pytest.mark.parametrize(
    ("send_lag", "workers", "out_of_range", "early", "fragments"),
    [
        (1.2, [HEALTHY], {}, None, []),
        (None, [HEALTHY], {}, None, []),  # no Flux users: nothing to judge
        (5.0, [HEALTHY], {}, None, []),  # exactly at budget passes
        (5.01, [HEALTHY], {}, None, ["flux.send_lag p99 5.01 ms exceeds the 5 ms budget"]),
        (1.0, [WorkerHealth("w1", [80.0, 95.0, 90.0, 20.0])], {}, None, ["worker w1 CPU stayed"]),
        (1.0, [WorkerHealth("w1", [20.0, 99.0, 20.0, 99.0])], {}, None, []),
        (1.0, [HEALTHY], {"flux.eot": 2, "flux.ttft": 0}, None, ["2 flux.eot sample(s) outside"]),
        (1.0, [WorkerHealth("w2", final_report=False)], {}, None, ["worker w2's final"]),
        (1.0, [WorkerHealth("w3", lost=True)], {}, None, ["worker w3's final"]),
        (1.0, [HEALTHY], {}, "stopped early: x", ["stopped early: x"]),
        (
            9.0,
            [WorkerHealth("w1", [99.0] * 5)],
            {"aura.ttfb": 1},
            None,
            ["send_lag", "worker w1 CPU", "aura.ttfb"],
        ),
    ],
)
def test_judge_table(
    send_lag: float | None,
    workers: list[WorkerHealth],
    out_of_range: dict[str, int],
    early: str | None,
    fragments: list[str],
) -> None:
    verdict = judge(
        send_lag_p99_ms=send_lag,
        workers=workers,
        out_of_range=out_of_range,
        early_stop_reason=early,
    )
    assert verdict.valid is (not fragments)
    assert len(verdict.reasons) == len(fragments)
    for reason, fragment in zip(verdict.reasons, fragments, strict=True):
        assert fragment in reason
    assert verdict.out_of_range == sum(out_of_range.values())


def test_judge_reports_worker_figures_and_missing_finals() -> None:
    verdict = judge(
        send_lag_p99_ms=2.0,
        workers=[
            WorkerHealth("a", [10.0, 60.0, 70.0, 65.0]),
            WorkerHealth("b", [50.0], final_report=False),
        ],
        out_of_range={},
        budgets=Budgets(worker_cpu_percent=80.0),
    )
    assert verdict.worker_cpu_max == 70.0
    assert verdict.worker_cpu_sustained == 60.0
    assert verdict.missing_worker_finals == ("b",)
    as_json = verdict.to_json()
    assert as_json["valid"] is False
    assert as_json["missing_worker_finals"] == ["b"]


def test_detector_trips_once_after_threshold_same_category() -> None:
    detector = AllFailingDetector(threshold=3)
    assert detector.observe(False, "handshake_refused", "connection refused") is None
    assert detector.observe(False, "handshake_refused", "again") is None
    reason = detector.observe(False, "handshake_refused", "third")
    assert reason is not None
    assert "first 3 sessions all failed with handshake_refused (connection refused)" in reason
    assert detector.observe(False, "handshake_refused") is None


@pytest.mark.parametrize(
    "history",
    [
        [(True, ""), (False, "timeout"), (False, "timeout"), (False, "timeout")],
        [(False, "timeout"), (False, "closed"), (False, "timeout"), (False, "timeout")],
    ],
)
def test_detector_disarmed_by_success_or_mixed_failures(history: list[tuple[bool, str]]) -> None:
    detector = AllFailingDetector(threshold=2)
    assert all(detector.observe(ok, category) is None for ok, category in history)
