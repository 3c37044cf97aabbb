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
