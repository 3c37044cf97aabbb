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
                 ``cf-aig-authorization: <token>`` (raw, Bearer or subprotocol: AUTH_FORMS)
``workers-ai``   ``wss://api.cloudflare.com/client/v4/accounts/{account}/ai/run/@cf/deepgram/…``;
                 ``Authorization: Bearer <token>``
``deepgram``     ``wss://api.deepgram.com/v2/listen`` and ``/v1/speak``;
                 ``Authorization: Token <DEEPGRAM_API_KEY>``
``ws://…``,      the user's own Worker endpoint, used as given (it is assumed to relay the
``wss://…``      Flux/Aura protocol); optional ``--header 'K: V'`` headers, which are treated
                 as secrets
===============  ==========================================================================

Model parameters travel as query parameters on every route (PROTOCOLS.md §1.1, §1.3, §3.2,
§4.4, §6); ``keyterm`` repeats. Where the wire name is unconfirmed (Aura's voice on Workers AI,
PROTOCOLS.md §8 q6) it is a field of :class:`ModelParams` the user can change, and
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
from typing import Any, Final
from urllib.parse import SplitResult, unquote_plus, urlsplit, urlunsplit

from voiceload.credentials import (
    ACCOUNT_ID_VAR,
    API_TOKEN_VAR,
    DEEPGRAM_KEY_VAR,
    GATEWAY_ID_VAR,
    REDACTED,
    Credentials,
    Secret,
    redact,
    register_secret,
)
from voiceload.errors import ConfigError
from voiceload.protocol.gateway import (
    DEEPGRAM_BASE,
    DEFAULT_DEEPGRAM_FLUX_MODEL,
    GATEWAY_BASE,
    WORKERS_AI_BASE,
    AuthForm,
    Service,
    client_auth,
    deepgram_url,
    gateway_url,
    workers_ai_url,
)
from voiceload.protocol.params import Provider, aura_format, check_options, provider_for_target

# What `voiceload emulate` accepts unless told otherwise (its --account/--gateway/--token).
EMULATOR_ACCOUNT_ID: Final = "0" * 32
EMULATOR_GATEWAY_ID: Final = "voiceload-emulator"
EMULATOR_TOKEN: Final = "voiceload-emulator-token"

NAMED_TARGETS: Final = ("emulator", "gateway", "workers-ai", "deepgram")
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})

#: Query parameter names whose values are credentials, compared in lower case without ``-`` or
#: ``_``; a name ending in one of :data:`_SECRET_QUERY_SUFFIXES` counts too (``auth_token``).
_SECRET_QUERY_NAMES: Final = frozenset(
    {"token", "key", "apikey", "accesstoken", "auth", "authorization", "cfaigauthorization",
     "secret", "password", "pass", "pwd", "sig", "signature", "credential", "credentials"}
)
_SECRET_QUERY_SUFFIXES: Final = ("token", "key", "secret", "password", "signature")

# Workers AI's default speaker per Aura model (PROTOCOLS.md §4.4), for Deepgram model names.
_DEFAULT_AURA_VOICE: Final = {"aura-1": "angus", "aura-2-en": "luna", "aura-2-es": "aquila"}


