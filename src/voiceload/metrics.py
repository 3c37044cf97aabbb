"""The one typed wrapper over HdrHistogram (package ``hdrhistogram``, module ``hdrh``).

Every latency voiceload reports lives in a histogram defined here (docs/METRICS.md):
integer **microseconds**, 1 µs .. 1 hour, 3 significant digits, one histogram per metric name
and run phase. Samples flow one way::

    Recorder.record()  --drain()-->  RecorderPayload (plain dict)  --Aggregator.add()-->
        merged totals + <metric>.hlog (one line per payload interval and phase)
        close() --> <metric>.hgrm (steady phase, ms) + summary() (ms)

The same path serves a single-process run (drain in-process every reporting interval) and a
distributed one (payloads travel in Locust's ``report_to_master``), so the merged numbers cannot
depend on how many workers produced them. Percentiles always come from merged histograms, never
from averaging.

Rules this module enforces:

- **No sample is dropped silently.** A value outside ``0 .. MAX_VALUE_US`` (negative included)
  is not recorded; it is counted per metric and phase, travels in the payload, shows in
  :meth:`Aggregator.summary`, and makes the run invalid. (0 is in range: HdrHistogram's lowest
  trackable value of 1 µs is its resolution, and METRICS.md records a premature ``EndOfTurn`` as
  0.)
- **Phases.** Each sample is filed under the :class:`Phase` current when it was recorded; the
  headline numbers use :attr:`Phase.STEADY`.
- **Names.** A metric is one of :data:`METRICS`, optionally with a label suffix naming the
  target or model when a run mixes them: ``aura.ttfb[aura-2-en]``. Labels are file-name safe
  (``[A-Za-z0-9][A-Za-z0-9._-]*``) because each metric gets its own ``<metric>.hlog``.

Pitfalls of ``hdrh`` 0.10.8 this wrapper works around (MEASUREMENTS.md §4): its
``output_start_time`` is broken (we write the headers by hand), ``output_percentile_distribution``
writes bytes (we open ``.hgrm`` files in binary mode), its log reader takes a file name, skips
unparseable lines and intervals stamped before ``StartTime`` without a word (we parse ``.hlog``
ourselves in :func:`read_hlog` and fail loudly; the :class:`Aggregator` never stamps an interval
before ``StartTime``), percentile queries are linear scans (ask for all at once, as
:func:`stats_ms` does), and ``get_mean_value`` is slow (:func:`mean_us` is not).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Final, TypedDict

import numpy as np
from hdrh.histogram import HdrHistogram

from voiceload.errors import VoiceloadError

LOWEST_VALUE_US: Final = 1
MAX_VALUE_US: Final = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS: Final = 3
US_PER_MS: Final = 1_000
PAYLOAD_VERSION: Final = 1
#: Percentiles reported in summaries, and their keys there (summary.json schema).
PERCENTILES: Final[dict[str, float]] = {
    "p50": 50.0,
    "p90": 90.0,
    "p95": 95.0,
    "p99": 99.0,
    "p99_9": 99.9,
}


class MetricsError(VoiceloadError):
    """A metric name, payload or histogram file is unusable."""


class UnknownMetricError(MetricsError):
    """A metric name is not in :data:`METRICS` or its label suffix is malformed."""


class HistogramLogError(MetricsError):
    """A ``.hlog`` file or a recorder payload cannot be parsed."""


class Phase(StrEnum):
    """Run phase a sample was recorded in; the value is the ``.hlog`` tag and JSON key."""

    RAMP_UP = "ramp_up"
    STEADY = "steady"
    TEARDOWN = "teardown"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric of METRICS.md: its name, what it measures, and whether it judges the harness."""

    name: str
    description: str
    harness: bool = False  # True: measures the load generator itself, not the service


