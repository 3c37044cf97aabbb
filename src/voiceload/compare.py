"""Release-to-release comparison: two runs in, one verdict per metric out (pure, seeded).

``compare_runs(baseline, current, pricing)`` takes the files of two runs (as
:func:`voiceload.report.model.load_run` reads them) and answers "did this release get slower?"
for every latency metric both runs measured, plus their error rates, WER, validity and cost per
voice session. :func:`markdown` renders the answer as a pull-request comment. Nothing here reads
a file or a clock; the bootstrap is seeded from the metric name, so the same two runs always get
the same verdicts.

The rule for latency (:func:`compare_metric`), and why it is sound
-------------------------------------------------------------------

Latency is heavy-tailed and often multi-modal, so a t-test (normality, means) answers the wrong
question. We compare **percentiles** (p50, p90, p99 of the merged steady-phase histograms) and
make no distributional assumption:

1. **Bootstrap confidence interval of the change.** Each run's steady histogram *is* its sample:
   HdrHistogram keeps every value to within 0.1 % (3 significant digits), so resampling bucket
   counts is resampling the data. For ``resamples`` rounds we draw a multinomial resample of
   each run's counts (same size as the run), take the percentile exactly as HdrHistogram does,
   and subtract; the central ``confidence`` interval of those differences is the CI of the
   change (percentile bootstrap, seeded per metric).
2. **Minimum practical effect.** A change smaller than the harness can measure, or too small to
   matter, is never a regression: ``floor = max(harness error at that percentile, relative_floor
   x baseline)``. The harness error is the run's own send-lag + receive-delay percentile
   (``flux.send_lag`` + ``harness.recv_delay``, the larger of the two runs), and never less
   than the error measured on this kind of machine (MEASUREMENTS.md §2.3: +1 ms p50, +3.5 ms
   p99). A loaded load generator lags more, so its own numbers raise the floor.
3. **Verdict.** *regressed* only when the whole CI lies above ``+floor``; *improved* only when
   it lies below ``-floor``; otherwise *within noise*. A 2 ms change on 30 samples is noise
   twice over: its CI spans zero and it is under the floor.
   **A percentile whose whole scale is harness noise is never judged**: when both runs' values
   lie at or below ``noise_scale_ms`` (or the harness error at that percentile, if larger), the
   verdict is *within noise* whatever the CI says. ``noise_scale_ms`` (10 ms) is the lateness
   a valid run may carry on a sample that crosses both ends of a loopback run: the client's
   send-lag budget (5 ms p99, the validity rule) plus the emulator's event-loop-lag bar (5 ms
   p99, docs/PERFORMANCE.md section 3). ``flux.transcript_lag`` against the emulator is a few
   ms of pure scheduling, so a busy machine moved it by a few ms and flipped the verdict;
   here it stays within noise, while a change that takes a metric past 10 ms is still judged.
4. **Enough tail.** A percentile is only judged when each run has at least ``min_tail_samples``
   samples beyond it (p99 needs 1,000 samples, p50 needs 20); otherwise the verdict is
   *insufficient samples* — a bootstrap of a percentile with a handful of samples past it only
   re-shuffles those few values and gives a falsely narrow interval.

A metric regresses when any judged percentile regresses. Harness metrics (``flux.send_lag``,
``harness.recv_delay``, ``harness.loop_lag``) are shown but not judged: they measure the load
generator. Limits of the rule, stated honestly: the bootstrap treats samples as independent, and
samples from one session (many ``flux.transcript_lag`` updates per stream) are correlated, so CIs of
per-update metrics are narrower than the truth; the relative floor and the 99 % default confidence
absorb that, and a change that only shows on such a metric deserves a second run.

Other comparisons
-----------------

* **Error rate** (failed sessions / sessions): Fisher's exact test (the exact two-proportion
  test, valid at the small counts a short run has), one-sided each way, at ``1 - confidence``.
* **WER** (per-session word error rate from ``sessions.csv``): bootstrap CI of the change of the
  mean, with an absolute floor of ``wer_floor`` (one word in a hundred).
* **Cost per voice session** (Neurons, as :mod:`voiceload.cost` defines a voice session):
  bootstrap CI of the change of the mean over sessions (stratified by user type), with the same
  relative floor as latency.
* **Validity**: a current run that is invalid fails the comparison (its latencies cannot be
  trusted); an invalid baseline is reported as a warning.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from voiceload import cost, metrics
from voiceload.errors import ConfigError

#: Percentiles compared, by their summary.json key.
COMPARED_STATS: Final[dict[str, float]] = {"p50": 50.0, "p90": 90.0, "p99": 99.0}
#: Harness error (ms) added to speech latencies on this kind of machine at or below the
#: recommended per-worker load (MEASUREMENTS.md §2.3), used when a run did not measure its own.
DEFAULT_HARNESS_ERROR_MS: Final[dict[str, float]] = {"p50": 1.0, "p90": 2.0, "p99": 3.5}
#: The metrics whose percentiles add up to the harness's own error.
HARNESS_ERROR_METRICS: Final = ("flux.send_lag", "harness.recv_delay")

Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class Verdict(StrEnum):
    """The answer for one metric, statistic or rate."""

    REGRESSED = "regressed"
    IMPROVED = "improved"
    NOISE = "within noise"
    INSUFFICIENT = "insufficient samples"
    NOT_JUDGED = "not judged"


@dataclass(frozen=True)
class Rules:
    """The knobs of the decision rule (module docstring); defaults are the documented ones."""

    confidence: float = 0.99
    resamples: int = 2000
    relative_floor: float = 0.05
    min_tail_samples: int = 10
    wer_floor: float = 0.01
    seed: int = 8
    noise_scale_ms: float = 10.0  # see rule 3: below it both runs measure only the harness

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1.0:
            raise ConfigError(f"confidence must be in [0.5, 1), got {self.confidence:g}")
        if self.resamples < 100:
            raise ConfigError(f"resamples must be >= 100, got {self.resamples}")
        if self.relative_floor < 0 or self.wer_floor < 0 or self.noise_scale_ms < 0:
            raise ConfigError("relative_floor, wer_floor and noise_scale_ms must be >= 0")
        if self.min_tail_samples < 1:
            raise ConfigError(f"min_tail_samples must be >= 1, got {self.min_tail_samples}")


# ---------------------------------------------------------------------------------------------
# Histograms as arrays, percentiles exactly as HdrHistogram computes them


@dataclass(frozen=True)
class Buckets:
    """One run's steady-phase µs histogram and its non-empty buckets as arrays.

    ``values_us`` is each non-empty bucket's highest equivalent value, which is what
    HdrHistogram returns for a percentile landing in that bucket; ``counts`` sum to the
    histogram's total count. The bootstrap resamples these arrays; percentiles of the run itself
    come from ``histogram`` through :func:`voiceload.metrics.percentiles_us` (so it must not be
    changed after the buckets are made).
    """

    values_us: Int64Array
    counts: Int64Array
    histogram: Any

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def percentile_us(self, percentile: float) -> int:
        """``percentile`` of the run in µs (:func:`voiceload.metrics.percentiles_us`)."""
        if self.total == 0:
            raise ValueError("percentile of an empty histogram")
        return metrics.percentiles_us(self.histogram, [percentile])[percentile]

    @classmethod
    def from_histogram(cls, histogram: Any) -> Buckets:
        """Buckets of an ``hdrh`` histogram (one pass over its counts array)."""
        counts = np.ctypeslib.as_array(histogram.counts)[: histogram.counts_len]
        index = np.flatnonzero(counts)
        values = [
            int(histogram.get_highest_equivalent_value(histogram.get_value_from_index(int(i))))
            for i in index
        ]
        return cls(np.asarray(values, dtype=np.int64), counts[index].astype(np.int64),
                   histogram)

    @classmethod
    def from_values(cls, values_us: Iterable[int]) -> Buckets:
        """Buckets of a histogram recording ``values_us`` (for tests and synthetic data)."""
        histogram = metrics.new_histogram()
        for v in values_us:
            histogram.record_value(int(v))
        return cls.from_histogram(histogram)


def bootstrap_percentile_us(
    buckets: Buckets, percentile: float, resamples: int, rng: np.random.Generator
) -> FloatArray:
    """``resamples`` bootstrap replicates of ``percentile`` (µs) of the run behind ``buckets``.

    A replicate is the percentile (as :func:`voiceload.metrics.percentiles_us` takes it: the
    sample of rank ``r``)
    of ``total`` samples redrawn with replacement from the buckets. Drawing all ``total`` samples
    is not needed: the rank-``r`` sample of ``n`` draws from a distribution ``F`` is
    ``F⁻¹(U)`` where ``U ~ Beta(r, n - r + 1)`` is the rank-``r`` of ``n`` uniforms (the inverse
    CDF is monotone, so it keeps ranks; exact for discrete ``F`` too). So each replicate costs
    one Beta draw and one binary search, whatever the run's sample count.
    """
    total = buckets.total
    rank = metrics.percentile_rank(percentile, total)
    cdf = np.cumsum(buckets.counts) / total
    u = rng.beta(rank, total - rank + 1, size=resamples)
    index = np.minimum(np.searchsorted(cdf, u, side="left"), len(cdf) - 1)
    return buckets.values_us[index].astype(np.float64)


# ---------------------------------------------------------------------------------------------
# One latency metric


@dataclass(frozen=True)
class StatComparison:
    """One percentile of one metric in both runs, the change, its CI and the verdict (ms)."""

    stat: str
    baseline_ms: float
    current_ms: float
    change_ms: float
    change_pct: float | None  # None when the baseline is 0
    ci_low_ms: float | None  # None when not judged (insufficient samples)
    ci_high_ms: float | None
    floor_ms: float
    verdict: Verdict


@dataclass(frozen=True)
class MetricComparison:
    """One metric both runs measured: sample counts, per-percentile comparisons, a verdict."""

    metric: str
    baseline_count: int
    current_count: int
    stats: list[StatComparison]
    verdict: Verdict
    harness: bool  # a harness-health metric: shown, never judged


def _seed_for(rules: Rules, name: str, stat: str) -> np.random.Generator:
    """A generator seeded by (rules.seed, name, stat): stable whatever order metrics come in."""
    return np.random.default_rng([rules.seed, zlib.crc32(f"{name}/{stat}".encode())])


def compare_metric(
    metric: str,
    baseline: Buckets,
    current: Buckets,
    harness_error_ms: Mapping[str, float],
    rules: Rules = Rules(),
) -> MetricComparison:
    """Compare one metric's steady-phase distributions with the rule of the module docstring.

    ``harness_error_ms`` maps each of :data:`COMPARED_STATS` to the harness's error at that
    percentile (see :func:`harness_error_ms`). Both bucket sets must hold samples.
    """
    if baseline.total == 0 or current.total == 0:
        raise ValueError(f"{metric}: both runs need samples to compare")
    base_name, _ = metrics.split_metric_name(metric)
    harness = metrics.METRICS[base_name].harness
    alpha = 1.0 - rules.confidence
    stats = []
    for stat, p in COMPARED_STATS.items():
        base_ms = baseline.percentile_us(p) / metrics.US_PER_MS
        cur_ms = current.percentile_us(p) / metrics.US_PER_MS
        floor_ms = max(harness_error_ms[stat], rules.relative_floor * base_ms)
        tail = min(baseline.total, current.total) * (1.0 - p / 100.0)
        lo = hi = None
        if tail + 1e-9 < rules.min_tail_samples:
            verdict = Verdict.INSUFFICIENT
        else:
            rng = _seed_for(rules, metric, stat)
            diff_us = bootstrap_percentile_us(current, p, rules.resamples, rng) - \
                bootstrap_percentile_us(baseline, p, rules.resamples, rng)
            lo_us, hi_us = np.quantile(diff_us, [alpha / 2.0, 1.0 - alpha / 2.0])
            lo, hi = float(lo_us) / metrics.US_PER_MS, float(hi_us) / metrics.US_PER_MS
            noise_ms = max(rules.noise_scale_ms, harness_error_ms[stat])
            if harness:
                verdict = Verdict.NOT_JUDGED
            elif max(base_ms, cur_ms) <= noise_ms:  # rule 3: the whole scale is harness noise
                verdict = Verdict.NOISE
            elif lo > floor_ms:
                verdict = Verdict.REGRESSED
            elif hi < -floor_ms:
                verdict = Verdict.IMPROVED
            else:
                verdict = Verdict.NOISE
        change_ms = cur_ms - base_ms
        stats.append(StatComparison(
            stat=stat, baseline_ms=base_ms, current_ms=cur_ms, change_ms=change_ms,
            change_pct=100.0 * change_ms / base_ms if base_ms else None,
            ci_low_ms=lo, ci_high_ms=hi, floor_ms=floor_ms, verdict=verdict,
        ))
    return MetricComparison(metric, baseline.total, current.total, stats,
                            _combine([s.verdict for s in stats], harness), harness)


def _combine(verdicts: Sequence[Verdict], harness: bool = False) -> Verdict:
    """One verdict from several: any regression wins, then improvement, then noise."""
    if harness:
        return Verdict.NOT_JUDGED
    for v in (Verdict.REGRESSED, Verdict.IMPROVED, Verdict.NOISE):
        if v in verdicts:
            return v
    return Verdict.INSUFFICIENT if Verdict.INSUFFICIENT in verdicts else Verdict.NOT_JUDGED


def harness_error_ms(*runs: Mapping[str, Buckets]) -> dict[str, float]:
    """The harness's error at each compared percentile, in ms.

    Per run: that run's ``flux.send_lag`` + ``harness.recv_delay`` percentile (what it measured
    of its own lateness), but never less than :data:`DEFAULT_HARNESS_ERROR_MS` (the error
    measured on this kind of machine, which a run that did not measure receive delay still
    has). The result is the larger over ``runs``.
    """
    out = dict(DEFAULT_HARNESS_ERROR_MS)
    for run in runs:
        present = [run[m] for m in HARNESS_ERROR_METRICS if m in run and run[m].total]
        for stat, p in COMPARED_STATS.items():
            measured = sum(b.percentile_us(p) for b in present) / metrics.US_PER_MS
            out[stat] = max(out[stat], measured)
    return out


# ---------------------------------------------------------------------------------------------
# Rates, WER, cost, validity


@dataclass(frozen=True)
class RateComparison:
    """Failed sessions / sessions in both runs, Fisher's exact one-sided p-values, a verdict."""

    baseline_failed: int
    baseline_total: int
    current_failed: int
    current_total: int
    p_worse: float  # P(current's failures this high or higher | no real change)
    p_better: float
    verdict: Verdict

    @property
    def baseline_rate(self) -> float | None:
        return self.baseline_failed / self.baseline_total if self.baseline_total else None

    @property
    def current_rate(self) -> float | None:
        return self.current_failed / self.current_total if self.current_total else None


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_one_sided(a: int, n_a: int, b: int, n_b: int) -> tuple[float, float]:
    """Fisher's exact test of ``b/n_b`` against ``a/n_a``: (P[B >= b], P[B <= b]).

    Conditional on the total ``a + b`` failures, ``B`` (current's failures) is hypergeometric;
    the first value is small when the current run fails significantly more often.
    """
    if not (0 <= a <= n_a and 0 <= b <= n_b):
        raise ValueError("failures must lie between 0 and the session count")
    k, n = a + b, n_a + n_b
    if n == 0:
        return 1.0, 1.0
    low, high = max(0, k - n_a), min(k, n_b)
    log_total = _log_comb(n, k)
    pmf = {x: math.exp(_log_comb(n_b, x) + _log_comb(n_a, k - x) - log_total)
           for x in range(low, high + 1)}
    worse = min(1.0, sum(v for x, v in pmf.items() if x >= b))
    better = min(1.0, sum(v for x, v in pmf.items() if x <= b))
    return worse, better


