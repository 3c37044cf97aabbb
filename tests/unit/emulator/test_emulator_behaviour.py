"""voiceload.emulator.behaviour: strict config, seeded distributions, fault selection."""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path

import pytest

from voiceload.emulator.behaviour import (
    FAULT_KINDS,
    Behaviour,
    Distribution,
    EmulatorConfig,
    load_config,
    parse_config,
)
from voiceload.errors import ConfigError

DEFAULT_TOML = Path(__file__).resolve().parents[3] / "src" / "voiceload" / "data" / "emulator.toml"


def test_defaults_without_a_file() -> None:
    cfg = load_config(None)
    assert cfg == EmulatorConfig()
    assert cfg.flux.idle_timeout_s == 10.0
    assert cfg.aura.sample_rate == 24000
    assert cfg.faults == ()


def test_shipped_default_file_is_valid_and_matches_the_defaults() -> None:
    assert load_config(DEFAULT_TOML) == EmulatorConfig()


def test_full_config_is_read() -> None:
    cfg = parse_config(
        {
            "seed": 7,
            "flux": {"idle_timeout_s": 2, "vad_turn_gap_s": 0.4},
            "aura": {"speed": 1.0, "sample_rate": 16000},
            "latency": {
                "flux": {"eot_delay": {"kind": "fixed", "ms": 300}},
                "aura-2-en": {"first_byte": {"kind": "uniform", "low_ms": 10, "high_ms": 20}},
            },
            "faults": [{"kind": "unauthorized", "every": 5, "service": "flux"}],
        }
    )
    assert cfg.seed == 7
    assert cfg.flux.idle_timeout_s == 2.0
    assert cfg.flux.vad_turn_gap_s == 0.4
    assert cfg.aura.speed == 1.0
    assert cfg.latency_for("flux", "flux").eot_delay == Distribution("fixed", 300.0)
    assert cfg.latency_for("aura", "aura-2-en").first_byte == Distribution("uniform", 10.0, 20.0)
    # a model without its own table uses its service's
    assert cfg.latency_for("aura", "aura-1").first_byte == Distribution("lognormal", 90.0, 200.0)
    assert cfg.faults[0].kind == "unauthorized"
    assert cfg.faults[0].every == 5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"sede": 1},
            "emulator config: unknown key sede (allowed: seed, flux, aura, latency, faults,"
            " realism)",
        ),
        (
            {"flux": {"idle_timeout": 3}},
            "emulator config: unknown key flux.idle_timeout (allowed: idle_timeout_s,"
            " update_interval_s, placeholder_words_per_s, vad_turn_gap_s, eager_fraction)",
        ),
        (
            {"flux": {"idle_timeout_s": 0}},
            "emulator config: flux.idle_timeout_s must be a number > 0, got 0",
        ),
        (
            {"aura": {"sample_rate": 22050}},
            "emulator config: aura.sample_rate must be one of 8000, 16000, 24000, 32000, 48000,"
            " got 22050",
        ),
        (
            {"latency": {"flux": {"eot_delay": {"kind": "normal", "ms": 3}}}},
            "emulator config: latency.flux.eot_delay.kind must be one of fixed, uniform,"
            " lognormal, got 'normal'",
        ),
        (
            {"latency": {"flux": {"first_byte": {"kind": "fixed", "ms": 3}}}},
            "emulator config: unknown key latency.flux.first_byte (allowed: handshake,"
            " first_response, eot_delay)",
        ),
        (
            {"latency": {"flux": {"eot_delay": {"kind": "lognormal", "p50_ms": 300}}}},
            "emulator config: latency.flux.eot_delay (lognormal) needs p50_ms, p99_ms",
        ),
        (
            {"latency": {"flux": {"eot_delay": {"kind": "lognormal", "p50_ms": 300, "p99_ms": 1}}}},
            "emulator config: latency.flux.eot_delay needs 0 < p50_ms <= p99_ms, got 300.0 and 1.0",
        ),
        (
            {"latency": {"nova-3": {}}},
            "emulator config: unknown key latency.nova-3 (allowed: flux, aura, aura-1,"
            " aura-2-en, aura-2-es)",
        ),
        (
            {"faults": [{"kind": "explode", "rate": 1}]},
            f"emulator config: faults[0].kind must be one of {', '.join(FAULT_KINDS)},"
            " got 'explode'",
        ),
        (
            {"faults": [{"kind": "stall"}]},
            "emulator config: faults[0] (stall) needs one of rate, every, connections",
        ),
        (
            {"faults": [{"kind": "stall", "rate": 2}]},
            "emulator config: faults[0].rate must be between 0 and 1, got 2.0",
        ),
        (
            {"faults": [{"kind": "stall", "connections": [0]}]},
            "emulator config: faults[0].connections must be a list of connection numbers >= 1",
        ),
        (
            {"faults": [{"kind": "stall", "every": 1, "service": "tts"}]},
            "emulator config: faults[0].service must be one of any, flux, aura, got 'tts'",
        ),
    ],
)
def test_invalid_config_names_key_and_allowed_values(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read emulator config .*missing\.toml"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1\n")
    with pytest.raises(ConfigError, match=r"^emulator config .*bad\.toml is not valid TOML"):
        load_config(bad)


def test_fixed_and_uniform_draws() -> None:
    rng = random.Random(1)
    assert Distribution("fixed", 12.5).sample_ms(rng) == 12.5
    draws = [Distribution("uniform", 10.0, 20.0).sample_ms(rng) for _ in range(1000)]
    assert min(draws) >= 10.0
    assert max(draws) <= 20.0


