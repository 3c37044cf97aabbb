"""The pure core of a Flux session: server messages + arrival times -> Flux metrics per turn.

No socket, no clock: the driver stamps each text frame with ``time.monotonic_ns()`` on arrival
and calls :meth:`FluxTurnTracker.on_text`; the tracker parses it
(:func:`voiceload.protocol.flux.parse_server_message`), checks it
(:class:`voiceload.protocol.flux.TurnChecker`) and returns the samples it completes, which the
driver forwards to its sink at once.

Definitions (docs/METRICS.md; ``S(a) = t0 + a``):

* ``flux.first_response`` = first ``TurnInfo`` − due time of the first frame (``t0 + frame_ms``);
* ``flux.ttft`` = first message of turn ``i`` with a non-empty transcript − ``S(onset_i)``;
* ``flux.eot`` = turn ``i``'s ``EndOfTurn`` − ``S(offset_i)``; before ``S(offset_i)`` it is
  *premature*: recorded as 0 and counted;
* ``flux.eager_eot`` = turn ``i``'s first ``EagerEndOfTurn`` − ``S(offset_i)`` (eager mode only);
* ``flux.transcript_lag`` = on each ``Update``: (arrival − ``t0``) − ``audio_window_end``.

Turn matching: a message's ``turn_index`` names the manifest turn (the i-th ``EndOfTurn`` belongs
to turn ``i``); a transcript that arrives before ``S(onset_i)`` is still measured from
``S(onset_i)`` (and clamped at 0 in the histogram, its signed value kept in the record). Messages
for turns beyond the manifest are counted in :attr:`FluxTurnTracker.extra_turn_messages` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from voiceload.client.results import TurnRecord
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

#: Rule id of a text frame that is not a valid Flux message (the checker never sees it).
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
    """What one server message produced: samples to record, new findings, a turn that ended,
    and the service's fatal ``Error`` if this message was one."""

    samples: list[tuple[str, int]]
    findings: list[Finding]
    ended: EndOfTurnEvent | None = None
    error: FluxError | None = None


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
        self.first_response_us: int | None = None
        self.extra_turn_messages = 0
        self.findings: list[Finding] = []

    @property
    def all_ended(self) -> bool:
        """True once every manifest turn got its ``EndOfTurn``."""
        return all(r.ended for r in self.records)

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
        if not 0 <= msg.turn_index < len(self.records):
            self.extra_turn_messages += 1
            return
        record = self.records[msg.turn_index]
        if record.ended:
            return  # the checker has already flagged whatever this is
        if record.ttft_us is None and msg.transcript.strip():
            record.ttft_us = ns_to_us(arrival_ns - speaker_time_ns(self.t0_ns, record.onset_s))
            samples.append((FLUX_TTFT, max(0, record.ttft_us)))
        offset_ns = speaker_time_ns(self.t0_ns, record.offset_s)
        if msg.event is TurnEvent.EAGER_END_OF_TURN and self.eager and record.eager_eot_us is None:
            record.eager_eot_us = ns_to_us(arrival_ns - offset_ns)
            samples.append((FLUX_EAGER_EOT, max(0, record.eager_eot_us)))
        elif msg.event is TurnEvent.TURN_RESUMED:
            record.resumed += 1
        elif msg.event is TurnEvent.END_OF_TURN:
            record.transcript = msg.transcript
            record.eot_us = ns_to_us(arrival_ns - offset_ns)
            record.premature = arrival_ns < offset_ns
            samples.append((FLUX_EOT, 0 if record.premature else record.eot_us))
            record.wer = word_error_rate([record.reference], [msg.transcript])
            step.ended = EndOfTurnEvent(record.index, arrival_ns, offset_ns)
