"""Turns matched by audio time: the pure pairing, then the tracker's numbers built on it.

Reference turns (manifest speech spans, seconds) used throughout:
turn 0 = 1.0 .. 3.0, turn 1 = 4.0 .. 6.0, turn 2 = 7.0 .. 9.0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from voiceload.client.flux_turns import FluxTurnTracker
from voiceload.client.results import SessionResult
from voiceload.client.turn_alignment import Match, MatchKind, align

SPANS = [(1.0, 3.0), (4.0, 6.0), (7.0, 9.0)]
END, PIECE, EXTRA = MatchKind.END, MatchKind.PIECE, MatchKind.EXTRA


def counts(windows: list[tuple[float, float]]) -> tuple[int, int, int, int]:
    a = align(SPANS, windows)
    return a.split, a.merged, a.missed, a.extra


def test_exact_one_end_of_turn_per_turn() -> None:
    a = align(SPANS, [(0.0, 3.4), (3.4, 6.4), (6.4, 9.4)])
    assert a.matches == [Match(END, (0,)), Match(END, (1,)), Match(END, (2,))]
    assert a.ended_by == [0, 1, 2] and counts([(0.0, 3.4), (3.4, 6.4), (6.4, 9.4)]) == (0, 0, 0, 0)


def test_windows_reported_from_zero_are_clipped_to_tile_the_stream() -> None:
    # a service that reports audio_window_start 0 every time pairs the same way
    assert align(SPANS, [(0.0, 3.4), (0.0, 6.4), (0.0, 9.4)]).ended_by == [0, 1, 2]


def test_split_after_the_midpoint_keeps_the_first_end_and_the_piece() -> None:
    windows = [(0.0, 2.2), (2.2, 3.4), (3.4, 6.4), (6.4, 9.4)]  # turn 0 ended twice
    a = align(SPANS, windows)
    assert a.matches == [Match(END, (0,)), Match(PIECE, (0,)), Match(END, (1,)),
                         Match(END, (2,))]  # fmt: skip
    assert a.ended_by == [0, 2, 3] and counts(windows) == (1, 0, 0, 0)


def test_split_before_the_midpoint_is_ended_by_the_end_of_turn_that_reaches_it() -> None:
    windows = [(0.0, 1.5), (1.5, 3.4), (3.4, 6.4), (6.4, 9.4)]
    a = align(SPANS, windows)
    assert [m.kind for m in a.matches] == [PIECE, END, END, END]
    assert a.ended_by == [1, 2, 3] and counts(windows) == (1, 0, 0, 0)


def test_merge_ends_both_turns_with_one_end_of_turn() -> None:
    windows = [(0.0, 6.4), (6.4, 9.4)]
    a = align(SPANS, windows)
    assert a.matches == [Match(END, (0, 1)), Match(END, (2,))]
    assert a.matches[0].merged and a.ended_by == [0, 0, 1]
    assert counts(windows) == (0, 2, 0, 0)


def test_merge_whose_window_stops_inside_the_second_turn_past_its_midpoint() -> None:
    assert align(SPANS, [(0.0, 5.5), (5.5, 9.4)]).matches[0] == Match(END, (0, 1))


def test_missed_turn_lies_outside_every_window() -> None:
    windows = [(0.0, 3.4), (6.5, 9.4)]  # the service's window skips turn 1 entirely
    a = align(SPANS, windows)
    assert a.ended_by == [0, None, 1] and counts(windows) == (0, 0, 1, 0)


def test_extra_end_of_turn_over_silence_or_noise() -> None:
    windows = [(0.0, 3.4), (3.4, 3.9), (3.9, 6.4), (6.4, 9.4), (9.4, 11.0)]
    a = align(SPANS, windows)
    assert [m.kind for m in a.matches] == [END, EXTRA, END, END, EXTRA]
    assert a.ended_by == [0, 2, 3] and counts(windows) == (0, 0, 0, 2)


def test_pieces_only_turn_is_ended_by_its_last_piece() -> None:
    # turn 2 gets one early EndOfTurn and nothing that reaches its midpoint: settled at the end
    a = align(SPANS, [(0.0, 3.4), (3.4, 6.4), (6.4, 7.5)])
    assert a.matches[2] == Match(PIECE, (2,)) and a.settled == (2,)
    assert a.ended_by == [0, 1, 2] and (a.split, a.missed) == (0, 0)
    # a piece of turn 0 followed by an EndOfTurn that ends turn 1 only: turn 0 settles there
    b = align(SPANS, [(0.0, 1.5), (3.5, 6.4)])
    assert b.matches[1] == Match(END, (1,), settled=(0,)) and b.ended_by == [0, 1, None]


def test_mixed_split_merge_missed_extra() -> None:
    spans = [*SPANS, (10.0, 12.0), (13.0, 15.0)]
    windows = [
        (0.0, 2.2), (2.2, 3.4),  # turn 0 split
        (3.4, 6.5), (6.5, 6.8),  # turn 1, then an extra EndOfTurn over silence
        (9.5, 12.4),  # turn 2 missed (outside every window), turn 3
        (12.4, 15.5),  # turn 4
    ]  # fmt: skip
    a = align(spans, windows)
    assert a.ended_by == [0, 2, None, 4, 5]
    assert (a.split, a.merged, a.missed, a.extra) == (1, 0, 1, 1)


# ---- the tracker: split and merge never shift a later turn ---------------------------------

MS = 1_000_000
T0 = 50_000 * MS


@dataclass(frozen=True)
class Turn:
    onset_s: float
    offset_s: float
    transcript: str


TURNS = [Turn(1.0, 3.0, "one two three"), Turn(4.0, 6.0, "four five six"),
         Turn(7.0, 9.0, "seven eight nine")]  # fmt: skip


class Stream:
    """A Flux stream: each service turn is StartOfTurn + EndOfTurn over a window."""

    def __init__(self) -> None:
        self.seq = 0
        self.index = 0
        self.messages: list[tuple[str, int]] = []
        self._send({"type": "Connected", "request_id": "r"}, 0)

    def _send(self, obj: dict[str, Any], at_ms: float) -> None:
        obj["sequence_id"] = self.seq
        self.seq += 1
        self.messages.append((json.dumps(obj), T0 + round(at_ms * MS)))

    def turn(self, start_s: float, end_s: float, text: str, first_ms: float, eot_ms: float) -> None:
        for event, window_end, at_ms in (("StartOfTurn", start_s + 0.3, first_ms),
                                         ("EndOfTurn", end_s, eot_ms)):  # fmt: skip
            self._send({
                "type": "TurnInfo", "request_id": "r", "event": event,
                "turn_index": self.index, "audio_window_start": start_s,
                "audio_window_end": window_end, "transcript": text, "words": [],
                "end_of_turn_confidence": 0.9,
            }, at_ms)  # fmt: skip
        self.index += 1


def run(stream: Stream) -> tuple[FluxTurnTracker, list[tuple[str, int]]]:
    tracker = FluxTurnTracker(TURNS, T0, 80, eager=False)
    samples: list[tuple[str, int]] = []
    for message, arrival_ns in stream.messages:
        samples += tracker.on_text(message, arrival_ns).samples
    samples += tracker.finish().samples
    return tracker, samples


def later_turns(tracker: FluxTurnTracker) -> list[tuple[int | None, int | None, float | None]]:
    return [(r.ttft_us, r.eot_us, r.wer) for r in tracker.records[1:]]


def clean() -> Stream:
    s = Stream()
    s.turn(0.0, 3.4, "one two three", 1_500, 3_400)
    s.turn(3.4, 6.4, "four five six", 4_500, 6_350)
    s.turn(6.4, 9.4, "seven eight nine", 7_600, 9_450)
    return s


def test_clean_stream_numbers() -> None:
    tracker, _ = run(clean())
    assert [(r.ttft_us, r.eot_us, r.wer) for r in tracker.records] == [
        (500_000, 400_000, 0.0), (500_000, 350_000, 0.0), (600_000, 450_000, 0.0)
    ]
    result = SessionResult("flux", "f", "m", 0.0, turns=tracker.records)
    assert (result.turns_split, result.turns_merged, result.wer) == (0, 0, 0.0)


def test_an_earlier_split_leaves_later_turns_unchanged() -> None:
    s = Stream()
    s.turn(0.0, 2.2, "one two", 1_500, 2_600)  # ends turn 0 (past its midpoint), premature
    s.turn(2.2, 3.4, "three", 2_900, 3_400)  # the rest of turn 0: a piece
    s.turn(3.4, 6.4, "four five six", 4_500, 6_350)
    s.turn(6.4, 9.4, "seven eight nine", 7_600, 9_450)
    tracker, samples = run(s)
    assert later_turns(tracker) == later_turns(run(clean())[0])
    first = tracker.records[0]
    assert (first.transcript, first.wer, first.end_of_turns) == ("one two three", 0.0, 2)
    assert (first.eot_us, first.premature) == (-400_000, True)
    assert [v for m, v in samples if m == "flux.eot"] == [0, 350_000, 450_000]
    result = SessionResult("flux", "f", "m", 0.0, turns=tracker.records)
    assert (result.turns_split, result.turns_merged, result.turns_ended, result.wer) == (
        1, 0, 3, 0.0)  # fmt: skip
    # by turn_index, "three" would have been turn 1's transcript and every later turn shifted


def test_an_earlier_merge_leaves_later_turns_unchanged_and_is_timed_from_the_last_offset(
) -> None:  # fmt: skip
    s = Stream()
    s.turn(0.0, 6.4, "one two three four five six", 1_500, 6_500)  # turns 0 and 1 at once
    s.turn(6.4, 9.4, "seven eight nine", 7_600, 9_450)
    tracker, samples = run(s)
    assert tracker.records[2].ttft_us == 600_000 and tracker.records[2].eot_us == 450_000
    first, second, _ = tracker.records
    assert first.merged_into == 1 and first.eot_us is None
    # one flux.eot for the merged turn, from the LAST covered offset S(6.0): 500 ms
    assert (second.eot_us, second.ttft_us, second.wer) == (500_000, 500_000, 0.0)
    assert [v for m, v in samples if m == "flux.eot"] == [500_000, 450_000]
    result = SessionResult("flux", "f", "m", 0.0, turns=tracker.records)
    assert (result.turns_merged, result.turns_ended, result.turns_missed) == (2, 3, 0)
    assert result.wer == 0.0  # the group is scored against both references together
    assert result.to_row()["eot_ms"] == 500.0  # first turn holding its own numbers


def test_extra_end_of_turn_is_counted_and_changes_nothing() -> None:
    s = Stream()
    s.turn(0.0, 3.4, "one two three", 1_500, 3_400)
    s.turn(3.4, 3.8, "uh", 3_700, 3_900)  # over the silence between turns 0 and 1
    s.turn(3.8, 6.4, "four five six", 4_500, 6_350)
    s.turn(6.4, 9.4, "seven eight nine", 7_600, 9_450)
    tracker, _ = run(s)
    assert tracker.extra_turns == 1
    assert later_turns(tracker) == later_turns(run(clean())[0])


def test_missed_turn_counts_as_all_deletions_and_shifts_nothing() -> None:
    s = Stream()
    s.turn(0.0, 3.4, "one two three", 1_500, 3_400)
    s.turn(6.2, 9.4, "seven eight nine", 7_600, 9_450)  # the window starts after turn 1
    tracker, _ = run(s)
    assert not tracker.records[1].ended
    assert tracker.records[2].eot_us == 450_000 and tracker.records[2].wer == 0.0
    result = SessionResult("flux", "f", "m", 0.0, turns=tracker.records)
    assert result.turns_missed == 1 and result.wer == pytest.approx(3 / 9)
