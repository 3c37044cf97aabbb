"""The Flux turn state machine in both roles, fed with messages only (PROTOCOLS.md §3.5)."""

from __future__ import annotations

import copy
import dataclasses
import random

import pytest

from voiceload.errors import LocalProtocolError
from voiceload.protocol.flux import (
    EVENT_TARGET,
    TRANSITIONS,
    UPDATE_INTERVAL_S,
    Connected,
    FluxError,
    FluxTurnMachine,
    Rule,
    ServerMessage,
    Severity,
    TurnChecker,
    TurnEvent,
    TurnInfo,
    TurnState,
    severity_of,
)

E = TurnEvent
REQ = "550e8400-e29b-41d4-a716-446655440000"
FULL = "Hi I need to cancel my subscription please."

# Deepgram's published lifecycle example (Flux state-machine page, PROTOCOLS.md §3.5), eager on:
# (event, audio_window_start, audio_window_end, transcript, end_of_turn_confidence)
PUBLISHED: list[tuple[TurnEvent, float, float, str, float]] = [
    (E.UPDATE, 0.0, 0.2, "", 0.1),
    (E.UPDATE, 0.0, 0.5, "", 0.1),
    (E.START_OF_TURN, 0.0, 0.6, "Hi I", 0.1),
    (E.UPDATE, 0.0, 0.8, "Hi I need to", 0.1),
    (E.UPDATE, 0.0, 1.0, "Hi I need to cancel my subscription.", 0.3),
    (E.EAGER_END_OF_TURN, 0.0, 1.1, "Hi I need to cancel my subscription.", 0.3),
    (E.TURN_RESUMED, 0.0, 1.2, "Hi I need to cancel my subscription please", 0.1),
    (E.UPDATE, 0.0, 1.4, FULL, 0.3),
    (E.EAGER_END_OF_TURN, 0.0, 1.5, FULL, 0.3),
    (E.UPDATE, 0.1, 1.6, FULL, 0.5),
    (E.END_OF_TURN, 0.0, 1.7, FULL, 0.7),
]


def published_messages() -> list[ServerMessage]:
    """Connected then the published example with consecutive sequence ids, turn_index 0."""
    out: list[ServerMessage] = [Connected(request_id=REQ, sequence_id=0)]
    for seq, (event, start, end, transcript, conf) in enumerate(PUBLISHED, start=1):
        out.append(
            TurnInfo(
                request_id=REQ,
                sequence_id=seq,
                event=event,
                turn_index=0,
                audio_window_start=start,
                audio_window_end=end,
                transcript=transcript,
                words=(),
                end_of_turn_confidence=conf,
            )
        )
    return out


def check(
    messages: list[ServerMessage], eager: bool | None = True
) -> list[tuple[str, str, int | None]]:
    """(rule, message, sequence_id) of every finding the checker records for ``messages``."""
    checker = TurnChecker(eager_enabled=eager)
    for msg in messages:
        checker.feed(msg)
    return [(f.rule, f.message, f.sequence_id) for f in checker.findings]


def replace(msg: ServerMessage, **changes: object) -> ServerMessage:
    return dataclasses.replace(msg, **changes)  # type: ignore[arg-type]


# ---- the table ---------------------------------------------------------------------------


def test_every_state_changing_event_has_one_target_state() -> None:
    for event in E:
        if event is E.UPDATE:
            continue
        targets = {to for (_, ev), to in TRANSITIONS.items() if ev is event}
        assert targets == {EVENT_TARGET[event]}


def test_update_never_changes_state() -> None:
    for state in TurnState:
        assert TRANSITIONS[(state, E.UPDATE)] is state


# ---- check role --------------------------------------------------------------------------


def test_published_example_gives_no_findings() -> None:
    checker = TurnChecker(eager_enabled=True)
    for msg in published_messages():
        assert checker.feed(msg) == []
    assert checker.findings == []
    assert checker.state is TurnState.INITIAL
    assert checker.turn_index == 1


def test_published_example_with_unknown_eager_mode_gives_no_findings() -> None:
    assert check(published_messages(), eager=None) == []


def test_end_of_turn_transcript_differs_from_eager() -> None:
    msgs = published_messages()
    msgs[11] = replace(msgs[11], transcript="Hi I need to cancel my subscription")
    assert check(msgs) == [
        (
            "end-of-turn-transcript-differs",
            "EndOfTurn transcript differs from preceding EagerEndOfTurn",
            11,
        )
    ]


