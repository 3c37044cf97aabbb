"""The confirmation gate: a run against a real target says what it will cost, then waits for a yes.

A load run against anything but the emulator spends real money (or the account's shared daily
free allocation). Before it starts, :func:`spend_gate` prints an **upper-bound** estimate for the
configured users × duration and proceeds only when the user passed ``--yes`` or the environment
has ``VOICELOAD_CONFIRM=1`` (for CI). The numbers come from the pricing file through
:mod:`voiceload.cost`; nothing about prices is written here.

The estimate is deliberately pessimistic:

* every Flux user streams audio in real time for the whole run (Flux bills audio minutes,
  trailing silence included), so ``flux_users × run_time_s / 60`` audio minutes;
* every Aura user sends text at the per-socket throughput limit from the pricing file
  (``limits.aura_chars_per_minute``) unless the caller knows a lower rate;
* an agent user counts as one Flux user plus one Aura user;
* dollars are shown both before and after the daily free allocation (which is shared by every
  model and may already be used up today).

Runs against real targets also default to a small, polite load (:data:`POLITE_LOAD`) unless the
user sets the load explicitly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, TextIO

from voiceload.cost import Pricing, SessionUsage, aura_model_of, load_pricing, project
from voiceload.errors import ConfigError

CONFIRM_ENV_VAR: Final = "VOICELOAD_CONFIRM"


class SpendNotConfirmed(ConfigError):
    """A run against a real target was not confirmed with ``--yes`` / ``VOICELOAD_CONFIRM=1``."""


@dataclass(frozen=True)
class PoliteLoad:
    """The load a run against a real target uses for any setting the user left unset."""

    users: int
    spawn_rate: float
    run_time_s: float


POLITE_LOAD: Final = PoliteLoad(users=2, spawn_rate=1.0, run_time_s=30.0)


def polite_load(
    *,
    is_real_target: bool,
    users: int | None,
    spawn_rate: float | None,
    run_time_s: float | None,
    default: PoliteLoad,
) -> PoliteLoad:
    """The load to run: the user's explicit values, else :data:`POLITE_LOAD` for a real target,
    else ``default`` (the emulator's usual load)."""
    fallback = POLITE_LOAD if is_real_target else default
    return PoliteLoad(
        users=users if users is not None else fallback.users,
        spawn_rate=spawn_rate if spawn_rate is not None else fallback.spawn_rate,
        run_time_s=run_time_s if run_time_s is not None else fallback.run_time_s,
    )


@dataclass(frozen=True)
class SpendEstimate:
    """Upper bound of what a run consumes (see the module docstring for the assumptions)."""

    flux_users: int
    aura_users: int
    run_time_s: float
    flux_audio_minutes: float
    aura_model: str
    aura_chars: float
    aura_chars_per_user_minute: float
    neurons: float
    usd_before_free_allocation: float
    usd_after_free_allocation: float
    free_neurons_per_day: float


#: Locust user classes (loadtests/locustfile.py) -> what they consume.
USER_CLASS_KINDS: Final = {"FluxUser": "flux", "AuraUser": "aura", "VoiceAgentUser": "agent"}


def split_users(
    users: int, weights: Mapping[str, float], fixed_counts: Mapping[str, int] | None = None
) -> tuple[int, int]:
    """How many of ``users`` stream Flux and how many speak Aura; an agent counts as both.

    ``weights`` and ``fixed_counts`` are keyed ``flux``/``aura``/``agent`` or by Locust class
    name (:data:`USER_CLASS_KINDS`); other names are ignored. As in Locust, fixed-count users
    (a class's ``fixed_count``) come first and the rest of ``users`` is shared by weight among
    the other classes (so a class with a fixed count belongs in ``fixed_counts`` only).

    Rounds **up** per class (an estimate must not undercount), capped at ``users`` each.
    Raises :class:`ConfigError` for negative weights, counts or users.
    """
    if users < 0:
        raise ConfigError(f"users must be >= 0, got {users}")
    known = _by_kind(weights)
    fixed = _by_kind(fixed_counts or {})
    if any(v < 0 for v in known.values()):
        raise ConfigError(f"user-class weights must be >= 0, got {dict(weights)}")
    if any(v < 0 for v in fixed.values()):
        raise ConfigError(f"user-class fixed counts must be >= 0, got {dict(fixed_counts or {})}")
    total = sum(known.values())
    rest = max(0, users - math.ceil(sum(fixed.values())))
    if users == 0:
        return 0, 0

    def share(name: str) -> int:
        by_weight = 0
        if total > 0:
            by_weight = math.ceil(Fraction(rest) * Fraction(known.get(name, 0.0)) / Fraction(total))
        return math.ceil(fixed.get(name, 0)) + by_weight

    agents = share("agent")
    return min(users, share("flux") + agents), min(users, share("aura") + agents)


def _by_kind(values: Mapping[str, float]) -> dict[str, float]:
    """``values`` summed per user kind (``flux``/``aura``/``agent``); other names dropped."""
    out: dict[str, float] = {}
    for name, value in values.items():
        kind = USER_CLASS_KINDS.get(name, name)
        if kind in ("flux", "aura", "agent"):
            out[kind] = out.get(kind, 0.0) + float(value)
    return out


def estimate_spend(
    *,
    flux_users: int,
    aura_users: int,
    run_time_s: float,
    pricing: Pricing,
    aura_model: str | None = None,
    aura_chars_per_user_minute: float | None = None,
) -> SpendEstimate:
    """Upper bound of audio minutes, characters, Neurons and dollars for a run.

    ``aura_model`` defaults to the pricing file's ``default_aura_model``;
    ``aura_chars_per_user_minute`` to its ``limits.aura_chars_per_minute``. Raises
    :class:`ConfigError` for negative inputs or an Aura model the pricing file does not price.
    """
    if flux_users < 0 or aura_users < 0 or run_time_s < 0:
        raise ConfigError(
            f"users and run time must be >= 0, got flux_users={flux_users}, "
            f"aura_users={aura_users}, run_time_s={run_time_s}"
        )
    model = aura_model or pricing.default_aura_model
    rate = (
        aura_chars_per_user_minute
        if aura_chars_per_user_minute is not None
        else pricing.limits["aura_chars_per_minute"].value
    )
    minutes = run_time_s / 60.0
    audio_minutes = flux_users * minutes
    chars = aura_users * minutes * rate
    whole_run = SessionUsage(
        flux_audio_minutes=audio_minutes,
        aura_chars={model: chars} if chars else {},
        flux_requests=float(flux_users),
        aura_requests=float(aura_users),
        connections=float(flux_users + aura_users),
        duration_s=run_time_s,
    )
    priced = pricing.published.aura_neurons_per_1000_chars
    if model not in priced:
        raise ConfigError(
            f"no price for Aura model {model!r} in {pricing.path}; expected one of {sorted(priced)}"
        )
    # One "session" = the whole run, on one day: the projection's per-day numbers are the run's.
    projection = project(whole_run, 1.0, pricing)
    usd_per_neuron = pricing.published.usd_per_1000_neurons.value / 1000.0
    return SpendEstimate(
        flux_users=flux_users,
        aura_users=aura_users,
        run_time_s=run_time_s,
        flux_audio_minutes=audio_minutes,
        aura_model=model,
        aura_chars=chars,
        aura_chars_per_user_minute=rate,
        neurons=projection.neurons_per_session,
        usd_before_free_allocation=projection.neurons_per_session * usd_per_neuron,
        usd_after_free_allocation=projection.usd_per_day,
        free_neurons_per_day=projection.free_neurons_per_day,
    )


def _usd(amount: float) -> str:
    """Dollars with cents, or to a hundredth of a cent below one dollar (so $0.0036 shows)."""
    return f"${amount:,.2f}" if amount >= 1 or amount == 0 else f"${amount:,.4f}"


def format_estimate(estimate: SpendEstimate, target_label: str) -> str:
    """A few plain lines for the terminal: what the run will consume at most, and how to go on."""
    e = estimate
    return "\n".join(
        [
            f"This run sends real traffic to {target_label}. At most it will consume:",
            f"  Flux audio   {e.flux_audio_minutes:,.1f} audio minutes "
            f"({e.flux_users} Flux user(s) streaming for {e.run_time_s:,.0f} s)",
            f"  Aura text    {e.aura_chars:,.0f} characters of {e.aura_model} "
            f"({e.aura_users} Aura user(s) at {e.aura_chars_per_user_minute:,.0f} chars/min)",
            f"  Neurons      {e.neurons:,.0f} (the free allocation is "
            f"{e.free_neurons_per_day:,.0f} Neurons/day, shared by all models)",
            f"  Dollars      {_usd(e.usd_before_free_allocation)} if today's free allocation "
            f"is used up, {_usd(e.usd_after_free_allocation)} if it is untouched",
        ]
    )


def confirmed(*, yes: bool, environ: Mapping[str, str] | None = None) -> bool:
    """True when the user passed ``--yes`` or the environment has ``VOICELOAD_CONFIRM=1``."""
    env = os.environ if environ is None else environ
    return yes or env.get(CONFIRM_ENV_VAR, "").strip() == "1"


def spend_gate(
    *,
    is_real_target: bool,
    target_label: str,
    estimate: SpendEstimate,
    yes: bool,
    out: TextIO,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Print the estimate for a real target and return only if the run is confirmed.

    Does nothing for the emulator. Raises :class:`SpendNotConfirmed` (a one-line message with
    how to confirm) when a real target's run has neither ``--yes`` nor ``VOICELOAD_CONFIRM=1``.
    """
    if not is_real_target:
        return
    print(format_estimate(estimate, target_label), file=out)
    if not confirmed(yes=yes, environ=environ):
        raise SpendNotConfirmed(
            f"not starting a paid run against {target_label}: pass --yes "
            f"(or set {CONFIRM_ENV_VAR}=1) to accept the estimate above"
        )
    print("Confirmed; starting.", file=out)


def gate_run(
    *,
    is_real_target: bool,
    target_label: str,
    users: int,
    user_weights: Mapping[str, float],
    run_time_s: float,
    yes: bool,
    out: TextIO,
    aura_model: str | None = None,
    pricing: Pricing | None = None,
    environ: Mapping[str, str] | None = None,
    fixed_counts: Mapping[str, int] | None = None,
) -> SpendEstimate | None:
    """The whole gate for a load run, in one call: split the users (:func:`split_users`, with
    ``user_weights`` and ``fixed_counts``), estimate, print, confirm.

    ``aura_model`` may be a Workers AI id (``@cf/deepgram/aura-1``) or a pricing-file name.
    Returns the estimate (``None`` for the emulator, which costs nothing); raises
    :class:`SpendNotConfirmed` when a real target's run is not confirmed."""
    if not is_real_target:
        return None
    prices = pricing or load_pricing()
    flux_users, aura_users = split_users(users, user_weights, fixed_counts)
    model = aura_model_of(aura_model, prices.default_aura_model) if aura_model else None
    estimate = estimate_spend(flux_users=flux_users, aura_users=aura_users,
                              run_time_s=run_time_s, pricing=prices, aura_model=model)
    spend_gate(is_real_target=True, target_label=target_label, estimate=estimate, yes=yes,
               out=out, environ=environ)
    return estimate
