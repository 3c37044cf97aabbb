from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from voiceload import cli
from voiceload.calibrate import LOOPBACK_MS, MIN_SAMPLES, Quantiles, calibrate, fit_delay
from voiceload.emulator.behaviour import Distribution, parse_config

Z90 = 1.2815515655446004


def test_a_lognormal_through_p50_and_p90_is_written_by_its_p50_and_p99() -> None:
    fitted = fit_delay(260.0, 260.0 * math.exp(Z90 * 0.5))
    assert fitted["kind"] == "lognormal" and fitted["p50_ms"] == 260.0
    dist = Distribution("lognormal", fitted["p50_ms"], fitted["p99_ms"])
    rng = random.Random(1)
    draws = sorted(dist.sample_ms(rng) for _ in range(20_000))
    assert math.isclose(draws[10_000], 260.0, rel_tol=0.03)
    assert math.isclose(draws[18_000], 260.0 * math.exp(Z90 * 0.5), rel_tol=0.04)  # the p90


def test_no_spread_is_fixed_and_nothing_is_zero() -> None:
    assert fit_delay(150.0, 150.5) == {"kind": "fixed", "ms": 150.0}
    assert fit_delay(0.0, 3.0) == {"kind": "fixed", "ms": 0.0}
    assert fit_delay(-5.0, 3.0) == {"kind": "fixed", "ms": 0.0}


def q(p50: float, p90: float, count: int = 200, mean: float | None = None) -> Quantiles:
    return Quantiles(count=count, p50_ms=p50, p90_ms=p90, mean_ms=p50 if mean is None else mean)


def test_each_delay_is_fitted_from_its_metric_less_what_the_emulator_adds() -> None:
    measured = {
        "flux.connect": q(121.0, 180.0), "flux.first_response": q(430.0, 500.0),
        "flux.eot": q(690.0, 830.0), "aura.connect": q(1.2, 2.0),
        "aura.ttfb": q(300.0, 400.0, mean=310.0), "aura.ttfa": q(550.0, 650.0),
        "aura.flushed": q(2800.0, 3000.0, mean=2810.0),
    }
    sessions = [{"aura_chars": "70", "aura_audio_s": "5.25"} for _ in range(40)]
    result = calibrate(measured, sessions, frame_ms=80, aura_requests=40)
    flux, aura = result.config["latency"]["flux"], result.config["latency"]["aura"]
    assert flux["handshake"]["p50_ms"] == 121.0
    assert flux["first_response"]["p50_ms"] == 430.0
    assert flux["eot_delay"]["p50_ms"] == 650.0  # half an 80 ms frame less
    assert aura["handshake"] == {"kind": "fixed", "ms": 0.0}  # a loopback's own connect time
    assert aura["first_byte"]["p50_ms"] == 300.0
    settings = result.config["aura"]
    assert settings["leading_silence_ms"] == 250.0
    assert settings["speed"] == pytest.approx(5.25 / 2.5)  # 5.25 s delivered in 2500 ms
    assert settings["chars_per_s"] == pytest.approx(70 / 5.0)  # 5.25 s less 0.25 s silence
    parse_config(result.config)  # a config the emulator accepts


def test_the_emulators_own_first_update_and_thin_metrics_keep_the_defaults() -> None:
    measured = {"flux.first_response": q(240.5, 241.3), "flux.eot": q(300.0, 900.0, count=5),
                "flux.connect": q(LOOPBACK_MS, 6.0)}
    result = calibrate(measured, [], frame_ms=80)
    flux = result.config["latency"]["flux"]
    assert flux["first_response"] == {"kind": "fixed", "ms": 0.0}  # 240 ms is its own Update
    assert flux["handshake"] == {"kind": "fixed", "ms": 0.0}
    assert "eot_delay" not in flux and result.config["latency"]["aura"] == {}
    notes = "\n".join(result.notes)
    assert f"flux.eot has 5 steady samples (< {MIN_SAMPLES})" in notes
    assert "aura.ttfb has 0 steady samples" in notes


def test_the_command_refuses_a_folder_with_no_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["calibrate", str(tmp_path), "-o", str(tmp_path / "x.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds no .hlog files" in err
    assert not (tmp_path / "x.toml").exists()


def test_the_command_fits_the_golden_run(tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "fitted.toml"
    assert cli.main(["calibrate", str(repo_root / "tests" / "data" / "run_golden"),
                     "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Written by `voiceload calibrate ")
    from voiceload.emulator.behaviour import load_config

    load_config(out)