METRICS: Final[dict[str, MetricSpec]] = {
    spec.name: spec
    for spec in (
        MetricSpec("flux.connect", "Flux WebSocket handshake: connect call -> connection open"),
        MetricSpec(
            "flux.first_response", "first TurnInfo (any) - due time of the first audio frame"
        ),
        MetricSpec("flux.ttft", "per turn: first non-empty transcript of the turn - S(onset)"),
        MetricSpec("flux.eot", "per turn: EndOfTurn arrival - S(offset); premature recorded as 0"),
        MetricSpec("flux.eager_eot", "per turn: first EagerEndOfTurn arrival - S(offset)"),
        MetricSpec(
            "flux.transcript_lag", "per Update: (arrival - t0) - audio_window_end of the update"
        ),
        MetricSpec("flux.send_lag", "per frame: actual send - due time", harness=True),
        MetricSpec("aura.connect", "Aura WebSocket handshake: connect call -> connection open"),
        MetricSpec("aura.ttfb", "first binary audio frame - scheduled request time r"),
        MetricSpec("aura.ttfa", "ttfb + leading silence of the returned audio (first audible)"),
        MetricSpec("aura.flushed", "Flushed arrival - scheduled request time r"),
        MetricSpec("aura.stall", "per request: time a real-time player would have run dry"),
        MetricSpec(
            "agent.voice_to_voice",
            "first audible reply audio - S(offset) of the caller's turn, think time included",
        ),
        MetricSpec(
            "harness.recv_delay",
            "loopback emulator only: message handled by the reader - emulator's send stamp",
            harness=True,
        ),
        MetricSpec(
            "harness.loop_lag",
            "per 10 ms sleep of the generator's loop-lag greenlet: wake-up - due time",
            harness=True,
        ),
    )
}

_NAME_RE: Final = re.compile(r"([a-z_]+\.[a-z0-9_]+)(?:\[([A-Za-z0-9][A-Za-z0-9._-]*)\])?")


def metric_name(base: str, label: str | None = None) -> str:
    """``base`` or ``base[label]``, checked: raises :class:`UnknownMetricError` if invalid."""
    name = base if label is None else f"{base}[{label}]"
    split_metric_name(name)
    return name


def split_metric_name(name: str) -> tuple[str, str | None]:
    """``"aura.ttfb[aura-2-en]"`` -> ``("aura.ttfb", "aura-2-en")``; ``"flux.eot"`` -> label None.

    Raises :class:`UnknownMetricError` for an unknown base name or a malformed label.
    """
    match = _NAME_RE.fullmatch(name)
    if match is None or match.group(1) not in METRICS:
        known = ", ".join(METRICS)
        raise UnknownMetricError(
            f"unknown metric {name!r}: use one of {known}, optionally with a label "
            "suffix such as [aura-2-en] (letters, digits, '.', '_', '-')"
        )
    return match.group(1), match.group(2)


def new_histogram() -> Any:
    """An empty ``hdrh.histogram.HdrHistogram``: µs, 1 µs .. 1 h, 3 significant digits."""
    return HdrHistogram(LOWEST_VALUE_US, MAX_VALUE_US, SIGNIFICANT_DIGITS)


def decode_histogram(encoded: str) -> Any:
    """Decode a base64 V2-compressed histogram (``HISTFAAA…``); bad input: HistogramLogError."""
    try:
        return HdrHistogram.decode(encoded)
    except Exception as exc:  # hdrh raises TypeError, zlib.error, its own exceptions...
        raise HistogramLogError(
            f"cannot decode histogram payload {encoded[:16]!r}…: {exc}"
        ) from exc


class Stats(TypedDict):
    """Numbers of one histogram in milliseconds; ``None`` when it holds no samples."""

    count: int
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p99_9: float | None
    max: float | None
    mean: float | None


