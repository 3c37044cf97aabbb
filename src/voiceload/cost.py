"""Cost and capacity of a voice workload: pricing file + measured usage -> $/day and peak load.

Pure: no clock, no network. Prices and limits come only from a pricing TOML file (the shipped
default is ``voiceload/data/pricing.toml``); every number there carries its source and the date it
was read, and this module copies nothing from it into code.

Two pricing models are projected side by side:

* **published** — Workers AI's published pricing: Flux is billed per audio minute and Aura per
  input character, both in Neurons, from one free allocation per day shared by all models; above
  it, Neurons cost ``usd_per_1000_neurons`` and the account needs Workers Paid (monthly minimum).
* **guide** — the setup guide's table: a number of free *requests* per day per service, then a
  price per 1,000 requests. Kept so the report can check the guide's "$0/month" claim.

A *voice session* is what the user's app calls one session: one Flux stream plus its spoken
replies. :func:`usage_from_sessions` derives the usage of one voice session from a run's
``sessions.csv`` rows.
"""

from __future__ import annotations

import datetime
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from voiceload.errors import ConfigError

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Sourced:
    """One number from the pricing file with where it came from."""

    value: float
    source: str
    read_on: datetime.date
    note: str = ""


@dataclass(frozen=True)
class PublishedPricing:
    name: str
    usd_per_1000_neurons: Sourced
    free_neurons_per_day: Sourced
    workers_paid_minimum_usd_per_month: Sourced
    gateway_usd_per_request: Sourced
    flux_neurons_per_audio_minute: Sourced
    flux_usd_per_audio_minute: Sourced
    aura_neurons_per_1000_chars: Mapping[str, Sourced]
    aura_usd_per_1000_chars: Mapping[str, Sourced]
    free_plan_exhaustion_text: str
    free_plan_exhaustion_code: int


@dataclass(frozen=True)
class GuidePricing:
    name: str
    claim_text: str
    claim_sessions_per_day: float
    claim_usd_per_month: float
    flux_free_requests_per_day: Sourced
    flux_usd_per_1000_requests: Sourced
    aura_free_requests_per_day: Sourced
    aura_usd_per_1000_requests: Sourced
    gateway_usd_per_request: Sourced


@dataclass(frozen=True)
class Pricing:
    """The whole pricing file, validated."""

    path: str
    default_aura_model: str
    published: PublishedPricing
    guide: GuidePricing
    limits: Mapping[str, Sourced]
    busy_hour_factor: Sourced
    days_per_month: Sourced


# ---------------------------------------------------------------------------------------------
# Loading the pricing file


def default_pricing_path() -> Path:
    """The pricing file shipped with voiceload."""
    return Path(str(resources.files("voiceload") / "data" / "pricing.toml"))


