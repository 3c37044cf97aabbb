from __future__ import annotations

from voiceload.metrics import Phase
from voiceload.runner.plugin import PhaseClock


def test_phase_boundaries_follow_the_events() -> None:
    clock = PhaseClock()
    clock.enter(Phase.RAMP_UP, 100.0)
    clock.enter(Phase.STEADY, 110.0)
    clock.enter(Phase.STEADY, 111.0)  # a second spawning_complete changes nothing
    assert clock.phase is Phase.STEADY
    clock.enter(Phase.TEARDOWN, 170.0)
    assert clock.close(175.5) == {
        "ramp_up": [100.0, 110.0],
        "steady": [110.0, 170.0],
        "teardown": [170.0, 175.5],
    }


def test_a_run_stopped_during_ramp_up_has_no_steady_phase() -> None:
    clock = PhaseClock()
    clock.enter(Phase.RAMP_UP, 5.0)
    clock.enter(Phase.TEARDOWN, 7.0)
    assert clock.close(9.0) == {"ramp_up": [5.0, 7.0], "teardown": [7.0, 9.0]}


def test_merging_a_payload_metric_by_metric_gives_the_same_totals(tmp_path: object) -> None:
    from voiceload.metrics import Aggregator, Recorder
    from voiceload.runner.plugin import split_by_metric

    recorder = Recorder(10.0)
    for value_us in (1_000, 2_000, 3_000):
        recorder.record("flux.eot", value_us, Phase.STEADY)
    recorder.record("flux.ttft", 500, Phase.RAMP_UP)
    recorder.record("aura.ttfb", -1, Phase.STEADY)  # refused: out of range
    payload = recorder.drain(12.0, final=True)
    whole, pieces = Aggregator(None, 10.0), Aggregator(None, 10.0)
    whole.add(payload, "w")
    parts = split_by_metric(payload)
    assert len(parts) == 3 and [p["final"] for p in parts] == [False, False, True]
    for part in parts:
        pieces.add(part, "w")
    assert pieces.summary() == whole.summary()
    assert pieces.sources["w"].final_received
    empty = Recorder(0.0).drain(1.0, final=True)
    assert split_by_metric(empty) == [dict(empty)]
