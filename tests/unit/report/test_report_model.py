"""The report model from the fixed, seeded run in tests/data/run_golden.

The golden file (expected_model.json) pins every number of the model; the other tests check those
numbers against independent sources (summary.json written by metrics.Aggregator, sessions.csv
arithmetic, cost.project) so the golden file cannot quietly pin a wrong number.
Regenerate after an intended change: VOICELOAD_UPDATE_GOLDEN=1 pytest tests/unit/report
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from voiceload import cost, slo
from voiceload.report import model

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "run_golden"
EXPECTED = GOLDEN / "expected_model.json"


def golden_model(run_dir: Path = GOLDEN) -> model.ReportModel:
    return model.build_model(model.load_run(run_dir), slo.load_slos(), cost.load_pricing())


def comparable(m: model.ReportModel) -> dict[str, Any]:
    data = m.to_json()
    data["pricing_path"] = Path(data["pricing_path"]).name
    if data["cost"]:
        data["cost"]["pricing_file"] = Path(data["cost"]["pricing_file"]).name
    return data


def test_model_matches_golden_file() -> None:
    got = comparable(golden_model())
    if os.environ.get("VOICELOAD_UPDATE_GOLDEN") == "1":
        EXPECTED.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    expected = json.loads(EXPECTED.read_text())
    assert got == expected


def test_golden_run_is_reproducible_from_its_seed(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_golden_run", GOLDEN.parents[2] / "scripts" / "make_golden_run.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    generator.generate_run(tmp_path / "run", seed=6, duration_s=240.0, interval_s=5.0,
                           sessions_per_s=0.6)
    for name in ("sessions.csv", "summary.json", "run.json", "flux.eot.hlog"):
        assert (tmp_path / "run" / name).read_bytes() == (GOLDEN / name).read_bytes(), name


def test_table_agrees_with_the_aggregators_summary() -> None:
    m = golden_model()
    summary = json.loads((GOLDEN / "summary.json").read_text())["metrics"]
    by_name = {r.metric: r for r in m.metrics}
    assert set(summary) <= set(by_name)
    for name, s in summary.items():
        row = by_name[name]
        assert row.source == "hlog"
        assert row.count == s["count"]
        assert row.count_all_phases == s["count_all_phases"]
        for stat in ("p50", "p90", "p95", "p99", "p99_9", "max"):
            assert getattr(row, stat) == s[stat], (name, stat)
    # every metric of METRICS.md has a row, measured or not
    assert [r.metric for r in m.metrics][:13] == list(model.METRICS)[:13]
    assert by_name["flux.eager_eot"].source == "not measured"


def test_slo_and_harness_error_use_the_steady_numbers() -> None:
    m = golden_model()
    rows = {r.metric: r for r in m.metrics}
    eot = next(r for r in m.slo_results if r.metric == "flux.eot" and r.stat == "p95")
    assert eot.measured_ms == rows["flux.eot"].p95
    assert eot.passed is (rows["flux.eot"].p95 <= eot.limit_ms)  # type: ignore[operator]
    assert m.harness_error["send_lag_p99_ms"] == rows["flux.send_lag"].p99
    assert m.harness_error["recv_delay_p99_ms"] == rows["harness.recv_delay"].p99
    assert m.valid is True
    assert m.slo_verdict == "PASS"


def read_sessions() -> list[dict[str, str]]:
    with (GOLDEN / "sessions.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_sessions_errors_wer_and_concurrency_from_sessions_csv() -> None:
    m = golden_model()
    rows = read_sessions()
    failed = [r for r in rows if r["outcome"] != "ok"]
    assert m.sessions_total == len(rows)
    assert m.sessions_failed == len(failed)
    assert sum(e.count for e in m.errors) == len(failed)
    for e in m.errors:
        assert e.first_message == next(r["error_detail"] for r in rows
                                       if r["error_category"] == e.category)
    gnf = [e for e in m.errors if e.category == "gateway_not_found"]
    assert gnf and "CLOUDFLARE_GATEWAY_ID matches the dashboard" in gnf[0].fix
    wers = [float(r["wer"]) for r in rows if r["wer"]]
    assert m.wer_overall == pytest.approx(sum(wers) / len(wers), abs=1e-4)
    assert sum(w.sessions for w in m.wer) == len(wers)
    # time-averaged open *voice sessions* over the steady phase, computed here independently:
    # the run has agents, so a voice session is an agent conversation (as in the cost basis);
    # Flux and Aura sessions of their own are not voice sessions
    run = json.loads((GOLDEN / "run.json").read_text())
    a, b = run["phases"]["steady"]
    agents = [r for r in rows if r["user_type"] == "agent"
              and (r["outcome"] == "ok" or int(r["connections"]) > 0)]
    busy = sum(max(0.0, min(b, float(r["start_s"]) + float(r["duration_s"]))
                   - max(a, float(r["start_s"]))) for r in agents)
    assert m.sustained_concurrency == pytest.approx(busy / (b - a), abs=1e-3)
    every_row = sum(max(0.0, min(b, float(r["start_s"]) + float(r["duration_s"]))
                        - max(a, float(r["start_s"]))) for r in rows) / (b - a)
    assert m.sustained_concurrency < every_row / 2  # what the page used to overstate


def test_over_time_series_cover_the_run_and_count_every_session() -> None:
    m = golden_model()
    ot = m.over_time
    assert ot is not None
    assert ot.window_s == 5.0
    assert len(ot.t_s) == 48  # 240 s / 5 s
    assert ot.phases["steady"] == (20.0, 230.0)
    rows = read_sessions()
    assert sum(ot.sessions_per_s) * ot.window_s == pytest.approx(len(rows))
    failed = sum(1 for r in rows if r["outcome"] != "ok")
    assert sum(ot.errors_per_s) * ot.window_s == pytest.approx(failed)
    assert set(ot.latency_p99_ms) == {"flux.ttft", "flux.eot", "aura.ttfb", "aura.ttfa",
                                      "agent.voice_to_voice"}


def test_cost_section_is_the_projection_of_the_measured_usage() -> None:
    m = golden_model()
    assert m.usage is not None and m.projection is not None and m.capacity is not None
    # a voice session is an agent conversation; failed ones that opened no socket used nothing
    agents = [r for r in read_sessions() if r["user_type"] == "agent"
              and (r["outcome"] == "ok" or int(r["connections"]) > 0)]
    assert len(agents) < sum(1 for r in read_sessions() if r["user_type"] == "agent")
    assert m.usage.sessions == len(agents)
    mean_min = sum(float(r["flux_audio_s"]) for r in agents) / len(agents) / 60
    assert m.usage.mean.flux_audio_minutes == pytest.approx(mean_min)
    again = cost.project(m.usage.mean, 1000, cost.load_pricing())
    assert m.projection == again
    assert not m.projection.claim_holds
    assert m.capacity.peak_concurrency == pytest.approx(
        m.usage.mean.duration_s * 1000 / 86_400 * 3.0)


def test_the_claim_is_judged_at_the_guides_sessions_per_day_whatever_is_projected() -> None:
    few = model.build_model(model.load_run(GOLDEN), slo.load_slos(), cost.load_pricing(),
                            sessions_per_day=5)
    assert few.projection is not None and few.usage is not None
    assert few.projection.within_free_allocation  # 5 sessions/day fit in the free Neurons
    assert few.projection.claim_sessions_per_day == 1000
    assert not few.projection.claim_holds
    assert few.projection.verdict == golden_model().projection.verdict  # type: ignore[union-attr]


def test_percentile_curves_are_monotonic_and_end_at_the_max() -> None:
    m = golden_model()
    rows = {r.metric: r for r in m.metrics}
    assert m.curves
    assert all(c.metric != "flux.send_lag" for c in m.curves)
    for c in m.curves:
        assert c.percentiles[0] == 0.0 and c.percentiles[-1] == 100.0
        assert c.values_ms == sorted(c.values_ms)
        assert c.values_ms[-1] == rows[c.metric].max


def test_nines_percentiles() -> None:
    assert model.nines_percentiles(1) == [0.0, pytest.approx(20.5671765276), 100.0]
    pcts = model.nines_percentiles(1000)
    assert pcts[10] == pytest.approx(90.0)
    assert pcts[20] == pytest.approx(99.0)
    assert pcts[30] == pytest.approx(99.9)
    assert pcts[-1] == 100.0 and len(pcts) == 33


def test_partial_run_dir_renders_what_exists(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(GOLDEN, run_dir)
    (run_dir / "flux.eot.hlog").unlink()
    (run_dir / "aura.ttfb.hlog").write_text("Tag=steady,0.0,5.0,1.0,not-base64\n")
    (run_dir / "sessions.csv").unlink()
    (run_dir / "run.json").unlink()
    m = golden_model(run_dir)
    rows = {r.metric: r for r in m.metrics}
    assert rows["flux.eot"].source == "summary.json"
    assert rows["flux.eot"].p95 == json.loads(
        (GOLDEN / "summary.json").read_text())["metrics"]["flux.eot"]["p95"]
    assert rows["aura.ttfb"].source == "summary.json"
    text = "\n".join(m.missing)
    assert "flux.eot.hlog is missing" in text
    assert "aura.ttfb.hlog is unreadable" in text
    assert "sessions.csv is missing" in text
    assert "run.json is missing" in text
    assert m.projection is None
    assert m.target.startswith("unknown")
    assert all(c.metric != "flux.eot" for c in m.curves)


def test_empty_run_dir(tmp_path: Path) -> None:
    m = golden_model(tmp_path)
    assert m.slo_verdict == "NOT MEASURED"
    assert m.valid is None
    assert any("summary.json is missing" in line for line in m.missing)
    assert m.over_time is None


def test_configuration_never_shows_credentials() -> None:
    from voiceload import credentials

    unregistered = "Zx9_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"
    registered = "Qy7-" + "z9Y8x7W6v5U4t3S2r1Q0p9O8n7M6l5K4"
    credentials.register_secret(registered)
    try:
        files = model.RunFiles(run_dir="r", run={
            "config": {"target": {"name": "gateway",
                                  "url": f"wss://u:{unregistered}@gateway.example/v1"
                                         f"?token={unregistered}&model=m"},
                       "api_token": unregistered,
                       "headers": {"cf-aig-authorization": unregistered},
                       "note": f"Bearer {registered}",
                       "account_id": "0123456789abcdef0123456789abcdef"}},
            summary={"errors": {"unauthorized": {
                "count": 1, "first_message": "upgrade refused for wss://gw.example/v1"
                                             f"?key={unregistered}&model=m (HTTP 401)"}}})
        m = model.build_model(files, slo.load_slos(), cost.load_pricing())
    finally:
        credentials.forget_secrets()
    text = json.dumps(m.config) + json.dumps([e.first_message for e in m.errors])
    assert unregistered not in text and registered not in text
    assert "0123456789abcdef0123456789abcdef" in text  # an account id is not a secret
    assert m.config["api_token"] == credentials.REDACTED
    assert m.config["headers"] == {"cf-aig-authorization": credentials.REDACTED}
    assert m.config["note"].startswith(f"Bearer {credentials.REDACTED}")  # the one marker
    assert m.target == f"gateway wss://gateway.example/v1?token={credentials.REDACTED}&model=m"
    assert m.errors[0].first_message == (
        f"upgrade refused for wss://gw.example/v1?key={credentials.REDACTED}&model=m (HTTP 401)")


def test_fast_percentiles_equal_hdrhistograms_own() -> None:
    from voiceload import metrics

    for name in ("flux.eot", "flux.transcript_lag", "aura.stall"):
        h = metrics.merged_histogram(metrics.read_hlog(GOLDEN / f"{name}.hlog"), None)
        pcts = [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]
        assert metrics.percentiles_us(h, pcts) == h.get_percentile_to_value_dict(pcts)
        curve = model.percentile_curve(name, h)
        nines = model.nines_percentiles(int(h.get_total_count()))
        expected = h.get_percentile_to_value_dict(nines)
        assert curve.percentiles == nines
        assert curve.values_ms == [round(expected[p] / 1000, 3) for p in nines]
    assert metrics.percentiles_us(metrics.new_histogram(), [50.0]) == {}
