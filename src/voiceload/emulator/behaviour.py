"""The emulator's latency and fault model: a strict TOML config, seeded so runs repeat (pure).

Nothing here touches a socket or a clock. The server asks :class:`Behaviour` for one
:class:`ConnectionPlan` per accepted upgrade (by 1-based connection number) and gets every random
choice of that connection from a generator seeded by ``(seed, connection number)``: the same
config and the same connection order give the same delays and faults, however the connections
interleave. With ``voiceload emulate --processes K`` each server process ``i`` (0 .. K-1) counts
its own connections and seeds by ``(seed, i, connection number)``, so the processes draw
different sequences; process 0 draws what a single process would.

Config file (every key optional; unknown keys are errors; see ``voiceload/data/emulator.toml``)::

    seed = 1
    [flux]                       # Flux stream settings
    idle_timeout_s = 10.0        # no audio for this long: close 1011 NET-0001
    update_interval_s = 0.25     # an Update for about every 0.25 s of received audio
    placeholder_words_per_s = 2.5
    vad_turn_gap_s = 0.5         # silence after which speech is the next reference turn
    eager_fraction = 0.5         # EagerEndOfTurn at this fraction of the end-of-turn delay
    [aura]                       # Aura synthesis settings
    chars_per_s = 14.0           # text length -> audio length
    leading_silence_ms = 100
    speed = 4.0                  # delivery speed, times real time
    chunk_ms = 100               # audio per binary frame
    sample_rate = 24000
    over_limit_flush = "keep_text"  # a Flush over 20 per 60 s: keep_text | drop_text | synthesize
    [latency.flux]               # distributions; a [latency.<model>] table overrides per model
    handshake = {kind = "fixed", ms = 0}
    first_response = {kind = "fixed", ms = 0}
    eot_delay = {kind = "lognormal", p50_ms = 260, p99_ms = 3100}  # end of speech -> EndOfTurn
    [latency.aura]
    handshake = {kind = "fixed", ms = 0}
    first_byte = {kind = "lognormal", p50_ms = 90, p99_ms = 200}
    [[faults]]
    kind = "unauthorized"        # see FAULT_KINDS
    every = 10                   # or: rate = 0.01, or: connections = [3, 7]
    service = "any"              # flux | aura | any
    after_messages = 3           # mid-stream faults: after this many messages sent
    delay_ms = 3000              # slow_handshake only
    [realism]                    # variability profile, off by default (see .realism)
    split_turn = 0.3             # probabilities: split_turn, merge_turns, flux_warning,
                                 # aura_warning, omit_optional, extra_fields

Distributions: ``fixed`` (``ms``), ``uniform`` (``low_ms``, ``high_ms``), ``lognormal``
(``p50_ms``, ``p99_ms``: median and 99th percentile, so ``sigma = ln(p99/p50) / z(0.99)``).
"""

from __future__ import annotations

import math
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from voiceload.emulator.realism import Realism, RealismSettings, parse_realism
from voiceload.errors import ConfigError
from voiceload.protocol.flux import UPDATE_INTERVAL_S

#: Workers AI model names the emulator serves, by service.
FLUX_MODELS = ("flux",)
AURA_MODELS = ("aura-1", "aura-2-en", "aura-2-es")
SERVICES = ("flux", "aura")

#: Upgrade-time faults: the handshake is refused with the real service's status and body.
UPGRADE_FAULTS = (
    "unauthorized",  # 401, AiGatewayError 2009
    "unknown_gateway",  # 400, AiGatewayError 2001
    "unknown_model",  # 400, Workers AI 5007
    "allocation_exhausted",  # 429, Workers AI 4006
    "rate_limited",  # 429 Too Many Requests (gateway rate limiting)
    "bad_param",  # 400 Bad Request (an invalid model parameter)
)
#: Faults after the upgrade, once ``after_messages`` messages were sent on the connection.
STREAM_FAULTS = (
    "disconnect",  # abrupt TCP close, no close frame
    "error_message",  # an Error message, then close
    "stall",  # keep reading, never send again
    "malformed_json",  # a text frame that is not JSON
)
#: ``slow_handshake`` delays the upgrade by ``delay_ms`` and then succeeds.
FAULT_KINDS = (*UPGRADE_FAULTS, *STREAM_FAULTS, "slow_handshake")

