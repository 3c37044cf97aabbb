"""The issue's acceptance, end to end: run A against a non-default emulator config X; calibrate an
emulator config from A; run B against it; ``compare A B`` finds every latency metric within
noise. Run C against the default emulator shows the check has teeth: A and C differ.

Short bounded runs (10 Flux and Aura users, 30 s each) against loopback emulators only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from voiceload import compare, cost
from voiceload.cli.compare import load_run_data
from voiceload.emulator.behaviour import load_config

pytestmark = pytest.mark.slow

# Config X: every fitted delay far from the defaults (handshakes 0, first response 0, end of
# turn p50 260 ms, first byte p50 90 ms, 100 ms leading silence, 4x delivery).
CONFIG_X = """seed = 5
[aura]
leading_silence_ms = 250
speed = 2.0
[latency.flux]
handshake = {kind = "lognormal", p50_ms = 120, p99_ms = 220}
first_response = {kind = "lognormal", p50_ms = 420, p99_ms = 600}
eot_delay = {kind = "lognormal", p50_ms = 650, p99_ms = 950}
[latency.aura]
handshake = {kind = "lognormal", p50_ms = 80, p99_ms = 160}
first_byte = {kind = "lognormal", p50_ms = 320, p99_ms = 520}
"""
HANG_GUARD_S = 240  # a hung run fails the test instead of stalling the suite
MOVED = (compare.Verdict.REGRESSED, compare.Verdict.IMPROVED)


def one_run(tmp: Path, name: str, config: Path | None) -> Path:
    reports = tmp / name
    command = [sys.executable, "-m", "voiceload.cli", "run", "--scenario", "smoke",
               "--users", "10", "--spawn-rate", "10", "--duration", "30s",
               "--user-classes", "FluxUser,AuraUser", "--reports-dir", str(reports),
               "--fixtures", "command_lights,command_weather,sentence", "--no-report"]
    if config is not None:
        command += ["--emulator-config", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_S,
                          check=False)  # 1 only means "invalid" on a busy machine
    run_dir = (reports / "latest").resolve()
    assert (run_dir / "summary.json").is_file(), f"{name}: no summary.json\n{done.stderr[-2000:]}"
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("calibrate_runs")
    config_x = tmp / "x.toml"
    config_x.write_text(CONFIG_X, encoding="utf-8")
    a = one_run(tmp, "a", config_x)
    fitted = tmp / "fitted.toml"
    done = subprocess.run(
        [sys.executable, "-m", "voiceload.cli", "calibrate", str(a), "-o", str(fitted)],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return {"a": a, "fitted": fitted, "b": one_run(tmp, "b", fitted),
            "c": one_run(tmp, "c", None)}


def latency_verdicts(baseline: Path, current: Path) -> dict[str, compare.Verdict]:
    c = compare.compare_runs(load_run_data(baseline)[0], load_run_data(current)[0],
                             cost.load_pricing())
    return {m.metric: m.verdict for m in c.metrics if not m.harness}


def test_the_fitted_config_is_a_valid_emulator_config_saying_where_it_came_from(
    runs: dict[str, Path],
) -> None:
    text = runs["fitted"].read_text(encoding="utf-8")
    assert text.startswith(f"# Written by `voiceload calibrate {runs['a']}`")
    config = load_config(runs["fitted"])
    eot = config.latency["flux"].eot_delay
    assert eot.kind == "lognormal" and 550 < eot.a_ms < 750  # X: p50 650 ms
    assert 250 < config.latency["aura"].first_byte.a_ms < 400  # X: p50 320 ms
    assert 200 < config.aura.leading_silence_ms < 300 and 1.5 < config.aura.speed < 2.5


def test_a_run_against_the_calibrated_emulator_is_within_noise_of_the_measured_run(
    runs: dict[str, Path],
) -> None:
    found = latency_verdicts(runs["a"], runs["b"])
    for metric in ("flux.connect", "flux.first_response", "flux.eot", "aura.connect",
                   "aura.ttfb", "aura.ttfa"):
        assert found.get(metric) is compare.Verdict.NOISE, (metric, found)  # judged, not moved
    assert {m: v for m, v in found.items() if v in MOVED} == {}


def test_without_calibration_the_runs_differ(runs: dict[str, Path]) -> None:
    found = latency_verdicts(runs["a"], runs["c"])
    moved = {m for m, v in found.items() if v in MOVED}
    assert {"flux.connect", "flux.eot", "aura.ttfb"} <= moved, found
