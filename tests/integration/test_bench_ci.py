"""`make bench-ci`'s script: a short run whose SLO gate fails when a limit is set below the
measured value, with junit.xml, summary.json and report.html written all the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 240
SLO_TOML = """[[slo]]
metric = "flux.ttft"
stat = "p50"
limit_ms = 1          # far below any measured time to first transcript: must fail

[[slo]]
metric = "flux.first_response"
stat = "p50"
limit_ms = 60000      # a minute: must pass
"""


def bench_ci(reports: Path, *options: str, env: dict[str, str] | None = None,
             ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_ci.py"), "--duration", "8s",
         "--users", "4", "--reports-dir", str(reports), *options,
         "--", "--user-classes", "FluxUser", "--fixtures", "command_lights"],
        capture_output=True, text=True, timeout=HANG_GUARD_S, check=False, cwd=REPO,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def assert_the_impossible_slo_failed(done: subprocess.CompletedProcess[str], run_dir: Path) -> None:
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "bench-ci: FAIL (slo+validity)" in done.stdout
    cases = {c.get("name"): c for c in ET.parse(run_dir / "junit.xml").getroot()}
    assert cases["p50 flux.ttft <= 1 ms"].find("failure") is not None


def test_the_slo_gate_fails_when_a_limit_is_below_the_measured_value(tmp_path: Path) -> None:
    """`make bench-ci SLO=FILE` (the Makefile passes --slo FILE)."""
    slo_file = tmp_path / "slo.toml"
    slo_file.write_text(SLO_TOML, encoding="utf-8")
    reports = tmp_path / "reports"
    done = bench_ci(reports, "--slo", str(slo_file))
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "bench-ci: FAIL (" in done.stdout and "slo+validity" in done.stdout
    run_dir = (reports / "latest").resolve()
    run_json = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert run_json["config"]["slo_file"] == str(slo_file)  # a later `voiceload report` uses it
    for name in ("junit.xml", "summary.json", "report.html"):
        assert (run_dir / name).is_file(), name
    cases = {c.get("name"): c for c in ET.parse(run_dir / "junit.xml").getroot()}
    assert cases["p50 flux.ttft <= 1 ms"].find("failure") is not None
    assert cases["p50 flux.first_response <= 60000 ms"].find("failure") is None
    slo = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["slo"]
    ttft = next(r for r in slo if r["metric"] == "flux.ttft")
    assert ttft["passed"] is False and ttft["measured_ms"] > ttft["limit_ms"]


def test_the_slo_file_the_run_recorded_is_the_one_checked(tmp_path: Path) -> None:
    """Without --slo, the SLO file the run itself was given (here VOICELOAD_SLO_FILE, as a CI
    job's environment would set it) is the one the gate checks, not the shipped one."""
    slo_file = tmp_path / "slo.toml"
    slo_file.write_text(SLO_TOML, encoding="utf-8")
    reports = tmp_path / "reports"
    done = bench_ci(reports, env={"VOICELOAD_SLO_FILE": str(slo_file)})
    run_dir = (reports / "latest").resolve()
    assert_the_impossible_slo_failed(done, run_dir)


def test_a_bad_slo_file_fails_before_the_run(tmp_path: Path) -> None:
    slo_file = tmp_path / "slo.toml"
    slo_file.write_text('[[slo]]\nmetric = "flux.ttft"\n', encoding="utf-8")  # no stat, limit
    reports = tmp_path / "reports"
    done = bench_ci(reports, "--slo", str(slo_file))
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stderr.startswith(f"bench-ci: FAIL: {slo_file}")
    assert not reports.exists()  # nothing was run
