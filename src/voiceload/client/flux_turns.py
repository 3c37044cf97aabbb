"""The pure core of a Flux session: server messages + arrival times -> Flux metrics per turn.

No socket, no clock: the driver stamps each text frame with ``time.monotonic_ns()`` on arrival
and calls :meth:`FluxTurnTracker.on_text`; the tracker parses it
(:func:`voiceload.protocol.flux.parse_server_message`), checks it
(:class:`voiceload.protocol.flux.TurnChecker`) and returns the samples it completes, which the
driver forwards to its sink at once. At the end of the stream the driver calls
:meth:`FluxTurnTracker.finish`.

Definitions (docs/METRICS.md; ``S(a) = t0 + a``):

* ``flux.first_response`` = first ``TurnInfo`` − due time of the first frame (``t0 + frame_ms``);
* ``flux.ttft`` = first message with a non-empty transcript of the first service turn paired
  with turn ``i`` − ``S(onset_i)``;
* ``flux.eot`` = the ``EndOfTurn`` that ends turn ``i`` − ``S(offset_i)``; before
  ``S(offset_i)`` it is *premature*: recorded as 0 and counted. When one ``EndOfTurn`` ends
  several turns (merged), it is measured once, from the **last** covered offset;
* ``flux.eager_eot`` = first ``EagerEndOfTurn`` of the service turn that ends turn ``i`` −
  ``S(offset_i)`` (eager mode only; merged: the last covered offset);
* ``flux.transcript_lag`` = on each ``Update``: (arrival − ``t0``) − ``audio_window_end``.

Turn matching is by audio time, never by ``turn_index``
(:mod:`voiceload.client.turn_alignment`): a service turn is the run of messages up to and
including its ``EndOfTurn``, and that ``EndOfTurn``'s audio window says which manifest turn(s)
it ends, is a piece of (split) or covers none of (extra). A split or a merge therefore never
shifts a later turn's latency or WER. Because the pairing is only known at the ``EndOfTurn``,
``flux.ttft`` and ``flux.eager_eot`` are recorded (with their arrival-time values) when the
service turn's ``EndOfTurn`` arrives; a transcript that arrives before ``S(onset_i)`` is still
measured from ``S(onset_i)`` (clamped at 0 in the histogram, its signed value kept in the
record).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from voiceload.client.results import TurnRecord
from voiceload.client.turn_alignment import MatchKind, TurnAligner
from voiceload.errors import RemoteProtocolError
from voiceload.pacing import frame_due_ns, ns_to_us, speaker_time_ns
from voiceload.protocol.flux import (
    Finding,
    FluxError,
    TurnChecker,
    TurnEvent,
    TurnInfo,
    parse_server_message,
)
from voiceload.wer import word_error_rate

FLUX_FIRST_RESPONSE = "flux.first_response"
FLUX_TTFT = "flux.ttft"
FLUX_EOT = "flux.eot"
FLUX_EAGER_EOT = "flux.eager_eot"
FLUX_TRANSCRIPT_LAG = "flux.transcript_lag"

#: Rule id of a text frame that is not a valid Flux message (the checker never sees it); a
#: violation: nothing in it can be measured.
UNPARSEABLE_RULE = "unparseable-message"


class TurnSpec(Protocol):
    """What the tracker needs from a manifest turn (``voiceload.fixtures`` turns fit)."""

    @property
    def onset_s(self) -> float: ...

    @property
    def offset_s(self) -> float: ...

    @property
    def transcript(self) -> str: ...


@dataclass(frozen=True)
class EndOfTurnEvent:
    """A manifest turn just ended: which one, when its ``EndOfTurn`` arrived, and when its
    speech ended on the plan (``S(offset_i)``, the start of the caller's wait)."""

    index: int
    arrival_ns: int
    offset_ns: int


@dataclass
class TrackerStep:
    """What one server message produced: samples to record, new findings, the manifest turns
    it ended (usually none or one), and the service's fatal ``Error`` if this message was one."""

    samples: list[tuple[str, int]]
    findings: list[Finding]
    ended_turns: list[EndOfTurnEvent] = field(default_factory=list)
    error: FluxError | None = None

    @property
    def ended(self) -> EndOfTurnEvent | None:
        """The last manifest turn this message ended, if any."""
        return self.ended_turns[-1] if self.ended_turns else None


@dataclass
class _ServiceTurn:
    """What the messages of the service turn in progress (since the last EndOfTurn) carried."""

    first_text_ns: int | None = None
    first_eager_ns: int | None = None
    resumed: int = 0


class FluxTurnTracker:
    """Measures one Flux stream against its manifest turns (see the module docstring).

    ``t0_ns`` is the session's scheduled start and ``frame_ms`` its frame size; ``eager`` says
    whether ``eager_eot_threshold`` was sent (it also arms the checker's eager rules).
    """

    def __init__(
        self, turns: Sequence[TurnSpec], t0_ns: int, frame_ms: int, *, eager: bool
    ) -> None:
        self.t0_ns = t0_ns
        self.frame_ms = frame_ms
        self.eager = eager
        self.checker = TurnChecker(eager_enabled=eager)
        self.records = [
            TurnRecord(index=i, onset_s=t.onset_s, offset_s=t.offset_s, reference=t.transcript)
            for i, t in enumerate(turns)
        ]
        self.aligner = TurnAligner([(t.onset_s, t.offset_s) for t in turns])
        self.first_response_us: int | None = None
        self.extra_turns = 0  # EndOfTurn messages over no reference speech
        self.findings: list[Finding] = []
        self._turn = _ServiceTurn()
        # pieces of a turn not ended yet: (transcript, arrival) of each, in order
        self._pieces: dict[int, list[tuple[str, int]]] = {}

    @property
    def all_ended(self) -> bool:
        """True once every manifest turn has been ended by an ``EndOfTurn``."""
        return all(r.ended for r in self.records)

    @property
    def violations(self) -> list[Finding]:
        """The findings of severity ``violation`` (the ones that fail a session)."""
        return [f for f in self.findings if f.is_violation]

    def on_text(self, data: str | bytes, arrival_ns: int) -> TrackerStep:
        """Parse, check and measure one text frame that arrived at ``arrival_ns``."""
        try:
            msg = parse_server_message(data)
        except RemoteProtocolError as exc:
            finding = Finding(rule=UNPARSEABLE_RULE, message=str(exc), sequence_id=None)
            self.findings.append(finding)
            return TrackerStep(samples=[], findings=[finding])
        step = TrackerStep(samples=[], findings=self.checker.feed(msg))
        self.findings.extend(step.findings)
        if isinstance(msg, FluxError):
            step.error = msg
        elif isinstance(msg, TurnInfo):
            self._measure(msg, arrival_ns, step)
        return step

    def on_binary(self) -> Finding:
        """A binary frame from the server: Flux never sends one, so it is a finding."""
        finding = Finding(
            rule=UNPARSEABLE_RULE, message="Flux server sent a binary frame", sequence_id=None
        )
        self.findings.append(finding)
        return finding

    def finish(self) -> TrackerStep:
        """The stream is over: a turn that only got pieces (every ``EndOfTurn`` in it came
        before its midpoint) is ended by its last piece, and measured from it."""
        step = TrackerStep(samples=[], findings=[])
        for i in self.aligner.settle():
            self._settle(i, step)
        return step

    def _measure(self, msg: TurnInfo, arrival_ns: int, step: TrackerStep) -> None:
        samples = step.samples
        if self.first_response_us is None:
            self.first_response_us = max(
                0, ns_to_us(arrival_ns - frame_due_ns(self.t0_ns, 0, self.frame_ms))
            )
            samples.append((FLUX_FIRST_RESPONSE, self.first_response_us))
        if msg.event is TurnEvent.UPDATE:
            lag_ns = arrival_ns - self.t0_ns - round(msg.audio_window_end * 1e9)
            samples.append((FLUX_TRANSCRIPT_LAG, max(0, ns_to_us(lag_ns))))
        turn = self._turn
        if turn.first_text_ns is None and msg.transcript.strip():
            turn.first_text_ns = arrival_ns
        if msg.event is TurnEvent.EAGER_END_OF_TURN and turn.first_eager_ns is None:
            turn.first_eager_ns = arrival_ns
        elif msg.event is TurnEvent.TURN_RESUMED:
            turn.resumed += 1
        elif msg.event is TurnEvent.END_OF_TURN:
            self._turn = _ServiceTurn()
            match = self.aligner.on_end_of_turn(msg.audio_window_start, msg.audio_window_end)
            for i in match.settled:
                self._settle(i, step)
            if match.kind is MatchKind.END:
                self._end(match.turns, msg.transcript, arrival_ns, turn, step)
            elif match.kind is MatchKind.PIECE:
                self._piece(match.turns[0], msg.transcript, arrival_ns, turn, step)
            else:
                self.extra_turns += 1

    def _ttft(
        self, record: TurnRecord, turn: _ServiceTurn, step: TrackerStep, onset_s: float
    ) -> None:
        """The turn's first transcript, measured from ``S(onset_s)`` (the group's first onset
        for a merged turn), if ``record`` has none yet."""
        if record.ttft_us is None and turn.first_text_ns is not None:
            onset_ns = speaker_time_ns(self.t0_ns, onset_s)
            record.ttft_us = ns_to_us(turn.first_text_ns - onset_ns)
            step.samples.append((FLUX_TTFT, max(0, record.ttft_us)))

    def _end(
        self,
        indices: tuple[int, ...],
        transcript: str,
        arrival_ns: int,
        turn: _ServiceTurn,
        step: TrackerStep,
    ) -> None:
        """An ``EndOfTurn`` ends the turns ``indices`` (two or more: merged into the last)."""
        group = [self.records[i] for i in indices]
        holder = group[-1]
        if not any(r.ttft_us is not None for r in group):  # a piece may have measured it
            self._ttft(holder, turn, step, group[0].onset_s)
        for r in group[:-1]:
            r.merged_into = holder.index
        holder.end_of_turns += 1
        holder.resumed += turn.resumed
        offset_ns = speaker_time_ns(self.t0_ns, holder.offset_s)
        if self.eager and turn.first_eager_ns is not None and holder.eager_eot_us is None:
            holder.eager_eot_us = ns_to_us(turn.first_eager_ns - offset_ns)
            step.samples.append((FLUX_EAGER_EOT, max(0, holder.eager_eot_us)))
        pieces = [text for i in indices for text, _ in self._pieces.pop(i, [])]
        self._close(holder, " ".join([*pieces, transcript]) if pieces else transcript,
                    arrival_ns, offset_ns, step)  # fmt: skip

    def _piece(
        self, index: int, transcript: str, arrival_ns: int, turn: _ServiceTurn, step: TrackerStep
    ) -> None:
        """One more ``EndOfTurn`` inside turn ``index`` (split): before the turn is ended it
        waits in :attr:`_pieces`; after, its transcript joins the turn's."""
        record = self.records[index]
        self._ttft(record, turn, step, record.onset_s)
        record.end_of_turns += 1
        record.resumed += turn.resumed
        if record.transcript is not None:
            record.transcript = f"{record.transcript} {transcript}".strip()
            record.wer = self._wer(record)
        else:
            self._pieces.setdefault(index, []).append((transcript, arrival_ns))

    def _settle(self, index: int, step: TrackerStep) -> None:
        """Turn ``index`` got only pieces: its last piece ended it."""
        pieces = self._pieces.pop(index, [])
        if not pieces:
            return
        record = self.records[index]
        offset_ns = speaker_time_ns(self.t0_ns, record.offset_s)
        self._close(record, " ".join(t for t, _ in pieces), pieces[-1][1], offset_ns, step)

    def _close(
        self, record: TurnRecord, transcript: str, arrival_ns: int, offset_ns: int,
        step: TrackerStep,
    ) -> None:  # fmt: skip
        record.transcript = transcript
        record.eot_us = ns_to_us(arrival_ns - offset_ns)
        record.premature = arrival_ns < offset_ns
        step.samples.append((FLUX_EOT, 0 if record.premature else record.eot_us))
        record.wer = self._wer(record)
        step.ended_turns.append(EndOfTurnEvent(record.index, arrival_ns, offset_ns))

    def _wer(self, record: TurnRecord) -> float | None:
        """WER of the record's transcript against its reference, and those of the turns merged
        into it (in manifest order)."""
        merged = [r.reference for r in self.records if r.merged_into == record.index]
        return word_error_rate([" ".join([*merged, record.reference])], [record.transcript or ""])