def stats_ms(histogram: Any) -> Stats:
    """Count, percentiles (:data:`PERCENTILES`), max and mean of a µs histogram, in ms.

    Percentiles are HdrHistogram's: the highest value equivalent (within 0.1 %) to the sample
    at that rank. One scan of the histogram for all percentiles.
    """
    count = int(histogram.get_total_count())
    if count == 0:
        return Stats(
            count=0, p50=None, p90=None, p95=None, p99=None, p99_9=None, max=None, mean=None
        )
    values = percentiles_us(histogram, PERCENTILES.values())
    by_key = {key: values[p] / US_PER_MS for key, p in PERCENTILES.items()}
    return Stats(
        count=count,
        p50=by_key["p50"],
        p90=by_key["p90"],
        p95=by_key["p95"],
        p99=by_key["p99"],
        p99_9=by_key["p99_9"],
        max=int(histogram.get_max_value()) / US_PER_MS,
        mean=mean_us(histogram) / US_PER_MS,
    )


def mean_us(histogram: Any) -> float:
    """The histogram's mean in µs, exactly as ``hdrh``'s ``get_mean_value`` computes it.

    Each bucket counts at its median equivalent value. ``hdrh``'s own method walks a Python
    iterator (~50 ms per histogram); one pass over the counts array is ~20× cheaper.
    """
    total = int(histogram.get_total_count())
    if total == 0:
        return 0.0
    weighted = 0
    for index, count in enumerate(histogram.counts):
        if count:
            value = histogram.get_value_from_index(index)
            lowest = int(histogram.get_lowest_equivalent_value(value))
            size = int(histogram.get_highest_equivalent_value(value)) - lowest + 1
            weighted += count * (lowest + (size >> 1))
    return weighted / total


def percentile_rank(percentile: float, total: int) -> int:
    """The 1-based rank of the sample HdrHistogram reports as ``percentile`` of ``total``
    samples (``hdrh``'s ``get_target_count_at_percentile``)."""
    return max(1, int(min(percentile, 100.0) * total / 100.0 + 0.5))


def percentiles_us(histogram: Any, percentiles: Iterable[float]) -> dict[float, int]:
    """``percentile -> value`` (µs) of a histogram: voiceload's one percentile function.

    Equal to ``hdrh``'s ``get_percentile_to_value_dict``: the value at rank
    :func:`percentile_rank` is reported as the highest value equivalent to it (within the
    histogram's 0.1 %), except that percentile 0 reports the lowest; percentiles above 100 are
    left out, and an empty histogram gives ``{}``. ``hdrh`` walks its ~23,500 counters in Python
    (about 5 ms per call); this takes one numpy cumulative sum, so a one-hour report can ask for
    thousands of window percentiles.
    """
    total = int(histogram.get_total_count())
    if total == 0:
        return {}
    counts = np.ctypeslib.as_array(histogram.counts)[: histogram.counts_len]
    cumulative = np.cumsum(counts)
    out: dict[float, int] = {}
    for p in percentiles:
        if p > 100.0:
            continue
        index = int(np.searchsorted(cumulative, percentile_rank(p, total), side="left"))
        value = histogram.get_value_from_index(index)
        out[p] = int(histogram.get_highest_equivalent_value(value) if p
                     else histogram.get_lowest_equivalent_value(value))
    return out


class RecorderPayload(TypedDict):
    """What a :class:`Recorder` recorded in one interval: plain str/int/float/bool/dict only.

    Keys of the inner dicts are metric names, then :class:`Phase` values. ``histograms`` hold
    base64 V2-compressed HdrHistograms (only non-empty ones); ``samples`` their counts;
    ``out_of_range`` the values that were refused. ``start_s``/``end_s`` are wall-clock epoch
    seconds so intervals from different machines line up. ``final`` marks a worker's last drain.
    """

    version: int
    start_s: float
    end_s: float
    final: bool
    histograms: dict[str, dict[str, str]]
    samples: dict[str, dict[str, int]]
    out_of_range: dict[str, dict[str, int]]


