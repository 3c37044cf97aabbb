"""The page, junit.xml and summary.json additions written by ``voiceload report``."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from voiceload import cli
from voiceload.cli import report as report_cli

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "run_golden"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(GOLDEN, dst)
    (dst / "expected_model.json").unlink()
    return dst


def test_report_command_writes_page_junit_and_summary(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = json.loads((run_dir / "summary.json").read_text())
    assert cli.main(["report", str(run_dir), "--sessions-per-day", "2000"]) == 0
    assert "SLO PASS, run VALID" in capsys.readouterr().out
    page = (run_dir / "report.html").read_text()
    # self-contained: no external fetches of any kind
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<script" not in page
    assert page.count("<svg") == 2
    for heading in ("1. Verdict", "2. Latency per metric", "3. Percentile distribution",
                    "4. Over time", "5. Errors", "6. Accuracy", "7. Run validity",
                    "8. Cost and capacity", "9. Configuration"):
        assert heading in page
    assert "2,000 sessions/day" in page
    # turn pairing and findings by severity, from the golden sessions.csv
    assert "3 split (ended more than once), 2 merged (ended together with another)" in page
    assert "2 extra <code>EndOfTurn</code>" in page and "6 warnings" in page
    from voiceload.report import html

    assert html._ENV.get_template("_style.css.j2").render() in page  # the shared stylesheet
    assert ">Latency by percentile<" in page  # the report's plot keeps its title
    after = json.loads((run_dir / "summary.json").read_text())
    assert {k: after[k] for k in before} == before  # the run's own fields are kept
    assert [s["metric"] for s in after["slo"]][:1] == ["flux.eot"]
    assert after["cost"]["projection"]["sessions_per_day"] == 2000.0
    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert suite.get("tests") == str(len(after["slo"]) + 1)
    assert suite.get("failures") == "0"


def test_failing_slo_and_invalid_run_in_junit_and_check_exit(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slo_file = tmp_path / "strict.toml"
    slo_file.write_text('[[slo]]\nmetric = "flux.eot"\nstat = "p95"\nlimit_ms = 1\n'
                        '[[slo]]\nmetric = "flux.eager_eot"\nstat = "p95"\nlimit_ms = 100\n')
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["validity"].update(valid=False, reasons=["steady flux.send_lag p99 9 ms"])
    (run_dir / "summary.json").write_text(json.dumps(summary))
    assert cli.main(["report", str(run_dir), "--slo", str(slo_file), "--check"]) == 1
    suite = ET.parse(run_dir / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["p95 flux.eot <= 1 ms"].find("failure") is not None
    assert cases["p95 flux.eager_eot <= 100 ms"].find("skipped") is not None
    validity = cases["run validity"].find("failure")
    assert validity is not None and "send_lag" in (validity.get("message") or "")
    assert suite.get("failures") == "2" and suite.get("skipped") == "1"
    page = (run_dir / "report.html").read_text()
    assert "SLO FAIL" in page and "Run INVALID" in page


def test_partial_run_dir_still_renders(run_dir: Path) -> None:
    for name in ("sessions.csv", "flux.ttft.hlog", "summary.json"):
        (run_dir / name).unlink()
    m, paths = report_cli.render_run(run_dir)
    assert m.projection is None
    page = paths["report"].read_text()
    assert "Missing or partial run data" in page
    assert "sessions.csv is missing" in page
    assert "No cost section" in page
    summary = json.loads(paths["summary"].read_text())
    assert summary["cost"] is None
    assert "summary.json is missing" in "\n".join(summary["missing"])


@pytest.mark.parametrize("damaged", ['{"run_id": "x", "metrics": {', "[1, 2, 3]"])
def test_an_unreadable_summary_is_never_overwritten(
    run_dir: Path, damaged: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (run_dir / "summary.json").write_text(damaged)
    assert cli.main(["report", str(run_dir)]) == 0
    assert (run_dir / "summary.json").read_text() == damaged  # left exactly as it was
    side = json.loads((run_dir / "summary.report.json").read_text())
    assert side["slo"] and side["cost"]["projection"]["sessions_per_day"] == 1000.0
    note = next(line for line in side["missing"] if line.startswith("summary.json"))
    assert "left as it is" in note and "summary.report.json" in note
    assert "summary.report.json" in capsys.readouterr().out
    page = (run_dir / "report.html").read_text()
    assert "summary.json is unreadable" in page and "left as it is" in page


def test_the_guides_free_requests_come_from_the_pricing_file(
    run_dir: Path, tmp_path: Path
) -> None:
    from voiceload import cost

    pricing = tmp_path / "pricing.toml"
    text = cost.default_pricing_path().read_text()
    for key, value in (("flux_free_requests_per_day", 4321), ("aura_free_requests_per_day", 765)):
        old = f"[guide.{key}]\nvalue = 10000\n"
        assert old in text
        text = text.replace(old, f"[guide.{key}]\nvalue = {value}\n")
    pricing.write_text(text)
    _, paths = report_cli.render_run(run_dir, pricing_path=str(pricing))
    page = paths["report"].read_text()
    assert "4,321 Flux + 765 Aura requests (as the guide states it)" in page
    assert "10,000 requests" not in page


def test_the_report_command_redacts_the_users_own_token(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voiceload import credentials

    token = "Pq8_" + "s7T6u5V4w3X2y1Z0a9B8c7D6e5F4g3H2"
    run = json.loads((run_dir / "run.json").read_text())
    run["config"]["note"] = f"Authorization: Bearer {token}"  # a field no rule would name
    (run_dir / "run.json").write_text(json.dumps(run))
    monkeypatch.chdir(tmp_path)  # no .env.local here: the token comes from the environment
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", token)
    try:
        assert cli.main(["report", str(run_dir)]) == 0
    finally:
        credentials.forget_secrets()
    page = (run_dir / "report.html").read_text()
    assert token not in page
    assert "Authorization: Bearer [REDACTED]" in page


def test_bad_slo_file_is_a_one_line_error(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "slo.toml"
    bad.write_text('[[slo]]\nmetric = "flux.eot"\nstat = "median"\nlimit_ms = 600\n')
    assert cli.main(["report", str(run_dir), "--slo", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "slo[0].stat" in err and str(bad) in err


def test_not_a_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_a_folder_that_holds_no_run_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a run")
    assert cli.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds no run" in err
    assert not (tmp_path / "report.html").exists()