def test_update_changing_transcript_while_awaiting_end() -> None:
    msgs = published_messages()
    msgs[10] = replace(msgs[10], transcript=FULL + " Thanks")
    assert check(msgs) == [
        (
            "transcript-changed-without-resume",
            "Update transcript differs from preceding EagerEndOfTurn without TurnResumed",
            10,
        )
    ]


def test_sequence_id_gap() -> None:
    msgs = published_messages()
    for i in range(5, len(msgs)):
        msgs[i] = replace(msgs[i], sequence_id=msgs[i].sequence_id + 2)
    # one finding at the gap; the checker follows the peer afterwards
    assert check(msgs) == [
        ("sequence-id-not-consecutive", "sequence_id not consecutive (expected 5, got 7)", 7)
    ]


def test_connected_missing_is_one_warning() -> None:
    # without Connected the stream may count from 1 (or 0): the first sequence_id is taken as is
    msgs = published_messages()[1:]
    assert check(msgs) == [("connected-missing", "first message is TurnInfo, not Connected", 1)]
    checker = TurnChecker(eager_enabled=True)
    for msg in msgs:
        checker.feed(msg)
    assert [f.severity for f in checker.findings] == [Severity.WARNING]
    assert checker.violations == []


def test_connected_with_another_sequence_id_is_a_warning() -> None:
    msgs = published_messages()
    msgs[0] = replace(msgs[0], sequence_id=5)
    checker = TurnChecker(eager_enabled=True)
    for msg in msgs:
        checker.feed(msg)
    assert [(f.rule, f.severity) for f in checker.findings] == [
        ("sequence-id-not-consecutive", Severity.WARNING),  # Connected 5, expected 0
        ("sequence-id-not-consecutive", Severity.WARNING),  # the next one 1, expected 6
    ]
    assert checker.violations == []


def test_connected_not_first() -> None:
    msgs = published_messages()
    msgs.insert(2, Connected(request_id=REQ, sequence_id=2))
    for i in range(3, len(msgs)):
        msgs[i] = replace(msgs[i], sequence_id=i)
    assert check(msgs) == [("connected-not-first", "Connected is not the first message", 2)]


def test_start_of_turn_with_empty_transcript() -> None:
    msgs = published_messages()
    msgs[3] = replace(msgs[3], transcript="")
    assert check(msgs) == [("start-of-turn-empty", "StartOfTurn with empty transcript", 3)]


def test_eager_end_of_turn_with_blank_transcript() -> None:
    msgs = published_messages()
    msgs[6] = replace(msgs[6], transcript="  ")
    assert check(msgs) == [("eager-end-of-turn-empty", "EagerEndOfTurn with empty transcript", 6)]


def test_turn_resumed_without_eager() -> None:
    msgs = published_messages()
    del msgs[6]  # drop the first EagerEndOfTurn: TurnResumed now follows an Update
    for i in range(6, len(msgs)):
        msgs[i] = replace(msgs[i], sequence_id=i)
    assert check(msgs) == [
        ("turn-resumed-without-eager", "TurnResumed without preceding EagerEndOfTurn", 6)
    ]


def test_eager_events_without_threshold() -> None:
    assert check(published_messages(), eager=False) == [
        ("eager-without-threshold", "EagerEndOfTurn without eager_eot_threshold", 6),
        ("eager-without-threshold", "TurnResumed without eager_eot_threshold", 7),
        ("eager-without-threshold", "EagerEndOfTurn without eager_eot_threshold", 9),
    ]


def _non_eager_turn() -> list[ServerMessage]:
    """The published example with the eager events removed, renumbered."""
    msgs = [
        m
        for m in published_messages()
        if not (isinstance(m, TurnInfo) and m.event in (E.EAGER_END_OF_TURN, E.TURN_RESUMED))
    ]
    return [replace(m, sequence_id=i) for i, m in enumerate(msgs)]


def test_end_of_turn_straight_from_turn_ongoing_is_legal_without_eager() -> None:
    assert check(_non_eager_turn(), eager=False) == []


def test_end_of_turn_without_trigger_straight_from_turn_ongoing_is_legal_with_eager_on() -> None:
    # Workers AI sends no trigger: such an EndOfTurn may be an eot_timeout_ms end, which skips
    # EagerEndOfTurn legitimately, so it is not judged
    assert check(_non_eager_turn(), eager=True) == []