#: The auth forms each named route accepts; the first is the default (PROTOCOLS.md §1.2, §6).
AUTH_FORMS: Final[dict[str, tuple[AuthForm, ...]]] = {
    "emulator": (AuthForm.AIG_HEADER, AuthForm.AIG_BEARER, AuthForm.AIG_SUBPROTOCOL),
    "gateway": (AuthForm.AIG_HEADER, AuthForm.AIG_BEARER, AuthForm.AIG_SUBPROTOCOL),
    "workers-ai": (AuthForm.BEARER,),
    "deepgram": (AuthForm.TOKEN, AuthForm.TOKEN_SUBPROTOCOL),
}


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

    def __repr__(self) -> str:
        return (f"Endpoint(url={redact_url(self.url)!r}, headers={self.headers!r}, "
                f"subprotocols={self.subprotocols!r})")

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
        """For run.json and the terminal: ``{name, url, aura_url}``, the URLs through
        :func:`redact_url` (no userinfo, no credential in the query, no registered secret)."""
        return {
            "name": self.name,
            "url": redact_url(self.flux.url),
            "aura_url": redact_url(self.aura.url),
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


def is_secret_query_param(name: str) -> bool:
    """Whether a query parameter called ``name`` carries a credential (``token``, ``key``,
    ``api_key``, ``access_token``, ``sig``, ``x-auth-token``, ...)."""
    norm = name.lower().replace("-", "").replace("_", "")
    return norm in _SECRET_QUERY_NAMES or norm.endswith(_SECRET_QUERY_SUFFIXES)


def url_secrets(url: str) -> list[str]:
    """The credentials written into ``url``: the userinfo password (alone and as
    ``user:password``, the form HTTP Basic auth encodes) and the value of every query parameter
    :func:`is_secret_query_param` names, both as written and percent-decoded."""
    parts = urlsplit(url)
    found: list[str] = []
    if parts.password:
        found += [parts.password, f"{parts.username or ''}:{parts.password}"]
    for pair in parts.query.split("&"):
        name, sep, value = pair.partition("=")
        if sep and value and is_secret_query_param(unquote_plus(name)):
            found += [value, unquote_plus(value)]
    return list(dict.fromkeys(found))


def redact_url(url: str) -> str:
    """``url`` safe to print or store: userinfo dropped (:func:`strip_userinfo`), the value of
    each credential query parameter (:func:`is_secret_query_param`) replaced by
    :data:`~voiceload.credentials.REDACTED`, then :func:`~voiceload.credentials.redact` for
    any registered secret elsewhere. Everything else is kept byte for byte."""
    url = strip_userinfo(url)
    parts = urlsplit(url)
    pairs = []
    for pair in parts.query.split("&"):
        name, sep, value = pair.partition("=")
        if sep and value and is_secret_query_param(unquote_plus(name)):
            pair = f"{name}={REDACTED}"
        pairs.append(pair)
    query = "&".join(pairs)
    if query != parts.query:
        url = urlunsplit(parts._replace(query=query))
    return redact(url)


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is exactly ``127.0.0.1``, ``localhost`` or ``::1``. Other
    loopback addresses (``127.0.0.2``) deliberately count as not loopback: a target there is
    treated as real (spend gate, polite load), which is what tests of those use."""
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


def _num(value: float) -> str:
    return f"{value:g}"


def _short_model(model: str) -> str:
    """``@cf/deepgram/aura-2-en`` -> ``aura-2-en``."""
    return model.rsplit("/", 1)[-1]


def flux_params(params: ModelParams) -> list[tuple[str, str]]:
    """Flux query pairs in the Workers AI schema's names (PROTOCOLS.md §3.2); keyterm repeats."""
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


def aura_params(
    params: ModelParams, *, with_voice: bool = True, provider: Provider = Provider.WORKERS_AI
) -> list[tuple[str, str]]:
    """Aura query pairs: the voice (named ``params.aura_voice_param``; left out when
    ``with_voice`` is false), then the output format where the route takes it
    (:func:`voiceload.protocol.params.aura_format`: always on Deepgram, on Workers AI only when
    asked for; an encoding without a rate gets its default rate, so the rate the client times
    the audio at is the one asked for), then the extras."""
    pairs: list[tuple[str, str]] = []
    if with_voice and params.aura_voice is not None:
        pairs.append((params.aura_voice_param, params.aura_voice))
    pairs.extend(aura_format(provider, params.aura_encoding, params.aura_sample_rate))
    pairs.extend(params.extra_aura_params)
    return pairs


def deepgram_aura_model(params: ModelParams) -> str:
    """Deepgram's model name for ``params.aura_model`` + voice: Aura-1 ``aura-<voice>-en``,
    Aura-2 ``aura-2-<voice>-<lang>`` (PROTOCOLS.md §4.1); ``deepgram_aura_model`` wins."""
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

Headers = tuple[tuple[str, str | Secret], ...]
Subprotocols = tuple[str | Secret, ...]


def auth(form: AuthForm, token: Secret) -> tuple[Headers, Subprotocols]:
    """:func:`~voiceload.protocol.gateway.client_auth` with every value that carries the token
    wrapped in :class:`Secret` (so it never prints)."""
    raw = token.reveal()
    headers, protocols = client_auth(form, raw)
    return (
        tuple((k, Secret(v) if raw in v else v) for k, v in headers),
        tuple(Secret(p) if raw in p else p for p in protocols),
    )


def gateway_endpoints(
    account_id: str, gateway_id: str, token: Secret, params: ModelParams, *,
    form: AuthForm = AuthForm.AIG_HEADER, base: str = GATEWAY_BASE,
) -> tuple[Endpoint, Endpoint]:
    """AI Gateway's realtime route (PROTOCOLS.md §1.1): ``model`` and every model parameter in
    the query of ``/v1/{account}/{gateway}/workers-ai``."""
    headers, protocols = auth(form, token)
    flux = gateway_url(base, account_id, gateway_id, params.flux_model, flux_params(params))
    aura = gateway_url(base, account_id, gateway_id, params.aura_model, aura_params(params))
    return Endpoint(flux, headers, protocols), Endpoint(aura, headers, protocols)


def workers_ai_endpoints(
    account_id: str, token: Secret, params: ModelParams, *,
    form: AuthForm = AuthForm.BEARER, base: str = WORKERS_AI_BASE,
) -> tuple[Endpoint, Endpoint]:
    """The direct Workers AI route (PROTOCOLS.md §2.1) with ``Authorization: Bearer``; model
    parameters in the query, as the Worker binding passes its inputs (§1.3)."""
    headers, protocols = auth(form, token)
    flux = workers_ai_url(base, account_id, params.flux_model, flux_params(params))
    aura = workers_ai_url(base, account_id, params.aura_model, aura_params(params))
    return Endpoint(flux, headers, protocols), Endpoint(aura, headers, protocols)


def deepgram_endpoints(
    key: Secret, params: ModelParams, *,
    form: AuthForm = AuthForm.TOKEN, base: str = DEEPGRAM_BASE,
) -> tuple[Endpoint, Endpoint]:
    """Deepgram's own API (PROTOCOLS.md §6): ``/v2/listen`` and ``/v1/speak`` with
    ``Authorization: Token <key>``; Deepgram model names."""
    headers, protocols = auth(form, key)
    flux_model = params.deepgram_flux_model or DEFAULT_DEEPGRAM_FLUX_MODEL
    flux = deepgram_url(base, Service.FLUX, flux_model, flux_params(params))
    # The voice is part of Deepgram's model name, not a parameter of its own.
    aura = deepgram_url(base, Service.AURA, deepgram_aura_model(params),
                        aura_params(params, with_voice=False, provider=Provider.DEEPGRAM))
    return Endpoint(flux, headers, protocols), Endpoint(aura, headers, protocols)


def resolve_target(
    target: str,
    *,
    credentials: Credentials,
    params: ModelParams | None = None,
    emulator_url: str | None = None,
    base_url: str | None = None,
    auth_form: AuthForm | None = None,
    headers: Sequence[str] = (),
    aura_url: str | None = None,
) -> Target:
    """Resolve ``--target`` into the endpoints to connect to.

    ``target`` is one of :data:`NAMED_TARGETS` or a ``ws://``/``wss://`` URL. ``emulator_url``
    is where the emulator listens (target ``emulator``, default ``ws://127.0.0.1:8787``);
    ``base_url`` replaces scheme and host of the real routes (see the module docstring);
    ``auth_form`` must be one of :data:`AUTH_FORMS` for the target (default: the first);
    ``headers`` are extra ``'K: V'`` headers for any target (values registered as secrets);
    credentials written into a URL (:func:`url_secrets`) are registered as secrets too;
    ``aura_url`` is the Aura endpoint of a URL target (default: the same URL).

    Raises :class:`ConfigError` naming the missing variable when ``credentials`` lack what the
    target needs (the guide's names), for a model parameter the target's route does not accept
    (:func:`voiceload.protocol.params.check_options`), or for a bad URL, header, auth form or
    Aura model.
    """
    params = params or ModelParams()
    # The route's parameter rules, before anything connects (protocol.params).
    check_options(
        provider_for_target(target), sample_rate=params.sample_rate,
        eot_threshold=params.eot_threshold, eager_eot_threshold=params.eager_eot_threshold,
        eot_timeout_ms=params.eot_timeout_ms, aura_encoding=params.aura_encoding,
        aura_sample_rate=params.aura_sample_rate,
    )
    extra: list[tuple[str, str | Secret]] = []
    for text in headers:
        name, value = parse_header(text)
        register_secret(value)
        extra.append((name, Secret(value)))
    is_url = target.startswith(("ws://", "wss://"))
    if not is_url and target not in NAMED_TARGETS:
        raise ConfigError(
            f"unknown --target {target!r}; choose one of {', '.join(NAMED_TARGETS)} "
            "or give a ws:// or wss:// URL"
        )
    form = auth_form
    if not is_url:
        allowed = AUTH_FORMS[target]
        form = form or allowed[0]
        if form not in allowed:
            raise ConfigError(
                f"--auth-form {form} does not work with target {target}; "
                f"choose one of {', '.join(allowed)}"
            )

    required: tuple[str, ...] = ()
    if target == "emulator":
        base = emulator_url or "ws://127.0.0.1:8787"
        _check_ws_url(base, "--emulator-url")
        # The emulator's own identity, never the user's real credentials.
        flux, aura = gateway_endpoints(
            EMULATOR_ACCOUNT_ID, EMULATOR_GATEWAY_ID, Secret(EMULATOR_TOKEN), params,
            form=form or AuthForm.AIG_HEADER, base=rebase(GATEWAY_BASE, base),
        )
    elif target == "gateway":
        required = (ACCOUNT_ID_VAR, GATEWAY_ID_VAR, API_TOKEN_VAR)
        credentials.require(required)
        assert credentials.account_id and credentials.gateway_id and credentials.api_token
        flux, aura = gateway_endpoints(
            credentials.account_id, credentials.gateway_id, credentials.api_token, params,
            form=form or AuthForm.AIG_HEADER, base=rebase(GATEWAY_BASE, base_url),
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
            credentials.deepgram_api_key, params, form=form or AuthForm.TOKEN,
            base=rebase(DEEPGRAM_BASE, base_url),
        )
    else:
        _check_ws_url(target, "--target")
        if aura_url is not None:
            _check_ws_url(aura_url, "--aura-url")
        flux, aura = Endpoint(target), Endpoint(aura_url or target)

    for secret in (*url_secrets(flux.url), *url_secrets(aura.url)):
        register_secret(secret)  # e.g. websockets logs the request line at DEBUG
    if extra:
        flux = Endpoint(flux.url, (*flux.headers, *extra), flux.subprotocols)
        aura = Endpoint(aura.url, (*aura.headers, *extra), aura.subprotocols)
    real = target != "emulator" and not (is_loopback(flux.url) and is_loopback(aura.url))
    return Target(name="custom" if is_url else target, flux=flux, aura=aura, is_real=real,
                  required_vars=required)
