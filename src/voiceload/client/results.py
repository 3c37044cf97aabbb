"""What a session driver hands back: samples as they happen, one result record at the end.

Two channels, on purpose:

* a :class:`SampleSink` receives every latency sample **the moment it is known**
  (``record("flux.eot", 412_000)``), so the Locust glue can put it into the interval histogram
  of the right moment and phase; metric names and definitions are those of
  docs/METRICS.md;
* a :class:`SessionResult` is returned when the session ends, ok or not, and becomes one row of
  ``sessions.csv`` via :meth:`SessionResult.to_row` (columns: :data:`SESSIONS_CSV_COLUMNS`, as
  documented in docs/ARCHITECTURE.md "Artifact schemas").

A failed session still returns everything it measured before it failed; ``error`` says why.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Protocol

from voiceload.protocol.failures import FailureCategory
from voiceload.protocol.flux import Finding, Severity
from voiceload.wer import word_error_rate

#: Why a session failed: the one failure taxonomy of :mod:`voiceload.protocol.failures` (an
#: alias, not a second enum, so ``ErrorCategory.X is FailureCategory.X``).
ErrorCategory = FailureCategory


@dataclass(frozen=True)
class SessionError:
    """Why a session failed: a category plus the facts a user needs (never a credential).

    ``http_status`` is set for refused upgrades, ``service_code`` for the service's own error
    code (AI Gateway ``2009``, Workers AI ``5007``, Flux ``"INTERNAL_SERVER_ERROR"``),
    ``close_code`` for WebSocket closes.
    """

    category: ErrorCategory
    detail: str
    http_status: int | None = None
    service_code: int | str | None = None
    close_code: int | None = None

    def message(self) -> str:
        """One line: ``"<category>: <detail> (HTTP 401, code 2009)"``."""
        facts = []
        if self.http_status is not None:
            facts.append(f"HTTP {self.http_status}")
        if self.service_code is not None:
            facts.append(f"code {self.service_code}")
        if self.close_code is not None:
            facts.append(f"close code {self.close_code}")
        facts = [f for f in facts if f not in self.detail]  # already told
        suffix = f" ({', '.join(facts)})" if facts else ""
        return f"{self.category.value}: {self.detail}{suffix}"


class SampleSink(Protocol):
    """Receives latency samples as they are measured; ``value_us`` is an integer ≥ 0.

    Called from the session's own threads (greenlets under gevent): the sending loop, the
    reader, and in agent sessions the reply worker; an implementation must tolerate that.
    """

    def record(self, metric: str, value_us: int) -> None: ...


@dataclass
class ListSink:
    """A :class:`SampleSink` that keeps every sample in order, for tests and small scripts."""

    samples: list[tuple[str, int]] = field(default_factory=list)

    def record(self, metric: str, value_us: int) -> None:
        self.samples.append((metric, value_us))

    def values(self, metric: str) -> list[int]:
        """All values recorded for ``metric``, in recording order."""
        return [v for m, v in self.samples if m == metric]


@dataclass
class TurnRecord:
    """One expected turn of a Flux fixture and what the service did with it.

    Latencies are signed microseconds measured from the plan (``S(onset)``, ``S(offset)``) as
    METRICS.md defines them; what went to the histogram is clamped at 0 (a premature
    ``EndOfTurn`` is recorded as 0 and flagged ``premature``). ``transcript`` is the
    ``EndOfTurn`` transcript, ``None`` when the turn was missed.

    Turns are paired with ``EndOfTurn`` messages by audio time
    (:mod:`voiceload.client.turn_alignment`). A turn with several ``EndOfTurn`` messages
    (``end_of_turns`` > 1: *split*) keeps their transcripts joined in arrival order. When one
    ``EndOfTurn`` ends several turns (*merged*), the last of them holds the measurements (its
    ``reference`` stays its own; :meth:`SessionResult.wer` scores the group's references
    together) and the earlier ones have ``merged_into`` set to its index and no latencies.
    """

    index: int
    onset_s: float
    offset_s: float
    reference: str = ""
    transcript: str | None = None
    ttft_us: int | None = None
    eot_us: int | None = None
    eager_eot_us: int | None = None
    premature: bool = False
    resumed: int = 0
    wer: float | None = None
    voice_to_voice_us: int | None = None  # agent sessions only, think time included
    think_ms: int | None = None  # agent sessions only
    end_of_turns: int = 0  # EndOfTurn messages paired with this turn (> 1: split)
    merged_into: int | None = None  # ended by the EndOfTurn of that (later) turn: merged

    @property
    def ended(self) -> bool:
        return self.transcript is not None or self.merged_into is not None

    @property
    def split(self) -> bool:
        return self.end_of_turns > 1


@dataclass
class AuraRequestRecord:
    """One Aura request (``Speak`` + ``Flush``), latencies from its scheduled time ``r``."""

    chars: int
    ttfb_us: int | None = None
    ttfa_us: int | None = None
    leading_silence_us: int | None = None
    flushed_us: int | None = None
    stall_us: int | None = None
    audio_s: float = 0.0
    realtime_factor: float | None = None  # audio seconds / (last frame - first frame)


def _ms(value_us: int | None) -> str | float:
    return "" if value_us is None else round(value_us / 1000.0, 3)


SESSIONS_CSV_COLUMNS: tuple[str, ...] = (
    "session_id", "worker", "user_type", "fixture", "model", "phase", "start_s", "duration_s",
    "outcome", "error_category", "error_detail", "turns_expected", "turns_ended",
    "turns_missed", "turns_premature", "turns_resumed", "turns_split", "turns_merged",
    "turns_extra", "wer", "flux_audio_s", "aura_chars", "aura_audio_s", "connections",
    "findings", "findings_warning", "findings_info", "ttft_ms", "eot_ms", "ttfb_ms", "ttfa_ms",
    "voice_to_voice_ms",
)  # fmt: skip


@dataclass
class SessionResult:
    """Everything one session (a Flux stream, an Aura socket, an agent conversation) measured."""

    user_type: str  # "flux" | "aura" | "agent"
    fixture: str
    model: str
    start_s: float  # wall-clock epoch seconds at the start (for sessions.csv only)
    duration_s: float = 0.0
    error: SessionError | None = None
    turns: list[TurnRecord] = field(default_factory=list)
    aura_requests: list[AuraRequestRecord] = field(default_factory=list)
    flux_audio_s: float = 0.0  # audio streamed, trailing silence included
    connections: int = 0  # WebSocket handshakes that succeeded
    connect_us: list[int] = field(default_factory=list)  # one per successful handshake
    first_response_us: int | None = None
    findings: list[Finding] = field(default_factory=list)  # every severity, in arrival order
    turns_extra: int = 0  # EndOfTurn messages over no reference speech (turn_alignment)
    send_lag_max_us: int = 0
    stopped: bool = False  # cut short by the harness (Locust's stop): turns left are unheard

    def copy(self) -> SessionResult:
        """An independent copy, equal to ``copy.deepcopy(self)`` but a fraction of its cost
        (a killed session's snapshot): the mutable parts — the lists and the turn and request
        records in them, whose fields are all immutable values — are copied; the frozen values
        (:class:`SessionError`, :class:`~voiceload.protocol.flux.Finding`) are shared."""
        out = copy.copy(self)
        out.turns = [copy.copy(t) for t in self.turns]
        out.aura_requests = [copy.copy(r) for r in self.aura_requests]
        out.connect_us = list(self.connect_us)
        out.findings = list(self.findings)
        return out

    @property
    def outcome(self) -> str:
        return "ok" if self.error is None else "error"

    @property
    def turns_expected(self) -> int:
        return len(self.turns)

    @property
    def turns_ended(self) -> int:
        return sum(1 for t in self.turns if t.ended)

    @property
    def turns_missed(self) -> int:
        return self.turns_expected - self.turns_ended

    @property
    def turns_premature(self) -> int:
        return sum(1 for t in self.turns if t.premature)

    @property
    def turns_resumed(self) -> int:
        return sum(t.resumed for t in self.turns)

    @property
    def turns_split(self) -> int:
        """Expected turns the service ended more than once (two or more ``EndOfTurn``)."""
        return sum(1 for t in self.turns if t.split)

    @property
    def turns_merged(self) -> int:
        """Expected turns ended together with another by one ``EndOfTurn`` (all of them:
        a merge of two turns counts 2)."""
        holders = {t.merged_into for t in self.turns if t.merged_into is not None}
        return sum(1 for t in self.turns if t.merged_into is not None or t.index in holders)

    def findings_of(self, severity: Severity) -> int:
        """How many findings of ``severity`` the session recorded."""
        return sum(1 for f in self.findings if f.severity is severity)

    @property
    def wer(self) -> float | None:
        """Corpus WER over every expected turn (a missed turn counts as all deletions).

        A :attr:`stopped` session counts only the turns that ended: the harness, not the
        service, kept the others from being heard (``None`` when none ended)."""
        turns = [t for t in self.turns if t.ended] if self.stopped else self.turns
        if not turns:
            return None
        references: dict[int, list[str]] = {}  # a merged group is scored as one turn
        for t in turns:
            references.setdefault(t.index if t.merged_into is None else t.merged_into,
                                  []).append(t.reference)  # fmt: skip
        holders = [t for t in turns if t.merged_into is None]
        return word_error_rate(
            [" ".join(references[t.index]) for t in holders],
            [t.transcript or "" for t in holders],
        )

    @property
    def aura_chars(self) -> int:
        return sum(r.chars for r in self.aura_requests)

    @property
    def aura_audio_s(self) -> float:
        return sum(r.audio_s for r in self.aura_requests)

    def to_row(
        self, *, session_id: str = "", worker: str = "", phase: str = ""
    ) -> dict[str, str | int | float]:
        """One ``sessions.csv`` row, keyed by :data:`SESSIONS_CSV_COLUMNS` in that order.

        The caller supplies what a session cannot know (its id, worker and run phase). Latency
        columns hold the first turn (the first not merged into a later one) / first request in
        milliseconds, ``""`` when absent. ``findings`` counts protocol violations only;
        ``findings_warning`` and ``findings_info`` the softer findings.
        """
        # the first turn that holds its own measurements (not merged into a later one)
        first_turn = next((t for t in self.turns if t.merged_into is None), None)
        first_req = self.aura_requests[0] if self.aura_requests else None
        wer = self.wer
        row: dict[str, str | int | float] = {
            "session_id": session_id,
            "worker": worker,
            "user_type": self.user_type,
            "fixture": self.fixture,
            "model": self.model,
            "phase": phase,
            "start_s": round(self.start_s, 6),
            "duration_s": round(self.duration_s, 6),
            "outcome": self.outcome,
            "error_category": "" if self.error is None else self.error.category.value,
            "error_detail": "" if self.error is None else self.error.message(),
            "turns_expected": self.turns_expected,
            "turns_ended": self.turns_ended,
            "turns_missed": self.turns_missed,
            "turns_premature": self.turns_premature,
            "turns_resumed": self.turns_resumed,
            "turns_split": self.turns_split,
            "turns_merged": self.turns_merged,
            "turns_extra": self.turns_extra,
            "wer": "" if wer is None else round(wer, 6),
            "flux_audio_s": round(self.flux_audio_s, 6),
            "aura_chars": self.aura_chars,
            "aura_audio_s": round(self.aura_audio_s, 6),
            "connections": self.connections,
            "findings": self.findings_of(Severity.VIOLATION),
            "findings_warning": self.findings_of(Severity.WARNING),
            "findings_info": self.findings_of(Severity.INFO),
            "ttft_ms": _ms(first_turn.ttft_us if first_turn else None),
            "eot_ms": _ms(first_turn.eot_us if first_turn else None),
            "ttfb_ms": _ms(first_req.ttfb_us if first_req else None),
            "ttfa_ms": _ms(first_req.ttfa_us if first_req else None),
            "voice_to_voice_ms": _ms(first_turn.voice_to_voice_us if first_turn else None),
        }
        return row