#: What a Flush over Aura's limit (20 per 60 s) does besides the Warning, which is documented
#: ("you will receive a warning message stating that we cannot process any more flush messages
#: until the 60-second time window has passed", PROTOCOLS.md §4.2). ``keep_text`` (default, the
#: documented reading): the Flush is not processed (no audio, no ``Flushed``) and its text stays
#: in the buffer for the next accepted Flush or Close. What the real service does with that text
#: is unconfirmed, so ``drop_text`` discards it and ``synthesize`` processes the Flush anyway.
OVER_LIMIT_FLUSH = ("keep_text", "drop_text", "synthesize")
OverLimitFlush = Literal["keep_text", "drop_text", "synthesize"]

DistributionKind = Literal["fixed", "uniform", "lognormal"]
_Z99 = 2.3263478740408408  # standard normal quantile of 0.99

_DIST_KEYS: Mapping[str, tuple[str, ...]] = {
    "fixed": ("ms",),
    "uniform": ("low_ms", "high_ms"),
    "lognormal": ("p50_ms", "p99_ms"),
}
_LATENCY_KEYS: Mapping[str, tuple[str, ...]] = {
    "flux": ("handshake", "first_response", "eot_delay"),
    "aura": ("handshake", "first_byte"),
}


@dataclass(frozen=True)
class Distribution:
    """A delay distribution in milliseconds; :meth:`sample_ms` draws from a given generator."""

    kind: DistributionKind
    a_ms: float  # fixed: the value; uniform: low; lognormal: p50
    b_ms: float = 0.0  # uniform: high; lognormal: p99

    def sample_ms(self, rng: random.Random) -> float:
        """One draw, >= 0 ms."""
        if self.kind == "fixed":
            return self.a_ms
        if self.kind == "uniform":
            return rng.uniform(self.a_ms, self.b_ms)
        if self.a_ms == 0.0:
            return 0.0
        sigma = math.log(self.b_ms / self.a_ms) / _Z99
        return rng.lognormvariate(math.log(self.a_ms), sigma)


@dataclass(frozen=True)
class FluxSettings:
    idle_timeout_s: float = 10.0
    update_interval_s: float = UPDATE_INTERVAL_S
    placeholder_words_per_s: float = 2.5
    vad_turn_gap_s: float = 0.5
    eager_fraction: float = 0.5


@dataclass(frozen=True)
class AuraSettings:
    chars_per_s: float = 14.0
    leading_silence_ms: float = 100.0
    speed: float = 4.0
    chunk_ms: int = 100
    sample_rate: int = 24000
    over_limit_flush: OverLimitFlush = "keep_text"  # see OVER_LIMIT_FLUSH


@dataclass(frozen=True)
class Latency:
    """Delay distributions of one model (keys absent for a service stay at 0 ms)."""

    handshake: Distribution = Distribution("fixed", 0.0)
    first_response: Distribution = Distribution("fixed", 0.0)
    eot_delay: Distribution = Distribution("lognormal", 260.0, 3100.0)
    first_byte: Distribution = Distribution("lognormal", 90.0, 200.0)


@dataclass(frozen=True)
class FaultRule:
    """Inject ``kind`` on connections chosen by ``rate``, ``every`` Nth, or ``connections``."""

    kind: str
    rate: float = 0.0
    every: int = 0
    connections: tuple[int, ...] = ()
    service: str = "any"
    after_messages: int = 3
    delay_ms: float = 3000.0

    def applies(self, connection_no: int, service: str, rng: random.Random) -> bool:
        """Whether this rule fires on that connection (draws from ``rng`` only for ``rate``)."""
        if self.service not in ("any", service):
            return False
        if connection_no in self.connections:
            return True
        if self.every and connection_no % self.every == 0:
            return True
        return self.rate > 0.0 and rng.random() < self.rate