def load_pricing(path: Path | str | None = None) -> Pricing:
    """Read and validate a pricing TOML file (default: the shipped one).

    Raises :class:`ConfigError` with one line naming the file, the key and the expected form when
    the file is missing, is not TOML, or a key is absent or malformed.
    """
    file = Path(path) if path is not None else default_pricing_path()
    data = _read_toml(file)
    r = _Reader(str(file))
    pub = r.table(data, "published")
    aura_neurons = r.sourced_map(pub, "published.aura_neurons_per_1000_chars")
    aura_usd = r.sourced_map(pub, "published.aura_usd_per_1000_chars")
    exhaustion = r.table(pub, "published.free_plan_exhaustion")
    published = PublishedPricing(
        name=r.string(pub, "published.name"),
        usd_per_1000_neurons=r.sourced(pub, "published.usd_per_1000_neurons"),
        free_neurons_per_day=r.sourced(pub, "published.free_neurons_per_day"),
        workers_paid_minimum_usd_per_month=r.sourced(
            pub, "published.workers_paid_minimum_usd_per_month"
        ),
        gateway_usd_per_request=r.sourced(pub, "published.gateway_usd_per_request"),
        flux_neurons_per_audio_minute=r.sourced(pub, "published.flux_neurons_per_audio_minute"),
        flux_usd_per_audio_minute=r.sourced(pub, "published.flux_usd_per_audio_minute"),
        aura_neurons_per_1000_chars=aura_neurons,
        aura_usd_per_1000_chars=aura_usd,
        free_plan_exhaustion_text=r.string(exhaustion, "published.free_plan_exhaustion.text"),
        free_plan_exhaustion_code=int(
            r.number(exhaustion, "published.free_plan_exhaustion.error_code")
        ),
    )
    g = r.table(data, "guide")
    guide = GuidePricing(
        name=r.string(g, "guide.name"),
        claim_text=r.string(g, "guide.claim_text"),
        claim_sessions_per_day=r.number(g, "guide.claim_sessions_per_day"),
        claim_usd_per_month=r.number(g, "guide.claim_usd_per_month"),
        flux_free_requests_per_day=r.sourced(g, "guide.flux_free_requests_per_day"),
        flux_usd_per_1000_requests=r.sourced(g, "guide.flux_usd_per_1000_requests"),
        aura_free_requests_per_day=r.sourced(g, "guide.aura_free_requests_per_day"),
        aura_usd_per_1000_requests=r.sourced(g, "guide.aura_usd_per_1000_requests"),
        gateway_usd_per_request=r.sourced(g, "guide.gateway_usd_per_request"),
    )
    limits = r.sourced_map(data, "limits")
    for key in ("asr_requests_per_minute", "aura_chars_per_minute"):
        if key not in limits:
            raise ConfigError(f"{file}: key limits.{key} is missing; expected a table "
                              "{ value = <number>, source = \"<url>\", read_on = YYYY-MM-DD }")
    assumptions = r.table(data, "assumptions")
    default_model = r.string(data, "default_aura_model")
    if default_model not in aura_neurons:
        raise ConfigError(
            f"{file}: key default_aura_model: expected one of {sorted(aura_neurons)}, "
            f"got {default_model!r}"
        )
    return Pricing(
        path=str(file),
        default_aura_model=default_model,
        published=published,
        guide=guide,
        limits=limits,
        busy_hour_factor=r.sourced(assumptions, "assumptions.busy_hour_factor"),
        days_per_month=r.sourced(assumptions, "assumptions.days_per_month"),
    )


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{file}: file not found; pass an existing TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read ({exc.strerror}); check permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc})") from None


_SOURCED_FORM = '{ value = <number >= 0>, source = "<url>", read_on = YYYY-MM-DD }'


class _Reader:
    """Typed access to parsed TOML that raises one-line ConfigErrors naming file and key."""

    def __init__(self, file: str) -> None:
        self.file = file

    def _fail(self, key: str, expected: str, got: object) -> ConfigError:
        return ConfigError(f"{self.file}: key {key}: expected {expected}, got {got!r}")

    def _get(self, table: Mapping[str, Any], dotted: str, expected: str) -> Any:
        name = dotted.rsplit(".", 1)[-1]
        if name not in table:
            raise ConfigError(f"{self.file}: key {dotted} is missing; expected {expected}")
        return table[name]

    def table(self, table: Mapping[str, Any], dotted: str) -> Mapping[str, Any]:
        value = self._get(table, dotted, "a table")
        if not isinstance(value, dict):
            raise self._fail(dotted, "a table", value)
        return value

    def string(self, table: Mapping[str, Any], dotted: str) -> str:
        value = self._get(table, dotted, "a non-empty string")
        if not isinstance(value, str) or not value.strip():
            raise self._fail(dotted, "a non-empty string", value)
        return value

    def number(self, table: Mapping[str, Any], dotted: str) -> float:
        value = self._get(table, dotted, "a number >= 0")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self._fail(dotted, "a number >= 0", value)
        if not math.isfinite(value):
            raise self._fail(dotted, "a finite number >= 0", value)
        return float(value)

    def sourced(self, table: Mapping[str, Any], dotted: str) -> Sourced:
        entry = self._get(table, dotted, _SOURCED_FORM)
        if not isinstance(entry, dict):
            raise self._fail(dotted, _SOURCED_FORM, entry)
        value = self.number(entry, f"{dotted}.value")
        source = self.string(entry, f"{dotted}.source")
        read_on = self._get(entry, f"{dotted}.read_on", "a date YYYY-MM-DD")
        if not isinstance(read_on, datetime.date) or isinstance(read_on, datetime.datetime):
            raise self._fail(f"{dotted}.read_on", "a date YYYY-MM-DD (unquoted)", read_on)
        note = entry.get("note", "")
        if not isinstance(note, str):
            raise self._fail(f"{dotted}.note", "a string", note)
        return Sourced(value=value, source=source, read_on=read_on, note=note)

    def sourced_map(self, table: Mapping[str, Any], dotted: str) -> dict[str, Sourced]:
        sub = self.table(table, dotted)
        if not sub:
            raise self._fail(dotted, f"at least one entry name = {_SOURCED_FORM}", sub)
        return {name: self.sourced(sub, f"{dotted}.{name}") for name in sub}


