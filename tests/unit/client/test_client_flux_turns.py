"""FluxTurnTracker: exact nanosecond tables of messages -> samples, records and findings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from voiceload.client.flux_turns import UNPARSEABLE_RULE, FluxTurnTracker
from voiceload.protocol.flux import Severity

MS = 1_000_000
T0 = 10_000 * MS  # the session's scheduled start


@dataclass(frozen=True)
class Turn:
    onset_s: float
    offset_s: float
    transcript: str


TURNS = [Turn(0.5, 2.0, "Hello there."), Turn(3.0, 4.0, "Bye now")]


class Server:
    """Builds a consistent Flux message stream (consecutive sequence ids, one request id)."""

    def __init__(self) -> None:
        self.seq = 0

    def _next(self, obj: dict[str, Any]) -> str:
        obj["sequence_id"] = self.seq
        self.seq += 1
        return json.dumps(obj)

    def connected(self) -> str:
        return self._next({"type": "Connected", "request_id": "r"})

    def turn(
        self, event: str, index: int, transcript: str, window_end_s: float, start_s: float = 0.0
    ) -> str:
        return self._next({
            "type": "TurnInfo", "request_id": "r", "event": event, "turn_index": index,
            "audio_window_start": start_s, "audio_window_end": window_end_s,
            "transcript": transcript, "words": [], "end_of_turn_confidence": 0.5,
        })  # fmt: skip

    def error(self) -> str:
        return self._next({"type": "Error", "code": "INTERNAL_SERVER_ERROR", "description": "x"})


def test_two_turns_without_eager() -> None:
    srv = Server()
    tr = FluxTurnTracker(TURNS, T0, 80, eager=False)
    table = [
        # (message, arrival ms after T0, samples expected)
        (srv.connected(), 5, []),
        (srv.turn("Update", 0, "", 0.24), 300,
         [("flux.first_response", 220_000), ("flux.transcript_lag", 60_000)]),
        (srv.turn("StartOfTurn", 0, "hello", 0.72), 750, []),
        (srv.turn("Update", 0, "hello there", 1.2), 1230,
         [("flux.transcript_lag", 30_000)]),
        # the pairing is known at EndOfTurn: ttft (measured at its own arrival) comes with it
        (srv.turn("EndOfTurn", 0, "hello there", 2.3), 2412.345,
         [("flux.ttft", 250_000), ("flux.eot", 412_345)]),
        (srv.turn("StartOfTurn", 1, "bye", 3.3), 3400, []),
        (srv.turn("EndOfTurn", 1, "bye", 3.9), 3950,
         [("flux.ttft", 400_000), ("flux.eot", 0)]),  # premature
    ]  # fmt: skip
    ended = []
    for message, arrival_ms, expected in table:
        step = tr.on_text(message, T0 + round(arrival_ms * MS))
        assert step.samples == expected, message
        # this sparse table skips Updates: cadence warnings only, never a violation
        assert [f for f in step.findings if f.is_violation] == []
        if step.ended:
            ended.append(step.ended)
    assert [(e.index, e.arrival_ns, e.offset_ns) for e in ended] == [
        (0, T0 + 2_412_345_000, T0 + 2_000 * MS), (1, T0 + 3_950 * MS, T0 + 4_000 * MS)
    ]
    assert tr.all_ended and tr.first_response_us == 220_000
    first, second = tr.records
    assert (first.ttft_us, first.eot_us, first.premature, first.wer) == (250_000, 412_345,
                                                                        False, 0.0)
    assert (second.eot_us, second.premature, second.transcript) == (-50_000, True, "bye")
    assert second.wer == pytest.approx(0.5)  # "bye" against "bye now": one deletion


def test_eager_turn_with_resume_and_early_transcript() -> None:
    srv = Server()
    tr = FluxTurnTracker(TURNS[:1], T0, 80, eager=True)
    tr.on_text(srv.connected(), T0)
    # a transcript before S(onset) = T0 + 500 ms is measured from S(onset): signed -100 ms
    step = tr.on_text(srv.turn("StartOfTurn", 0, "hello", 0.4), T0 + 400 * MS)
    assert step.samples == [("flux.first_response", 320_000)]
    step = tr.on_text(srv.turn("EagerEndOfTurn", 0, "hello", 1.9), T0 + 2_100 * MS)
    assert step.samples == []
    tr.on_text(srv.turn("TurnResumed", 0, "hello there", 2.0), T0 + 2_150 * MS)
    step = tr.on_text(srv.turn("EagerEndOfTurn", 0, "hello there", 2.1), T0 + 2_200 * MS)
    assert step.samples == []
    step = tr.on_text(srv.turn("EndOfTurn", 0, "hello there", 2.2), T0 + 2_300 * MS)
    # only the first EagerEndOfTurn of a turn counts; all three samples come with EndOfTurn
    assert step.samples == [("flux.ttft", 0), ("flux.eager_eot", 100_000), ("flux.eot", 300_000)]
    assert not step.findings and tr.records[0].ttft_us == -100_000
    assert tr.records[0].resumed == 1 and tr.records[0].eager_eot_us == 100_000


def test_missed_turn_and_extra_turns_and_findings() -> None:
    srv = Server()
    tr = FluxTurnTracker(TURNS, T0, 80, eager=False)
    tr.on_text(srv.connected(), T0)
    tr.on_text(srv.turn("StartOfTurn", 0, "hello", 0.7), T0 + 800 * MS)
    tr.on_text(srv.turn("EndOfTurn", 0, "hello there", 2.2), T0 + 2_300 * MS)
    assert not tr.all_ended and tr.records[1].transcript is None
    # a turn_index the checker did not expect is only a warning: turns pair by audio time
    step = tr.on_text(srv.turn("StartOfTurn", 2, "noise", 5.0, 4.5), T0 + 5_100 * MS)
    assert step.samples == []
    assert ("turn-index-unexpected", Severity.WARNING) in [
        (f.rule, f.severity) for f in step.findings
    ]
    # its window (4.5 .. 5.5 s) holds no reference speech: an extra turn, counted, not measured
    step = tr.on_text(srv.turn("EndOfTurn", 2, "noise", 5.5, 4.5), T0 + 5_600 * MS)
    assert step.samples == [] and step.ended is None and tr.extra_turns == 1
    step = tr.on_text("{not json", T0 + 5_700 * MS)
    assert [(f.rule, f.severity) for f in step.findings] == [(UNPARSEABLE_RULE,
                                                              Severity.VIOLATION)]
    assert tr.on_binary().rule == UNPARSEABLE_RULE
    assert len(tr.violations) == 2 and not any(f.is_violation for f in tr.checker.findings)
    assert tr.finish().samples == [] and not tr.records[1].ended  # turn 1 stays missed


def test_service_error_is_reported() -> None:
    srv = Server()
    tr = FluxTurnTracker(TURNS, T0, 80, eager=False)
    tr.on_text(srv.connected(), T0)
    step = tr.on_text(srv.error(), T0 + MS)
    assert step.error is not None and step.error.code == "INTERNAL_SERVER_ERROR"