@dataclass(frozen=True)
class EmulatorConfig:
    seed: int = 1
    flux: FluxSettings = FluxSettings()
    aura: AuraSettings = AuraSettings()
    latency: Mapping[str, Latency] = field(
        default_factory=lambda: {"flux": Latency(), "aura": Latency()}
    )
    faults: tuple[FaultRule, ...] = ()
    realism: RealismSettings = field(default_factory=RealismSettings)  # [realism]: off by default

    def latency_for(self, service: str, model: str) -> Latency:
        """The model's own table if configured, else its service's."""
        return self.latency.get(model) or self.latency[service]


@dataclass(frozen=True)
class ConnectionPlan:
    """Every random choice for one connection, fixed at upgrade time."""

    connection_no: int
    handshake_delay_ms: float
    upgrade_fault: str | None  # one of UPGRADE_FAULTS, or None
    stream_fault: FaultRule | None  # kind in STREAM_FAULTS, or None
    rng: random.Random  # further draws (eot delays, first byte) for this connection only


class Behaviour:
    """Seeded source of :class:`ConnectionPlan`s for one emulator process.

    ``process_index`` is the process's number among ``--processes K`` (0 .. K-1); it enters
    the seed of every connection's generator, except for process 0 (the single-process seed).
    """

    def __init__(self, config: EmulatorConfig, process_index: int = 0) -> None:
        if process_index < 0:
            raise ConfigError(f"process_index must be >= 0, got {process_index}")
        self.config = config
        self.process_index = process_index

    def plan(self, connection_no: int, service: str, model: str) -> ConnectionPlan:
        """The plan of connection ``connection_no`` (1-based) to ``service``/``model``.

        The first matching rule of each group wins: an upgrade fault (or ``slow_handshake``,
        which adds its ``delay_ms``) and, independently, one mid-stream fault.
        """
        rng = random.Random(self.connection_seed(connection_no))
        latency = self.config.latency_for(service, model)
        delay_ms = latency.handshake.sample_ms(rng)
        upgrade: str | None = None
        stream: FaultRule | None = None
        for rule in self.config.faults:
            if not rule.applies(connection_no, service, rng):
                continue
            if rule.kind == "slow_handshake":
                delay_ms += rule.delay_ms
            elif rule.kind in UPGRADE_FAULTS and upgrade is None:
                upgrade = rule.kind
            elif rule.kind in STREAM_FAULTS and stream is None:
                stream = rule
        return ConnectionPlan(connection_no, delay_ms, upgrade, stream, rng)

    def realism(self, connection_no: int) -> Realism | None:
        """Connection ``connection_no``'s variability draws, or None when ``[realism]`` is off
        (its own generator: the latency and fault draws stay the same either way)."""
        if not self.config.realism.enabled:
            return None
        return Realism(self.config.realism, self.connection_seed(connection_no))

    def connection_seed(self, connection_no: int) -> str:
        """The seed of connection ``connection_no``'s generator in this process."""
        if self.process_index == 0:
            return f"{self.config.seed}:{connection_no}"
        return f"{self.config.seed}:p{self.process_index}:{connection_no}"


# --------------------------------------------------------------------------------------------
# Strict config parsing: every error is one line naming the key and the allowed values
# --------------------------------------------------------------------------------------------


def load_config(path: Path | str | None) -> EmulatorConfig:
    """Read and validate a TOML config file; ``None`` gives the defaults."""
    if path is None:
        return EmulatorConfig()
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read emulator config {p}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"emulator config {p} is not valid TOML: {exc}") from None
    return parse_config(raw)