def compare_rates(
    baseline_failed: int, baseline_total: int, current_failed: int, current_total: int,
    rules: Rules = Rules(),
) -> RateComparison:
    """Error rates: regressed when Fisher's one-sided p < ``1 - confidence`` (and vice versa)."""
    if baseline_total == 0 or current_total == 0:
        return RateComparison(baseline_failed, baseline_total, current_failed, current_total,
                              1.0, 1.0, Verdict.INSUFFICIENT)
    worse, better = fisher_one_sided(baseline_failed, baseline_total, current_failed,
                                     current_total)
    alpha = 1.0 - rules.confidence
    verdict = (Verdict.REGRESSED if worse < alpha
               else Verdict.IMPROVED if better < alpha else Verdict.NOISE)
    return RateComparison(baseline_failed, baseline_total, current_failed, current_total,
                          worse, better, verdict)


@dataclass(frozen=True)
class MeanComparison:
    """A per-session mean (WER, Neurons per voice session) in both runs, CI of the change."""

    name: str
    baseline: float | None
    current: float | None
    baseline_n: int
    current_n: int
    ci_low: float | None
    ci_high: float | None
    floor: float
    verdict: Verdict


def _bootstrap_mean(
    groups: Sequence[FloatArray], resamples: int, rng: np.random.Generator
) -> FloatArray:
    """Replicates of the sum over ``groups`` of each group's mean, groups resampled separately."""
    out = np.zeros(resamples, dtype=np.float64)
    for g in groups:
        if len(g):
            picks = rng.integers(0, len(g), size=(resamples, len(g)))
            out += g[picks].mean(axis=1)
    return out


