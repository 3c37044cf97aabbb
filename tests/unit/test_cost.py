from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from voiceload import cost
from voiceload.cli import cost as cost_cli
from voiceload.errors import ConfigError


@pytest.fixture(scope="module")
def pricing() -> cost.Pricing:
    return cost.load_pricing()


def one_minute_300_chars(model: str = "aura-2-en") -> cost.SessionUsage:
    return cost.SessionUsage(flux_audio_minutes=1.0, aura_chars={model: 300.0},
                             flux_requests=1.0, aura_requests=1.0, connections=2.0,
                             duration_s=60.0)


def test_shipped_pricing_matches_protocols_section_5(pricing: cost.Pricing) -> None:
    pub = pricing.published
    assert pub.usd_per_1000_neurons.value == 0.011
    assert pub.free_neurons_per_day.value == 10_000
    assert pub.workers_paid_minimum_usd_per_month.value == 5.0
    assert pub.flux_neurons_per_audio_minute.value == 700.0
    assert pub.aura_neurons_per_1000_chars["aura-1"].value == 1363.64
    assert pub.aura_neurons_per_1000_chars["aura-2-en"].value == 2727.27
    assert pub.aura_neurons_per_1000_chars["aura-2-es"].value == 2727.27
    assert pricing.limits["asr_requests_per_minute"].value == 720
    assert pricing.limits["aura_chars_per_minute"].value == 2400
    assert pub.free_plan_exhaustion_code == 4006
    assert pricing.guide.flux_usd_per_1000_requests.value == 0.011
    assert pricing.guide.aura_usd_per_1000_requests.value == 0.02
    assert pricing.guide.flux_free_requests_per_day.value == 10_000
    # every number names a source and a read date
    for s in [pub.usd_per_1000_neurons, *pub.aura_neurons_per_1000_chars.values(),
              *pricing.limits.values()]:
        assert s.source.startswith("https://")
        assert s.read_on.year >= 2026


def test_neuron_prices_agree_with_the_dollar_prices(pricing: cost.Pricing) -> None:
    pub = pricing.published
    per_neuron = pub.usd_per_1000_neurons.value / 1000
    assert pub.flux_neurons_per_audio_minute.value * per_neuron == pytest.approx(
        pub.flux_usd_per_audio_minute.value, rel=1e-3)
    for model, usd in pub.aura_usd_per_1000_chars.items():
        assert pub.aura_neurons_per_1000_chars[model].value * per_neuron == pytest.approx(
            usd.value, rel=1e-3)


def test_worked_example_of_protocols_5_3(pricing: cost.Pricing) -> None:
    # 1,000 x (1 min Flux + 300 chars Aura-2) = 1,518,181 neurons/day -> ~$16.59/day,
    # ~$498 per 30 days, plus the $5/month Workers Paid minimum.
    p = cost.project(one_minute_300_chars(), 1000, pricing)
    assert p.neurons_per_day == pytest.approx(1_518_181, abs=1)
    assert round(p.usd_per_day, 2) == 16.59
    assert round(p.usd_per_month_usage) == 498
    assert p.workers_paid_minimum_usd_per_month == 5.0
    assert p.usd_per_month == pytest.approx(p.usd_per_month_usage + 5.0)
    assert not p.claim_holds
    assert p.verdict.startswith("False")
    # 10,000 / 1,518.181 neurons per session
    assert p.free_sessions_per_day == 6
    assert "4006" in p.free_plan_note
    # guide: 1,000 requests each, under the 10,000 free requests
    assert p.guide_usd_per_day == 0.0
    assert p.guide_flux_requests_per_day == 1000


def test_ten_seconds_of_flux_alone(pricing: cost.Pricing) -> None:
    # PROTOCOLS.md 5.3: "Even 1,000 x 10 s of Flux alone ~ $1.17/day ~ $35 per 30 days"
    u = cost.SessionUsage(flux_audio_minutes=10 / 60, aura_chars={}, flux_requests=1,
                          aura_requests=0, connections=1, duration_s=10)
    p = cost.project(u, 1000, pricing)
    assert round(p.usd_per_day, 2) == 1.17
    assert round(p.usd_per_month_usage) == 35


