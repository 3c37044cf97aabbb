"""The harness's measurement error, per message, against the emulator's own trace (pure).

Ground truth is the emulator's ``--trace`` file (:mod:`voiceload.emulator.trace`): for every
message it sent, ``send_ns`` on CLOCK_MONOTONIC, the clock the harness stamps arrivals with.
For a message the harness measured as latency ``value = arrival − plan`` (``flux.eot``: plan is
``S(offset_i)``; ``aura.ttfb``: the request's scheduled time ``r``), the true latency is
``send − plan``, so the harness's error is ``arrival − send``: how late the harness saw what the
emulator had already sent (its receive delay), in µs, positive when the harness over-states.

Matching, by session and sequence: each perf session passes a unique ``tag`` query parameter,
which the trace's ``open`` line records with the connection's ``(pid, conn)``. Within a session
the k-th harness sample of a metric is matched with the k-th traced message of its kind:

* ``flux.eot``: the k-th ``TurnInfo`` with ``event == "EndOfTurn"``;
* ``aura.ttfb``: the first binary audio frame of request k (requests run one after another on a
  socket; request k's audio starts after the (k-1)-th ``Flushed``).

The trace stamps ``send_ns`` just *after* the emulator's send call returns, so a message can
arrive (on the other core) up to ~0.1-0.7 ms before its stamp: errors are signed. A sample whose
message is missing from the trace, or that arrived more than ``early_tolerance_us`` before the
stamp (it cannot be that message), is counted as unmatched rather than guessed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from perf import PerfError
from perf.sorted_stats import summary

FLUX_EOT = "flux.eot"
AURA_TTFB = "aura.ttfb"


@dataclass(frozen=True)
class HarnessSample:
    """One sample as the harness recorded it: session tag, metric, value, and arrival stamp."""

    tag: str
    metric: str
    value_us: int
    arrival_ns: int


@dataclass
class TraceTruth:
    """Per session tag, the emulator's send times of the messages each metric measures."""

    eot_send_ns: dict[str, list[int]] = field(default_factory=dict)
    first_audio_send_ns: dict[str, list[int]] = field(default_factory=dict)

    def sends(self, metric: str) -> Mapping[str, list[int]]:
        if metric == FLUX_EOT:
            return self.eot_send_ns
        if metric == AURA_TTFB:
            return self.first_audio_send_ns
        raise PerfError(f"no ground truth for metric {metric!r}: use {FLUX_EOT} or {AURA_TTFB}")


@dataclass(frozen=True)
class Matched:
    """Errors in µs (arrival − send) of the matched samples, and how many did not match."""

    errors_us: list[int]
    unmatched: int


def read_trace(lines: Iterable[str]) -> TraceTruth:
    """Index trace JSON lines by session tag (lines of untagged connections are skipped).

    Send lines are kept in file order per connection, which is send order: one process writes
    its own lines in order, and a connection lives in one process.
    """
    tag_of: dict[tuple[int, int], str] = {}
    events: dict[tuple[int, int], list[Mapping[str, object]]] = defaultdict(list)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise PerfError(f"trace line {number} is not JSON: {line[:60]!r}") from None
        key = (int(record.get("pid", 0)), int(record.get("conn", 0)))
        if record.get("ev") == "open" and record.get("tag"):
            tag_of[key] = str(record["tag"])
        elif record.get("ev") == "send":
            events[key].append(record)
    truth = TraceTruth()
    for key, tag in tag_of.items():
        eots: list[int] = []
        firsts: list[int] = []
        awaiting_audio = True  # the next audio frame starts a request
        for rec in events.get(key, []):
            kind = rec.get("type")
            if kind == "TurnInfo" and rec.get("event") == "EndOfTurn":
                eots.append(int(str(rec["send_ns"])))
            elif kind == "audio" and awaiting_audio:
                firsts.append(int(str(rec["send_ns"])))
                awaiting_audio = False
            elif kind == "Flushed":
                awaiting_audio = True
        if eots:
            truth.eot_send_ns[tag] = eots
        if firsts:
            truth.first_audio_send_ns[tag] = firsts
    return truth


EARLY_TOLERANCE_US = 5_000


def match(
    samples: Sequence[HarnessSample],
    truth: TraceTruth,
    metric: str,
    early_tolerance_us: int = EARLY_TOLERANCE_US,
) -> Matched:
    """Pair the k-th ``metric`` sample of each tag (``samples`` in recording order) with the
    k-th traced message of that tag; errors are ``arrival − send`` in µs (floored)."""
    sends = truth.sends(metric)
    seen: dict[str, int] = defaultdict(int)
    errors: list[int] = []
    unmatched = 0
    for s in samples:
        if s.metric != metric:
            continue
        k = seen[s.tag]
        seen[s.tag] = k + 1
        session_sends = sends.get(s.tag, [])
        if k >= len(session_sends) or s.arrival_ns < session_sends[k] - early_tolerance_us * 1000:
            unmatched += 1
            continue
        errors.append((s.arrival_ns - session_sends[k]) // 1000)
    return Matched(errors, unmatched)


def error_summary_ms(matched: Matched) -> dict[str, float]:
    """``count``, ``p50``, ``p99``, ``max`` of the errors in ms, plus ``unmatched``."""
    if not matched.errors_us:
        raise PerfError(
            f"no harness sample matched the emulator trace ({matched.unmatched} unmatched): "
            "check the sessions pass their tag and the emulator ran with --trace"
        )
    stats = summary([e / 1000 for e in matched.errors_us])
    stats["unmatched"] = float(matched.unmatched)
    return stats