def test_model_triggered_end_of_turn_without_eager_is_a_finding_with_eager_on() -> None:
    msgs = _non_eager_turn()
    msgs[-1] = replace(msgs[-1], extra={"trigger": "model"})
    assert check(msgs, eager=True) == [
        (
            "end-of-turn-without-eager",
            "EndOfTurn (trigger model) without preceding EagerEndOfTurn while eager mode is on",
            len(msgs) - 1,
        )
    ]
    assert check(msgs, eager=False) == []


@pytest.mark.parametrize("trigger", ["timeout", "manual"])
def test_forced_trigger_may_end_turn_without_eager(trigger: str) -> None:
    msgs = _non_eager_turn()
    msgs[-1] = replace(msgs[-1], extra={"trigger": trigger})
    assert check(msgs, eager=True) == []


def _second_turn(turn_index: int, first_seq: int) -> list[ServerMessage]:
    return [
        TurnInfo(REQ, first_seq, E.UPDATE, turn_index, 1.7, 1.9, "", (), 0.1),
        TurnInfo(REQ, first_seq + 1, E.START_OF_TURN, turn_index, 1.7, 2.1, "Thanks", (), 0.1),
    ]


def test_turn_index_did_not_increment_after_end_of_turn() -> None:
    msgs = published_messages() + _second_turn(turn_index=0, first_seq=12)
    assert check(msgs) == [
        (
            "turn-index-not-incremented",
            "turn_index did not increment after EndOfTurn (expected 1, got 0)",
            12,
        )
    ]


def test_second_turn_with_incremented_index_is_clean() -> None:
    assert check(published_messages() + _second_turn(turn_index=1, first_seq=12)) == []


def test_peer_incrementing_turn_index_at_start_of_turn_gives_one_finding() -> None:
    # the Update after EndOfTurn keeps index 0 (one finding); the StartOfTurn then brings 1,
    # the increment arriving late: the checker follows it rather than reporting it again
    msgs = [
        *published_messages(),
        TurnInfo(REQ, 12, E.UPDATE, 0, 1.7, 1.9, "", (), 0.1),
        TurnInfo(REQ, 13, E.START_OF_TURN, 1, 1.7, 2.1, "Thanks", (), 0.1),
        TurnInfo(REQ, 14, E.END_OF_TURN, 1, 1.7, 2.4, "Thanks", (), 0.9),
        TurnInfo(REQ, 15, E.START_OF_TURN, 2, 2.4, 2.8, "Bye", (), 0.1),
    ]
    assert check(msgs, eager=None) == [
        (
            "turn-index-not-incremented",
            "turn_index did not increment after EndOfTurn (expected 1, got 0)",
            12,
        )
    ]


def test_late_increment_is_accepted_only_at_the_next_start_of_turn() -> None:
    msgs = [
        *published_messages(),
        TurnInfo(REQ, 12, E.UPDATE, 0, 1.7, 1.9, "", (), 0.1),
        TurnInfo(REQ, 13, E.UPDATE, 1, 1.7, 2.1, "", (), 0.1),  # an Update may not jump
    ]
    assert [rule for rule, _, _ in check(msgs)] == [
        "turn-index-not-incremented",
        "turn-index-unexpected",
    ]


def test_turn_index_jump() -> None:
    msgs = published_messages() + _second_turn(turn_index=3, first_seq=12)
    assert check(msgs) == [
        ("turn-index-unexpected", "turn_index unexpected (expected 1, got 3)", 12)
    ]


def test_end_of_turn_in_initial_state() -> None:
    msgs = published_messages()[:3]
    msgs.append(TurnInfo(REQ, 3, E.END_OF_TURN, 0, 0.0, 0.6, "Hi", (), 0.9))
    assert check(msgs) == [("event-illegal-in-state", "EndOfTurn is illegal in state Initial", 3)]


def test_start_of_turn_twice() -> None:
    msgs = published_messages()
    msgs[4] = replace(msgs[4], event=E.START_OF_TURN)
    assert check(msgs) == [
        ("event-illegal-in-state", "StartOfTurn is illegal in state TurnOngoing", 4)
    ]