def test_within_the_free_allocation_no_minimum_but_the_claim_is_judged_at_1000(
    pricing: cost.Pricing,
) -> None:
    u = cost.SessionUsage(flux_audio_minutes=1.0, aura_chars={}, flux_requests=1,
                          aura_requests=0, connections=1, duration_s=60)
    p = cost.project(u, 14, pricing)  # 14 x 700 = 9,800 neurons
    assert p.within_free_allocation
    assert p.usd_per_month == 0.0
    assert p.free_sessions_per_day == 14
    # the guide claims $0/month at *its* 1,000 sessions/day: 700,000 Neurons/day, not free
    assert pricing.guide.claim_sessions_per_day == 1000
    assert p.claim_sessions_per_day == 1000
    assert p.claim_neurons_per_day == pytest.approx(700_000)
    assert not p.claim_holds
    at_1000 = cost.project(u, 1000, pricing)
    assert p.verdict == at_1000.verdict
    assert p.claim_usd_per_month == pytest.approx(at_1000.usd_per_month)


def test_the_claim_verdict_does_not_depend_on_the_projected_sessions(
    pricing: cost.Pricing,
) -> None:
    # 0.01 min x 700 = 7 Neurons/session: 1,000 sessions/day use 7,000 of the free 10,000
    tiny = cost.SessionUsage(flux_audio_minutes=0.01, aura_chars={}, flux_requests=1,
                             aura_requests=0, connections=1, duration_s=1)
    for sessions_per_day in (0, 14, 1000, 1_000_000):
        p = cost.project(tiny, sessions_per_day, pricing)
        assert p.claim_holds
        assert p.verdict.startswith("Holds at 1,000 sessions/day")
    assert cost.project(tiny, 1_000_000, pricing).usd_per_month > 0


def test_guide_table_charges_requests_beyond_its_free_requests(pricing: cost.Pricing) -> None:
    u = one_minute_300_chars()
    p = cost.project(u, 20_000, pricing)
    # 10,000 extra Flux requests x $0.011/1K + 10,000 extra Aura x $0.02/1K
    assert p.guide_usd_per_day == pytest.approx(0.11 + 0.20)
    assert p.guide_usd_per_month == pytest.approx(30 * 0.31)


def test_unknown_aura_model_is_a_config_error(pricing: cost.Pricing) -> None:
    with pytest.raises(ConfigError, match="aura-9"):
        cost.project(one_minute_300_chars("aura-9"), 10, pricing)


def test_capacity_formula_and_asr_limit(pricing: cost.Pricing) -> None:
    u = one_minute_300_chars()
    cap = cost.capacity(u, 1000, pricing, busy_hour_factor=3.0,
                        sustained_concurrency=5.0, run_ok=True)
    assert cap.peak_concurrency == pytest.approx(60 * 1000 / 86_400 * 3)
    assert cap.peak_asr_connections_per_minute == pytest.approx(1000 / 86_400 * 3 * 60)
    assert cap.asr_limit_per_minute == 720
    assert cap.demonstrated
    assert cap.reasons == []
    # a million sessions/day at peak exceeds 720 connections/min
    big = cost.capacity(u, 1_000_000, pricing, sustained_concurrency=10_000.0, run_ok=True)
    assert not big.demonstrated
    assert any("720" in r for r in big.reasons)


def test_capacity_not_demonstrated_by_a_failed_or_small_run(pricing: cost.Pricing) -> None:
    u = one_minute_300_chars()
    assert not cost.capacity(u, 1000, pricing, sustained_concurrency=None).demonstrated
    bad = cost.capacity(u, 1000, pricing, sustained_concurrency=50.0, run_ok=False)
    assert bad.reasons == ["the run was invalid or failed an SLO"]
    small = cost.capacity(u, 1000, pricing, sustained_concurrency=1.0, run_ok=True)
    assert "below" in small.reasons[0]


def row(user_type: str, flux_s: float, chars: float, conns: int, dur: float,
        model: str = "") -> dict[str, str]:
    return {"user_type": user_type, "flux_audio_s": str(flux_s), "aura_chars": str(chars),
            "connections": str(conns), "duration_s": str(dur), "model": model}


