from __future__ import annotations

from pathlib import Path

import pytest

from voiceload import slo
from voiceload.errors import ConfigError


def test_shipped_defaults_cover_the_main_metrics() -> None:
    slos = slo.load_slos()
    names = {(s.metric, s.stat): s.limit_ms for s in slos}
    # the published Flux end of turn: median ~260 ms, p95 1.5 s (slo.toml names the sources)
    assert names[("flux.eot", "p50")] == 400
    assert names[("flux.eot", "p95")] == 2000
    for metric in ("flux.ttft", "aura.ttfb", "aura.ttfa", "agent.voice_to_voice"):
        assert any(s.metric == metric for s in slos)


def test_check_passes_fails_and_skips() -> None:
    slos = [slo.Slo("flux.eot", "p95", 600), slo.Slo("aura.ttfb", "p99", 300),
            slo.Slo("agent.voice_to_voice", "p95", 1500)]
    metrics = {"flux.eot": {"count": 10, "p95": 599.9},
               "aura.ttfb": {"count": 10, "p99": 300.1},
               "agent.voice_to_voice": {"count": 0, "p95": None}}
    results = slo.check(slos, metrics)
    assert [r.passed for r in results] == [True, False, None]
    assert results[1].measured_ms == 300.1
    assert slo.verdict(results) == "FAIL"
    assert slo.verdict(results[:1]) == "PASS"
    assert slo.verdict(results[2:]) == "NOT MEASURED"
    assert results[0].as_json() == {"metric": "flux.eot", "stat": "p95", "limit_ms": 600.0,
                                    "measured_ms": 599.9, "passed": True}


def test_limit_equal_to_measurement_passes() -> None:
    (r,) = slo.check([slo.Slo("flux.eot", "max", 600)], {"flux.eot": {"count": 1, "max": 600}})
    assert r.passed is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "key slo: expected one or more [[slo]] tables"),
        ('[[slo]]\nmetric = "flux.eot"\nstat = "p42"\nlimit_ms = 600\n',
         "key slo[0].stat: expected one of p50, p90, p95, p99, p99_9, max, mean, got 'p42'"),
        ('[[slo]]\nmetric = "flux.eot"\nstat = "p95"\nlimit_ms = "600ms"\n',
         "key slo[0].limit_ms: expected a number of milliseconds > 0, got '600ms'"),
        ('[[slo]]\nmetric = "flux.eot"\nstat = "p95"\nlimit_ms = 0\n',
         "key slo[0].limit_ms: expected a number of milliseconds > 0, got 0"),
        ('[[slo]]\nmetric = "eot"\nstat = "p95"\nlimit_ms = 1\n',
         "key slo[0].metric: expected a metric name"),
        ('[[slo]]\nmetric = "flux.eot"\nstat = "p95"\nlimit_ms = 1\nlimit = 2\n',
         "key slo[0].limit: unknown key"),
        ('[[slo]]\nmetric = "flux.eot"\nstat = "p95"\nlimit_ms = 1\n'
         '[[slo]]\nmetric = "flux.eot"\nstat = "p95"\nlimit_ms = 2\n',
         "key slo[1]: p95 of flux.eot is limited twice"),
        ("[[slo]\n", "not valid TOML"),
    ],
)
def test_bad_slo_file(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "slo.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as exc:
        slo.load_slos(path)
    text = str(exc.value)
    assert text.startswith(str(path))
    assert message in text
    assert "\n" not in text


def test_missing_slo_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        slo.load_slos(tmp_path / "none.toml")
