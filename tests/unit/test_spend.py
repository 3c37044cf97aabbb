"""The spend estimate and the confirmation gate for runs against real targets."""

from __future__ import annotations

import io

import pytest

from voiceload.cost import Pricing, load_pricing
from voiceload.errors import ConfigError
from voiceload.spend import (
    POLITE_LOAD,
    PoliteLoad,
    SpendNotConfirmed,
    confirmed,
    estimate_spend,
    format_estimate,
    gate_run,
    polite_load,
    spend_gate,
    split_users,
)


@pytest.fixture(scope="module")
def pricing() -> Pricing:
    return load_pricing()


def test_estimate_is_the_pricing_file_applied_to_users_times_duration(pricing: Pricing) -> None:
    est = estimate_spend(
        flux_users=2, aura_users=1, run_time_s=90.0, pricing=pricing,
        aura_model="aura-1", aura_chars_per_user_minute=1000.0,
    )
    pub = pricing.published
    assert est.flux_audio_minutes == pytest.approx(3.0)  # 2 users x 1.5 min
    assert est.aura_chars == pytest.approx(1500.0)  # 1 user x 1.5 min x 1000/min
    neurons = (
        3.0 * pub.flux_neurons_per_audio_minute.value
        + 1.5 * pub.aura_neurons_per_1000_chars["aura-1"].value
    )
    assert est.neurons == pytest.approx(neurons)
    assert est.usd_before_free_allocation == pytest.approx(
        neurons * pub.usd_per_1000_neurons.value / 1000
    )
    assert neurons < pub.free_neurons_per_day.value
    assert est.usd_after_free_allocation == 0.0


def test_a_big_run_costs_money_even_after_the_free_allocation(pricing: Pricing) -> None:
    est = estimate_spend(flux_users=20, aura_users=0, run_time_s=3600.0, pricing=pricing)
    pub = pricing.published
    neurons = 20 * 60 * pub.flux_neurons_per_audio_minute.value
    assert est.neurons == pytest.approx(neurons)
    assert est.usd_after_free_allocation == pytest.approx(
        (neurons - pub.free_neurons_per_day.value) * pub.usd_per_1000_neurons.value / 1000
    )


def test_aura_defaults_come_from_the_pricing_file(pricing: Pricing) -> None:
    est = estimate_spend(flux_users=0, aura_users=3, run_time_s=60.0, pricing=pricing)
    assert est.aura_model == pricing.default_aura_model
    assert est.aura_chars_per_user_minute == pricing.limits["aura_chars_per_minute"].value
    assert est.aura_chars == pytest.approx(3 * pricing.limits["aura_chars_per_minute"].value)


def test_unpriced_model_and_negative_inputs_are_config_errors(pricing: Pricing) -> None:
    with pytest.raises(ConfigError, match="aura-9"):
        estimate_spend(flux_users=0, aura_users=1, run_time_s=1.0, pricing=pricing,
                       aura_model="aura-9")
    with pytest.raises(ConfigError, match="run_time_s=-1"):
        estimate_spend(flux_users=1, aura_users=0, run_time_s=-1.0, pricing=pricing)


@pytest.mark.parametrize(
    ("users", "weights", "expected"),
    [
        (10, {"flux": 1}, (10, 0)),
        (10, {"flux": 1, "aura": 1}, (5, 5)),
        (3, {"flux": 1, "aura": 1}, (2, 2)),  # rounds up: an estimate must not undercount
        (4, {"flux": 1, "aura": 1, "agent": 2}, (3, 3)),  # 1 flux + 2 agents, 1 aura + 2 agents
        (5, {"agent": 1, "other": 7}, (5, 5)),  # unknown classes are not billed voice users
        (0, {"flux": 1}, (0, 0)),
    ],
)
def test_split_users(users: int, weights: dict[str, float], expected: tuple[int, int]) -> None:
    assert split_users(users, weights) == expected


@pytest.mark.parametrize(
    ("users", "weights", "fixed", "expected"),
    [
        # fixed counts only (weights 0): 3 flux, 3 aura, 2 agents of 8
        (8, {}, {"FluxUser": 3, "AuraUser": 3, "VoiceAgentUser": 2}, (5, 5)),
        (6, {"flux": 1}, {"agent": 1}, (6, 1)),  # 1 fixed agent, the other 5 by weight: flux
        (4, {"aura": 1}, {"flux": 3}, (3, 1)),  # the weighted classes get what is left
        (2, {"aura": 1}, {"flux": 5}, (2, 0)),  # more fixed than users: capped at users
    ],
)
def test_split_users_counts_fixed_count_users_first(
    users: int, weights: dict[str, float], fixed: dict[str, int], expected: tuple[int, int]
) -> None:
    assert split_users(users, weights, fixed) == expected