@dataclass(frozen=True)
class RecordedInterval:
    """One interval taken from a :class:`Recorder` (:meth:`Recorder.take`), not yet encoded.

    Encoding is the costly part of a drain (~0.1-0.3 ms per histogram, MEASUREMENTS.md §4), so
    a caller that shares its thread with latency-sensitive work (gevent users sending frames)
    encodes it piece by piece with :meth:`pieces`, yielding in between; :meth:`payload`
    encodes it all at once. Both give the same samples.
    """

    start_s: float
    end_s: float
    final: bool
    histograms: Mapping[tuple[str, Phase], Any]
    out_of_range: Mapping[tuple[str, Phase], int]

    def metrics(self) -> list[str]:
        """Names with samples or refused values in this interval, sorted."""
        names = {m for (m, _), h in self.histograms.items() if h.get_total_count()}
        return sorted(names | {m for m, _ in self.out_of_range})

    def payload(self, metrics: Iterable[str] | None = None) -> RecorderPayload:
        """The :class:`RecorderPayload` of ``metrics`` (default: all), ``final`` as taken."""
        wanted = None if metrics is None else set(metrics)
        histograms: dict[str, dict[str, str]] = {}
        samples: dict[str, dict[str, int]] = {}
        for (metric, phase), hist in self.histograms.items():
            count = int(hist.get_total_count())
            if count and (wanted is None or metric in wanted):
                histograms.setdefault(metric, {})[phase.value] = hist.encode().decode("ascii")
                samples.setdefault(metric, {})[phase.value] = count
        refused: dict[str, dict[str, int]] = {}
        for (metric, phase), count in self.out_of_range.items():
            if wanted is None or metric in wanted:
                refused.setdefault(metric, {})[phase.value] = count
        return RecorderPayload(
            version=PAYLOAD_VERSION,
            start_s=self.start_s,
            end_s=self.end_s,
            final=self.final,
            histograms=histograms,
            samples=samples,
            out_of_range=refused,
        )

    def pieces(self) -> Iterator[RecorderPayload]:
        """One payload per metric, encoded only when the iterator reaches it.

        Every piece has the interval's bounds; only the last keeps ``final``; an interval with
        no metric gives one empty payload (its bounds and ``final`` still count). Merging the
        pieces equals merging :meth:`payload` (same totals and ``.hlog`` lines).
        """
        names = self.metrics()
        if not names:
            yield self.payload(())
            return
        for i, name in enumerate(names):
            piece = self.payload((name,))
            piece["final"] = self.final and i == len(names) - 1
            yield piece