def test_audio_window_end_going_backwards() -> None:
    msgs = published_messages()
    msgs[5] = replace(msgs[5], audio_window_end=0.7)
    assert check(msgs) == [
        ("audio-window-end-backwards", "audio_window_end went backwards (0.7 after 0.8)", 5)
    ]


def test_audio_window_inverted() -> None:
    msgs = published_messages()
    msgs[1] = replace(msgs[1], audio_window_start=0.3)
    assert check(msgs) == [
        ("audio-window-inverted", "audio_window_start 0.3 is after audio_window_end 0.2", 1)
    ]


def test_request_id_changed() -> None:
    msgs = published_messages()
    msgs[4] = replace(msgs[4], request_id="other")
    assert check(msgs) == [
        ("request-id-changed", f"request_id changed from {REQ!r} to 'other'", 4),
        ("request-id-changed", f"request_id changed from 'other' to {REQ!r}", 5),
    ]


def test_error_and_configure_messages_take_sequence_ids() -> None:
    msgs = published_messages()[:3]
    msgs.append(FluxError(sequence_id=3, code="INTERNAL_SERVER_ERROR", description="boom"))
    assert check(msgs) == []
    msgs.append(FluxError(sequence_id=3, code="X", description="again"))
    assert check(msgs) == [
        ("sequence-id-not-consecutive", "sequence_id not consecutive (expected 4, got 3)", 3)
    ]


def test_feed_returns_only_new_findings() -> None:
    checker = TurnChecker(eager_enabled=True)
    msgs = published_messages()
    bad = replace(msgs[3], transcript="")
    for msg in msgs[:3]:
        assert checker.feed(msg) == []
    assert [f.rule for f in checker.feed(bad)] == [Rule.START_OF_TURN_EMPTY]
    assert checker.feed(msgs[4]) == []
    assert len(checker.findings) == 1


# ---- generate role -----------------------------------------------------------------------


def test_machine_generates_the_published_example() -> None:
    machine = FluxTurnMachine(REQ, eager_enabled=True)
    generated: list[ServerMessage] = [machine.connected()]
    for event, start, end, transcript, conf in PUBLISHED:
        generated.append(
            machine.emit(
                event,
                transcript=transcript,
                audio_window_start=start,
                audio_window_end=end,
                end_of_turn_confidence=conf,
            )
        )
    assert generated == published_messages()
    assert machine.turn_index == 1
    assert machine.state is TurnState.INITIAL
    assert machine.next_sequence_id() == 12


def _started(eager: bool) -> FluxTurnMachine:
    machine = FluxTurnMachine(REQ, eager_enabled=eager)
    machine.connected()
    machine.emit(
        E.START_OF_TURN,
        transcript="Hi",
        audio_window_start=0.0,
        audio_window_end=0.5,
        end_of_turn_confidence=0.1,
    )
    return machine


def _emit(machine: FluxTurnMachine, event: TurnEvent, transcript: str, end: float) -> TurnInfo:
    return machine.emit(
        event,
        transcript=transcript,
        audio_window_start=0.0,
        audio_window_end=end,
        end_of_turn_confidence=0.5,
    )


@pytest.mark.parametrize(
    ("eager", "event", "transcript", "error"),
    [
        (True, E.START_OF_TURN, "Hi", "StartOfTurn is illegal in state TurnOngoing"),
        (True, E.TURN_RESUMED, "Hi", "TurnResumed without preceding EagerEndOfTurn"),
        (True, E.EAGER_END_OF_TURN, "", "EagerEndOfTurn with empty transcript"),
        (False, E.EAGER_END_OF_TURN, "Hi", "EagerEndOfTurn without eager_eot_threshold"),
    ],
)
def test_machine_refuses_illegal_events(
    eager: bool, event: TurnEvent, transcript: str, error: str
) -> None:
    machine = _started(eager)
    with pytest.raises(LocalProtocolError, match=error):
        _emit(machine, event, transcript, 0.6)
    # refused emits leave no trace: the next legal message keeps sequence_id consecutive
    assert machine.state is TurnState.TURN_ONGOING
    assert _emit(machine, E.UPDATE, "Hi", 0.7).sequence_id == 2


def test_machine_refuses_end_of_turn_that_differs_from_eager() -> None:
    machine = _started(eager=True)
    _emit(machine, E.EAGER_END_OF_TURN, "Hi there", 0.6)
    with pytest.raises(LocalProtocolError, match="differs from preceding EagerEndOfTurn"):
        _emit(machine, E.END_OF_TURN, "Hi there you", 0.7)


