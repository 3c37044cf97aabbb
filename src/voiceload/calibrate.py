"""Fit the emulator's latency model to a measured run, so CI against the emulator mirrors it (pure).

``voiceload calibrate RUN_DIR -o emulator.toml`` (:mod:`voiceload.cli.calibrate`) reads a run's
steady-phase histograms and its ``sessions.csv`` and writes an emulator config
(:mod:`voiceload.emulator.behaviour`'s format) whose delays reproduce what the run measured.
Everything here is arithmetic on numbers already read; nothing touches a file or a clock.

What each emulator setting is fitted from, and what the emulator adds on its own (subtracted
first, so a run against the calibrated emulator measures what the original run measured):

- ``latency.flux.handshake`` from ``flux.connect`` (a loopback's own ~1 ms stays in);
- ``latency.flux.first_response`` from ``flux.first_response``; the emulator's first ``Update``
  goes out with the frame completing 0.25 s of audio whatever the setting, so a median at or
  under that time (+ :data:`LOOPBACK_MS`) means ``fixed 0``;
- ``latency.flux.eot_delay`` from ``flux.eot`` less half a frame: the emulator counts the delay
  from the arrival of the frame holding the last speech sample, the metric from that sample's
  scheduled time, so the frame adds 0 .. 1 frame (half on average);
- ``latency.aura.handshake`` from ``aura.connect``; ``latency.aura.first_byte`` from
  ``aura.ttfb``;
- ``aura.leading_silence_ms``: p50 of ``aura.ttfa`` less p50 of ``aura.ttfb``;
- ``aura.speed``: audio seconds per request (``sessions.csv``) over the mean delivery time,
  mean ``aura.flushed`` less mean ``aura.ttfb``;
- ``aura.chars_per_s``: characters over audio seconds less the leading silence
  (``sessions.csv``).

A delay becomes ``{kind = "lognormal", p50_ms, p99_ms}`` through the measured p50 and p90 (the
p90 is better sampled than the p99 in a short run): ``sigma = ln(p90 / p50) / z(0.90)`` and
``p99 = p50 * exp(z(0.99) * sigma)``; it becomes ``{kind = "fixed"}`` when the spread is under
1 %, and ``fixed 0`` when the median is within what a loopback adds by itself
(:data:`LOOPBACK_MS`) or, for ``first_response``, within the emulator's own first ``Update``
time. A metric with fewer than :data:`MIN_SAMPLES` steady samples keeps the emulator's default
and is named in the result's ``notes``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from voiceload.emulator.behaviour import AuraSettings, FluxSettings, Latency

#: Fewer steady samples than this: the metric is not fitted (its default stays).
MIN_SAMPLES: Final = 20
#: A median at or under this is what a loopback connection costs by itself: nothing to emulate.
LOOPBACK_MS: Final = 5.0
Z90: Final = 1.2815515655446004  # standard normal quantile of 0.90
Z99: Final = 2.3263478740408408  # standard normal quantile of 0.99
_SPREAD_FOR_FIXED: Final = 1.01  # p90 / p50 under this: a fixed delay


@dataclass(frozen=True)
class Quantiles:
    """One metric's steady-phase numbers, in ms."""

    count: int
    p50_ms: float
    p90_ms: float
    mean_ms: float


@dataclass
class Calibration:
    """The fitted config (``config``, emulator TOML as a mapping) and one note per decision."""

    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def fit_delay(p50_ms: float, p90_ms: float) -> dict[str, Any]:
    """The emulator distribution through a median and a 90th percentile (ms, already shifted).

    ``fixed 0`` for a median <= 0; ``fixed`` at the median when the spread is under 1 %; else a
    lognormal, written by its median and 99th percentile as the emulator config takes it."""
    if p50_ms <= 0.0:
        return {"kind": "fixed", "ms": 0.0}
    high = max(p90_ms, p50_ms)
    if high / p50_ms < _SPREAD_FOR_FIXED:
        return {"kind": "fixed", "ms": round(p50_ms, 1)}
    sigma = math.log(high / p50_ms) / Z90
    return {"kind": "lognormal", "p50_ms": round(p50_ms, 1),
            "p99_ms": round(p50_ms * math.exp(Z99 * sigma), 1)}


def _delay(
    out: Calibration, where: str, measured: Quantiles | None, metric: str, *,
    shift_ms: float = 0.0, zero_below_ms: float = LOOPBACK_MS, default: Any = None,
) -> dict[str, Any] | None:
    """Fit one delay from ``measured`` less ``shift_ms``; ``None`` (default kept) and a note
    when there are too few samples."""
    if measured is None or measured.count < MIN_SAMPLES:
        count = 0 if measured is None else measured.count
        out.notes.append(f"{where}: {metric} has {count} steady samples (< {MIN_SAMPLES}); "
                         f"the emulator default {_describe(default)} is kept")
        return None
    if measured.p50_ms <= zero_below_ms:
        out.notes.append(f"{where}: {metric} p50 {measured.p50_ms:.1f} ms is within the"
                         f" {zero_below_ms:g} ms the emulator adds by itself -> fixed 0")
        return {"kind": "fixed", "ms": 0.0}
    fitted = fit_delay(measured.p50_ms - shift_ms, measured.p90_ms - shift_ms)
    shift = f" less {shift_ms:g} ms" if shift_ms else ""
    out.notes.append(f"{where}: {metric} p50 {measured.p50_ms:.1f} / p90 {measured.p90_ms:.1f}"
                     f" ms ({measured.count} samples){shift} -> {_describe(fitted)}")
    return fitted