class Recorder:
    """Worker side: records samples into per-interval histograms, drained as payloads.

    Safe under gevent without locks: :meth:`record` and :meth:`drain` never yield. (Under real
    threads a sample recorded concurrently with a drain could land in either interval, but is
    never lost.) :meth:`record` costs one ``hdrh`` ``record_value`` (~1.2 µs) plus two dict
    look-ups; the first sample of a metric/phase in an interval allocates its histogram (~0.15 ms,
    cheaper than ``hdrh``'s ``reset()``).
    """

    def __init__(self, now_wall_s: float) -> None:
        """Start the first interval at ``now_wall_s`` (wall-clock epoch seconds)."""
        self._start_s = now_wall_s
        self._interval: dict[tuple[str, Phase], Any] = {}
        self._out_of_range: dict[tuple[str, Phase], int] = {}
        self._known_names: set[str] = set()

    def record(self, metric: str, value_us: int, phase: Phase) -> bool:
        """Record ``value_us`` under ``metric`` and ``phase``.

        Returns False (and counts the value as out of range) when ``value_us`` is negative or
        above :data:`MAX_VALUE_US`. Raises :class:`UnknownMetricError` for an unknown name.
        """
        # Fast path: a histogram exists only for a name already checked (see _record_slow).
        hist = self._interval.get((metric, phase))
        if hist is not None and 0 <= value_us <= MAX_VALUE_US:
            return bool(hist.record_value(value_us))
        return self._record_slow(metric, value_us, phase)

    def _record_slow(self, metric: str, value_us: int, phase: Phase) -> bool:
        """First sample of ``(metric, phase)`` in this interval, or an out-of-range value."""
        if metric not in self._known_names:
            split_metric_name(metric)
            self._known_names.add(metric)
        key = (metric, phase)
        if 0 <= value_us <= MAX_VALUE_US:
            hist = self._interval.get(key)
            if hist is None:
                hist = self._interval[key] = new_histogram()
            if hist.record_value(value_us):
                return True
        self._out_of_range[key] = self._out_of_range.get(key, 0) + 1
        return False

    def record_ns(self, metric: str, value_ns: int, phase: Phase) -> bool:
        """:meth:`record` a nanosecond interval, floored to µs (so -1 ns stays negative)."""
        return self.record(metric, value_ns // 1_000, phase)

    def drain(self, now_wall_s: float, final: bool = False) -> RecorderPayload:
        """Everything recorded since the last drain (or construction), then start a new interval.

        The interval is ``[previous drain's now_wall_s, now_wall_s]``. ``final=True`` marks the
        worker's last payload (the master counts finals to know no sample is missing).
        Same as ``take(now_wall_s, final).payload()``.
        """
        return self.take(now_wall_s, final).payload()

    def take(self, now_wall_s: float, final: bool = False) -> RecordedInterval:
        """Like :meth:`drain`, without encoding: swap in a fresh interval and hand over the
        old one's histograms (cheap, never yields). Samples recorded after this call belong
        to the next interval, however long the caller takes to encode this one."""
        interval, self._interval = self._interval, {}
        out_of_range, self._out_of_range = self._out_of_range, {}
        start_s, self._start_s = self._start_s, now_wall_s
        return RecordedInterval(start_s, now_wall_s, final, interval, out_of_range)


class MetricSummary(Stats):
    """summary.json's per-metric entry: steady-phase :class:`Stats` plus all-phase counts."""

    count_all_phases: int
    out_of_range: int
    out_of_range_by_phase: dict[str, int]


@dataclass
class SourceTotals:
    """What the aggregator received from one source (a worker, or the local process)."""

    payloads: int = 0
    final_received: bool = False
    last_end_s: float | None = None
    samples: dict[str, dict[str, int]] = field(default_factory=dict)  # metric -> phase -> n
    out_of_range: dict[str, dict[str, int]] = field(default_factory=dict)

    def total_samples(self, metric: str | None = None, phase: Phase | None = None) -> int:
        """Samples received (in range), optionally for one metric and/or phase."""
        return _sum_nested(self.samples, metric, phase)

    def total_out_of_range(self, metric: str | None = None, phase: Phase | None = None) -> int:
        """Values refused as out of range, optionally for one metric and/or phase."""
        return _sum_nested(self.out_of_range, metric, phase)


def _sum_nested(
    table: Mapping[str, Mapping[str, int]], metric: str | None, phase: Phase | None
) -> int:
    return sum(
        n
        for m, by_phase in table.items()
        if metric is None or m == metric
        for p, n in by_phase.items()
        if phase is None or p == phase.value
    )


class Aggregator:
    """Master side: merges payloads into totals and writes one ``.hlog`` per metric.

    ``run_dir=None`` keeps everything in memory (no files). Each :meth:`add` appends, per
    metric and phase in the payload, one line to ``<run_dir>/<metric>.hlog`` and flushes it, so
    a crash leaves complete lines. Logs use relative timestamps against ``#[BaseTime]`` =
    ``#[StartTime]`` = ``start_time_s``; an interval that began earlier (a worker's recorder
    created before the run, or clock skew between machines) is stamped from ``start_time_s`` so
    that every reader sees it. Its samples are unaffected: phases come from tags, not times.

    ``per_source_metrics`` get a steady-phase histogram per source as well (worker health, e.g.
    each worker's ``flux.send_lag`` p99); keep the list short, each costs ~190 KiB per source.
    """

    def __init__(
        self,
        run_dir: Path | None,
        start_time_s: float,
        per_source_metrics: Iterable[str] = ("flux.send_lag",),
    ) -> None:
        self.run_dir = run_dir
        self.start_time_s = start_time_s
        self._per_source_metrics = frozenset(per_source_metrics)
        self._totals: dict[tuple[str, Phase], Any] = {}
        self._out_of_range: dict[str, dict[str, int]] = {}
        self._sources: dict[str, SourceTotals] = {}
        self._source_steady: dict[tuple[str, str], Any] = {}
        self._logs: dict[str, IO[str]] = {}
        self._closed = False

    # -- merging -------------------------------------------------------------------------------

    def add(self, payload: Mapping[str, Any], source: str) -> None:
        """Merge one :class:`RecorderPayload` from ``source``.

        The payload is checked and decoded completely before anything is merged, so a bad
        payload (:class:`HistogramLogError`) leaves the totals untouched.
        """
        if self._closed:
            raise MetricsError(f"payload from {source!r} arrived after the aggregator was closed")
        decoded, start_s, end_s = self._decode_payload(payload, source)
        totals = self._sources.setdefault(source, SourceTotals())
        for metric, phase, encoded, hist in decoded:
            total = self._totals.get((metric, phase))
            if total is None:
                total = self._totals[(metric, phase)] = new_histogram()
            total.add(hist)
            by_phase = totals.samples.setdefault(metric, {})
            by_phase[phase.value] = by_phase.get(phase.value, 0) + int(hist.get_total_count())
            if phase is Phase.STEADY and metric in self._per_source_metrics:
                own = self._source_steady.get((source, metric))
                if own is None:
                    own = self._source_steady[(source, metric)] = new_histogram()
                own.add(hist)
            self._write_line(metric, phase, start_s, end_s, hist, encoded)
        for metric, by_phase in payload["out_of_range"].items():
            for phase_value, count in by_phase.items():
                for table in (self._out_of_range, totals.out_of_range):
                    row = table.setdefault(metric, {})
                    row[phase_value] = row.get(phase_value, 0) + int(count)
                self._log_out_of_range(metric, phase_value, int(count), source, start_s, end_s)
        totals.payloads += 1
        totals.final_received = totals.final_received or bool(payload["final"])
        totals.last_end_s = float(payload["end_s"])

    def _decode_payload(
        self, payload: Mapping[str, Any], source: str
    ) -> tuple[list[tuple[str, Phase, str, Any]], float, float]:
        where = f"payload from {source!r}"
        try:
            if payload["version"] != PAYLOAD_VERSION:
                raise HistogramLogError(
                    f"{where} has version {payload['version']}, expected {PAYLOAD_VERSION}: "
                    "run the same voiceload version on master and workers"
                )
            start_s, end_s = float(payload["start_s"]), float(payload["end_s"])
            histograms = payload["histograms"]
            samples = payload["samples"]
            for metric, by_phase in payload["out_of_range"].items():
                split_metric_name(metric)
                for phase_value in by_phase:
                    Phase(phase_value)
            decoded = []
            for metric, by_phase in histograms.items():
                split_metric_name(metric)
                for phase_value, encoded in by_phase.items():
                    hist = decode_histogram(encoded)
                    if int(hist.get_total_count()) != samples[metric][phase_value]:
                        raise HistogramLogError(
                            f"{where}: {metric} {phase_value} histogram holds "
                            f"{hist.get_total_count()} samples but the payload says "
                            f"{samples[metric][phase_value]}"
                        )
                    decoded.append((metric, Phase(phase_value), encoded, hist))
        except (KeyError, TypeError, ValueError) as exc:
            raise HistogramLogError(f"{where} is malformed ({exc!r})") from exc
        begin_s = max(start_s, self.start_time_s)
        return decoded, begin_s, max(end_s, begin_s)

    # -- reading totals ------------------------------------------------------------------------

    def metric_names(self) -> list[str]:
        """Every metric name seen so far (recorded or refused), sorted."""
        names = {metric for metric, _ in self._totals} | set(self._out_of_range)
        return sorted(names)

    def histogram(self, metric: str, phase: Phase | None = Phase.STEADY) -> Any:
        """A copy of the merged histogram of ``metric`` in ``phase`` (``None``: all phases)."""
        merged = new_histogram()
        for (name, p), hist in self._totals.items():
            if name == metric and (phase is None or p is phase):
                merged.add(hist)
        return merged

    @property
    def sources(self) -> Mapping[str, SourceTotals]:
        """Per source: payloads, whether its final payload arrived, samples received."""
        return self._sources

    def source_stats_ms(self, source: str, metric: str) -> Stats | None:
        """Steady-phase :class:`Stats` of ``metric`` from ``source`` alone.

        Only for ``per_source_metrics``; ``None`` if the source sent no steady samples of it.
        """
        hist = self._source_steady.get((source, metric))
        return None if hist is None else stats_ms(hist)

    def total_out_of_range(self, phase: Phase | None = None) -> int:
        """Values refused as out of range, over all metrics (and sources)."""
        return _sum_nested(self._out_of_range, None, phase)

    def summary(self) -> dict[str, MetricSummary]:
        """Per metric name: steady-phase stats in ms, all-phase count, out-of-range counts."""
        result: dict[str, MetricSummary] = {}
        for name in self.metric_names():
            steady = stats_ms(self._totals.get((name, Phase.STEADY), new_histogram()))
            refused = self._out_of_range.get(name, {})
            result[name] = MetricSummary(
                **steady,
                count_all_phases=sum(
                    int(h.get_total_count()) for (m, _), h in self._totals.items() if m == name
                ),
                out_of_range=sum(refused.values()),
                out_of_range_by_phase=dict(refused),
            )
        return result

    # -- files ---------------------------------------------------------------------------------

    def write_hgrm(self, run_dir: Path) -> list[Path]:
        """Write ``<metric>.hgrm`` (steady phase, values in ms) for every metric seen.

        A metric with no steady samples gets a valid, empty distribution.
        """
        paths = []
        for name in self.metric_names():
            path = run_dir / f"{name}.hgrm"
            with path.open("wb") as out:  # hdrh writes bytes
                self.histogram(name, Phase.STEADY).output_percentile_distribution(
                    out, float(US_PER_MS)
                )
            paths.append(path)
        return paths

    def close(self) -> dict[str, MetricSummary]:
        """Close the ``.hlog`` files, write the ``.hgrm`` files (if ``run_dir``), return summary.

        Idempotent; no payload is accepted afterwards.
        """
        if not self._closed:
            self._closed = True
            for log in self._logs.values():
                log.close()
            if self.run_dir is not None:
                self.write_hgrm(self.run_dir)
        return self.summary()

    def __enter__(self) -> Aggregator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _log(self, metric: str) -> IO[str] | None:
        if self.run_dir is None:
            return None
        log = self._logs.get(metric)
        if log is None:
            log = (self.run_dir / f"{metric}.hlog").open("w", encoding="ascii")
            log.write(hlog_header(metric, self.start_time_s))
            self._logs[metric] = log
        return log

    def _write_line(
        self, metric: str, phase: Phase, start_s: float, end_s: float, hist: Any, encoded: str
    ) -> None:
        log = self._log(metric)
        if log is not None:
            rel_s = start_s - self.start_time_s
            max_ms = int(hist.get_max_value()) / US_PER_MS
            log.write(
                f"Tag={phase.value},{rel_s:.3f},{end_s - start_s:.3f},{max_ms:.3f},{encoded}\n"
            )
            log.flush()

    def _log_out_of_range(
        self, metric: str, phase_value: str, count: int, source: str, start_s: float, end_s: float
    ) -> None:
        log = self._log(metric)
        if log is not None:
            rel_s = start_s - self.start_time_s
            log.write(
                f"#[OutOfRange: {count} samples refused, Tag={phase_value}, source={source}, "
                f"interval {rel_s:.3f}+{end_s - start_s:.3f} s]\n"
            )
            log.flush()


def hlog_header(metric: str, start_time_s: float) -> str:
    """The header of a ``.hlog``: version, ``StartTime``/``BaseTime`` (epoch s), column legend.

    Written by hand because ``hdrh``'s ``output_start_time`` is broken. The format follows the
    Java HdrHistogram ``HistogramLogWriter`` (log format 1.3, which allows ``Tag=`` prefixes).
    """
    iso = datetime.fromtimestamp(start_time_s, UTC).isoformat(timespec="milliseconds")
    spec = METRICS[split_metric_name(metric)[0]]
    return (
        f"#[voiceload {metric}: {spec.description}; values in microseconds]\n"
        "#[Histogram log format version 1.3]\n"
        f"#[StartTime: {start_time_s:.3f} (seconds since epoch), {iso}]\n"
        f"#[BaseTime: {start_time_s:.3f} (seconds since epoch)]\n"
        '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n'
    )


# -- reading back -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntervalHistogram:
    """One ``.hlog`` line: absolute epoch interval, its tag (``None`` if untagged), histogram."""

    start_s: float
    end_s: float
    tag: str | None
    histogram: Any


_START_TIME_RE: Final = re.compile(r"#\[StartTime: *([-\d.]+)")
_BASE_TIME_RE: Final = re.compile(r"#\[BaseTime: *([-\d.]+)")
_YEAR_S: Final = 365 * 24 * 3600.0


def read_hlog(path: Path) -> list[IntervalHistogram]:
    """Parse an HdrHistogram interval log (ours or any standard one) into intervals.

    Timestamps become absolute epoch seconds: relative to ``#[BaseTime]`` when present;
    otherwise, as the Java and ``hdrh`` readers do, relative to ``#[StartTime]`` if they lie
    more than a year before it, else absolute. Raises :class:`HistogramLogError` naming the
    file and line of anything unparseable.
    """
    intervals = []
    start_time_s: float | None = None
    base_time_s: float | None = None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HistogramLogError(f"cannot read histogram log {path}: {exc.strerror}") from exc
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith('"StartTimestamp"'):
            continue
        if line.startswith("#"):
            if match := _START_TIME_RE.match(line):
                start_time_s = float(match.group(1))
            elif match := _BASE_TIME_RE.match(line):
                base_time_s = float(match.group(1))
            continue
        tag = None
        if line.startswith("Tag="):
            tag, _, line = line[4:].partition(",")
        fields = line.split(",")
        try:
            if len(fields) != 4:
                raise ValueError(f"{len(fields)} fields instead of 4")
            stamp_s, length_s = float(fields[0]), float(fields[1])
            histogram = decode_histogram(fields[3])
        except (ValueError, HistogramLogError) as exc:
            raise HistogramLogError(f"{path}:{lineno}: not an interval line ({exc})") from exc
        if base_time_s is None:
            if start_time_s is not None and stamp_s < start_time_s - _YEAR_S:
                base_time_s = start_time_s
            else:
                base_time_s = 0.0
        begin_s = base_time_s + stamp_s
        intervals.append(IntervalHistogram(begin_s, begin_s + length_s, tag, histogram))
    return intervals


def merged_histogram(
    intervals: Iterable[IntervalHistogram], phase: Phase | None = Phase.STEADY
) -> Any:
    """Sum of the intervals tagged ``phase`` (``None``: every interval) as a new histogram."""
    merged = new_histogram()
    for interval in intervals:
        if phase is None or interval.tag == phase.value:
            merged.add(interval.histogram)
    return merged
