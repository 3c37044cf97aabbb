"""Where load goes: a ``--target`` name (or URL) -> the URL, headers and subprotocols to connect.

Pure: no sockets, no clock, no environment (credentials come in as a
:class:`~voiceload.credentials.Credentials`). One :func:`resolve_target` call gives a
:class:`Target` with one :class:`Endpoint` for Flux and one for Aura.

===============  ==========================================================================
target           Flux / Aura endpoint, auth
===============  ==========================================================================
``emulator``     the gateway route, on the emulator's URL (``emulator_url``); the emulator's
                 account, gateway and token
``gateway``      ``wss://gateway.ai.cloudflare.com/v1/{account}/{gateway}/workers-ai?model=…``;
                 ``cf-aig-authorization: <token>`` (raw, ``Bearer`` or subprotocol form)
``workers-ai``   ``wss://api.cloudflare.com/client/v4/accounts/{account}/ai/run/@cf/deepgram/…``;
                 ``Authorization: Bearer <token>``
``deepgram``     ``wss://api.deepgram.com/v2/listen`` and ``/v1/speak``;
                 ``Authorization: Token <DEEPGRAM_API_KEY>``
``ws://…``,      the user's own Worker endpoint, used as given (it is assumed to relay the
``wss://…``      Flux/Aura protocol); optional ``--header 'K: V'`` headers, which are treated
                 as secrets
===============  ==========================================================================

Model parameters travel as query parameters on every route (protocols.md §1.1, §1.3, §3.2,
§4.4, §6); ``keyterm`` repeats. Where the wire name is unconfirmed (Aura's voice on Workers AI,
protocols.md §8 q6) it is a field of :class:`ModelParams` the user can change, and
``extra_flux_params`` / ``extra_aura_params`` add any other pair.

``base_url`` (``--base-url ws://127.0.0.1:PORT``) replaces the scheme and host of the gateway,
workers-ai and deepgram routes while keeping each route's path, so every route can be exercised
against the emulator; production URLs are always ``wss://``. For ``wss://`` the TLS context
always verifies certificates and host names (:func:`ssl_context_for`).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final
from urllib.parse import SplitResult, quote, urlencode, urlsplit, urlunsplit

from voiceload.credentials import (
    ACCOUNT_ID_VAR,
    API_TOKEN_VAR,
    DEEPGRAM_KEY_VAR,
    GATEWAY_ID_VAR,
    Credentials,
    Secret,
    register_secret,
)
from voiceload.errors import ConfigError

GATEWAY_BASE: Final = "wss://gateway.ai.cloudflare.com"
WORKERS_AI_BASE: Final = "wss://api.cloudflare.com"
DEEPGRAM_BASE: Final = "wss://api.deepgram.com"

# What `voiceload emulate` accepts unless told otherwise (its --account/--gateway/--token).
EMULATOR_ACCOUNT_ID: Final = "0" * 32
EMULATOR_GATEWAY_ID: Final = "voiceload-emulator"
EMULATOR_TOKEN: Final = "voiceload-emulator-token"

NAMED_TARGETS: Final = ("emulator", "gateway", "workers-ai", "deepgram")
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})

# Workers AI's default speaker per Aura model (protocols.md §4.4), for Deepgram model names.
_DEFAULT_AURA_VOICE: Final = {"aura-1": "angus", "aura-2-en": "luna", "aura-2-es": "aquila"}


class AuthForm(StrEnum):
    """How the gateway token is sent (protocols.md §1.2)."""

    RAW = "raw"  # cf-aig-authorization: <token>   (the Workers AI Deepgram examples)
    BEARER = "bearer"  # cf-aig-authorization: Bearer <token>
    SUBPROTOCOL = "subprotocol"  # Sec-WebSocket-Protocol: cf-aig-authorization.<token>


class Service(StrEnum):
    FLUX = "flux"
    AURA = "aura"


@dataclass(frozen=True)
class ModelParams:
    """Model parameters for both services. ``None`` means "not sent: the service default".

    ``flux_model`` / ``aura_model`` are Workers AI ids (``@cf/deepgram/aura-2-en``); the
    ``deepgram`` target maps them to Deepgram's names (``flux-general-en``,
    ``aura-2-luna-en``) unless ``deepgram_flux_model`` / ``deepgram_aura_model`` are set.
    ``aura_voice_param`` is the query name of the voice on Workers AI routes (``speaker`` in the
    Workers AI input schema; unconfirmed for WebSockets)."""

    flux_model: str = "@cf/deepgram/flux"
    encoding: str = "linear16"
    sample_rate: int = 16_000
    eot_threshold: float | None = None
    eager_eot_threshold: float | None = None
    eot_timeout_ms: int | None = None
    keyterms: tuple[str, ...] = ()
    aura_model: str = "@cf/deepgram/aura-1"
    aura_voice: str | None = None
    aura_voice_param: str = "speaker"
    aura_encoding: str | None = None
    aura_sample_rate: int | None = None
    deepgram_flux_model: str | None = None
    deepgram_aura_model: str | None = None
    extra_flux_params: tuple[tuple[str, str], ...] = ()
    extra_aura_params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """One WebSocket to open: its URL and what to send with the upgrade.

    Header values and subprotocols that carry a credential are :class:`Secret` s, so printing an
    Endpoint (or the Target) never shows a token; :meth:`wire_headers` and
    :meth:`wire_subprotocols` reveal them at the one place they go on the wire."""

    url: str
    headers: tuple[tuple[str, str | Secret], ...] = ()
    subprotocols: tuple[str | Secret, ...] = ()

    def wire_headers(self) -> list[tuple[str, str]]:
        return [(k, v.reveal() if isinstance(v, Secret) else v) for k, v in self.headers]

    def wire_subprotocols(self) -> list[str]:
        return [p.reveal() if isinstance(p, Secret) else p for p in self.subprotocols]

    def ssl_context(self) -> ssl.SSLContext | None:
        """:func:`ssl_context_for` this endpoint's URL."""
        return ssl_context_for(self.url)

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``websockets.sync.client.connect(endpoint.url, **kwargs)``."""
        kwargs: dict[str, Any] = {"additional_headers": self.wire_headers()}
        if self.subprotocols:
            kwargs["subprotocols"] = self.wire_subprotocols()
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl"] = context
        return kwargs


@dataclass(frozen=True)
class Target:
    """A resolved ``--target``: one endpoint per service.

    ``is_real`` is True when load would reach someone else's service (any non-loopback host of
    a non-emulator target): such runs go through the spend gate (:mod:`voiceload.spend`)."""

    name: str
    flux: Endpoint
    aura: Endpoint
    is_real: bool
    required_vars: tuple[str, ...] = field(default=())

    def endpoint(self, service: Service) -> Endpoint:
        return self.flux if service is Service.FLUX else self.aura

    def describe(self) -> dict[str, str]:
        """For run.json: ``{name, url, aura_url}``; URLs carry no credentials (tokens are in
        headers, never in URLs, and a user-given URL's userinfo is dropped)."""
        return {
            "name": self.name,
            "url": strip_userinfo(self.flux.url),
            "aura_url": strip_userinfo(self.aura.url),
        }


# --- pure helpers ----------------------------------------------------------------------------


def ssl_context_for(url: str) -> ssl.SSLContext | None:
    """``None`` for ``ws://``; for ``wss://`` a default context that verifies the certificate
    chain against the system trust store and checks the host name. Never disabled."""
    if urlsplit(url).scheme != "wss":
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def strip_userinfo(url: str) -> str:
    """``url`` without any ``user:password@`` part."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in _LOOPBACK_HOSTS


def rebase(url: str, base_url: str | None) -> str:
    """``url`` with scheme and host (and port) taken from ``base_url``; a path in ``base_url``
    is put in front of ``url``'s path. ``None`` leaves ``url`` as it is."""
    if base_url is None:
        return url
    base = _check_ws_url(base_url, "--base-url")
    parts = urlsplit(url)
    path = base.path.rstrip("/") + parts.path
    return urlunsplit((base.scheme, base.netloc, path, parts.query, ""))


def _check_ws_url(url: str, what: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"{what} {url!r} is not a ws:// or wss:// URL with a host")
    return parts


def _url(base: str, path: str, pairs: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(pairs), quote_via=quote, safe="@/")
    return f"{base}{path}" + (f"?{query}" if query else "")


def _num(value: float) -> str:
    return f"{value:g}"


def _short_model(model: str) -> str:
    """``@cf/deepgram/aura-2-en`` -> ``aura-2-en``."""
    return model.rsplit("/", 1)[-1]


def flux_params(params: ModelParams) -> list[tuple[str, str]]:
    """Flux query pairs in the Workers AI schema's names (protocols.md §3.2); keyterm repeats."""
    pairs = [("encoding", params.encoding), ("sample_rate", str(params.sample_rate))]
    if params.eot_threshold is not None:
        pairs.append(("eot_threshold", _num(params.eot_threshold)))
    if params.eager_eot_threshold is not None:
        pairs.append(("eager_eot_threshold", _num(params.eager_eot_threshold)))
    if params.eot_timeout_ms is not None:
        pairs.append(("eot_timeout_ms", str(params.eot_timeout_ms)))
    pairs.extend(("keyterm", term) for term in params.keyterms)
    pairs.extend(params.extra_flux_params)
    return pairs


def aura_params(params: ModelParams, *, with_voice: bool = True) -> list[tuple[str, str]]:
    """Aura query pairs: the voice (named ``params.aura_voice_param``; left out when
    ``with_voice`` is false), encoding and sample_rate, each only when set, then the extras."""
    pairs: list[tuple[str, str]] = []
    if with_voice and params.aura_voice is not None:
        pairs.append((params.aura_voice_param, params.aura_voice))
    if params.aura_encoding is not None:
        pairs.append(("encoding", params.aura_encoding))
    if params.aura_sample_rate is not None:
        pairs.append(("sample_rate", str(params.aura_sample_rate)))
    pairs.extend(params.extra_aura_params)
    return pairs


def deepgram_aura_model(params: ModelParams) -> str:
    """Deepgram's model name for ``params.aura_model`` + voice: Aura-1 ``aura-<voice>-en``,
    Aura-2 ``aura-2-<voice>-<lang>`` (protocols.md §4.1); ``deepgram_aura_model`` wins."""
    if params.deepgram_aura_model:
        return params.deepgram_aura_model
    model = _short_model(params.aura_model)
    voice = params.aura_voice or _DEFAULT_AURA_VOICE.get(model)
    if voice is None:
        raise ConfigError(
            f"no Deepgram name for Aura model {params.aura_model!r}: set --aura-voice, or "
            "--deepgram-aura-model (e.g. aura-2-thalia-en)"
        )
    if model == "aura-1":
        return f"aura-{voice}-en"
    if model.startswith("aura-2-"):
        return f"aura-2-{voice}-{model.removeprefix('aura-2-')}"
    raise ConfigError(f"unknown Aura model {params.aura_model!r}; try @cf/deepgram/aura-2-en")


def parse_header(text: str) -> tuple[str, str]:
    """``'K: V'`` -> ``('K', 'V')``; :class:`ConfigError` when there is no colon or no name."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ConfigError("--header must look like 'Name: value' (the name and a colon)")
    return name.strip(), value.strip()


# --- the routes ------------------------------------------------------------------------------


def gateway_auth(
    token: Secret, form: AuthForm
) -> tuple[tuple[tuple[str, str | Secret], ...], tuple[str | Secret, ...]]:
    """Headers and subprotocols that carry the gateway token in ``form``."""
    raw = token.reveal()
    if form is AuthForm.SUBPROTOCOL:
        protocol = f"cf-aig-authorization.{raw}"
        return (), (Secret(protocol),)
    value = raw if form is AuthForm.RAW else f"Bearer {raw}"
    return (("cf-aig-authorization", Secret(value)),), ()


def gateway_endpoints(
    account_id: str, gateway_id: str, token: Secret, params: ModelParams, *,
    form: AuthForm, base: str = GATEWAY_BASE,
) -> tuple[Endpoint, Endpoint]:
    """AI Gateway's realtime route (protocols.md §1.1): ``model`` and every model parameter in
    the query of ``/v1/{account}/{gateway}/workers-ai``."""
    path = f"/v1/{quote(account_id, safe='')}/{quote(gateway_id, safe='')}/workers-ai"
    headers, protocols = gateway_auth(token, form)
    flux = _url(base, path, [("model", params.flux_model), *flux_params(params)])
    aura = _url(base, path, [("model", params.aura_model), *aura_params(params)])
    return (Endpoint(flux, headers, protocols), Endpoint(aura, headers, protocols))


def workers_ai_endpoints(
    account_id: str, token: Secret, params: ModelParams, *, base: str = WORKERS_AI_BASE
) -> tuple[Endpoint, Endpoint]:
    """The direct Workers AI route (protocols.md §2.1) with ``Authorization: Bearer``; model
    parameters in the query, as the Worker binding passes its inputs (§1.3)."""
    prefix = f"/client/v4/accounts/{quote(account_id, safe='')}/ai/run/"
    headers: tuple[tuple[str, str | Secret], ...] = (
        ("Authorization", Secret(f"Bearer {token.reveal()}")),
    )
    flux = _url(base, prefix + params.flux_model, flux_params(params))
    aura = _url(base, prefix + params.aura_model, aura_params(params))
    return Endpoint(flux, headers), Endpoint(aura, headers)


def deepgram_endpoints(
    key: Secret, params: ModelParams, *, base: str = DEEPGRAM_BASE
) -> tuple[Endpoint, Endpoint]:
    """Deepgram's own API (protocols.md §6): ``/v2/listen`` and ``/v1/speak`` with
    ``Authorization: Token <key>``; Deepgram model names."""
    headers: tuple[tuple[str, str | Secret], ...] = (
        ("Authorization", Secret(f"Token {key.reveal()}")),
    )
    flux_model = params.deepgram_flux_model or "flux-general-en"
    # The voice is part of Deepgram's model name, not a parameter of its own.
    speak = [("model", deepgram_aura_model(params)), *aura_params(params, with_voice=False)]
    flux = _url(base, "/v2/listen", [("model", flux_model), *flux_params(params)])
    aura = _url(base, "/v1/speak", speak)
    return Endpoint(flux, headers), Endpoint(aura, headers)


def resolve_target(
    target: str,
    *,
    credentials: Credentials,
    params: ModelParams | None = None,
    emulator_url: str | None = None,
    base_url: str | None = None,
    auth_form: AuthForm = AuthForm.RAW,
    headers: Sequence[str] = (),
    aura_url: str | None = None,
) -> Target:
    """Resolve ``--target`` into the endpoints to connect to.

    ``target`` is one of :data:`NAMED_TARGETS` or a ``ws://``/``wss://`` URL. ``emulator_url``
    is where the emulator listens (target ``emulator``, default ``ws://127.0.0.1:8787``);
    ``base_url`` replaces scheme and host of the real routes (see the module docstring);
    ``headers`` are extra ``'K: V'`` headers for any target (values registered as secrets);
    ``aura_url`` is the Aura endpoint of a URL target (default: the same URL).

    Raises :class:`ConfigError` naming the missing variable when ``credentials`` lack what the
    target needs (the guide's names), or for a bad URL, header or Aura model.
    """
    params = params or ModelParams()
    extra: list[tuple[str, str | Secret]] = []
    for text in headers:
        name, value = parse_header(text)
        register_secret(value)
        extra.append((name, Secret(value)))

    if target == "emulator":
        base = emulator_url or "ws://127.0.0.1:8787"
        _check_ws_url(base, "--emulator-url")
        # The emulator's own identity, never the user's real credentials.
        flux, aura = gateway_endpoints(
            EMULATOR_ACCOUNT_ID, EMULATOR_GATEWAY_ID, Secret(EMULATOR_TOKEN), params,
            form=auth_form, base=rebase(GATEWAY_BASE, base),
        )
        required: tuple[str, ...] = ()
    elif target == "gateway":
        required = (ACCOUNT_ID_VAR, GATEWAY_ID_VAR, API_TOKEN_VAR)
        credentials.require(required)
        assert credentials.account_id and credentials.gateway_id and credentials.api_token
        flux, aura = gateway_endpoints(
            credentials.account_id, credentials.gateway_id, credentials.api_token, params,
            form=auth_form, base=rebase(GATEWAY_BASE, base_url),
        )
    elif target == "workers-ai":
        required = (ACCOUNT_ID_VAR, API_TOKEN_VAR)
        credentials.require(required)
        assert credentials.account_id and credentials.api_token
        flux, aura = workers_ai_endpoints(
            credentials.account_id, credentials.api_token, params,
            base=rebase(WORKERS_AI_BASE, base_url),
        )
    elif target == "deepgram":
        required = (DEEPGRAM_KEY_VAR,)
        credentials.require(required)
        assert credentials.deepgram_api_key
        flux, aura = deepgram_endpoints(
            credentials.deepgram_api_key, params, base=rebase(DEEPGRAM_BASE, base_url)
        )
    elif target.startswith(("ws://", "wss://")):
        _check_ws_url(target, "--target")
        if aura_url is not None:
            _check_ws_url(aura_url, "--aura-url")
        flux, aura = Endpoint(target), Endpoint(aura_url or target)
        required = ()
    else:
        raise ConfigError(
            f"unknown --target {target!r}; choose one of {', '.join(NAMED_TARGETS)} "
            "or give a ws:// or wss:// URL"
        )

    if extra:
        flux = Endpoint(flux.url, (*flux.headers, *extra), flux.subprotocols)
        aura = Endpoint(aura.url, (*aura.headers, *extra), aura.subprotocols)
    real = target != "emulator" and not (is_loopback(flux.url) and is_loopback(aura.url))
    name = "custom" if target.startswith(("ws://", "wss://")) else target
    return Target(name=name, flux=flux, aura=aura, is_real=real, required_vars=required)
