"""voiceload.compare: percentiles, the bootstrap, verdicts, rates, means and the PR comment.

Every sample set is drawn from a seeded generator, so each assertion is about the rule, and the
numbers are the same on every machine.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from voiceload import cost, metrics
from voiceload.compare import (
    DEFAULT_HARNESS_ERROR_MS,
    Buckets,
    Rules,
    RunData,
    Verdict,
    bootstrap_percentile_us,
    compare_means,
    compare_metric,
    compare_rates,
    compare_runs,
    fisher_one_sided,
    harness_error_ms,
    markdown,
    session_neurons,
)
from voiceload.errors import ConfigError

NO_ERROR_MS = {"p50": 0.0, "p90": 0.0, "p99": 0.0}


def lognormal_us(seed: int, n: int, median_ms: float, sigma: float) -> list[int]:
    rng = random.Random(seed)
    return [int(median_ms * 1000 * math.exp(rng.gauss(0.0, sigma))) for _ in range(n)]


def test_percentiles_match_hdrhistogram() -> None:
    values = lognormal_us(1, 3000, 300, 0.7)
    histogram = metrics.new_histogram()
    for v in values:
        histogram.record_value(v)
    buckets = Buckets.from_histogram(histogram)
    assert buckets.total == 3000
    pcts = [0.0, 0.1, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0]
    for p in pcts:
        assert buckets.percentile_us(p) == histogram.get_value_at_percentile(p)
    # the one percentile function, on many shapes, against hdrh's own walk
    assert metrics.percentiles_us(histogram, pcts) == histogram.get_percentile_to_value_dict(pcts)
    for seed, n in ((5, 1), (6, 7), (7, 999), (8, 20_000)):
        h = metrics.new_histogram()
        for v in lognormal_us(seed, n, 40 * seed, 1.5):
            h.record_value(v)
        more = [*pcts, 12.345, 99.99, 99.999, 150.0]
        assert metrics.percentiles_us(h, more) == h.get_percentile_to_value_dict(more)
        stats = metrics.stats_ms(h)
        assert stats["p99_9"] == h.get_value_at_percentile(99.9) / 1000


def test_percentile_rank_is_hdrhistograms() -> None:
    assert metrics.percentile_rank(50.0, 30) == 15
    assert metrics.percentile_rank(99.0, 30) == 30  # 29.7 rounds to 30
    assert metrics.percentile_rank(0.001, 30) == 1
    h = metrics.new_histogram()
    for v in range(1, 31):
        h.record_value(v)
    for p in (0.001, 33.3, 50.0, 99.0, 100.0):
        assert metrics.percentile_rank(p, 30) == h.get_target_count_at_percentile(p)


def test_bootstrap_agrees_with_a_full_multinomial_resample() -> None:
    """The Beta order-statistic shortcut draws the same distribution as redrawing n samples."""
    buckets = Buckets.from_values(lognormal_us(2, 2000, 300, 0.6))
    fast = bootstrap_percentile_us(buckets, 90.0, 4000, np.random.default_rng(3))
    rng = np.random.default_rng(4)
    rank = metrics.percentile_rank(90.0, buckets.total)
    drawn = rng.multinomial(buckets.total, buckets.counts / buckets.total, size=4000)
    slow = buckets.values_us[(np.cumsum(drawn, axis=1) < rank).sum(axis=1)]
    for q in (0.05, 0.5, 0.95):
        fast_q, slow_q = np.quantile(fast, q), np.quantile(slow, q)
        assert abs(fast_q - slow_q) / slow_q < 0.02, (q, fast_q, slow_q)


def test_two_samples_of_one_distribution_are_within_noise() -> None:
    a = Buckets.from_values(lognormal_us(10, 2000, 260, 0.75))
    b = Buckets.from_values(lognormal_us(11, 2000, 260, 0.75))
    result = compare_metric("flux.eot", a, b, DEFAULT_HARNESS_ERROR_MS)
    assert [s.verdict for s in result.stats] == [Verdict.NOISE] * 3
    assert result.verdict is Verdict.NOISE
    for s in result.stats:
        assert s.ci_low_ms is not None and s.ci_high_ms is not None
        assert s.ci_low_ms < s.change_ms < s.ci_high_ms


def test_thirty_percent_slower_is_regressed_and_faster_is_improved() -> None:
    base = Buckets.from_values(lognormal_us(20, 300, 300, 0.3))
    slow = Buckets.from_values(lognormal_us(21, 300, 390, 0.3))
    worse = compare_metric("flux.eot", base, slow, DEFAULT_HARNESS_ERROR_MS)
    assert worse.stats[0].verdict is Verdict.REGRESSED  # p50
    assert worse.stats[2].verdict is Verdict.INSUFFICIENT  # p99 needs 1000 samples
    assert worse.verdict is Verdict.REGRESSED
    better = compare_metric("flux.eot", slow, base, DEFAULT_HARNESS_ERROR_MS)
    assert better.verdict is Verdict.IMPROVED


def test_two_ms_on_thirty_samples_is_noise() -> None:
    values = lognormal_us(30, 30, 300, 0.3)
    base = Buckets.from_values(values)
    cur = Buckets.from_values(v + 2000 for v in values)
    result = compare_metric("flux.ttft", base, cur, DEFAULT_HARNESS_ERROR_MS)
    by_stat = {s.stat: s.verdict for s in result.stats}
    assert by_stat == {"p50": Verdict.NOISE, "p90": Verdict.INSUFFICIENT,
                       "p99": Verdict.INSUFFICIENT}
    assert result.verdict is Verdict.NOISE


def test_too_few_samples_for_any_percentile_is_insufficient() -> None:
    base = Buckets.from_values(lognormal_us(31, 12, 300, 0.3))
    cur = Buckets.from_values(lognormal_us(32, 12, 900, 0.3))
    assert compare_metric("flux.eot", base, cur, NO_ERROR_MS).verdict is Verdict.INSUFFICIENT


def test_a_change_inside_the_harness_error_is_noise() -> None:
    """A tight +3 ms shift: regressed against a 0.5 ms relative floor, noise under 5 ms error."""
    rng = random.Random(40)
    values = [int(rng.uniform(9_500, 10_500)) for _ in range(20_000)]
    base = Buckets.from_values(values)
    cur = Buckets.from_values(v + 3_000 for v in values)
    small = {"p50": 1.0, "p90": 1.0, "p99": 1.0}
    large = {"p50": 5.0, "p90": 5.0, "p99": 5.0}
    assert compare_metric("aura.ttfb", base, cur, small).verdict is Verdict.REGRESSED
    assert compare_metric("aura.ttfb", base, cur, large).verdict is Verdict.NOISE
    assert compare_metric("aura.ttfb", base, cur, large).stats[0].floor_ms == 5.0


def test_harness_metrics_are_not_judged() -> None:
    base = Buckets.from_values(lognormal_us(50, 3000, 1, 0.3))
    cur = Buckets.from_values(lognormal_us(51, 3000, 5, 0.3))
    result = compare_metric("flux.send_lag", base, cur, NO_ERROR_MS)
    assert result.harness and result.verdict is Verdict.NOT_JUDGED


def test_the_verdicts_are_deterministic() -> None:
    base = Buckets.from_values(lognormal_us(60, 500, 300, 0.5))
    cur = Buckets.from_values(lognormal_us(61, 500, 320, 0.5))
    first = compare_metric("flux.eot", base, cur, DEFAULT_HARNESS_ERROR_MS)
    assert compare_metric("flux.eot", base, cur, DEFAULT_HARNESS_ERROR_MS) == first


def test_harness_error_adds_send_lag_and_receive_delay_and_takes_the_larger_run() -> None:
    lag = Buckets.from_values([2000] * 100)  # 2 ms
    recv = Buckets.from_values([3000] * 100)  # 3 ms
    big_lag = Buckets.from_values([6000] * 100)
    err = harness_error_ms({"flux.send_lag": lag, "harness.recv_delay": recv},
                           {"flux.send_lag": big_lag})
    assert err == pytest.approx({"p50": 6.0, "p90": 6.0, "p99": 6.0}, abs=0.01)
    err = harness_error_ms({"flux.send_lag": lag, "harness.recv_delay": recv})
    assert err == pytest.approx({"p50": 5.0, "p90": 5.0, "p99": 5.0}, abs=0.01)
    tiny = Buckets.from_values([100] * 100)  # 0.1 ms: the machine's measured error still holds
    assert harness_error_ms({"flux.send_lag": tiny}) == DEFAULT_HARNESS_ERROR_MS
    assert harness_error_ms({}) == DEFAULT_HARNESS_ERROR_MS


def test_fisher_matches_the_hypergeometric_tail() -> None:
    # Fisher's tea-tasting table: 1 of 4 failed before, 3 of 4 now: P = (16 + 1) / 70.
    worse, better = fisher_one_sided(1, 4, 3, 4)
    assert worse == pytest.approx(17 / 70)
    assert better == pytest.approx((16 + 36 + 16 + 1) / 70)
    worse, _ = fisher_one_sided(0, 100, 10, 100)
    assert worse == pytest.approx(math.comb(100, 10) / math.comb(200, 10))


def test_error_rates() -> None:
    assert compare_rates(0, 200, 12, 200).verdict is Verdict.REGRESSED
    assert compare_rates(12, 200, 0, 200).verdict is Verdict.IMPROVED
    assert compare_rates(2, 200, 3, 200).verdict is Verdict.NOISE
    assert compare_rates(0, 0, 1, 10).verdict is Verdict.INSUFFICIENT


def test_means_for_wer() -> None:
    rng = random.Random(70)
    same_a = [rng.choice([0.0, 0.0, 0.05, 0.1]) for _ in range(60)]
    same_b = [rng.choice([0.0, 0.0, 0.05, 0.1]) for _ in range(60)]
    worse = [w + 0.1 for w in same_b]
    assert compare_means("wer", [same_a], [same_b], 0.01).verdict is Verdict.NOISE
    result = compare_means("wer", [same_a], [worse], 0.01)
    assert result.verdict is Verdict.REGRESSED
    assert result.ci_low is not None and result.ci_low > 0.01
    assert compare_means("wer", [[0.1]], [worse], 0.01).verdict is Verdict.INSUFFICIENT
    assert compare_means("wer", [[]], [[]], 0.01).verdict is Verdict.INSUFFICIENT


def test_rules_are_checked() -> None:
    with pytest.raises(ConfigError, match="confidence"):
        Rules(confidence=1.0)
    with pytest.raises(ConfigError, match="resamples"):
        Rules(resamples=10)


# -- two runs -----------------------------------------------------------------------------------


def _row(user_type: str, outcome: str = "ok", wer: str = "", audio_s: float = 10.0,
         chars: int = 0) -> dict[str, str]:
    return {"user_type": user_type, "outcome": outcome, "wer": wer,
            "flux_audio_s": str(audio_s if user_type != "aura" else 0.0),
            "aura_chars": str(chars), "model": "@cf/deepgram/aura-2-en" if chars else "",
            "connections": "1", "duration_s": "12"}


def _run(run_id: str, eot_median_ms: float, seed: int, valid: bool = True,
         failed: int = 0) -> RunData:
    rows = [_row("flux", wer="0.05" if i % 2 else "0.0") for i in range(40)]
    rows += [_row("aura", chars=200) for _ in range(40)]
    for r in rows[:failed]:
        r["outcome"] = "error"
    histograms = {
        "flux.eot": Buckets.from_values(lognormal_us(seed, 400, eot_median_ms, 0.2)),
        "aura.ttfb": Buckets.from_values(lognormal_us(seed + 1, 400, 150, 0.2)),
        "flux.send_lag": Buckets.from_values(lognormal_us(seed + 2, 4000, 0.6, 0.3)),
    }
    summary = {"validity": {"valid": valid, "reasons": [] if valid else ["send lag p99 9 ms"]},
               "sessions": {"total": len(rows), "ok": len(rows) - failed, "failed": failed}}
    return RunData(run_id, histograms, summary, rows)


def test_a_run_regressed_on_one_metric_only() -> None:
    pricing = cost.load_pricing()
    comparison = compare_runs(_run("base", 300, 100), _run("slow", 390, 200), pricing)
    verdicts = {m.metric: m.verdict for m in comparison.metrics}
    assert verdicts == {"flux.eot": Verdict.REGRESSED, "aura.ttfb": Verdict.NOISE,
                        "flux.send_lag": Verdict.NOT_JUDGED}
    assert comparison.verdict is Verdict.REGRESSED
    assert comparison.regressions == ["flux.eot p50, p90"]
    assert comparison.errors.verdict is Verdict.NOISE
    assert comparison.wer.verdict is Verdict.NOISE
    assert comparison.cost.verdict is Verdict.NOISE
    text = markdown(comparison)
    assert text.startswith("### voiceload compare: REGRESSED")
    assert "| `flux.eot` | 400 / 400 |" in text and "**regressed**" in text
    assert "Fisher" in text


def test_same_runs_are_within_noise_and_an_invalid_current_run_fails() -> None:
    pricing = cost.load_pricing()
    same = compare_runs(_run("a", 300, 300), _run("b", 300, 400), pricing)
    assert same.verdict is Verdict.NOISE and same.regressions == []
    invalid = compare_runs(_run("a", 300, 300), _run("b", 300, 400, valid=False), pricing)
    assert invalid.regressions == ["current run is not valid"]
    assert "send lag p99 9 ms" in markdown(invalid)
    failing = compare_runs(_run("a", 300, 300), _run("b", 300, 400, failed=15), pricing)
    assert failing.errors.verdict is Verdict.REGRESSED


def test_cost_per_voice_session_follows_the_pricing_file() -> None:
    pricing = cost.load_pricing()
    rows = [_row("flux", audio_s=60.0), _row("aura", chars=1000)]
    flux_group, aura_group = session_neurons(rows, pricing)
    pub = pricing.published
    assert flux_group == [pytest.approx(pub.flux_neurons_per_audio_minute.value)]
    assert aura_group == [pytest.approx(pub.aura_neurons_per_1000_chars["aura-2-en"].value)]
    base = _run("a", 300, 1)
    longer_audio = [dict(r, flux_audio_s="20.0") if r["user_type"] == "flux" else r
                    for r in base.sessions]
    longer = compare_runs(base, RunData("b", base.histograms, base.summary, longer_audio),
                          pricing)
    assert longer.cost.verdict is Verdict.REGRESSED
    assert longer.cost.current is not None and longer.cost.baseline is not None
    assert longer.cost.current - longer.cost.baseline == pytest.approx(
        10.0 / 60.0 * pub.flux_neurons_per_audio_minute.value)
    assert "cost per voice session" in longer.regressions


def test_nothing_judged_is_insufficient_samples_not_within_noise() -> None:
    pricing = cost.load_pricing()
    base, cur = _run("base", 300, 1), _run("cur", 300, 2)
    few = {"flux.eot": Buckets.from_values([300_000] * 8),
           "flux.send_lag": base.histograms["flux.send_lag"]}
    tripled = {"flux.eot": Buckets.from_values([900_000] * 8),
               "flux.send_lag": cur.histograms["flux.send_lag"]}
    c = compare_runs(RunData("base", few, base.summary, base.sessions),
                     RunData("cur", tripled, cur.summary, cur.sessions), pricing)
    assert [m.verdict for m in c.metrics] == [Verdict.INSUFFICIENT, Verdict.NOT_JUDGED]
    assert c.errors.verdict is Verdict.NOISE  # judged, but says nothing about latency
    assert not c.latency_judged and c.regressions == []
    assert c.verdict is Verdict.INSUFFICIENT
    assert markdown(c).startswith("### voiceload compare: INSUFFICIENT SAMPLES")


def test_a_metric_whose_whole_scale_is_harness_noise_never_regresses() -> None:
    """flux.transcript_lag against the loopback emulator: a few ms of scheduling. A busy
    machine shifting it from ~3 ms to ~8 ms is a tight, many-sample change the bootstrap would
    call a regression; both runs lie under the 10 ms noise scale, so it is within noise."""
    quiet = Buckets.from_values(lognormal_us(50, 5000, 3.0, 0.3))
    busy = Buckets.from_values(lognormal_us(51, 5000, 6.0, 0.3))  # p99 ~ 12 ms: p99 is judged
    result = compare_metric("flux.transcript_lag", quiet, busy, DEFAULT_HARNESS_ERROR_MS)
    by_stat = {s.stat: s for s in result.stats}
    assert by_stat["p50"].verdict is Verdict.NOISE and by_stat["p90"].verdict is Verdict.NOISE
    assert by_stat["p99"].current_ms > 10.0  # past the noise scale: judged as before
    assert by_stat["p99"].verdict is Verdict.REGRESSED
    # the same p50/p90 changes are regressions without the rule (the CI is far above the floor)
    plain = compare_metric("flux.transcript_lag", quiet, busy, DEFAULT_HARNESS_ERROR_MS,
                           Rules(noise_scale_ms=0.0))
    assert [s.verdict for s in plain.stats][:2] == [Verdict.REGRESSED, Verdict.REGRESSED]


def test_the_noise_scale_follows_a_larger_measured_harness_error() -> None:
    base = Buckets.from_values(lognormal_us(52, 5000, 8.0, 0.2))
    cur = Buckets.from_values(lognormal_us(53, 5000, 12.0, 0.2))
    err = {"p50": 15.0, "p90": 20.0, "p99": 30.0}  # a loaded harness, measured by the run
    assert compare_metric("flux.transcript_lag", base, cur, err).verdict is Verdict.NOISE
    assert compare_metric("flux.transcript_lag", base, cur, DEFAULT_HARNESS_ERROR_MS
                          ).verdict is Verdict.REGRESSED