def compare_means(
    name: str,
    baseline_groups: Sequence[Sequence[float]],
    current_groups: Sequence[Sequence[float]],
    floor: float,
    rules: Rules = Rules(),
) -> MeanComparison:
    """Compare the sum of group means (one group: a plain mean) with a bootstrap CI.

    Regressed when the whole CI of (current - baseline) lies above ``floor``; improved when it
    lies below ``-floor``; insufficient when a run has fewer than 2 values in a non-empty group
    of the other run's shape.
    """
    base = [np.asarray(g, dtype=np.float64) for g in baseline_groups]
    cur = [np.asarray(g, dtype=np.float64) for g in current_groups]
    base_n, cur_n = sum(len(g) for g in base), sum(len(g) for g in cur)
    base_mean = sum(float(g.mean()) for g in base if len(g)) if base_n else None
    cur_mean = sum(float(g.mean()) for g in cur if len(g)) if cur_n else None
    shape_differs = [len(a) > 0 for a in base] != [len(b) > 0 for b in cur]
    if base_mean is None or cur_mean is None or shape_differs or \
            min(len(g) for g in (*base, *cur) if len(g)) < 2:
        return MeanComparison(name, base_mean, cur_mean, base_n, cur_n, None, None, floor,
                              Verdict.INSUFFICIENT)
    rng = _seed_for(rules, name, "mean")
    diff = _bootstrap_mean(cur, rules.resamples, rng) - _bootstrap_mean(base, rules.resamples, rng)
    alpha = 1.0 - rules.confidence
    lo, hi = (float(x) for x in np.quantile(diff, [alpha / 2.0, 1.0 - alpha / 2.0]))
    verdict = (Verdict.REGRESSED if lo > floor
               else Verdict.IMPROVED if hi < -floor else Verdict.NOISE)
    return MeanComparison(name, base_mean, cur_mean, base_n, cur_n, lo, hi, floor, verdict)


