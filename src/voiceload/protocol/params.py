"""Model parameter rules per route, sans-I/O: what each route accepts, in one table.

Two providers stand behind the routes voiceload drives:

- :attr:`Provider.WORKERS_AI`: Cloudflare Workers AI's ``@cf/deepgram/flux`` and
  ``@cf/deepgram/aura-*``, reached through AI Gateway
  (``/v1/{account}/{gateway}/workers-ai?model=...``) or directly
  (``/client/v4/accounts/{account}/ai/run/@cf/deepgram/...``). Both routes pass the query
  parameters to the same model input schema, so they share one set of rules.
- :attr:`Provider.DEEPGRAM`: Deepgram's own ``/v2/listen`` (Flux) and ``/v1/speak`` (Aura).

Everything that checks a model parameter asks this module: the run options and ``voiceload
check`` (through :func:`voiceload.targets.resolve_target`, before any load), the client when it
builds a URL (:func:`aura_format`), and the emulator when it answers an upgrade
(:func:`flux_query_problem`, :func:`aura_query_problem`): what one route accepts, the emulator
accepts on that route.

Sources (each rule's ``source`` names one):

- Workers AI Flux input schema, https://developers.cloudflare.com/workers-ai/models/flux/
  (``encoding`` enum ``linear16``; ``sample_rate`` digits; ``eot_threshold`` "Valid Values 0.5 -
  0.9", default 0.7; ``eager_eot_threshold`` 0.3 - 0.9; ``eot_timeout_ms`` digits, default 5000).
- Deepgram Flux, https://developers.deepgram.com/docs/flux/configuration (``eot_threshold`` 0.5 -
  1.0, 1.0 suppressing natural EndOfTurn; ``eager_eot_threshold`` 0.3 - 0.9; ``eot_timeout_ms``
  500 - 60000, default 5000) and https://developers.deepgram.com/docs/encoding (raw
  ``linear16``, ``linear32``, ``mulaw``, ``alaw``, ``opus``, ``ogg-opus``; omit ``encoding`` for
  containerized audio) with the sample rates of the Flux quickstart,
  https://developers.deepgram.com/docs/flux/quickstart (8000, 16000, 24000, 44100, 48000).
- Workers AI Aura input schema, https://developers.cloudflare.com/workers-ai/models/aura-1/
  (``encoding`` linear16, flac, mulaw, alaw, mp3, opus, aac; ``container`` none, wav, ogg;
  ``sample_rate`` a number).
- Deepgram Aura streaming, https://developers.deepgram.com/reference/text-to-speech/speak-streaming
  and https://developers.deepgram.com/docs/tts-media-output-settings (streaming ``encoding``
  linear16 (default), mulaw, alaw; ``sample_rate`` 8000, 16000, 24000 (default), 32000, 48000).

Choices where nothing is published (each marked ``[choice]`` in a rule's source):

- Workers AI's Flux schema only asks ``sample_rate`` to be digits; the model behind it is
  Deepgram's Flux, so its five documented rates are the rule on both providers.
- Workers AI's schema gives ``eot_timeout_ms`` no range; Deepgram's 500 - 60000 applies.
- Whether Workers AI's Aura WebSocket reads ``encoding`` / ``sample_rate`` from the query is not
  documented (the query carries model inputs on the gateway, and both are Aura inputs), so
  voiceload sends them there only when asked (``--aura-encoding``); Deepgram documents them, so
  they always go to ``/v1/speak``. The client checks the format of what arrives either way.
- For a ``ws://``/``wss://`` URL of the user's own (``provider`` ``None``), what stands behind it
  is unknown: a value either provider accepts passes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from voiceload.errors import ConfigError


class Provider(StrEnum):
    """Whose parameter rules a route follows."""

    WORKERS_AI = "workers-ai"  # AI Gateway's workers-ai route and api.cloudflare.com ai/run
    DEEPGRAM = "deepgram"  # api.deepgram.com /v2/listen and /v1/speak


#: ``--target`` name -> provider; a URL target (absent here) gets ``None``: the union of both.
TARGET_PROVIDERS: Mapping[str, Provider] = MappingProxyType(
    {
        "emulator": Provider.WORKERS_AI,  # voiceload drives the emulator on the gateway route
        "gateway": Provider.WORKERS_AI,
        "workers-ai": Provider.WORKERS_AI,
        "deepgram": Provider.DEEPGRAM,
    }
)

_CF_FLUX = "Workers AI Flux schema, https://developers.cloudflare.com/workers-ai/models/flux/"
_DG_FLUX = "Deepgram Flux, https://developers.deepgram.com/docs/flux/configuration"
_CF_AURA = "Workers AI Aura schema, https://developers.cloudflare.com/workers-ai/models/aura-1/"
_DG_AURA = (
    "Deepgram Aura streaming, https://developers.deepgram.com/docs/tts-media-output-settings"
)


@dataclass(frozen=True)
class Range:
    """A numeric parameter: inclusive bounds, the service default (None: off), integer or not."""

    low: float
    high: float
    default: float | None
    integer: bool
    source: str

    def describe(self) -> str:
        return f"{self.low:g} .. {self.high:g}"


@dataclass(frozen=True)
class FluxRules:
    """What one provider's Flux accepts in the upgrade query."""

    encodings: tuple[str, ...]
    encoding_required: bool  # False: no encoding means containerized audio (Deepgram)
    sample_rates: tuple[int, ...]
    eot_threshold: Range
    eager_eot_threshold: Range
    eot_timeout_ms: Range
    source: str