def _describe(dist: Any) -> str:
    if isinstance(dist, dict):
        return "{" + ", ".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v:g}"
                               for k, v in dist.items()) + "}"
    return "(default)" if dist is None else str(dist)


def _float(row: Mapping[str, str], key: str) -> float:
    try:
        value = float(row.get(key) or 0.0)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0


def calibrate(
    measured: Mapping[str, Quantiles], sessions: Sequence[Mapping[str, str]], *,
    frame_ms: int = 80, aura_requests: int = 0,
) -> Calibration:
    """The emulator config reproducing ``measured`` (metric -> steady quantiles, ms).

    ``sessions`` are the run's ``sessions.csv`` rows (Aura characters and audio seconds);
    ``aura_requests`` is how many Aura requests the run made (``aura.ttfb`` samples over all
    phases, as ``sessions.csv`` covers all phases); ``frame_ms`` the run's Flux frame size.
    """
    out = Calibration()
    default = Latency()
    flux_defaults = FluxSettings()
    # The first Update goes out with the frame completing update_interval_s of audio: that
    # many frames after the first one's due time, whatever first_response is.
    interval_ms = flux_defaults.update_interval_s * 1000.0
    first_update_ms = (math.ceil(interval_ms / frame_ms) - 1) * frame_ms
    flux: dict[str, Any] = {}
    aura: dict[str, Any] = {}
    for table, key, metric, kwargs in (
        (flux, "handshake", "flux.connect", {}),
        (flux, "first_response", "flux.first_response",
         {"zero_below_ms": first_update_ms + LOOPBACK_MS}),
        (flux, "eot_delay", "flux.eot", {"shift_ms": frame_ms / 2.0}),
        (aura, "handshake", "aura.connect", {}),
        (aura, "first_byte", "aura.ttfb", {}),
    ):
        service = "flux" if table is flux else "aura"
        fitted = _delay(out, f"latency.{service}.{key}", measured.get(metric), metric,
                        default=_as_toml(getattr(default, key)), **kwargs)
        if fitted is not None:
            table[key] = fitted
    out.config["latency"] = {"flux": flux, "aura": aura}
    settings = _aura_settings(out, measured, sessions, aura_requests)
    if settings:
        out.config["aura"] = settings
    return out


def _as_toml(dist: Any) -> dict[str, Any]:
    if dist.kind == "fixed":
        return {"kind": "fixed", "ms": dist.a_ms}
    if dist.kind == "uniform":
        return {"kind": "uniform", "low_ms": dist.a_ms, "high_ms": dist.b_ms}
    return {"kind": "lognormal", "p50_ms": dist.a_ms, "p99_ms": dist.b_ms}


def _aura_settings(
    out: Calibration, measured: Mapping[str, Quantiles], sessions: Sequence[Mapping[str, str]],
    aura_requests: int,
) -> dict[str, float]:
    """Leading silence, delivery speed and characters per second of the Aura audio."""
    ttfb, ttfa, flushed = (measured.get(m) for m in ("aura.ttfb", "aura.ttfa", "aura.flushed"))
    defaults = AuraSettings()
    settings: dict[str, float] = {}
    if not (ttfb and ttfa and ttfb.count >= MIN_SAMPLES and ttfa.count >= MIN_SAMPLES):
        out.notes.append("aura: too few aura.ttfb / aura.ttfa samples; leading_silence_ms, speed"
                         " and chars_per_s keep their defaults")
        return settings
    lead_ms = max(0.0, ttfa.p50_ms - ttfb.p50_ms)
    settings["leading_silence_ms"] = round(lead_ms, 1)
    out.notes.append(f"aura.leading_silence_ms: aura.ttfa p50 - aura.ttfb p50 = {lead_ms:.1f}")
    audio_s = sum(_float(r, "aura_audio_s") for r in sessions)
    chars = sum(_float(r, "aura_chars") for r in sessions)
    if aura_requests < MIN_SAMPLES or audio_s <= 0.0:
        out.notes.append(f"aura.speed, aura.chars_per_s: {aura_requests} Aura requests with audio"
                         f" (< {MIN_SAMPLES}); defaults kept")
        return settings
    per_request_s = audio_s / aura_requests
    if flushed is not None and flushed.count >= MIN_SAMPLES and flushed.mean_ms > ttfb.mean_ms:
        speed = per_request_s / ((flushed.mean_ms - ttfb.mean_ms) / 1000.0)
        settings["speed"] = round(speed, 3)
        out.notes.append(f"aura.speed: {per_request_s:.3f} s of audio per request delivered in"
                         f" {flushed.mean_ms - ttfb.mean_ms:.1f} ms (mean aura.flushed - mean"
                         f" aura.ttfb) -> {speed:.3f} x real time")
    else:
        out.notes.append(f"aura.speed: too few aura.flushed samples; default {defaults.speed:g}")
    speech_s = audio_s - aura_requests * lead_ms / 1000.0
    if chars > 0 and speech_s > 0:
        settings["chars_per_s"] = round(chars / speech_s, 3)
        out.notes.append(f"aura.chars_per_s: {chars:.0f} characters / {speech_s:.2f} s of speech"
                         f" -> {chars / speech_s:.3f}")
    return settings