def session_neurons(rows: Sequence[Mapping[str, str]], pricing: cost.Pricing) -> list[list[float]]:
    """Neurons of each session, grouped by :func:`voiceload.cost.voice_session_groups`:
    ``[agent rows]`` if the run has agents, else ``[flux rows, aura rows]`` (a voice session is
    one of each, so its mean cost is the sum of the two group means); failed sessions that
    opened no WebSocket are left out, as in the report's cost section."""

    def neurons(row: Mapping[str, str]) -> float:
        usage = cost.usage_from_sessions([row], pricing.default_aura_model).mean
        return cost.project(usage, 1.0, pricing).neurons_per_session

    return [[neurons(r) for r in group] for group in cost.voice_session_groups(rows)]


@dataclass(frozen=True)
class ValidityComparison:
    """Both runs' validity (``None``: unknown) and the reasons the current run is invalid."""

    baseline_valid: bool | None
    current_valid: bool | None
    current_reasons: list[str]
    baseline_reasons: list[str]

    @property
    def verdict(self) -> Verdict:
        """Regressed when the current run is not known to be valid."""
        return Verdict.NOISE if self.current_valid is True else Verdict.REGRESSED


# ---------------------------------------------------------------------------------------------
# Two runs


@dataclass(frozen=True)
class RunData:
    """What the comparison needs of one run, read by the caller (see voiceload.cli.compare)."""

    run_id: str
    histograms: Mapping[str, Buckets]  # steady phase, non-empty only
    summary: Mapping[str, Any]
    sessions: Sequence[Mapping[str, str]]

    @classmethod
    def from_histograms(
        cls, run_id: str, steady_histograms: Mapping[str, Any],
        summary: Mapping[str, Any] | None, sessions: Sequence[Mapping[str, str]] | None,
    ) -> RunData:
        """From each metric's merged steady-phase ``hdrh`` histogram (empty ones are left out)."""
        histograms = {}
        for name, histogram in steady_histograms.items():
            buckets = Buckets.from_histogram(histogram)
            if buckets.total:
                histograms[name] = buckets
        return cls(run_id, histograms, summary or {}, sessions or [])