def test_machine_refuses_empty_start_of_turn_and_backwards_window() -> None:
    machine = FluxTurnMachine(REQ, eager_enabled=False)
    machine.connected()
    with pytest.raises(LocalProtocolError, match="StartOfTurn with empty transcript"):
        _emit(machine, E.START_OF_TURN, "", 0.5)
    _emit(machine, E.UPDATE, "", 0.5)
    with pytest.raises(LocalProtocolError, match=r"went backwards \(0.4 after 0.5\)"):
        _emit(machine, E.UPDATE, "", 0.4)


def test_machine_requires_connected_first_and_only_once() -> None:
    machine = FluxTurnMachine(REQ, eager_enabled=False)
    with pytest.raises(LocalProtocolError, match="send Connected before"):
        _emit(machine, E.UPDATE, "", 0.2)
    assert machine.connected() == Connected(REQ, 0)
    with pytest.raises(LocalProtocolError, match="Connected must be the first"):
        machine.connected()


def test_machine_without_eager_ends_turn_from_turn_ongoing_and_increments_index() -> None:
    machine = _started(eager=False)
    end = _emit(machine, E.END_OF_TURN, "Hi", 0.9)
    assert (end.turn_index, end.sequence_id) == (0, 2)
    nxt = _emit(machine, E.UPDATE, "", 1.1)
    assert (nxt.turn_index, nxt.sequence_id) == (1, 3)


def test_machine_other_messages_share_the_sequence() -> None:
    machine = _started(eager=False)
    ok = machine.configure_success({"eot_threshold": 0.8}, ("alpha",))
    err = machine.error("INTERNAL_SERVER_ERROR", "boom")
    assert (ok.sequence_id, ok.request_id) == (2, REQ)
    assert err.sequence_id == 3
    assert machine.configure_failure().sequence_id == 4


@pytest.mark.parametrize(
    ("eager", "prefix", "expected_events"),
    [
        (False, [], [E.END_OF_TURN]),
        (True, [], [E.END_OF_TURN]),  # no EagerEndOfTurn is invented
        (True, [(E.EAGER_END_OF_TURN, "Hi there")], [E.END_OF_TURN]),
        (True, [(E.EAGER_END_OF_TURN, "Hi")], [E.TURN_RESUMED, E.END_OF_TURN]),  # rule 4
    ],
)
def test_forced_end_of_turn_keeps_every_rule(
    eager: bool, prefix: list[tuple[TurnEvent, str]], expected_events: list[TurnEvent]
) -> None:
    machine = _started(eager)
    checker = TurnChecker(eager_enabled=eager)
    sent: list[ServerMessage] = [
        Connected(REQ, 0),
        TurnInfo(REQ, 1, E.START_OF_TURN, 0, 0.0, 0.5, "Hi", (), 0.1),
    ]
    sent += [_emit(machine, event, text, 0.6) for event, text in prefix]
    forced = machine.emit_end_of_turn_forced(
        transcript="Hi there",
        audio_window_start=0.0,
        audio_window_end=5.6,
        end_of_turn_confidence=0.4,
    )
    assert [m.event for m in forced] == expected_events
    assert forced[-1].transcript == "Hi there"
    for msg in sent + list(forced):
        checker.feed(msg)
    assert checker.violations == []  # the 5 s jump is only a cadence warning
    assert machine.turn_index == 1


def test_forced_end_of_turn_needs_an_open_turn() -> None:
    machine = FluxTurnMachine(REQ, eager_enabled=True)
    machine.connected()
    with pytest.raises(LocalProtocolError, match="no turn is open"):
        machine.emit_end_of_turn_forced(
            transcript="x", audio_window_start=0.0, audio_window_end=1.0, end_of_turn_confidence=1.0
        )