def test_usage_from_agent_sessions() -> None:
    rows = [row("agent", 60, 100, 2, 70, "aura-1"), row("agent", 120, 300, 3, 130, "aura-1"),
            row("flux", 999, 0, 1, 999)]
    st = cost.usage_from_sessions(rows, "aura-2-en")
    assert st.sessions == 2
    assert st.mean.flux_audio_minutes == pytest.approx(1.5)
    assert st.mean.aura_chars == {"aura-1": pytest.approx(200.0)}
    assert st.mean.flux_requests == 1.0
    assert st.mean.aura_requests == pytest.approx(1.5)
    assert st.mean.duration_s == pytest.approx(100.0)
    assert st.p95.flux_audio_minutes == pytest.approx(2.0)
    assert st.p95.connections == 3


def test_usage_from_separate_flux_and_aura_sessions() -> None:
    rows = [row("flux", 30, 0, 1, 35), row("flux", 90, 0, 1, 95),
            row("aura", 0, 200, 1, 5, "@cf/deepgram/aura-2-es"), row("aura", 0, 400, 1, 7, "")]
    st = cost.usage_from_sessions(rows, "aura-2-en")
    assert st.mean.flux_audio_minutes == pytest.approx(1.0)
    assert st.mean.aura_chars == {"aura-2-es": pytest.approx(100.0),
                                  "aura-2-en": pytest.approx(200.0)}
    assert st.mean.connections == pytest.approx(2.0)
    assert st.mean.duration_s == pytest.approx(65.0)  # the longer of the two means
    assert st.p95.flux_audio_minutes == pytest.approx(1.5)
    assert st.p95.aura_chars_total == pytest.approx(400.0)


def test_failed_sessions_count_only_when_they_opened_a_socket() -> None:
    failed_handshake = {**row("agent", 0, 0, 0, 0.2), "outcome": "error"}
    failed_midway = {**row("agent", 30, 0, 1, 31), "outcome": "error"}  # streamed: billed
    ok = {**row("agent", 90, 300, 2, 95), "outcome": "ok"}
    st = cost.usage_from_sessions([failed_handshake, failed_midway, ok], "aura-2-en")
    assert st.sessions == 2
    assert st.mean.flux_audio_minutes == pytest.approx(1.0)  # (30 + 90) s / 2 sessions
    assert st.mean.aura_chars == {"aura-2-en": pytest.approx(150.0)}
    assert "1 failed sessions that opened no WebSocket left out" in st.basis
    flux_aura = [{**row("flux", 0, 0, 0, 0.2), "outcome": "error"},
                 {**row("flux", 60, 0, 1, 61), "outcome": "ok"},
                 {**row("aura", 0, 200, 1, 5), "outcome": "ok"}]
    groups = cost.voice_session_groups(flux_aura)
    assert [len(g) for g in groups] == [1, 1]
    assert cost.usage_from_sessions(flux_aura, "aura-2-en").mean.flux_audio_minutes == 1.0


def timed(user_type: str, start_s: float, dur: float) -> dict[str, str]:
    return {**row(user_type, 0, 0, 1, dur), "start_s": str(start_s), "outcome": "ok"}


def test_sustained_voice_sessions_pair_flux_with_aura() -> None:
    # window [1000, 1100): two Flux streams open all the time, one Aura socket open all the time
    rows = [timed("flux", 1000, 100), timed("flux", 1000, 100), timed("aura", 1000, 100)]
    assert cost.mean_open_sessions(rows, 1000, 1100) == pytest.approx(3.0)
    # a voice session needs one of each: one pair, not (2 + 1) sockets, not 1.5
    assert cost.sustained_voice_sessions(rows, 1000, 1100) == pytest.approx(1.0)
    # unequal lengths: 60 s Flux streams back to back (rate 1/60 s) and 6 s Aura sockets every
    # 6 s (rate 1/6 s): the Flux rate limits; a voice session lasts 60 s -> 1 open on average
    flux = [timed("flux", 1000 + 60 * k, 60) for k in range(2)]
    aura = [timed("aura", 1000 + 6 * k, 6) for k in range(20)]
    assert cost.sustained_voice_sessions(flux + aura, 1000, 1120) == pytest.approx(1.0)


def test_sustained_voice_sessions_count_agents_only() -> None:
    rows = [timed("agent", 1000, 50), timed("agent", 1050, 50), timed("flux", 1000, 100),
            timed("aura", 1000, 100), {**timed("agent", 1000, 100), "connections": "0",
                                       "outcome": "error"}]
    assert cost.sustained_voice_sessions(rows, 1000, 1100) == pytest.approx(1.0)
    assert cost.sustained_voice_sessions([], 1000, 1100) == 0.0


