"""What a load-generating process hands on: the sample sink and the payload (issue 17 split).

* :class:`SessionSink` is the :class:`~voiceload.client.results.SampleSink` each session
  records into: every sample goes into the process's :class:`voiceload.metrics.Recorder` under
  the current phase, the moment it is known, and service latencies also fire Locust ``request``
  events (:data:`LIVE_METRICS`) so Locust's console, web UI and ``--csv`` files show live
  numbers.
* :class:`Outbox` holds what waits to be handed to the collector (sessions.csv rows, CPU
  samples) and builds the plain-dict *payload* (:meth:`Outbox.take`): drained histograms, new
  session rows, CPU samples. Locally the plugin passes it to the collector every reporting
  interval; on a worker it rides on Locust's ``report_to_master``.
* :func:`join_pieces` / :func:`split_by_metric` cut and join payloads one metric at a time, so
  encoding and merging yield to due audio frames between short steps.

Nothing here reads Locust internals; events are fired through the environment's public hooks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from voiceload.metrics import Phase, Recorder, RecorderPayload

#: Samples that also go to Locust's own statistics (service latencies; harness-health metrics
#: such as send_lag stay in the histograms only: thousands per second would swamp Locust).
LIVE_METRICS = frozenset(
    {
        "flux.connect", "flux.first_response", "flux.ttft", "flux.eot", "flux.eager_eot",
        "aura.connect", "aura.ttfb", "aura.ttfa", "aura.flushed", "agent.voice_to_voice",
    }
)  # fmt: skip


class SessionFailed(Exception):
    """The exception Locust shows for a failed session: its text is the error category only,
    so Locust groups failures by category (the detail goes to sessions.csv).

    Locust prints a failure with ``repr(exception)`` (console, web UI, ``*_failures.csv``), so
    ``repr`` is the plain category too: ``handshake_refused``, not
    ``SessionFailed('handshake_refused')``.
    """

    def __init__(self, category: str) -> None:
        super().__init__(category)
        self.category = category

    def __str__(self) -> str:
        return self.category

    def __repr__(self) -> str:
        return self.category


class SessionSink:
    """The :class:`~voiceload.client.results.SampleSink` handed to one session: records under
    the phase ``phase()`` names when the sample arrives, and fires live Locust events."""

    def __init__(self, recorder: Recorder, phase: Callable[[], Phase], events: Any) -> None:
        self._recorder = recorder
        self._phase = phase
        self._events = events  # locust's EventHook methods are untyped

    def record(self, metric: str, value_us: int) -> None:
        self._recorder.record(metric, value_us, self._phase())
        if metric in LIVE_METRICS:
            request_type, _, name = metric.partition(".")
            self._events.request.fire(
                request_type=request_type, name=name, response_time=value_us / 1000.0,
                response_length=0, exception=None, context={},
            )  # fmt: skip


@dataclass
class Outbox:
    """What this process has measured and not yet handed on, besides the recorder's samples.

    ``last_due``: the users have stopped, so the next payload is this process's last (its
    histograms are marked ``final``); ``last_sent``: a worker has sent that last payload.
    """

    worker_id: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    cpu: list[tuple[str, float]] = field(default_factory=list)
    last_due: bool = False
    last_sent: bool = False

    def take_rows_and_cpu(self) -> tuple[list[dict[str, Any]], list[tuple[str, float]]]:
        """The pending rows and CPU samples, handed over (the outbox keeps none)."""
        rows, self.rows = self.rows, []
        cpu, self.cpu = self.cpu, []
        return rows, cpu

    def payload(
        self, hdr: RecorderPayload | None, rows: list[dict[str, Any]], cpu: list[tuple[str, float]]
    ) -> dict[str, Any]:
        """The plain-dict payload (msgpack/JSON safe) the collector absorbs."""
        return {"worker": self.worker_id, "hdr": hdr, "sessions": rows, "cpu": cpu}

    def take(
        self,
        recorder: Recorder,
        now_wall_s: float,
        between_metrics: Callable[[], object] = lambda: None,
    ) -> dict[str, Any]:
        """Everything measured since the last call, as one payload.

        The interval is taken at once (:meth:`voiceload.metrics.Recorder.take`), then encoded
        one metric at a time, calling ``between_metrics`` after each (a worker yields there)."""
        rows, cpu = self.take_rows_and_cpu()
        interval = recorder.take(now_wall_s, final=self.last_due)
        pieces = []
        for piece in interval.pieces():  # encodes one metric per step
            pieces.append(piece)
            between_metrics()
        return self.payload(join_pieces(pieces), rows, cpu)


def join_pieces(pieces: Iterable[RecorderPayload]) -> RecorderPayload | None:
    """The one payload that :meth:`voiceload.metrics.RecordedInterval.pieces` were cut from
    (pure; ``None`` for no pieces): metrics side by side, ``final`` if any piece has it."""
    joined: RecorderPayload | None = None
    for piece in pieces:
        if joined is None:
            joined = copy.deepcopy(piece)
            continue
        joined["histograms"].update(piece["histograms"])
        joined["samples"].update(piece["samples"])
        joined["out_of_range"].update(piece["out_of_range"])
        joined["final"] = joined["final"] or piece["final"]
    return joined


def split_by_metric(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One :class:`voiceload.metrics.RecorderPayload` per metric, same interval (pure).

    Merging them one by one gives the same totals and ``.hlog`` lines as merging ``payload``
    whole, in smaller steps. Only the last piece keeps ``final``; a payload without any metric
    is returned as it is (its interval and ``final`` still count).
    """
    metrics = sorted(set(payload["histograms"]) | set(payload["out_of_range"]))
    if not metrics:
        return [dict(payload)]
    pieces = []
    for i, metric in enumerate(metrics):
        piece = dict(payload)
        piece["final"] = bool(payload["final"]) and i == len(metrics) - 1
        for key in ("histograms", "samples", "out_of_range"):
            piece[key] = {metric: payload[key][metric]} if metric in payload[key] else {}
        pieces.append(piece)
    return pieces
