"""The report's numbers: run artifacts in, one :class:`ReportModel` out (no HTML, no plotting).

Two steps, so the numbers can be tested without files or pictures:

* :func:`load_run` (I/O) reads what a run left in its directory — ``run.json``,
  ``summary.json``, ``sessions.csv`` and one ``<metric>.hlog`` per metric (schemas:
  docs/ARCHITECTURE.md "Artifact schemas") — and notes every file that is missing or unreadable.
  It reads nothing else, so any old run can be re-rendered.
* :func:`build_model` (pure) turns those into every number the page shows: SLO checks, the
  per-metric table from the merged steady-phase histograms, percentile curves, series over
  time, errors with the setup guide's causes and fixes, WER, validity, cost and capacity.

Latencies are milliseconds (histograms hold µs); times on the over-time axis are seconds since
the run started. A partial run directory gives a partial model whose ``missing`` says what is
absent.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from voiceload import cost, metrics, slo
from voiceload.credentials import REDACTED, redact
from voiceload.errors import VoiceloadError
from voiceload.metrics import IntervalHistogram, Phase, merged_histogram
from voiceload.protocol.failures import ADVICE, UnknownFailureCategoryError, parse_category
from voiceload.targets import is_secret_query_param, redact_url

#: Every metric of docs/METRICS.md (voiceload.metrics.METRICS), in table order.
METRICS = tuple(metrics.METRICS)

#: Metrics drawn over time (p50/p99 per window), when the run measured them.
MAIN_METRICS = ("flux.ttft", "flux.eot", "aura.ttfb", "aura.ttfa", "agent.voice_to_voice")

PHASES = ("ramp_up", "steady", "teardown")

#: Where the report step writes its ``slo``/``cost`` additions when ``summary.json`` exists but
#: cannot be parsed: the run's own file is never overwritten (see report.html.write_outputs).
SUMMARY_FALLBACK = "summary.report.json"

#: Percentile-plot resolution: points per decade of "nines".
_POINTS_PER_NINE = 10
#: The over-time figure never draws more windows than this; adjacent intervals are merged.
MAX_WINDOWS = 300

# ---------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class Timeline:
    """The over-time grid: window ``i`` covers wall clock ``start_s + [i, i + 1) x window_s``."""

    start_s: float
    window_s: float
    windows: int

    def index(self, wall_s: float) -> int:
        """The window holding wall-clock ``wall_s`` (clamped to the grid)."""
        return min(self.windows - 1, max(0, int((wall_s - self.start_s + 1e-6) // self.window_s)))


@dataclass
class MetricHistograms:
    """One metric's ``.hlog`` reduced to what the report needs, so a long run fits in memory.

    ``steady`` is the merged steady-phase histogram (µs); ``window_p50_us``/``window_p99_us``
    map a :class:`Timeline` window index to the percentiles of that window's merged histogram
    (main metrics only, windows with samples only).
    """

    steady: Any
    count_all_phases: int
    window_p50_us: dict[int, int] = field(default_factory=dict)
    window_p99_us: dict[int, int] = field(default_factory=dict)


@dataclass
class RunFiles:
    """What :func:`load_run` found in a run directory (``None``: file missing or unreadable)."""

    run_dir: str
    run: Mapping[str, Any] | None = None
    summary: Mapping[str, Any] | None = None
    sessions: list[dict[str, str]] | None = None
    hlogs: dict[str, MetricHistograms] = field(default_factory=dict)
    timeline: Timeline | None = None
    missing: list[str] = field(default_factory=list)


def load_run(run_dir: Path) -> RunFiles:
    """Read a run directory; every missing or unreadable file becomes a line in ``missing``."""
    files = RunFiles(run_dir=str(run_dir))
    if not run_dir.is_dir():
        files.missing.append(f"run directory {run_dir} does not exist")
        return files
    files.run = _read_json(run_dir / "run.json", files.missing)
    files.summary = _read_json(
        run_dir / "summary.json", files.missing,
        if_unreadable=f"it is left as it is; the report's slo and cost go to {SUMMARY_FALLBACK}")
    sessions_path = run_dir / "sessions.csv"
    if sessions_path.is_file():
        with sessions_path.open(newline="", encoding="utf-8") as fh:
            files.sessions = [dict(r) for r in csv.DictReader(fh)]
    else:
        files.missing.append("sessions.csv is missing: no sessions, errors, WER or cost")
    start_s, duration_s = _span(files.run or {}, files.sessions or [])
    for path in sorted(run_dir.glob("*.hlog")):
        metric = path.name[: -len(".hlog")]
        try:
            intervals = metrics.read_hlog(path)
        except VoiceloadError as exc:
            files.missing.append(f"{path.name} is unreadable ({exc}); its metric is left out")
            continue
        if files.timeline is None:
            files.timeline = _timeline(start_s, duration_s, intervals)
        files.hlogs[metric] = reduce_intervals(metric, intervals, files.timeline)
        del intervals  # one metric's intervals in memory at a time
    if files.timeline is None and start_s is not None:
        files.timeline = _timeline(start_s, duration_s, [])
    return files


def reduce_intervals(
    metric: str, intervals: Sequence[IntervalHistogram], timeline: Timeline
) -> MetricHistograms:
    """Merge one metric's intervals: the steady histogram, the all-phase count and, for the
    :data:`MAIN_METRICS`, p50/p99 of each timeline window."""
    reduced = MetricHistograms(
        steady=merged_histogram(intervals, Phase.STEADY),
        count_all_phases=sum(int(iv.histogram.get_total_count()) for iv in intervals),
    )
    if metric in MAIN_METRICS:
        windows: dict[int, Any] = {}
        for iv in intervals:
            i = timeline.index(iv.start_s)
            if i not in windows:
                windows[i] = metrics.new_histogram()
            windows[i].add(iv.histogram)
        for i, h in sorted(windows.items()):
            if h.get_total_count():
                pct = metrics.percentiles_us(h, (50.0, 99.0))
                reduced.window_p50_us[i], reduced.window_p99_us[i] = pct[50.0], pct[99.0]
    return reduced


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ValueError (with the reason) when it is not one, OSError
    when it cannot be read."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _read_json(
    path: Path, missing: list[str], if_unreadable: str = ""
) -> Mapping[str, Any] | None:
    if not path.is_file():
        missing.append(f"{path.name} is missing")
        return None
    try:
        return read_json_object(path)
    except (OSError, ValueError) as exc:
        then = f"; {if_unreadable}" if if_unreadable else ""
        missing.append(f"{path.name} is unreadable ({exc}){then}")
        return None


# ---------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class MetricRow:
    """One line of the per-metric table (ms, steady phase); ``source`` says where it came from."""

    metric: str
    count: int
    count_all_phases: int
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p99_9: float | None
    max: float | None
    mean: float | None
    out_of_range: int
    source: str  # "hlog" | "summary.json" | "not measured"

    def stats(self) -> dict[str, Any]:
        """The summary.json form of this row."""
        d = asdict(self)
        d.pop("metric")
        d.pop("source")
        return d


@dataclass(frozen=True)
class Curve:
    """A percentile distribution: ``percentiles[i]`` (0..100) -> ``values_ms[i]``."""

    metric: str
    percentiles: list[float]
    values_ms: list[float]


@dataclass(frozen=True)
class OverTime:
    """Per-window series; ``t_s`` are window starts in seconds since the run started."""

    window_s: float
    t_s: list[float]
    latency_p50_ms: dict[str, list[float | None]]
    latency_p99_ms: dict[str, list[float | None]]
    active_sessions: list[float]
    sessions_per_s: list[float]
    errors_per_s: list[float]
    phases: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class ErrorRow:
    category: str
    count: int
    first_message: str
    cause: str
    fix: str


@dataclass(frozen=True)
class WerRow:
    fixture: str
    sessions: int
    wer_mean: float
    wer_max: float
    wer_steady_mean: float | None


@dataclass
class ReportModel:
    """Everything the page shows, top to bottom."""

    run_id: str
    title: str
    # 1 verdict
    slo_results: list[slo.SloResult]
    slo_verdict: str
    valid: bool | None
    validity_reasons: list[str]
    target: str
    load: str
    duration_s: float | None
    started_at: str
    git_commit: str
    # 2-4 latency
    metrics: list[MetricRow]
    harness_error: dict[str, float | None]
    curves: list[Curve]
    over_time: OverTime | None
    # 5 errors and findings
    errors: list[ErrorRow]
    sessions_total: int
    sessions_failed: int
    findings_total: int  # protocol violations (sessions.csv ``findings``)
    sessions_with_findings: int
    turn_counts: dict[str, int]
    #: findings by severity: ``violation`` (= findings_total), ``warning``, ``info``
    findings_by_severity: dict[str, int]
    # 6 accuracy
    wer_overall: float | None
    wer: list[WerRow]
    # 7 validity
    validity: dict[str, Any]
    workers: list[dict[str, Any]]
    # 8 cost and capacity
    usage: cost.UsageStats | None
    projection: cost.Projection | None
    capacity: cost.Capacity | None
    pricing_path: str
    sustained_concurrency: float | None  # voice sessions open in the steady phase (time mean)
    # 9 configuration
    config: dict[str, Any]
    environment: dict[str, Any]
    missing: list[str]

    def summary_additions(self) -> dict[str, Any]:
        """What the report step adds to summary.json: ``slo`` and ``cost``."""
        return {"slo": [r.as_json() for r in self.slo_results], "cost": self.cost_json()}

    def cost_json(self) -> dict[str, Any] | None:
        """The ``cost`` object of summary.json (None when sessions.csv is missing)."""
        if self.usage is None or self.projection is None or self.capacity is None:
            return None
        return {
            "pricing_file": self.pricing_path,
            "usage_basis": self.usage.basis,
            "usage_mean": asdict(self.usage.mean),
            "usage_p95": asdict(self.usage.p95),
            "projection": asdict(self.projection),
            "capacity": asdict(self.capacity),
        }

    def to_json(self) -> dict[str, Any]:
        """Every number of the model as plain JSON (for the golden-file test)."""
        out = asdict(self)
        out["slo_results"] = [r.as_json() for r in self.slo_results]
        out["cost"] = self.cost_json()
        for key in ("usage", "projection", "capacity"):
            out.pop(key)
        plain: dict[str, Any] = json.loads(json.dumps(out, default=str))
        return plain


def build_model(
    files: RunFiles,
    slos: Sequence[slo.Slo],
    pricing: cost.Pricing,
    *,
    sessions_per_day: float = 1000.0,
    busy_hour_factor: float | None = None,
) -> ReportModel:
    """Every number of the report from the files of one run (pure)."""
    run = files.run or {}
    summary = files.summary or {}
    missing = list(files.missing)
    sessions = files.sessions

    rows = _metric_rows(files.hlogs, summary.get("metrics") or {}, missing)
    metrics_json = {r.metric: r.stats() for r in rows if r.count}
    slo_results = slo.check(slos, metrics_json)
    validity = dict(summary.get("validity") or {})
    valid = validity.get("valid") if isinstance(validity.get("valid"), bool) else None
    if not validity:
        missing.append("no validity verdict: summary.json lacks it")
    by_name = {r.metric: r for r in rows if r.count}
    send_lag, recv = by_name.get("flux.send_lag"), by_name.get("harness.recv_delay")
    loop_lag = by_name.get("harness.loop_lag")
    harness_error = {
        "send_lag_p50_ms": send_lag.p50 if send_lag else None,
        "send_lag_p99_ms": send_lag.p99 if send_lag else None,
        "send_lag_max_ms": send_lag.max if send_lag else None,
        "recv_delay_p50_ms": recv.p50 if recv else None,
        "recv_delay_p99_ms": recv.p99 if recv else None,
        "loop_lag_p50_ms": loop_lag.p50 if loop_lag else None,
        "loop_lag_p99_ms": loop_lag.p99 if loop_lag else None,
        "loop_lag_max_ms": loop_lag.max if loop_lag else None,
    }

    span_start_s, _ = _span(run, sessions or [])
    run_start_s = (files.timeline.start_s if files.timeline is not None
                   else span_start_s if span_start_s is not None else 0.0)
    phases = _phases(run, run_start_s)
    curves = []
    for name in _ordered(files.hlogs):
        steady_h = files.hlogs[name].steady
        if not _is_harness(name) and steady_h.get_total_count():
            curves.append(percentile_curve(name, steady_h))
    over_time = (_over_time(files.hlogs, sessions or [], files.timeline, phases)
                 if files.timeline is not None else None)

    sess_summary = _session_summary(sessions or [])
    errors = _errors(summary.get("errors"), sess_summary["errors"])
    wer_rows, wer_overall = _wer(sessions or [], summary.get("wer"))

    steady = phases.get("steady")
    sustained = (
        round(cost.sustained_voice_sessions(
            sessions, steady[0] + run_start_s, steady[1] + run_start_s), 3)
        if sessions is not None and steady is not None
        else None
    )
    usage = projection = capacity_ = None
    if sessions is not None:
        usage = cost.usage_from_sessions(sessions, pricing.default_aura_model)
        projection = cost.project(usage.mean, sessions_per_day, pricing)
        run_ok = valid is True and slo.verdict(slo_results) == "PASS"
        capacity_ = cost.capacity(
            usage.mean, sessions_per_day, pricing, busy_hour_factor=busy_hour_factor,
            sustained_concurrency=sustained if run_ok else None, run_ok=run_ok,
        )

    config = scrub(dict(run.get("config") or {}))
    target = config.get("target") if isinstance(config.get("target"), dict) else {}
    load = _load_text(config)
    return ReportModel(
        run_id=str(run.get("run_id") or summary.get("run_id") or Path(files.run_dir).name),
        title=f"voiceload report {run.get('run_id') or Path(files.run_dir).name}",
        slo_results=slo_results,
        slo_verdict=slo.verdict(slo_results),
        valid=valid,
        validity_reasons=[str(r) for r in validity.get("reasons") or []],
        target=(f"{target.get('name', '?')} {target.get('url', '')}".strip()
                if target else "unknown (run.json missing)"),
        load=load,
        duration_s=_num(run.get("duration_s")),
        started_at=str(run.get("started_at") or "unknown"),
        git_commit=_git_text(run.get("git")),
        metrics=rows,
        harness_error=harness_error,
        curves=curves,
        over_time=over_time,
        errors=errors,
        sessions_total=sess_summary["total"],
        sessions_failed=sess_summary["failed"],
        findings_total=sess_summary["findings"],
        sessions_with_findings=sess_summary["with_findings"],
        turn_counts=sess_summary["turns"],
        findings_by_severity=sess_summary["findings_by_severity"],
        wer_overall=wer_overall,
        wer=wer_rows,
        validity=validity,
        workers=[scrub(dict(w)) for w in run.get("workers") or []],
        usage=usage,
        projection=projection,
        capacity=capacity_,
        pricing_path=pricing.path,
        sustained_concurrency=sustained,
        config=config,
        environment=scrub({
            "machine": run.get("machine"), "packages": run.get("packages"),
            "fixtures": run.get("fixtures"), "interrupted": run.get("interrupted"),
        }),
        missing=missing,
    )


# ---------------------------------------------------------------------------------------------
# Histograms


def _is_harness(name: str) -> bool:
    """Harness-health metrics go in the table, not in the latency distribution plot."""
    spec = metrics.METRICS.get(name.split("[", 1)[0])
    return spec is not None and spec.harness


def _ordered(names: Any) -> list[str]:
    known = [m for m in METRICS if m in names]
    return known + sorted(n for n in names if n not in METRICS)


def _ms(value_us: float) -> float:
    return round(value_us / 1000.0, 3)


def _metric_rows(
    hlogs: Mapping[str, MetricHistograms], summary_metrics: Mapping[str, Any],
    missing: list[str],
) -> list[MetricRow]:
    rows = []
    for name in _ordered(set(METRICS) | set(hlogs) | set(summary_metrics)):
        s = summary_metrics.get(name) or {}
        out_of_range = int(s.get("out_of_range") or 0)
        if name in hlogs:
            st = metrics.stats_ms(hlogs[name].steady)
            rows.append(MetricRow(
                metric=name, count=st["count"],
                count_all_phases=hlogs[name].count_all_phases,
                p50=st["p50"], p90=st["p90"], p95=st["p95"], p99=st["p99"],
                p99_9=st["p99_9"], max=st["max"],
                mean=None if st["mean"] is None else round(st["mean"], 3),
                out_of_range=out_of_range, source="hlog"))
        elif s:
            missing.append(f"{name}.hlog is missing: its table row comes from summary.json and "
                           "it has no percentile curve or series")
            rows.append(MetricRow(
                metric=name, count=int(s.get("count") or 0),
                count_all_phases=int(s.get("count_all_phases") or 0),
                p50=_num(s.get("p50")), p90=_num(s.get("p90")), p95=_num(s.get("p95")),
                p99=_num(s.get("p99")), p99_9=_num(s.get("p99_9")), max=_num(s.get("max")),
                mean=_num(s.get("mean")), out_of_range=out_of_range, source="summary.json"))
        else:
            rows.append(MetricRow(metric=name, count=0, count_all_phases=0, p50=None,
                                  p90=None, p95=None, p99=None, p99_9=None, max=None,
                                  mean=None, out_of_range=0, source="not measured"))
    return rows


def nines_percentiles(count: int) -> list[float]:
    """Percentiles for a "nines" plot: 0, then 10 points per nine up to what ``count`` resolves.

    Point k is ``100 x (1 - 10^(-k/10))``; the last is the first that needs more than ``count``
    samples to resolve, and 100 (the max) closes the curve.
    """
    out = [0.0]
    k = 1
    while k <= 10 * _POINTS_PER_NINE:
        p = 100.0 * (1.0 - 10.0 ** (-k / _POINTS_PER_NINE))
        out.append(round(p, 10))
        if 10.0 ** (k / _POINTS_PER_NINE) > count:
            break
        k += 1
    out.append(100.0)
    return out


def percentile_curve(label: str, histogram: Any) -> Curve:
    """The "nines" curve of a µs histogram (:func:`nines_percentiles` of its count), in ms,
    named ``label``: what the report and the compare page plot."""
    pcts = nines_percentiles(int(histogram.get_total_count()))
    values = metrics.percentiles_us(histogram, pcts)
    return Curve(metric=label, percentiles=pcts, values_ms=[_ms(values[p]) for p in pcts])


# ---------------------------------------------------------------------------------------------
# Time


def _iso_to_epoch_s(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _span(
    run: Mapping[str, Any], sessions: Sequence[Mapping[str, str]]
) -> tuple[float | None, float | None]:
    """Wall-clock start and length of the run from run.json, else from sessions.csv."""
    phases = [v for v in (run.get("phases") or {}).values()
              if isinstance(v, list | tuple) and len(v) == 2]
    starts = [float(v[0]) for v in phases]
    started = _iso_to_epoch_s(run.get("started_at"))
    spans = [(s0, s0 + (_num(r.get("duration_s")) or 0.0)) for r in sessions
             if (s0 := _num(r.get("start_s"))) is not None]
    if starts:
        start = min(starts)
    elif started is not None:
        start = started
    elif spans:
        start = min(a for a, _ in spans)
    else:
        return None, None
    ends = [float(v[1]) for v in phases] + [b for _, b in spans]
    if (d := _num(run.get("duration_s"))) is not None:
        ends.append(start + d)
    return start, max([e - start for e in ends], default=0.0)


def _timeline(
    start_s: float | None, duration_s: float | None, intervals: Sequence[IntervalHistogram]
) -> Timeline:
    """At most :data:`MAX_WINDOWS` windows of whole ``.hlog`` intervals covering the run."""
    if start_s is None:
        start_s = min((iv.start_s for iv in intervals), default=0.0)
    end_s = max([start_s + (duration_s or 0.0), *(iv.end_s for iv in intervals)])
    duration = max(end_s - start_s, 1e-3)
    native = min((iv.end_s - iv.start_s for iv in intervals if iv.end_s > iv.start_s),
                 default=1.0)
    window = math.ceil(max(native, duration / MAX_WINDOWS) / native - 1e-9) * native
    return Timeline(start_s=start_s, window_s=round(window, 6),
                    windows=max(1, math.ceil(duration / window - 1e-9)))


def _phases(run: Mapping[str, Any], start_s: float) -> dict[str, tuple[float, float]]:
    """Phase boundaries in seconds since the run started."""
    out = {}
    for name, span in (run.get("phases") or {}).items():
        if isinstance(span, list | tuple) and len(span) == 2:
            a, b = float(span[0]) - start_s, float(span[1]) - start_s
            out[str(name)] = (round(a, 3), round(b, 3))
    return out


def _over_time(
    hlogs: Mapping[str, MetricHistograms], sessions: Sequence[Mapping[str, str]],
    timeline: Timeline, phases: Mapping[str, tuple[float, float]],
) -> OverTime:
    n, window, start_s = timeline.windows, timeline.window_s, timeline.start_s
    t = [round(i * window, 3) for i in range(n)]
    p50: dict[str, list[float | None]] = {}
    p99: dict[str, list[float | None]] = {}
    for name in MAIN_METRICS:
        if name in hlogs:
            h = hlogs[name]
            p50[name] = [_ms(v) if (v := h.window_p50_us.get(i)) is not None else None
                         for i in range(n)]
            p99[name] = [_ms(v) if (v := h.window_p99_us.get(i)) is not None else None
                         for i in range(n)]

    starts = [0] * n
    failures = [0] * n
    busy = [0.0] * n
    for r in sessions:
        s0, d = _num(r.get("start_s")), _num(r.get("duration_s")) or 0.0
        if s0 is None:
            continue
        a, b = s0 - start_s, s0 - start_s + d
        starts[min(n - 1, max(0, int(a // window)))] += 1
        if (r.get("outcome") or "") != "ok":
            failures[min(n - 1, max(0, int(b // window)))] += 1
        for i in range(max(0, int(a // window)), min(n, int(b // window) + 1)):
            busy[i] += max(0.0, min(b, (i + 1) * window) - max(a, i * window))
    return OverTime(
        window_s=round(window, 3), t_s=t, latency_p50_ms=p50, latency_p99_ms=p99,
        active_sessions=[round(x / window, 3) for x in busy],
        sessions_per_s=[round(c / window, 4) for c in starts],
        errors_per_s=[round(c / window, 4) for c in failures],
        phases=dict(phases),
    )


# ---------------------------------------------------------------------------------------------
# Sessions: errors, findings, WER


def _num(value: object) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _session_summary(sessions: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    errors: dict[str, dict[str, Any]] = {}
    turns = dict.fromkeys(
        ("expected", "ended", "missed", "premature", "resumed", "split", "merged", "extra"), 0
    )
    findings = with_findings = failed = warnings = infos = 0
    for r in sessions:
        if (r.get("outcome") or "") != "ok":
            failed += 1
            cat = r.get("error_category") or "unknown"
            e = errors.setdefault(cat, {"count": 0, "first_message": r.get("error_detail") or ""})
            e["count"] += 1
        f = int(_num(r.get("findings")) or 0)
        findings += f
        with_findings += f > 0
        warnings += int(_num(r.get("findings_warning")) or 0)  # 0 in runs made before them
        infos += int(_num(r.get("findings_info")) or 0)
        for k in turns:
            turns[k] += int(_num(r.get(f"turns_{k}")) or 0)
    return {"total": len(sessions), "failed": failed, "errors": errors, "findings": findings,
            "with_findings": with_findings, "turns": turns,
            "findings_by_severity": {"violation": findings, "warning": warnings, "info": infos}}


def _guidance(category: str) -> tuple[str, str]:
    """(cause, fix) of a failure category, from the one advice table
    (:data:`voiceload.protocol.failures.ADVICE`). A run's files may hold a category this version
    does not know (``unknown`` for a row without one, or a file from another version): the row is
    shown, and says so."""
    try:
        advice = ADVICE[parse_category(category)]
    except UnknownFailureCategoryError:
        return f"not a failure category this voiceload version knows ({category!r})", ""
    return advice.problem, advice.fix


def _errors(summary_errors: object, from_sessions: Mapping[str, Any]) -> list[ErrorRow]:
    source: Mapping[str, Any] = from_sessions
    if isinstance(summary_errors, dict) and summary_errors:
        source = summary_errors
    rows = []
    for cat, e in sorted(source.items(), key=lambda kv: (-int(kv[1].get("count", 0)), kv[0])):
        cause, fix = _guidance(cat)
        rows.append(ErrorRow(category=cat, count=int(e.get("count", 0)),
                             first_message=scrub_text(str(e.get("first_message") or "")),
                             cause=cause, fix=fix))
    return rows


def _wer(
    sessions: Sequence[Mapping[str, str]], summary_wer: object
) -> tuple[list[WerRow], float | None]:
    by_fixture: dict[str, list[tuple[float, bool]]] = {}
    for r in sessions:
        w = _num(r.get("wer"))
        if w is not None:
            fixture = r.get("fixture") or "?"
            by_fixture.setdefault(fixture, []).append((w, r.get("phase") == "steady"))
    rows = []
    for fx, ws in sorted(by_fixture.items()):
        values = [w for w, _ in ws]
        steady = [w for w, s in ws if s]
        rows.append(WerRow(fixture=fx, sessions=len(values),
                           wer_mean=round(sum(values) / len(values), 4),
                           wer_max=round(max(values), 4),
                           wer_steady_mean=round(sum(steady) / len(steady), 4) if steady else None))
    all_w = [w for ws in by_fixture.values() for w, _ in ws]
    overall = round(sum(all_w) / len(all_w), 4) if all_w else None
    if overall is None and isinstance(summary_wer, dict):
        overall = _num(summary_wer.get("overall"))
    return rows, overall


# ---------------------------------------------------------------------------------------------
# Configuration text, without secrets

#: A URL inside free text (an error message, a note), handed whole to targets.redact_url.
_URL_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>]+""")