def test_aura_model_of() -> None:
    assert cost.aura_model_of("@cf/deepgram/aura-2-en", "x") == "aura-2-en"
    assert cost.aura_model_of("flux+aura-1", "x") == "aura-1"
    assert cost.aura_model_of("@cf/deepgram/flux", "aura-2-en") == "aura-2-en"


def copy_pricing(tmp_path: Path) -> Path:
    dst = tmp_path / "pricing.toml"
    shutil.copy(cost.default_pricing_path(), dst)
    return dst


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("value = 0.011\n", 'value = "cheap"\n',
         "key published.usd_per_1000_neurons.value: expected a number >= 0, got 'cheap'"),
        ("value = 700.0\n", "value = -700.0\n",
         "key published.flux_neurons_per_audio_minute.value: expected a number >= 0"),
        ('default_aura_model = "aura-2-en"', 'default_aura_model = "aura-7"',
         "key default_aura_model: expected one of"),
        ("[limits.asr_requests_per_minute]", "[limits.asr_rpm]",
         "key limits.asr_requests_per_minute is missing"),
        ("read_on = 2026-11-26\nnote = \"one allocation", 'read_on = "Nov"\nnote = "one allocation',
         "key published.free_neurons_per_day.read_on: expected a date YYYY-MM-DD"),
        ("schema = 1", "schema = = 1", "not valid TOML"),
    ],
)
def test_malformed_pricing_file_names_file_key_and_form(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = copy_pricing(tmp_path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as exc:
        cost.load_pricing(path)
    assert str(path) in str(exc.value)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_pricing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        cost.load_pricing(tmp_path / "nope.toml")


def test_cost_command_prints_the_worked_example(capsys: pytest.CaptureFixture[str]) -> None:
    from voiceload import cli

    assert cli.main(["cost", "--sessions-per-day", "1000", "--flux-minutes", "1",
                     "--aura-chars", "300", "--aura-model", "aura-2-en"]) == 0
    out = capsys.readouterr().out
    assert "1,518,181 Neurons/day" in out
    assert "$16.59/day" in out
    assert "False" in out
    assert "covers 6 sessions/day" in out


def test_cost_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    cost_cli.configure_parser(parser)
    args = parser.parse_args(["--sessions-per-day", "2000", "--aura-model", "aura-1", "--json"])
    assert cost_cli.main(args) == 0
    data = json.loads(capsys.readouterr().out)
    # 2,000 x (700 + 0.3 x 1,363.64) = 2,218,184 neurons
    assert data["projection"]["neurons_per_day"] == pytest.approx(2_218_184, abs=1)
    assert data["capacity"]["asr_limit_per_minute"] == 720


def test_cost_command_with_no_billable_usage(capsys: pytest.CaptureFixture[str]) -> None:
    from voiceload import cli

    assert cli.main(["cost", "--flux-minutes", "0", "--aura-chars", "0"]) == 0
    out = capsys.readouterr().out
    assert "covers any number of sessions/day" in out
    assert "Holds" in out


def test_cost_command_without_aura_text_opens_no_aura_socket(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    cost_cli.configure_parser(parser)
    assert cost_cli.main(parser.parse_args(["--aura-chars", "0", "--json"])) == 0
    usage = json.loads(capsys.readouterr().out)["usage"]
    assert usage["aura_requests"] == 0 and usage["connections"] == 1
    assert cost_cli.main(parser.parse_args(["--json"])) == 0  # default: 300 chars, one socket
    usage = json.loads(capsys.readouterr().out)["usage"]
    assert usage["aura_requests"] == 1 and usage["connections"] == 2
    assert cost_cli.main(parser.parse_args(["--aura-chars", "0", "--aura-requests", "2"])) == 0
    assert "3 WebSockets" in capsys.readouterr().out  # an explicit count is kept
    assert cost_cli.main(parser.parse_args(["--aura-chars", "0", "--sessions-per-day",
                                            "10"])) == 0
    out = capsys.readouterr().out
    assert "1 WebSockets" in out and "10 Flux + 0 Aura requests/day" in out