def test_split_users_refuses_negative_fixed_counts() -> None:
    with pytest.raises(ConfigError, match="fixed counts must be >= 0"):
        split_users(3, {"flux": 1}, {"aura": -1})


def test_gate_run_estimates_fixed_count_users(pricing: Pricing) -> None:
    est = gate_run(
        is_real_target=True, target_label="gateway", users=2, user_weights={},
        fixed_counts={"VoiceAgentUser": 2}, run_time_s=60.0, yes=True, out=io.StringIO(),
        pricing=pricing, environ={},
    )
    assert est is not None and (est.flux_users, est.aura_users) == (2, 2)


def test_confirmation_needs_yes_or_the_environment_variable() -> None:
    assert confirmed(yes=True, environ={})
    assert confirmed(yes=False, environ={"VOICELOAD_CONFIRM": "1"})
    assert not confirmed(yes=False, environ={})
    assert not confirmed(yes=False, environ={"VOICELOAD_CONFIRM": "yes please"})


def test_gate_prints_the_estimate_and_refuses_without_confirmation(pricing: Pricing) -> None:
    est = estimate_spend(flux_users=1, aura_users=1, run_time_s=30.0, pricing=pricing)
    out = io.StringIO()
    with pytest.raises(SpendNotConfirmed) as info:
        spend_gate(is_real_target=True, target_label="gateway", estimate=est, yes=False,
                   out=out, environ={})
    assert "--yes" in str(info.value) and "VOICELOAD_CONFIRM=1" in str(info.value)
    assert out.getvalue().startswith(format_estimate(est, "gateway"))
    assert "audio minutes" in out.getvalue() and "Neurons" in out.getvalue()


def test_gate_proceeds_when_confirmed_and_is_silent_for_the_emulator(pricing: Pricing) -> None:
    est = estimate_spend(flux_users=1, aura_users=0, run_time_s=30.0, pricing=pricing)
    out = io.StringIO()
    spend_gate(is_real_target=True, target_label="gateway", estimate=est, yes=False, out=out,
               environ={"VOICELOAD_CONFIRM": "1"})
    assert "Confirmed" in out.getvalue()
    quiet = io.StringIO()
    spend_gate(is_real_target=False, target_label="emulator", estimate=est, yes=False, out=quiet,
               environ={})
    assert quiet.getvalue() == ""


def test_real_targets_default_to_a_polite_load() -> None:
    usual = PoliteLoad(users=50, spawn_rate=10.0, run_time_s=60.0)
    real = polite_load(is_real_target=True, users=None, spawn_rate=None, run_time_s=None,
                       default=usual)
    assert real == POLITE_LOAD
    assert real.users < usual.users
    explicit = polite_load(is_real_target=True, users=7, spawn_rate=None, run_time_s=5.0,
                           default=usual)
    assert explicit == PoliteLoad(users=7, spawn_rate=POLITE_LOAD.spawn_rate, run_time_s=5.0)
    emulated = polite_load(is_real_target=False, users=None, spawn_rate=None, run_time_s=None,
                           default=usual)
    assert emulated == usual


def test_gate_run_splits_locust_classes_and_maps_workers_ai_model_ids(pricing: Pricing) -> None:
    out = io.StringIO()
    est = gate_run(
        is_real_target=True, target_label="gateway", users=4,
        user_weights={"FluxUser": 1, "AuraUser": 1}, run_time_s=60.0, yes=True, out=out,
        aura_model="@cf/deepgram/aura-1", pricing=pricing, environ={},
    )
    assert est is not None
    assert (est.flux_users, est.aura_users, est.aura_model) == (2, 2, "aura-1")
    assert est.flux_audio_minutes == pytest.approx(2.0)
    assert "Confirmed" in out.getvalue()
    with pytest.raises(SpendNotConfirmed):
        gate_run(is_real_target=True, target_label="gateway", users=1,
                 user_weights={"VoiceAgentUser": 1}, run_time_s=10.0, yes=False,
                 out=io.StringIO(), pricing=pricing, environ={})
    assert gate_run(is_real_target=False, target_label="emulator", users=100,
                    user_weights={"FluxUser": 1}, run_time_s=600.0, yes=False,
                    out=io.StringIO(), pricing=pricing, environ={}) is None


def test_split_users_accepts_locust_class_names() -> None:
    assert split_users(6, {"FluxUser": 2, "VoiceAgentUser": 1}) == (6, 2)


def test_small_amounts_keep_their_digits(pricing: Pricing) -> None:
    est = estimate_spend(flux_users=1, aura_users=0, run_time_s=30.0, pricing=pricing)
    usd = est.usd_before_free_allocation
    assert 0 < usd < 0.01
    assert f"${usd:.4f}" in format_estimate(est, "gateway")