@dataclass(frozen=True)
class AuraRules:
    """What one provider's Aura WebSocket accepts for its output format."""

    encodings: tuple[str, ...]
    sample_rates: tuple[int, ...] | None  # None: any positive integer
    containers: tuple[str, ...]  # empty: no container parameter
    default_encoding: str
    default_sample_rate: int
    format_in_query: bool  # the client asks for its output format even when not told to
    source: str


FLUX_SAMPLE_RATES = (8000, 16000, 24000, 44100, 48000)
AURA_SAMPLE_RATES = (8000, 16000, 24000, 32000, 48000)
#: The rate voiceload asks for with each Aura encoding when none is given: 24 kHz for linear16
#: (the streaming default), 8 kHz (telephony, one of the listed rates) for G.711 [choice].
AURA_RATE_BY_ENCODING: Mapping[str, int] = MappingProxyType(
    {"linear16": 24000, "mulaw": 8000, "alaw": 8000}
)
EAGER_EOT_THRESHOLD = Range(0.3, 0.9, None, False, f"{_CF_FLUX}; {_DG_FLUX}")
EOT_TIMEOUT_MS = Range(500, 60000, 5000, True, f"{_DG_FLUX}; [choice] on Workers AI")

FLUX_RULES: Mapping[Provider, FluxRules] = MappingProxyType(
    {
        Provider.WORKERS_AI: FluxRules(
            encodings=("linear16",),
            encoding_required=True,
            sample_rates=FLUX_SAMPLE_RATES,  # [choice]: the schema says digits
            eot_threshold=Range(0.5, 0.9, 0.7, False, _CF_FLUX),
            eager_eot_threshold=EAGER_EOT_THRESHOLD,
            eot_timeout_ms=EOT_TIMEOUT_MS,
            source=_CF_FLUX,
        ),
        Provider.DEEPGRAM: FluxRules(
            encodings=("linear16", "linear32", "mulaw", "alaw", "opus", "ogg-opus"),
            encoding_required=False,
            sample_rates=FLUX_SAMPLE_RATES,
            eot_threshold=Range(0.5, 1.0, 0.7, False, _DG_FLUX),
            eager_eot_threshold=EAGER_EOT_THRESHOLD,
            eot_timeout_ms=EOT_TIMEOUT_MS,
            source=_DG_FLUX,
        ),
    }
)

AURA_RULES: Mapping[Provider, AuraRules] = MappingProxyType(
    {
        Provider.WORKERS_AI: AuraRules(
            encodings=("linear16", "flac", "mulaw", "alaw", "mp3", "opus", "aac"),
            sample_rates=None,  # "For some encodings, the sample rate is not configurable"
            containers=("none", "wav", "ogg"),
            default_encoding="linear16",  # [inf] the gateway example plays 16-bit 24 kHz
            default_sample_rate=24000,
            format_in_query=False,  # [choice]: query names undocumented for the WebSocket
            source=_CF_AURA,
        ),
        Provider.DEEPGRAM: AuraRules(
            encodings=("linear16", "mulaw", "alaw"),
            sample_rates=AURA_SAMPLE_RATES,
            containers=(),
            default_encoding="linear16",
            default_sample_rate=24000,
            format_in_query=True,  # documented query parameters of /v1/speak
            source=_DG_AURA,
        ),
    }
)

