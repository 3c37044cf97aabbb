"""The issue's "done when", end to end: real `voiceload run`s against the bundled emulator.

Two runs of one configuration compare as within noise; a run against an emulator whose
end-of-turn delay is 30 % longer compares as regressed on flux.eot and on nothing else. The
end-of-turn delay is set above the emulator's 0.5 s VAD turn gap (below it, the gap decides when
EndOfTurn goes out) and kept narrow so a ~10-second run's few dozen turns can show the change.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from voiceload import compare, cost
from voiceload.cli.compare import load_run_data

pytestmark = pytest.mark.slow

EMULATOR_TOML = """seed = 1
[latency.flux]
eot_delay = {{kind = "lognormal", p50_ms = {p50}, p99_ms = {p99}}}
"""
HANG_GUARD_S = 180  # a hung run fails the test instead of stalling the suite


def one_run(tmp: Path, name: str, eot_p50_ms: float) -> Path:
    config = tmp / f"{name}.toml"
    config.write_text(EMULATOR_TOML.format(p50=eot_p50_ms, p99=eot_p50_ms * 8 / 7),
                      encoding="utf-8")
    reports = tmp / name
    subprocess.run(
        [sys.executable, "-m", "voiceload.cli", "run", "--scenario", "smoke", "--users", "12",
         "--spawn-rate", "12", "--duration", "10s", "--user-classes", "FluxUser",
         "--fixtures", "command_lights,command_weather", "--reports-dir", str(reports),
         "--emulator-config", str(config), "--no-report"],
        capture_output=True, text=True, timeout=HANG_GUARD_S, check=False,
    )  # exit code 1 only means "invalid" on a busy machine; the metrics below still hold
    run_dir = (reports / "latest").resolve()
    assert (run_dir / "summary.json").is_file(), f"{name}: the run wrote no summary.json"
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, compare.RunData]:
    tmp = tmp_path_factory.mktemp("compare_runs")
    plan = {"base": 700.0, "same": 700.0, "slow": 910.0}  # 910 = 700 x 1.3
    return {name: load_run_data(one_run(tmp, name, p50))[0] for name, p50 in plan.items()}


def verdicts(c: compare.Comparison) -> dict[str, compare.Verdict]:
    return {m.metric: m.verdict for m in c.metrics}


def test_two_runs_of_one_configuration_are_within_noise(
    runs: dict[str, compare.RunData],
) -> None:
    c = compare.compare_runs(runs["base"], runs["same"], cost.load_pricing())
    found = verdicts(c)
    assert found["flux.eot"] is compare.Verdict.NOISE  # judged, not skipped for lack of turns
    regressed_or_improved = {m: v for m, v in found.items()
                             if v in (compare.Verdict.REGRESSED, compare.Verdict.IMPROVED)}
    assert regressed_or_improved == {}
    assert c.errors.verdict is compare.Verdict.NOISE


def test_a_thirty_percent_slower_end_of_turn_regresses_that_metric_only(
    runs: dict[str, compare.RunData],
) -> None:
    c = compare.compare_runs(runs["base"], runs["slow"], cost.load_pricing())
    found = verdicts(c)
    assert found["flux.eot"] is compare.Verdict.REGRESSED
    others = {m for m, v in found.items() if v is compare.Verdict.REGRESSED and m != "flux.eot"}
    assert others == set()
    assert {"flux.ttft", "flux.first_response", "flux.transcript_lag"} <= set(found)
    eot_p50 = next(s for m in c.metrics if m.metric == "flux.eot" for s in m.stats
                   if s.stat == "p50")
    assert eot_p50.ci_low_ms is not None and eot_p50.ci_low_ms > eot_p50.floor_ms