def scrub_text(text: str) -> str:
    """``text`` safe to show: every registered secret (:func:`voiceload.credentials.redact`)
    and, in each URL it contains, user-info and credential query parameters
    (:func:`voiceload.targets.redact_url`) replaced by :data:`voiceload.credentials.REDACTED`.
    """
    return redact(_URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text))


def scrub(value: Any) -> Any:
    """A deep copy of a JSON-like ``value`` safe to show: a non-empty value under a key that
    names a credential (:func:`voiceload.targets.is_secret_query_param`: ``token``,
    ``api_token``, ``cf-aig-authorization``, ...) becomes
    :data:`voiceload.credentials.REDACTED`; every string goes through :func:`scrub_text`."""
    if isinstance(value, dict):
        return {str(k): (REDACTED if is_secret_query_param(str(k)) and v not in (None, "")
                         else scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def _git_text(git: object) -> str:
    if not isinstance(git, dict) or not git.get("commit"):
        return "unknown"
    return f"{git['commit']}{' (dirty)' if git.get('dirty') else ''}"


def _load_text(config: Mapping[str, Any]) -> str:
    if not config:
        return "unknown (run.json missing)"
    classes = config.get("user_classes") or {}
    mix = ", ".join(f"{k} x{v}" for k, v in classes.items()) if isinstance(classes, dict) else ""
    parts = [f"{config.get('users', '?')} users", f"spawn rate {config.get('spawn_rate', '?')}/s"]
    if config.get("frame_ms"):
        parts.append(f"{config['frame_ms']} ms frames")
    if mix:
        parts.append(f"mix {mix}")
    return ", ".join(parts)
