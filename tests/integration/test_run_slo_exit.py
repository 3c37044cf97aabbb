"""`voiceload run` (what `make bench` calls) exits non-zero when an SLO fails, naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SLOS = """[[slo]]
metric = "flux.eot"
stat = "p50"
limit_ms = 1
why = "cannot pass: an end of turn 1 ms after speech ends"

[[slo]]
metric = "flux.connect"
stat = "p50"
limit_ms = 60000
"""


def test_a_failed_slo_fails_the_run_and_is_named(tmp_path: Path, repo_root: Path) -> None:
    slo_file = tmp_path / "slo.toml"
    slo_file.write_text(SLOS, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "voiceload.cli", "run", "--scenario", "smoke", "--users", "3",
         "--spawn-rate", "3", "--duration", "8s", "--user-classes", "FluxUser",
         "--fixtures", "command_lights", "--reports-dir", str(tmp_path / "reports"),
         "--slo-file", str(slo_file)],
        cwd=repo_root, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    failed = [line for line in done.stdout.splitlines() if line.startswith("SLO FAIL:")]
    assert len(failed) == 1 and failed[0].startswith("SLO FAIL: p50 flux.eot "), done.stdout
    assert failed[0].endswith(" ms > 1 ms")