@dataclass(frozen=True)
class Comparison:
    """Everything ``voiceload compare`` shows: latency per metric, rates, WER, cost, validity."""

    baseline_id: str
    current_id: str
    rules: Rules
    harness_error_ms: dict[str, float]
    metrics: list[MetricComparison]
    only_in_baseline: list[str]
    only_in_current: list[str]
    errors: RateComparison
    wer: MeanComparison
    cost: MeanComparison
    validity: ValidityComparison
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[str]:
        """One short line per regression (empty: no regression)."""
        out = [f"{m.metric} " + ", ".join(s.stat for s in m.stats if s.verdict is
                                         Verdict.REGRESSED)
               for m in self.metrics if m.verdict is Verdict.REGRESSED]
        if self.errors.verdict is Verdict.REGRESSED:
            out.append("error rate")
        if self.wer.verdict is Verdict.REGRESSED:
            out.append("WER")
        if self.cost.verdict is Verdict.REGRESSED:
            out.append("cost per voice session")
        if self.validity.verdict is Verdict.REGRESSED:
            out.append("current run is not valid")
        return out

    @property
    def latency_judged(self) -> bool:
        """True when at least one service latency metric had enough samples to be judged."""
        return any(m.verdict in (Verdict.REGRESSED, Verdict.IMPROVED, Verdict.NOISE)
                   for m in self.metrics if not m.harness)

    @property
    def verdict(self) -> Verdict:
        """The headline: regressed if anything regressed; else *insufficient samples* when no
        latency metric could be judged (the question "did it get slower?" has no answer, so
        it is never reported as noise); else improved if something improved; else noise."""
        if self.regressions:
            return Verdict.REGRESSED
        if not self.latency_judged:
            return Verdict.INSUFFICIENT
        judged = [m.verdict for m in self.metrics] + [self.errors.verdict, self.wer.verdict,
                                                      self.cost.verdict]
        return Verdict.IMPROVED if Verdict.IMPROVED in judged else Verdict.NOISE