_DIGITS = re.compile(r"^[0-9]+$")


def provider_for_target(target: str) -> Provider | None:
    """The provider whose rules a ``--target`` follows; None for a URL (see the module doc)."""
    return TARGET_PROVIDERS.get(target)


def _route_name(provider: Provider | None) -> str:
    if provider is Provider.WORKERS_AI:
        return "Workers AI (gateway, workers-ai and emulator targets)"
    if provider is Provider.DEEPGRAM:
        return "Deepgram (target deepgram)"
    return "any route"


# --------------------------------------------------------------------------------------------
# The checks: a problem names the parameter, the value and what is expected
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One parameter a route does not accept."""

    name: str  # query name, e.g. eot_threshold
    value: str | None  # as written; None: missing
    expected: str  # e.g. "0.5 .. 0.9", "one of 8000, 16000"; missing: a hint such as
    #                " (Workers AI Flux takes linear16)", or ""

    def query_text(self) -> str:
        """In the words of a refused upgrade (the emulator's 400 body)."""
        if self.value is None:
            return f"missing required parameter {self.name!r}{self.expected}"
        return f"invalid value for {self.name!r}: {self.value!r}, expected {self.expected}"

    def option_text(self, route: str) -> str:
        """In the words of a refused command-line option."""
        flag = "--" + self.name.replace("_", "-")
        return f"{flag} {self.value} is not accepted on {route}: expected {self.expected}"


def _union_range(a: Range, b: Range) -> Range:
    return Range(min(a.low, b.low), max(a.high, b.high), a.default, a.integer, a.source)


def _flux_rules(provider: Provider | None) -> FluxRules:
    if provider is not None:
        return FLUX_RULES[provider]
    cf, dg = FLUX_RULES[Provider.WORKERS_AI], FLUX_RULES[Provider.DEEPGRAM]
    return FluxRules(
        encodings=dg.encodings,
        encoding_required=False,
        sample_rates=dg.sample_rates,
        eot_threshold=_union_range(cf.eot_threshold, dg.eot_threshold),
        eager_eot_threshold=dg.eager_eot_threshold,
        eot_timeout_ms=dg.eot_timeout_ms,
        source="either provider",
    )


def _number_problem(name: str, raw: str, rule: Range) -> Problem | None:
    expected = (f"an integer {rule.describe()}" if rule.integer else rule.describe())
    if rule.integer:
        if not _DIGITS.match(raw):
            return Problem(name, raw, expected)
        value = float(int(raw))
    else:
        try:
            value = float(raw)
        except ValueError:
            return Problem(name, raw, expected)
        if value != value:  # NaN
            return Problem(name, raw, expected)
    if not rule.low <= value <= rule.high:
        return Problem(name, raw, expected)
    return None


def _one_of(values: Sequence[object], quote: bool = False) -> str:
    items = [repr(v) if quote else str(v) for v in values]
    return items[0] if len(items) == 1 else "one of " + ", ".join(items)


def flux_problems(provider: Provider | None, values: Mapping[str, str]) -> list[Problem]:
    """Every way ``values`` (query name -> text, first occurrence) break ``provider``'s Flux
    rules. Unknown parameters pass: neither provider documents refusing them."""
    rules = _flux_rules(provider)
    problems: list[Problem] = []
    encoding = values.get("encoding")
    if encoding is None:
        if rules.encoding_required:
            problems.append(
                Problem("encoding", None, f" (Workers AI Flux takes {rules.encodings[0]})")
            )
    elif encoding not in rules.encodings:
        problems.append(Problem("encoding", encoding, _one_of(rules.encodings, quote=True)))
    rate = values.get("sample_rate")
    if rate is None:
        if rules.encoding_required or encoding is not None:  # raw audio needs its rate
            problems.append(Problem("sample_rate", None, ""))
    elif not _DIGITS.match(rate) or int(rate) not in rules.sample_rates:
        problems.append(Problem("sample_rate", rate, _one_of(rules.sample_rates)))
    for name, rule in (
        ("eot_threshold", rules.eot_threshold),
        ("eager_eot_threshold", rules.eager_eot_threshold),
        ("eot_timeout_ms", rules.eot_timeout_ms),
    ):
        raw = values.get(name)
        if raw is not None and (problem := _number_problem(name, raw, rule)) is not None:
            problems.append(problem)
    return problems


def aura_problems(provider: Provider | None, values: Mapping[str, str]) -> list[Problem]:
    """Every way ``values`` break ``provider``'s Aura output-format rules (``encoding``,
    ``sample_rate``, ``container``); other parameters pass."""
    candidates = [AURA_RULES[provider]] if provider is not None else list(AURA_RULES.values())
    best: list[Problem] | None = None
    for rules in candidates:  # a URL target: accepted when either provider accepts it
        problems: list[Problem] = []
        encoding = values.get("encoding")
        if encoding is not None and encoding not in rules.encodings:
            problems.append(Problem("encoding", encoding, _one_of(rules.encodings, quote=True)))
        rate = values.get("sample_rate")
        if rate is not None:
            allowed = rules.sample_rates
            if not _DIGITS.match(rate) or int(rate) == 0:
                problems.append(Problem("sample_rate", rate, "a positive integer"))
            elif allowed is not None and int(rate) not in allowed:
                problems.append(Problem("sample_rate", rate, _one_of(allowed)))
        container = values.get("container")
        if container is not None and container not in rules.containers:
            expected = _one_of(rules.containers, quote=True) if rules.containers else "none"
            problems.append(Problem("container", container, expected))
        if not problems:
            return []
        best = problems if best is None else best
    return best or []


def first_values(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Query pairs -> name: value of its first occurrence."""
    return dict(reversed(list(pairs)))


def flux_query_problem(provider: Provider, pairs: Sequence[tuple[str, str]]) -> str | None:
    """The first Flux query parameter ``provider`` refuses, as a refused upgrade says it."""
    problems = flux_problems(provider, first_values(pairs))
    return problems[0].query_text() if problems else None


def aura_query_problem(provider: Provider, pairs: Sequence[tuple[str, str]]) -> str | None:
    """The first Aura query parameter ``provider`` refuses, as a refused upgrade says it."""
    problems = aura_problems(provider, first_values(pairs))
    return problems[0].query_text() if problems else None


def _text(value: float | int | None) -> str | None:
    return None if value is None else f"{value:g}"


def check_options(
    provider: Provider | None,
    *,
    sample_rate: int,
    eot_threshold: float | None = None,
    eager_eot_threshold: float | None = None,
    eot_timeout_ms: int | None = None,
    aura_encoding: str | None = None,
    aura_sample_rate: int | None = None,
) -> None:
    """Refuse, with one line naming the option and the route, a model parameter the target's
    provider does not accept (:class:`~voiceload.errors.ConfigError`). Called before any load."""
    values = {
        k: v
        for k, v in {
            "encoding": "linear16",  # voiceload streams linear16 PCM
            "sample_rate": str(sample_rate),
            "eot_threshold": _text(eot_threshold),
            "eager_eot_threshold": _text(eager_eot_threshold),
            "eot_timeout_ms": None if eot_timeout_ms is None else str(eot_timeout_ms),
        }.items()
        if v is not None
    }
    route = _route_name(provider)
    for problem in flux_problems(provider, values):
        raise ConfigError(problem.option_text(route))
    aura_values = {
        k: v
        for k, v in {
            "encoding": aura_encoding,
            "sample_rate": None if aura_sample_rate is None else str(aura_sample_rate),
        }.items()
        if v is not None
    }
    for problem in aura_problems(provider, aura_values):
        name = "aura_" + problem.name
        raise ConfigError(Problem(name, problem.value, problem.expected).option_text(route))


def aura_format(
    provider: Provider, encoding: str | None, sample_rate: int | None
) -> list[tuple[str, str]]:
    """The ``encoding`` and ``sample_rate`` query pairs the client sends for Aura on
    ``provider``: none when nothing was asked for and the provider does not document them
    (Workers AI), else the encoding asked for (default linear16) with the rate asked for (default
    :data:`AURA_RATE_BY_ENCODING`), so the rate the client times audio at is the one asked for."""
    rules = AURA_RULES[provider]
    if encoding is None and sample_rate is None and not rules.format_in_query:
        return []
    encoding = encoding or rules.default_encoding
    rate = sample_rate or AURA_RATE_BY_ENCODING.get(encoding, rules.default_sample_rate)
    return [("encoding", encoding), ("sample_rate", str(rate))]