def test_lognormal_draws_have_the_configured_median_and_p99() -> None:
    rng = random.Random(3)
    dist = Distribution("lognormal", 260.0, 1500.0)
    draws = sorted(dist.sample_ms(rng) for _ in range(40_000))
    median = statistics.median(draws)
    p99 = draws[int(0.99 * len(draws))]
    # 40k draws: the sample quantiles sit within a few percent of the true ones
    assert math.isclose(median, 260.0, rel_tol=0.03)
    assert math.isclose(p99, 1500.0, rel_tol=0.06)


def test_plans_repeat_for_the_same_seed_and_connection() -> None:
    cfg = parse_config(
        {
            "seed": 11,
            "latency": {"flux": {"handshake": {"kind": "uniform", "low_ms": 0, "high_ms": 50}}},
            "faults": [{"kind": "disconnect", "rate": 0.5}],
        }
    )
    first = [Behaviour(cfg).plan(n, "flux", "flux") for n in range(1, 40)]
    # a second process, asked in a different order, makes the same choices
    again = {n: Behaviour(cfg).plan(n, "flux", "flux") for n in reversed(range(1, 40))}
    for plan in first:
        other = again[plan.connection_no]
        assert plan.handshake_delay_ms == other.handshake_delay_ms
        assert plan.stream_fault == other.stream_fault
    # rate 0.5 over 39 connections: some but not all are hit
    hit = sum(p.stream_fault is not None for p in first)
    assert 0 < hit < len(first)


def test_faults_by_every_by_connection_and_by_service() -> None:
    cfg = parse_config(
        {
            "faults": [
                {"kind": "unauthorized", "every": 3},
                {"kind": "rate_limited", "connections": [1, 2]},
                {"kind": "stall", "connections": [4], "service": "aura", "after_messages": 2},
                {"kind": "slow_handshake", "connections": [5], "delay_ms": 250},
            ]
        }
    )
    beh = Behaviour(cfg)
    assert [beh.plan(n, "flux", "flux").upgrade_fault for n in range(1, 7)] == [
        "rate_limited",
        "rate_limited",
        "unauthorized",
        None,
        None,
        "unauthorized",
    ]
    assert beh.plan(4, "flux", "flux").stream_fault is None  # the rule is for aura only
    stall = beh.plan(4, "aura", "aura-1").stream_fault
    assert stall is not None
    assert (stall.kind, stall.after_messages) == ("stall", 2)
    assert beh.plan(5, "aura", "aura-1").handshake_delay_ms == 250.0
    assert beh.plan(4, "aura", "aura-1").handshake_delay_ms == 0.0


def test_each_server_process_draws_its_own_sequence() -> None:
    # `voiceload emulate --processes K`: process i seeds by (seed, i, connection number), so
    # the K processes do not repeat one another's delays and rate faults; process 0 draws what
    # a single process draws
    cfg = parse_config(
        {
            "seed": 7,
            "latency": {"flux": {"handshake": {"kind": "uniform", "low_ms": 0, "high_ms": 50}}},
            "faults": [{"kind": "disconnect", "rate": 0.5}],
        }
    )

    def draws(beh: Behaviour) -> list[tuple[float, bool, list[float]]]:
        out = []
        for n in range(1, 30):
            plan = beh.plan(n, "flux", "flux")
            eot = [cfg.latency["flux"].eot_delay.sample_ms(plan.rng) for _ in range(3)]
            out.append((plan.handshake_delay_ms, plan.stream_fault is not None, eot))
        return out

    single = draws(Behaviour(cfg))
    per_process = [draws(Behaviour(cfg, process_index=i)) for i in range(3)]
    assert per_process[0] == single
    assert per_process[1] != per_process[0] and per_process[2] != per_process[1]
    assert per_process[2] != per_process[0]
    for a, b in ((0, 1), (1, 2), (0, 2)):  # not a shifted copy either: every connection differs
        assert all(x[0] != y[0] for x, y in zip(per_process[a], per_process[b], strict=True))
    assert draws(Behaviour(cfg, process_index=1)) == per_process[1]  # and each one repeats
    with pytest.raises(ConfigError):
        Behaviour(cfg, process_index=-1)


def test_every_nth_and_listed_connections_count_per_process() -> None:
    cfg = parse_config(
        {
            "faults": [
                {"kind": "unauthorized", "every": 3},
                {"kind": "rate_limited", "connections": [2]},
            ]
        }
    )
    for index in (0, 1, 5):
        beh = Behaviour(cfg, process_index=index)
        faults = [beh.plan(n, "flux", "flux").upgrade_fault for n in range(1, 7)]
        assert faults == [None, "rate_limited", "unauthorized", None, None, "unauthorized"]


def test_the_server_seeds_by_its_process_index() -> None:
    from voiceload.emulator.server import EmulatorApp, ServerOptions

    cfg = parse_config({"seed": 3})
    assert EmulatorApp(ServerOptions(config=cfg)).behaviour.connection_seed(4) == "3:4"
    app = EmulatorApp(ServerOptions(config=cfg, process_index=2))
    assert app.behaviour.connection_seed(4) == "3:p2:4"


def test_over_limit_flush_is_one_of_three_policies() -> None:
    assert parse_config({}).aura.over_limit_flush == "keep_text"
    assert parse_config({"aura": {"over_limit_flush": "drop_text"}}).aura.over_limit_flush == (
        "drop_text"
    )
    with pytest.raises(ConfigError, match=r"aura\.over_limit_flush must be one of keep_text"):
        parse_config({"aura": {"over_limit_flush": "ignore"}})