def _failed_total(run: RunData) -> tuple[int, int]:
    sessions = run.summary.get("sessions")
    if isinstance(sessions, dict) and isinstance(sessions.get("total"), int):
        total = int(sessions["total"])
        failed = sessions.get("failed")
        if not isinstance(failed, int):
            failed = total - int(sessions.get("ok") or 0)
        return int(failed), total
    failed = sum(1 for r in run.sessions if (r.get("outcome") or "") != "ok")
    return failed, len(run.sessions)


def _wer_values(run: RunData) -> list[float]:
    out = []
    for r in run.sessions:
        raw = (r.get("wer") or "").strip()
        try:
            value = float(raw) if raw else math.nan
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            out.append(value)
    return out


def _validity(summary: Mapping[str, Any]) -> tuple[bool | None, list[str]]:
    v = summary.get("validity")
    if not isinstance(v, dict):
        return None, ["summary.json has no validity verdict"]
    valid = v.get("valid")
    reasons = [str(r) for r in v.get("reasons") or []]
    return (valid if isinstance(valid, bool) else None), reasons


def compare_runs(
    baseline: RunData, current: RunData, pricing: cost.Pricing,
    rules: Rules = Rules(),
) -> Comparison:
    """Compare ``current`` against ``baseline`` (module docstring for every rule)."""
    error_ms = harness_error_ms(baseline.histograms, current.histograms)
    order = list(metrics.METRICS)
    both = sorted(set(baseline.histograms) & set(current.histograms),
                  key=lambda n: (order.index(metrics.split_metric_name(n)[0]), n))
    compared = [compare_metric(name, baseline.histograms[name], current.histograms[name],
                               error_ms, rules) for name in both]
    b_failed, b_total = _failed_total(baseline)
    c_failed, c_total = _failed_total(current)
    wer = compare_means("wer", [_wer_values(baseline)], [_wer_values(current)], rules.wer_floor,
                        rules)
    b_cost = session_neurons(baseline.sessions, pricing)
    c_cost = session_neurons(current.sessions, pricing)
    base_cost_mean = sum(sum(g) / len(g) for g in b_cost if g)
    cost_cmp = compare_means("neurons per voice session", b_cost, c_cost,
                             rules.relative_floor * base_cost_mean, rules)
    b_valid, b_reasons = _validity(baseline.summary)
    c_valid, c_reasons = _validity(current.summary)
    notes = []
    if b_valid is not True:
        notes.append(f"baseline {baseline.run_id} is not known to be valid "
                     f"({'; '.join(b_reasons) or 'no reason recorded'}): treat its numbers "
                     "with care")
    return Comparison(
        baseline_id=baseline.run_id, current_id=current.run_id, rules=rules,
        harness_error_ms=error_ms, metrics=compared,
        only_in_baseline=sorted(set(baseline.histograms) - set(current.histograms)),
        only_in_current=sorted(set(current.histograms) - set(baseline.histograms)),
        errors=compare_rates(b_failed, b_total, c_failed, c_total, rules),
        wer=wer, cost=cost_cmp,
        validity=ValidityComparison(b_valid, c_valid, c_reasons, b_reasons),
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------
# Markdown for a pull-request comment


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def _fmt_change(s: StatComparison) -> str:
    pct = "" if s.change_pct is None else f", {s.change_pct:+.1f} %"
    return f"{s.change_ms:+,.1f} ms{pct}"


_MARK: Final = {Verdict.REGRESSED: "**regressed**", Verdict.IMPROVED: "improved",
                Verdict.NOISE: "within noise", Verdict.INSUFFICIENT: "insufficient samples",
                Verdict.NOT_JUDGED: "not judged (harness)"}


def _fmt_rate(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.2f} %"


def _fmt_num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(c: Comparison) -> str:
    """A pull-request comment: headline verdict, a latency table, rates, WER, cost, the rule."""
    lines = [f"### voiceload compare: {c.verdict.value.upper()}", "",
             f"Baseline `{c.baseline_id}` → current `{c.current_id}` (steady phase, ms).", ""]
    if c.regressions:
        lines += ["Regressions: " + "; ".join(c.regressions) + ".", ""]
    lines += ["| metric | n base / cur | p50 base → cur (Δ) | p90 base → cur (Δ) | "
              "p99 base → cur (Δ) | verdict |", "|---|---|---|---|---|---|"]
    for m in c.metrics:
        cells = []
        for s in m.stats:
            mark = " ⚠" if s.verdict is Verdict.REGRESSED else ""
            cells.append(f"{_fmt_ms(s.baseline_ms)} → {_fmt_ms(s.current_ms)} "
                         f"({_fmt_change(s)}){mark}")
        lines.append(f"| `{m.metric}` | {m.baseline_count} / {m.current_count} | "
                     + " | ".join(cells) + f" | {_MARK[m.verdict]} |")
    for label, names in (("only in baseline", c.only_in_baseline),
                         ("only in current", c.only_in_current)):
        if names:
            lines.append(f"\nMetrics {label}: " + ", ".join(f"`{n}`" for n in names) + ".")
    e = c.errors
    lines += ["", "| | baseline | current | verdict |", "|---|---|---|---|",
              f"| failed sessions | {e.baseline_failed}/{e.baseline_total} "
              f"({_fmt_rate(e.baseline_rate)}) | {e.current_failed}/{e.current_total} "
              f"({_fmt_rate(e.current_rate)}) | {_MARK[e.verdict]} |",
              f"| mean WER | {_fmt_num(c.wer.baseline)} | {_fmt_num(c.wer.current)} | "
              f"{_MARK[c.wer.verdict]} |",
              f"| Neurons per voice session | {_fmt_num(c.cost.baseline, 1)} | "
              f"{_fmt_num(c.cost.current, 1)} | {_MARK[c.cost.verdict]} |",
              f"| run valid | {_valid_text(c.validity.baseline_valid)} | "
              f"{_valid_text(c.validity.current_valid)} | "
              f"{'ok' if c.validity.current_valid else '**current run not valid**'} |"]
    if c.validity.current_reasons:
        lines.append("\nCurrent run invalid because: " + "; ".join(c.validity.current_reasons)
                     + ".")
    for note in c.notes:
        lines.append(f"\nNote: {note}.")
    lines += ["", f"<sub>{rule_text(c)}</sub>", ""]
    return "\n".join(lines)


def rule_text(c: Comparison) -> str:
    """One paragraph saying which rule decided the verdicts, with this comparison's numbers."""
    r = c.rules
    err = ", ".join(f"{k} {v:.1f} ms" for k, v in c.harness_error_ms.items())
    return (f"Rule: a percentile regressed only when the whole {100 * r.confidence:g} % "
            f"bootstrap CI ({r.resamples} resamples of each run's merged histogram) of its "
            f"change lies above max(harness error, {100 * r.relative_floor:g} % of baseline); "
            f"harness error {err}; never when both runs are at or below "
            f"{r.noise_scale_ms:g} ms there (harness noise); a percentile needs "
            f"≥{r.min_tail_samples} samples beyond it "
            "in both runs. Error rate: Fisher's exact test; WER and cost: bootstrap CI of the "
            "change of the mean.")


def _valid_text(valid: bool | None) -> str:
    return {True: "yes", False: "**no**"}.get(valid, "unknown")  # type: ignore[arg-type]