@pytest.mark.parametrize("eager", [True, False])
def test_machine_and_checker_agree_on_random_walks(eager: bool) -> None:
    """Whatever the machine emits, the checker accepts; whatever it refuses, the checker flags."""
    rng = random.Random(20261126)
    texts = ["", "Hi", "Hi there", "Hi there friend"]
    turns_ended = 0
    for _ in range(50):
        machine = FluxTurnMachine(REQ, eager_enabled=eager)
        checker = TurnChecker(eager_enabled=eager)
        assert checker.feed(machine.connected()) == []
        sent = 1  # refused emits take no sequence_id, so the next one is the count sent
        end_s = 0.0
        for _ in range(40):
            event = rng.choice(list(E))
            transcript = rng.choice(texts)
            end_s += 0.25
            try:
                msg = _emit(machine, event, transcript, end_s)
            except LocalProtocolError:
                would_be = TurnInfo(
                    REQ,
                    sent,
                    event,
                    machine.turn_index,
                    0.0,
                    end_s,
                    transcript,
                    (),
                    0.5,
                )
                probe = copy.deepcopy(checker)
                assert any(f.is_violation for f in probe.feed(would_be))
                continue
            sent += 1
            # refused emits leave audio gaps: cadence warnings only, never a violation
            assert [f for f in checker.feed(msg) if f.is_violation] == []
            assert checker.state is machine.state
            assert checker.turn_index == machine.turn_index
        turns_ended += machine.turn_index
    assert turns_ended > 0  # the walks reached EndOfTurn, not just Updates


# ---- §3.5 rule 1: the Update cadence (a warning, never a finding) ---------------------------


def _updates(ends_s: list[float], first_seq: int = 1, turn_index: int = 0) -> list[ServerMessage]:
    return [
        TurnInfo(REQ, seq, E.UPDATE, turn_index, 0.0, end_s, "", (), 0.0)
        for seq, end_s in enumerate(ends_s, start=first_seq)
    ]


def _warnings(checker: TurnChecker) -> list[tuple[str, str, int | None]]:
    return [(f.rule, f.message, f.sequence_id) for f in checker.findings
            if f.severity is Severity.WARNING]  # fmt: skip


def test_update_interval_is_the_documented_quarter_second() -> None:
    assert UPDATE_INTERVAL_S == 0.25
    assert severity_of(Rule.UPDATE_CADENCE_GAP) is Severity.WARNING


def test_legal_streams_give_no_cadence_warning() -> None:
    # the published example (gaps up to 0.3 s), then silence with an Update for every 0.25 s
    # of audio, each one landing on the first 80 ms frame that completes the interval
    msgs = published_messages()
    frame_ends = [round(1.7 + 0.08 * i, 2) for i in range(1, 40)]
    silence_updates, due = [], 1.7 + UPDATE_INTERVAL_S
    for end_s in frame_ends:
        if end_s >= due:
            silence_updates.append(end_s)
            due += UPDATE_INTERVAL_S
    # a state change may stand in for an Update: the longest legal gap is then two intervals
    # and a frame (the Update due in a state-changing frame is skipped)
    silence_updates.append(silence_updates[-1] + 2 * UPDATE_INTERVAL_S + 0.08)
    checker = TurnChecker(eager_enabled=True, frame_s=0.08)
    for msg in msgs + _updates(silence_updates, len(msgs), turn_index=1):
        assert checker.feed(msg) == []
    assert checker.findings == []


def test_a_long_gap_between_turn_messages_is_a_cadence_warning_not_a_violation() -> None:
    checker = TurnChecker(eager_enabled=None, frame_s=0.08)
    msgs = [Connected(REQ, 0), *_updates([0.25, 0.5, 1.5, 1.75])]
    returned = [[f.rule for f in checker.feed(m)] for m in msgs]
    assert returned == [[], [], [], ["update-cadence-gap"], []]
    assert checker.violations == []
    assert _warnings(checker) == [
        (
            "update-cadence-gap",
            "no TurnInfo for 1.00 s of audio (Updates come about every 0.25 s)",
            3,
        )
    ]


def test_cadence_tolerance_is_two_intervals_plus_one_frame() -> None:
    limit_s = 2 * UPDATE_INTERVAL_S + 0.2
    at_limit = TurnChecker(frame_s=0.2)
    for msg in [Connected(REQ, 0), *_updates([0.25, 0.25 + limit_s])]:
        at_limit.feed(msg)
    assert at_limit.findings == []
    over = TurnChecker(frame_s=0.2)
    for msg in [Connected(REQ, 0), *_updates([0.25, 0.25 + limit_s + 0.01])]:
        over.feed(msg)
    assert [w[0] for w in _warnings(over)] == ["update-cadence-gap"]