def parse_config(raw: Mapping[str, Any]) -> EmulatorConfig:
    """Validate a decoded config table; raises :class:`ConfigError` on the first bad key."""
    _only(raw, "", ("seed", "flux", "aura", "latency", "faults", "realism"))
    seed = _int(raw, "seed", 1, "", minimum=0)
    flux = _flux_settings(_table(raw, "flux", ""))
    aura = _aura_settings(_table(raw, "aura", ""))
    latency = _latency_tables(_table(raw, "latency", ""))
    faults_raw = raw.get("faults", [])
    if not isinstance(faults_raw, list):
        raise ConfigError("emulator config: faults must be an array of tables ([[faults]])")
    faults = tuple(_fault(item, i) for i, item in enumerate(faults_raw))
    realism = parse_realism(_table(raw, "realism", ""))
    return EmulatorConfig(seed, flux, aura, latency, faults, realism)


def _flux_settings(t: Mapping[str, Any]) -> FluxSettings:
    d = FluxSettings()
    _only(
        t,
        "flux.",
        (
            "idle_timeout_s",
            "update_interval_s",
            "placeholder_words_per_s",
            "vad_turn_gap_s",
            "eager_fraction",
        ),
    )
    return FluxSettings(
        idle_timeout_s=_num(t, "idle_timeout_s", d.idle_timeout_s, "flux.", positive=True),
        update_interval_s=_num(t, "update_interval_s", d.update_interval_s, "flux.", positive=True),
        placeholder_words_per_s=_num(
            t, "placeholder_words_per_s", d.placeholder_words_per_s, "flux.", positive=True
        ),
        vad_turn_gap_s=_num(t, "vad_turn_gap_s", d.vad_turn_gap_s, "flux.", positive=True),
        eager_fraction=_fraction(t, "eager_fraction", d.eager_fraction, "flux."),
    )


def _aura_settings(t: Mapping[str, Any]) -> AuraSettings:
    d = AuraSettings()
    _only(
        t,
        "aura.",
        (
            "chars_per_s",
            "leading_silence_ms",
            "speed",
            "chunk_ms",
            "sample_rate",
            "over_limit_flush",
        ),
    )
    over_limit = t.get("over_limit_flush", d.over_limit_flush)
    if over_limit not in OVER_LIMIT_FLUSH:
        raise ConfigError(
            "emulator config: aura.over_limit_flush must be one of"
            f" {', '.join(OVER_LIMIT_FLUSH)}, got {over_limit!r}"
        )
    rate = _int(t, "sample_rate", d.sample_rate, "aura.", minimum=1)
    if rate not in (8000, 16000, 24000, 32000, 48000):
        raise ConfigError(
            f"emulator config: aura.sample_rate must be one of 8000, 16000, 24000, 32000, 48000,"
            f" got {rate}"
        )
    return AuraSettings(
        chars_per_s=_num(t, "chars_per_s", d.chars_per_s, "aura.", positive=True),
        leading_silence_ms=_num(
            t, "leading_silence_ms", d.leading_silence_ms, "aura.", positive=False
        ),
        speed=_num(t, "speed", d.speed, "aura.", positive=True),
        chunk_ms=_int(t, "chunk_ms", d.chunk_ms, "aura.", minimum=10),
        sample_rate=rate,
        over_limit_flush=over_limit,
    )


def _latency_tables(t: Mapping[str, Any]) -> dict[str, Latency]:
    allowed = tuple(dict.fromkeys((*SERVICES, *FLUX_MODELS, *AURA_MODELS)))
    _only(t, "latency.", allowed)
    out: dict[str, Latency] = {}
    for service in SERVICES:
        out[service] = _latency(_table(t, service, "latency."), service, Latency(), service)
    for model in (*FLUX_MODELS, *AURA_MODELS):
        if model in t and model not in SERVICES:
            service = "flux" if model in FLUX_MODELS else "aura"
            out[model] = _latency(_table(t, model, "latency."), model, out[service], service)
    return out


def _latency(t: Mapping[str, Any], name: str, base: Latency, service: str) -> Latency:
    prefix = f"latency.{name}."
    keys = _LATENCY_KEYS[service]
    _only(t, prefix, keys)
    changes = {key: _distribution(t[key], prefix + key) for key in keys if key in t}
    return replace(base, **changes)