# ---------------------------------------------------------------------------------------------
# Usage of one voice session


@dataclass(frozen=True)
class SessionUsage:
    """What one voice session consumes (a mean, a percentile, or a user's guess)."""

    flux_audio_minutes: float
    aura_chars: Mapping[str, float]  # Aura model -> input characters
    flux_requests: float  # Flux WebSockets opened (the guide counts "requests")
    aura_requests: float  # Aura WebSockets opened
    connections: float  # all WebSockets opened
    duration_s: float  # wall time the session holds its sockets

    @property
    def aura_chars_total(self) -> float:
        return float(sum(self.aura_chars.values()))


@dataclass(frozen=True)
class UsageStats:
    """Mean and p95 usage of one voice session measured from a run, and how it was derived."""

    mean: SessionUsage
    p95: SessionUsage
    basis: str  # one sentence: which rows, how combined
    sessions: int  # rows used


_AURA_MODEL = re.compile(r"aura-[0-9a-z-]*[0-9a-z]")


def aura_model_of(model_field: str, default_model: str) -> str:
    """The Aura model named in a ``sessions.csv`` ``model`` value, or ``default_model``.

    Accepts ``aura-2-en``, ``@cf/deepgram/aura-2-en`` or a combined label such as
    ``flux+aura-1``.
    """
    match = _AURA_MODEL.search(model_field.lower())
    return match.group(0) if match else default_model


def _float(row: Mapping[str, str], key: str) -> float:
    raw = (row.get(key) or "").strip()
    try:
        return float(raw) if raw else 0.0
    except ValueError:
        return 0.0


