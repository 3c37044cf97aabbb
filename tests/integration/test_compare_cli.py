"""``voiceload compare`` on run directories written the way a run writes them (seeded samples
through metrics.Recorder/Aggregator, summary.json, sessions.csv): outputs, exit codes,
baselines."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import pytest

from voiceload import cli, metrics
from voiceload.client.results import SESSIONS_CSV_COLUMNS
from voiceload.metrics import Phase

START_S = 1_795_000_000.0


def write_run(run_dir: Path, *, seed: int, eot_median_ms: float, valid: bool = True,
              failed: int = 0, samples: int = 400) -> Path:
    """A small run: ``samples`` steady flux.eot and aura.ttfb samples, 80 sessions, send lag."""
    rng = random.Random(seed)
    run_dir.mkdir(parents=True)
    recorder = metrics.Recorder(START_S)
    for _ in range(samples):
        recorder.record("flux.eot", int(eot_median_ms * 1000 * math.exp(rng.gauss(0, 0.2))),
                        Phase.STEADY)
        recorder.record("aura.ttfb", int(150_000 * math.exp(rng.gauss(0, 0.2))), Phase.STEADY)
        recorder.record("flux.eot", int(5_000_000 * rng.random()), Phase.TEARDOWN)
    for _ in range(4000):
        recorder.record("flux.send_lag", int(600 * math.exp(rng.gauss(0, 0.3))), Phase.STEADY)
    with metrics.Aggregator(run_dir, START_S) as aggregator:
        aggregator.add(recorder.drain(START_S + 60, final=True), "worker-1")
    rows = []
    for i in range(80):
        row = dict.fromkeys(SESSIONS_CSV_COLUMNS, "")
        kind = "flux" if i % 2 else "aura"
        row.update(session_id=f"s{i}", user_type=kind, phase="steady",
                   outcome="error" if i < failed else "ok",
                   error_category="closed_by_server" if i < failed else "",
                   wer="0.05" if kind == "flux" and i % 4 == 1 else ("0.0" if kind == "flux"
                                                                     else ""),
                   flux_audio_s="12.0" if kind == "flux" else "0",
                   aura_chars="0" if kind == "flux" else "200",
                   model="@cf/deepgram/flux" if kind == "flux" else "@cf/deepgram/aura-2-en",
                   connections="1", duration_s="12")
        rows.append(row)
    with (run_dir / "sessions.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=SESSIONS_CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    reasons = [] if valid else ["steady flux.send_lag p99 9.00 ms exceeds the 5 ms budget"]
    summary = {"run_id": run_dir.name, "metrics": {},
               "sessions": {"total": 80, "ok": 80 - failed, "failed": failed},
               "validity": {"valid": valid, "reasons": reasons}}
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_dir.name}), encoding="utf-8")
    (run_dir / "locust_stats.csv").write_text("big, not kept in baselines\n", encoding="utf-8")
    return run_dir


def test_a_slower_end_of_turn_regresses_and_fails_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write_run(tmp_path / "base", seed=1, eot_median_ms=300)
    slow = write_run(tmp_path / "slow", seed=2, eot_median_ms=390)
    out = tmp_path / "out"
    assert cli.main(["compare", str(base), str(slow), "--out", str(out)]) == 0
    assert cli.main(["compare", str(base), str(slow), "--out", str(out),
                     "--fail-on-regression"]) == 1
    printed = capsys.readouterr().out
    assert "REGRESSED" in printed and "regressed: flux.eot p50, p90" in printed
    doc = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    verdicts = {m["metric"]: m["verdict"] for m in doc["metrics"]}
    assert verdicts == {"flux.eot": "regressed", "aura.ttfb": "within noise",
                        "flux.send_lag": "not judged"}
    assert doc["verdict"] == "regressed"
    md = (out / "compare.md").read_text(encoding="utf-8")
    assert md.startswith("### voiceload compare: REGRESSED")
    page = (out / "compare.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 3  # one overlaid percentile plot per compared metric
    assert "baseline base" in page and "current slow" in page  # both curves in each legend
    assert 'id="compare-verdict" class="box fail"' in page
    assert "Content-Security-Policy" in page and 'src="http' not in page  # self-contained
    for metric in verdicts:  # each plot names its metric
        assert f">{metric}: latency by percentile<" in page
    # the report's own stylesheet, from the one shared partial
    from voiceload.report import html as report_html

    shared = report_html._ENV.get_template("_style.css.j2").render()
    assert ".box { border: 2px solid" in shared and shared in page


def test_two_samples_of_the_same_configuration_are_within_noise(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", seed=3, eot_median_ms=300)
    b = write_run(tmp_path / "b", seed=4, eot_median_ms=300)
    assert cli.main(["compare", str(a), str(b), "--fail-on-regression"]) == 0
    doc = json.loads((b / "compare" / "compare.json").read_text(encoding="utf-8"))
    assert doc["verdict"] == "within noise" and doc["regressions"] == []


def test_eight_samples_each_are_insufficient_whatever_the_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_run(tmp_path / "a", seed=3, eot_median_ms=300, samples=8)
    b = write_run(tmp_path / "b", seed=4, eot_median_ms=900, samples=8)
    assert cli.main(["compare", str(a), str(b), "--fail-on-regression"]) == 0
    assert "INSUFFICIENT SAMPLES" in capsys.readouterr().out
    doc = json.loads((b / "compare" / "compare.json").read_text(encoding="utf-8"))
    assert doc["verdict"] == "insufficient samples" and doc["regressions"] == []
    page = (b / "compare" / "compare.html").read_text(encoding="utf-8")
    assert 'id="compare-verdict" class="box unknown">INSUFFICIENT SAMPLES<' in page
    md = (b / "compare" / "compare.md").read_text(encoding="utf-8")
    assert md.startswith("### voiceload compare: INSUFFICIENT SAMPLES")


def test_an_invalid_current_run_or_more_failures_fail_the_comparison(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", seed=3, eot_median_ms=300)
    invalid = write_run(tmp_path / "invalid", seed=4, eot_median_ms=300, valid=False)
    failing = write_run(tmp_path / "failing", seed=5, eot_median_ms=300, failed=20)
    assert cli.main(["compare", str(a), str(invalid), "--fail-on-regression"]) == 1
    assert cli.main(["compare", str(a), str(failing), "--fail-on-regression"]) == 1
    doc = json.loads((failing / "compare" / "compare.json").read_text(encoding="utf-8"))
    assert doc["regressions"] == ["error rate"]


def test_a_saved_baseline_keeps_only_small_artifacts_and_compares_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "run", seed=6, eot_median_ms=300)
    baselines = tmp_path / "baselines"
    args = ["--baselines-dir", str(baselines)]
    assert cli.main(["compare", "--save-baseline", "v1", str(run), *args]) == 0
    kept = sorted(p.name for p in (baselines / "v1").iterdir())
    assert kept == ["aura.ttfb.hlog", "flux.eot.hlog", "flux.send_lag.hlog", "run.json",
                    "sessions.csv", "summary.json"]
    assert cli.main(["compare", "--save-baseline", "v1", str(run), *args]) == 0  # replaces
    assert sorted(p.name for p in baselines.iterdir()) == ["v1"]
    current = write_run(tmp_path / "current", seed=7, eot_median_ms=300)
    assert cli.main(["compare", "v1", str(current), *args, "--fail-on-regression"]) == 0
    capsys.readouterr()
    assert cli.main(["compare", "v2", str(current), *args]) == 2
    err = capsys.readouterr().err
    assert "v2: neither a run directory nor a baseline name" in err and ": v1" in err


@pytest.mark.parametrize("argv, message", [
    (["compare", "only-one"], "takes BASELINE and CURRENT"),
    (["compare", "--save-baseline", "bad name!", "."], "baseline name"),
])
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    if argv[1] == "--save-baseline":
        argv = [*argv[:3], str(write_run(tmp_path / "r", seed=8, eot_median_ms=300))]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