def _distribution(value: object, where: str) -> Distribution:
    if not isinstance(value, dict):
        raise ConfigError(
            f'emulator config: {where} must be a table like {{kind = "fixed", ms = 0}}'
        )
    kind = value.get("kind")
    if kind not in ("fixed", "uniform", "lognormal"):
        raise ConfigError(
            f"emulator config: {where}.kind must be one of fixed, uniform, lognormal, got {kind!r}"
        )
    needed = _DIST_KEYS[str(kind)]
    _only(value, where + ".", ("kind", *needed))
    nums = []
    for key in needed:
        if key not in value:
            raise ConfigError(f"emulator config: {where} ({kind}) needs {', '.join(needed)}")
        nums.append(_num(value, key, 0.0, where + ".", positive=False))
    if kind == "fixed":
        return Distribution("fixed", nums[0])
    if nums[1] < nums[0] or (kind == "lognormal" and nums[0] <= 0):
        low, high = needed
        raise ConfigError(
            f"emulator config: {where} needs 0 < {low} <= {high}, got {nums[0]} and {nums[1]}"
            if kind == "lognormal"
            else f"emulator config: {where} needs {low} <= {high}, got {nums[0]} and {nums[1]}"
        )
    return Distribution("uniform" if kind == "uniform" else "lognormal", nums[0], nums[1])


def _fault(item: object, i: int) -> FaultRule:
    where = f"faults[{i}]."
    if not isinstance(item, dict):
        raise ConfigError(f"emulator config: faults[{i}] must be a table")
    _only(
        item,
        where,
        ("kind", "rate", "every", "connections", "service", "after_messages", "delay_ms"),
    )
    kind = item.get("kind")
    if kind not in FAULT_KINDS:
        raise ConfigError(
            f"emulator config: {where}kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}"
        )
    service = item.get("service", "any")
    if service not in ("any", *SERVICES):
        raise ConfigError(
            f"emulator config: {where}service must be one of any, flux, aura, got {service!r}"
        )
    rate = _fraction(item, "rate", 0.0, where)
    every = _int(item, "every", 0, where, minimum=0)
    conns = item.get("connections", [])
    if not isinstance(conns, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in conns
    ):
        raise ConfigError(
            f"emulator config: {where}connections must be a list of connection numbers >= 1"
        )
    if not (rate or every or conns):
        raise ConfigError(
            f"emulator config: faults[{i}] ({kind}) needs one of rate, every, connections"
        )
    return FaultRule(
        kind=kind,
        rate=rate,
        every=every,
        connections=tuple(conns),
        service=service,
        after_messages=_int(item, "after_messages", 3, where, minimum=0),
        delay_ms=_num(item, "delay_ms", 3000.0, where, positive=False),
    )


def _only(t: Mapping[str, Any], prefix: str, allowed: tuple[str, ...]) -> None:
    for key in t:
        if key not in allowed:
            raise ConfigError(
                f"emulator config: unknown key {prefix}{key} (allowed: {', '.join(allowed)})"
            )


def _table(t: Mapping[str, Any], key: str, prefix: str) -> Mapping[str, Any]:
    value = t.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"emulator config: {prefix}{key} must be a table ([{prefix}{key}])")
    return value


def _num(t: Mapping[str, Any], key: str, default: float, prefix: str, *, positive: bool) -> float:
    if key not in t:
        return default
    value = t[key]
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"emulator config: {prefix}{key} must be a number {bound}, got {value!r}")
    return float(value)


def _fraction(t: Mapping[str, Any], key: str, default: float, prefix: str) -> float:
    value = _num(t, key, default, prefix, positive=False)
    if value > 1.0:
        raise ConfigError(f"emulator config: {prefix}{key} must be between 0 and 1, got {value}")
    return value


def _int(t: Mapping[str, Any], key: str, default: int, prefix: str, *, minimum: int) -> int:
    if key not in t:
        return default
    value = t[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"emulator config: {prefix}{key} must be an integer >= {minimum}, got {value!r}"
        )
    return value