def _p95(values: Sequence[float]) -> float:
    """95th percentile, nearest-rank (a value that occurred), 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(0.95 * len(ordered)))
    return ordered[rank - 1]


def _component_usage(
    rows: Sequence[Mapping[str, str]], default_model: str
) -> tuple[SessionUsage, SessionUsage]:
    """Mean and p95 of each column over ``rows`` (each row one session)."""
    n = len(rows)
    flux_min = [_float(r, "flux_audio_s") / 60.0 for r in rows]
    chars = [_float(r, "aura_chars") for r in rows]
    conns = [_float(r, "connections") for r in rows]
    durations = [_float(r, "duration_s") for r in rows]
    flux_req: list[float] = []
    aura_req: list[float] = []
    for r, c in zip(rows, conns, strict=True):
        kind = (r.get("user_type") or "").strip()
        if kind == "flux":
            flux_req.append(c)
            aura_req.append(0.0)
        elif kind == "aura":
            flux_req.append(0.0)
            aura_req.append(c)
        else:  # agent: one Flux stream, the other sockets are Aura
            flux_req.append(min(1.0, c))
            aura_req.append(max(0.0, c - 1.0))
    models = sorted({aura_model_of(r.get("model") or "", default_model) for r in rows})

    def chars_by_model(pick: Sequence[float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in models:
            vals = [c for r, c in zip(rows, pick, strict=True)
                    if aura_model_of(r.get("model") or "", default_model) == m]
            out[m] = sum(vals) / n if n else 0.0
        return {m: v for m, v in out.items() if v > 0}

    mean = SessionUsage(
        flux_audio_minutes=sum(flux_min) / n if n else 0.0,
        aura_chars=chars_by_model(chars),
        flux_requests=sum(flux_req) / n if n else 0.0,
        aura_requests=sum(aura_req) / n if n else 0.0,
        connections=sum(conns) / n if n else 0.0,
        duration_s=sum(durations) / n if n else 0.0,
    )
    p95_chars = _p95(chars)
    p95_models = mean.aura_chars
    p95_by_model = (
        {max(p95_models, key=lambda m: p95_models[m]): p95_chars} if p95_chars > 0 else {}
    )
    p95 = SessionUsage(
        flux_audio_minutes=_p95(flux_min),
        aura_chars=p95_by_model,
        flux_requests=_p95(flux_req),
        aura_requests=_p95(aura_req),
        connections=_p95(conns),
        duration_s=_p95(durations),
    )
    return mean, p95


def _add(a: SessionUsage, b: SessionUsage) -> SessionUsage:
    chars = dict(a.aura_chars)
    for m, c in b.aura_chars.items():
        chars[m] = chars.get(m, 0.0) + c
    return SessionUsage(
        flux_audio_minutes=a.flux_audio_minutes + b.flux_audio_minutes,
        aura_chars=chars,
        flux_requests=a.flux_requests + b.flux_requests,
        aura_requests=a.aura_requests + b.aura_requests,
        connections=a.connections + b.connections,
        duration_s=max(a.duration_s, b.duration_s),
    )


def used_something(row: Mapping[str, str]) -> bool:
    """False for a failed session that opened no WebSocket (it used, and is billed, nothing).

    A session that failed after its handshake still counts: it may have streamed billable audio.
    """
    return (row.get("outcome") or "").strip() == "ok" or _float(row, "connections") > 0


def voice_session_groups(
    rows: Sequence[Mapping[str, str]],
) -> list[list[Mapping[str, str]]]:
    """The ``sessions.csv`` rows a voice session is made of, by component.

    ``[agent rows]`` when the run has ``agent`` sessions (one conversation = one voice session),
    else ``[flux rows, aura rows]`` (one of each = one voice session). Rows of failed sessions
    that opened no WebSocket are left out (:func:`used_something`). :func:`usage_from_sessions`,
    the report's sustained concurrency and :mod:`voiceload.compare`'s cost per session all use
    this one definition.
    """
    used = [r for r in rows if used_something(r)]
    kinds = [(r.get("user_type") or "").strip() for r in used]
    if "agent" in kinds:
        return [[r for r, k in zip(used, kinds, strict=True) if k == "agent"]]
    return [[r for r, k in zip(used, kinds, strict=True) if k == want]
            for want in ("flux", "aura")]


def usage_from_sessions(rows: Sequence[Mapping[str, str]], default_aura_model: str) -> UsageStats:
    """Usage of one voice session from ``sessions.csv`` rows (dicts of column -> text).

    * If the run has ``agent`` sessions (a whole conversation: Flux + Aura), a voice session is
      one of them; mean and p95 are over those rows.
    * Otherwise a voice session is one ``flux`` session plus one ``aura`` session: the mean is the
      sum of both means; the p95 is the sum of both p95s (an upper bound), and the session length
      is the longer of the two.

    Rows are grouped by :func:`voice_session_groups`: sessions that used something count whatever
    their outcome (a failed session may still have streamed billable audio); failed sessions that
    opened no WebSocket are left out of the means. Aura characters go to the model named in the
    row's ``model`` column, else ``default_aura_model`` (the p95 puts all characters on the model
    used most).
    """
    groups = voice_session_groups(rows)
    kinds = {"agent"} if len(groups) == 1 else {"flux", "aura"}
    unused = sum(1 for r in rows
                 if (r.get("user_type") or "").strip() in kinds and not used_something(r))
    left_out = (f"; {unused} failed sessions that opened no WebSocket left out" if unused
                else "")
    if len(groups) == 1:
        agents = groups[0]
        mean, p95 = _component_usage(agents, default_aura_model)
        basis = f"{len(agents)} agent sessions (one conversation = one voice session){left_out}"
        return UsageStats(mean=mean, p95=p95, basis=basis, sessions=len(agents))
    flux, aura = groups
    fm, fp = _component_usage(flux, default_aura_model)
    am, ap = _component_usage(aura, default_aura_model)
    basis = (
        f"one Flux session ({len(flux)} measured) + one Aura session ({len(aura)} measured) "
        f"= one voice session; p95 is the sum of both p95s (an upper bound){left_out}"
    )
    return UsageStats(mean=_add(fm, am), p95=_add(fp, ap), basis=basis,
                      sessions=len(flux) + len(aura))


def mean_open_sessions(rows: Sequence[Mapping[str, str]], t0_s: float, t1_s: float) -> float:
    """Time-averaged number of ``rows`` open over wall-clock ``[t0_s, t1_s)`` (0 for an empty
    window). A row is open from ``start_s`` for ``duration_s``; rows lacking either are skipped.
    """
    if t1_s <= t0_s:
        return 0.0
    busy_s = 0.0
    for r in rows:
        if not (r.get("start_s") or "").strip() or not (r.get("duration_s") or "").strip():
            continue
        start_s, length_s = _float(r, "start_s"), _float(r, "duration_s")
        busy_s += max(0.0, min(t1_s, start_s + length_s) - max(t0_s, start_s))
    return busy_s / (t1_s - t0_s)


def sustained_voice_sessions(
    rows: Sequence[Mapping[str, str]], t0_s: float, t1_s: float
) -> float:
    """Voice sessions a run held open on average over wall-clock ``[t0_s, t1_s)``.

    Counted on the same basis as :func:`usage_from_sessions` (:func:`voice_session_groups`), so
    it compares with the peak concurrency :func:`capacity` derives from that usage:

    * agent runs: the mean number of agent conversations open;
    * Flux + Aura runs: one voice session is one Flux stream *paired* with one Aura socket. Each
      component ``g`` ran at a rate of ``open_g / mean length_g`` sessions per second (Little's
      law); the run sustained only the slower of the two rates, and a voice session lasts the
      longer of the two mean lengths, so it held ``max(length) x min(rate)`` voice sessions.
      (With equal lengths that is ``min(open Flux, open Aura)``; never the sum of both.)

    A component with no sessions, or sessions of zero length, does not limit the result.
    """
    rates_per_s: list[float] = []
    lengths_s: list[float] = []
    for group in voice_session_groups(rows):
        if not group:
            continue
        length_s = sum(_float(r, "duration_s") for r in group) / len(group)
        if length_s <= 0:
            continue
        rates_per_s.append(mean_open_sessions(group, t0_s, t1_s) / length_s)
        lengths_s.append(length_s)
    if not rates_per_s:
        return 0.0
    return max(lengths_s) * min(rates_per_s)


# ---------------------------------------------------------------------------------------------
# Projection: S sessions/day under both pricing models


@dataclass(frozen=True)
class Projection:
    """Daily and monthly cost of ``sessions_per_day`` voice sessions of a given usage."""

    sessions_per_day: float
    days_per_month: float
    # published pricing
    flux_neurons_per_session: float
    aura_neurons_per_session: Mapping[str, float]
    neurons_per_session: float
    neurons_per_day: float
    free_neurons_per_day: float
    billable_neurons_per_day: float
    usd_per_day: float
    usd_per_month_usage: float  # days_per_month x usd_per_day
    workers_paid_minimum_usd_per_month: float
    usd_per_month: float  # usage + Workers Paid minimum (0 when within the free allocation)
    free_sessions_per_day: int  # whole sessions/day the free allocation covers
    within_free_allocation: bool
    # the setup guide's table
    guide_flux_free_requests_per_day: float
    guide_aura_free_requests_per_day: float
    guide_flux_requests_per_day: float
    guide_aura_requests_per_day: float
    guide_usd_per_day: float
    guide_usd_per_month: float
    # the guide's "$0/month" claim, always judged at the guide's own sessions/day
    # (claim_sessions_per_day in the pricing file), whatever sessions_per_day above is
    claim_sessions_per_day: float
    claim_neurons_per_day: float
    claim_usd_per_month: float
    claim_holds: bool
    verdict: str  # the claim's verdict in plain words
    free_plan_note: str


@dataclass(frozen=True)
class _Published:
    """Published-pricing cost of ``sessions_per_day`` sessions of ``neurons_per_session``."""

    neurons_per_day: float
    billable_neurons_per_day: float
    usd_per_day: float
    within_free_allocation: bool
    workers_paid_minimum_usd_per_month: float
    usd_per_month: float


def _published(neurons_per_session: float, sessions_per_day: float,
               pricing: Pricing) -> _Published:
    pub = pricing.published
    per_day = sessions_per_day * neurons_per_session
    free = pub.free_neurons_per_day.value
    billable = max(0.0, per_day - free)
    usd_day = billable * pub.usd_per_1000_neurons.value / 1000.0
    within_free = per_day <= free
    minimum = 0.0 if within_free else pub.workers_paid_minimum_usd_per_month.value
    return _Published(
        neurons_per_day=per_day, billable_neurons_per_day=billable, usd_per_day=usd_day,
        within_free_allocation=within_free, workers_paid_minimum_usd_per_month=minimum,
        usd_per_month=pricing.days_per_month.value * usd_day + minimum,
    )


def project(usage: SessionUsage, sessions_per_day: float, pricing: Pricing) -> Projection:
    """Project ``usage`` per session at ``sessions_per_day`` under both pricing models.

    Published: Neurons/day = S x (Flux minutes x Neurons/minute + sum over Aura models of
    chars / 1000 x Neurons/1k chars); billable = max(0, Neurons/day - free allocation);
    $/day = billable x $/1000 Neurons / 1000; $/month = days x $/day + Workers Paid minimum
    (the minimum applies only when usage exceeds the free allocation, which needs Workers Paid).
    Guide: requests/day per service beyond its free requests x $/1000 requests.
    The guide's "$0/month" claim (``claim_*``, ``verdict``) is judged in a second projection of
    the same usage at the guide's ``claim_sessions_per_day``, so it does not depend on
    ``sessions_per_day``.
    Raises :class:`ConfigError` for an Aura model the pricing file does not price.
    """
    if sessions_per_day < 0:
        raise ConfigError(f"sessions per day must be >= 0, got {sessions_per_day}")
    pub = pricing.published
    flux_n = usage.flux_audio_minutes * pub.flux_neurons_per_audio_minute.value
    aura_n: dict[str, float] = {}
    for model, chars in usage.aura_chars.items():
        if model not in pub.aura_neurons_per_1000_chars:
            raise ConfigError(
                f"{pricing.path}: no price for Aura model {model!r}; expected one of "
                f"{sorted(pub.aura_neurons_per_1000_chars)} under "
                "published.aura_neurons_per_1000_chars"
            )
        aura_n[model] = chars / 1000.0 * pub.aura_neurons_per_1000_chars[model].value
    per_session = flux_n + sum(aura_n.values())
    at_s = _published(per_session, sessions_per_day, pricing)
    free = pub.free_neurons_per_day.value
    days = pricing.days_per_month.value
    free_sessions = math.floor(free / per_session) if per_session > 0 else -1

    g = pricing.guide
    flux_req = sessions_per_day * usage.flux_requests
    aura_req = sessions_per_day * usage.aura_requests
    guide_day = (
        max(0.0, flux_req - g.flux_free_requests_per_day.value)
        * g.flux_usd_per_1000_requests.value / 1000.0
        + max(0.0, aura_req - g.aura_free_requests_per_day.value)
        * g.aura_usd_per_1000_requests.value / 1000.0
    )
    guide_month = days * guide_day

    claim_s = g.claim_sessions_per_day
    at_claim = _published(per_session, claim_s, pricing)
    claim_holds = at_claim.usd_per_month <= g.claim_usd_per_month
    covered = "any number of" if free_sessions < 0 else f"{free_sessions:,}"
    if claim_holds:
        verdict = (
            f"Holds at {claim_s:,.0f} sessions/day: {at_claim.neurons_per_day:,.0f} Neurons/day "
            f"fit in the free {free:,.0f} Neurons/day (which covers {covered} such "
            "sessions/day)."
        )
    else:
        verdict = (
            f"False: the guide's \"{g.claim_text}\" does not hold. {claim_s:,.0f} "
            f"sessions/day use {at_claim.neurons_per_day:,.0f} Neurons/day, "
            f"${at_claim.usd_per_day:,.2f}/day, ${days * at_claim.usd_per_day:,.0f} per "
            f"{days:.0f} days plus the "
            f"${pub.workers_paid_minimum_usd_per_month.value:,.0f}/month Workers Paid minimum; "
            f"the free {free:,.0f} Neurons/day cover only {covered} such sessions/day."
        )
    return Projection(
        sessions_per_day=sessions_per_day,
        days_per_month=days,
        flux_neurons_per_session=flux_n,
        aura_neurons_per_session=aura_n,
        neurons_per_session=per_session,
        neurons_per_day=at_s.neurons_per_day,
        free_neurons_per_day=free,
        billable_neurons_per_day=at_s.billable_neurons_per_day,
        usd_per_day=at_s.usd_per_day,
        usd_per_month_usage=days * at_s.usd_per_day,
        workers_paid_minimum_usd_per_month=at_s.workers_paid_minimum_usd_per_month,
        usd_per_month=at_s.usd_per_month,
        free_sessions_per_day=free_sessions,
        within_free_allocation=at_s.within_free_allocation,
        guide_flux_free_requests_per_day=g.flux_free_requests_per_day.value,
        guide_aura_free_requests_per_day=g.aura_free_requests_per_day.value,
        guide_flux_requests_per_day=flux_req,
        guide_aura_requests_per_day=aura_req,
        guide_usd_per_day=guide_day,
        guide_usd_per_month=guide_month,
        claim_sessions_per_day=claim_s,
        claim_neurons_per_day=at_claim.neurons_per_day,
        claim_usd_per_month=at_claim.usd_per_month,
        claim_holds=claim_holds,
        verdict=verdict,
        free_plan_note=pub.free_plan_exhaustion_text,
    )


# ---------------------------------------------------------------------------------------------
# Capacity: the peak load S sessions/day implies, and whether a run demonstrated it


@dataclass(frozen=True)
class Capacity:
    """Peak concurrency implied by S sessions/day and whether a run demonstrated it."""

    sessions_per_day: float
    mean_session_s: float
    busy_hour_factor: float
    formula: str
    peak_concurrency: float
    peak_sessions_per_minute: float
    peak_asr_connections_per_minute: float
    asr_limit_per_minute: float
    aura_chars_per_minute_per_session: float
    aura_chars_limit_per_minute: float
    sustained_concurrency: float | None  # None: no run, or the run did not meet its SLOs
    demonstrated: bool
    reasons: list[str] = field(default_factory=list)


def capacity(
    usage: SessionUsage,
    sessions_per_day: float,
    pricing: Pricing,
    *,
    busy_hour_factor: float | None = None,
    sustained_concurrency: float | None = None,
    run_ok: bool = False,
) -> Capacity:
    """Peak concurrency = mean session length (s) x S / 86,400 x busy-hour factor.

    ``sustained_concurrency`` is the mean number of sessions the run held open in its steady
    phase; ``run_ok`` says the run was valid and met its SLOs. The load is *demonstrated* when the
    run was ok, sustained at least the peak concurrency, and the peak Flux connection rate and the
    per-session Aura character rate stay within the published limits. ``reasons`` lists every
    condition that failed (empty when demonstrated).
    """
    factor = pricing.busy_hour_factor.value if busy_hour_factor is None else busy_hour_factor
    if factor <= 0:
        raise ConfigError(f"busy-hour factor must be > 0, got {factor}")
    peak_rate_per_s = sessions_per_day / SECONDS_PER_DAY * factor
    peak = usage.duration_s * peak_rate_per_s
    asr_per_min = peak_rate_per_s * 60.0 * usage.flux_requests
    asr_limit = pricing.limits["asr_requests_per_minute"].value
    chars_limit = pricing.limits["aura_chars_per_minute"].value
    chars_rate = usage.aura_chars_total / (usage.duration_s / 60.0) if usage.duration_s else 0.0
    reasons: list[str] = []
    if sustained_concurrency is None:
        reasons.append("no run met its SLOs, so no concurrency was demonstrated")
    elif not run_ok:
        reasons.append("the run was invalid or failed an SLO")
    elif sustained_concurrency < peak:
        reasons.append(
            f"the run sustained {sustained_concurrency:.1f} concurrent sessions, "
            f"below the {peak:.1f} needed at peak"
        )
    if asr_per_min > asr_limit:
        reasons.append(
            f"{asr_per_min:.1f} Flux connections/min at peak exceed the "
            f"{asr_limit:.0f} requests/min speech-recognition limit"
        )
    if chars_rate > chars_limit:
        reasons.append(
            f"{chars_rate:.0f} Aura characters/min per session exceed the "
            f"{chars_limit:.0f} characters/min per-socket throughput limit"
        )
    formula = (
        f"{usage.duration_s:.1f} s x {sessions_per_day:,.0f} / 86,400 x {factor:g} "
        f"= {peak:.2f} concurrent sessions"
    )
    return Capacity(
        sessions_per_day=sessions_per_day,
        mean_session_s=usage.duration_s,
        busy_hour_factor=factor,
        formula=formula,
        peak_concurrency=peak,
        peak_sessions_per_minute=peak_rate_per_s * 60.0,
        peak_asr_connections_per_minute=asr_per_min,
        asr_limit_per_minute=asr_limit,
        aura_chars_per_minute_per_session=chars_rate,
        aura_chars_limit_per_minute=chars_limit,
        sustained_concurrency=sustained_concurrency,
        demonstrated=not reasons,
        reasons=reasons,
    )
