"""AI Gateway, Workers AI and Deepgram: routes, auth forms, upgrade error bodies, sans-I/O.

Reference: docs/PROTOCOLS.md §1 (gateway URL forms, auth, error responses),
§2.1 (direct Workers AI WebSocket), §3.2 (Flux query parameters), §3.7 and §6 (Deepgram).

Both sides use this module: the load client and targets build URLs and auth headers and classify
a refused upgrade (:func:`classify_upgrade_failure`); the emulator parses the request path
(:func:`parse_route`), reads the token (:func:`server_extract_token`) and answers with the exact
status and body of the real service (``unauthorized()``, ``gateway_not_found()``, ...).

Route errors are :class:`RouteError`, a :class:`~voiceload.errors.RemoteProtocolError`: from the
server's side, a bad path is the peer's mistake. Bodies marked [obs] were captured by third
parties; [inf] ones are our best guess where nothing is documented (PROTOCOLS.md §8 q9).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from voiceload.errors import ConfigError, RemoteProtocolError
from voiceload.protocol.failures import ADVICE, FailureCategory
from voiceload.protocol.params import Provider, flux_query_problem

# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class Service(StrEnum):
    """Which Deepgram protocol a route speaks."""

    FLUX = "flux"
    AURA = "aura"


FLUX_MODEL = "@cf/deepgram/flux"
AURA_1_MODEL = "@cf/deepgram/aura-1"
AURA_2_EN_MODEL = "@cf/deepgram/aura-2-en"
AURA_2_ES_MODEL = "@cf/deepgram/aura-2-es"

#: Workers AI model id -> service, for the models this harness drives (PROTOCOLS.md §2.1, §4.4).
WORKERS_AI_MODELS: Mapping[str, Service] = MappingProxyType(
    {
        FLUX_MODEL: Service.FLUX,
        AURA_1_MODEL: Service.AURA,
        AURA_2_EN_MODEL: Service.AURA,
        AURA_2_ES_MODEL: Service.AURA,
    }
)

#: Deepgram-style model names (``model=`` on ``/v2/listen`` and ``/v1/speak``, §3.1, §4.1).
DEEPGRAM_FLUX_MODELS = ("flux-general-en", "flux-general-multi")
DEFAULT_DEEPGRAM_FLUX_MODEL = "flux-general-en"
DEFAULT_DEEPGRAM_AURA_MODEL = "aura-2-thalia-en"
#: What ``/v1/speak`` uses when the query has no ``model`` (Deepgram's documented default).
DEEPGRAM_SPEAK_DEFAULT_MODEL = "aura-asteria-en"
_DEEPGRAM_AURA_RE = re.compile(r"^aura-(?:2-)?[a-z]+-[a-z]{2}$")  # aura-<voice>-en, aura-2-<v>-<l>


def deepgram_service(model: str) -> Service | None:
    """Service of a Deepgram-style model name (``flux-general-en``, ``aura-2-thalia-en``)."""
    if model in DEEPGRAM_FLUX_MODELS:
        return Service.FLUX
    if _DEEPGRAM_AURA_RE.match(model):
        return Service.AURA
    return None


# --------------------------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------------------------


class RouteForm(StrEnum):
    """The three URL shapes (PROTOCOLS.md §1.1, §2.1, §6)."""

    GATEWAY = "gateway"  # /v1/{account}/{gateway}/workers-ai?model=@cf/deepgram/...&params
    WORKERS_AI = "workers-ai"  # /client/v4/accounts/{account}/ai/run/@cf/deepgram/{model}?params
    DEEPGRAM = "deepgram"  # /v2/listen?model=flux-general-en&...  /v1/speak?model=...


class RouteError(RemoteProtocolError):
    """The request path or query names no route this service has.

    ``status`` is the HTTP status an emulator should answer with: 404 for an unknown path, 400
    for a known path with an unusable query (e.g. no ``model``).
    """

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Route:
    """What a WebSocket upgrade request asks for.

    ``model`` is as written in the URL (``@cf/deepgram/flux`` or ``flux-general-en``);
    ``service`` is None when that model is not one of ours, which the server answers with
    :func:`unknown_model` *after* checking auth and gateway, as the real stack does.
    ``params`` are the query pairs in order with ``model`` removed: the model's input
    parameters, repeated keys (``keyterm``) kept.
    """

    form: RouteForm
    service: Service | None
    model: str
    account_id: str | None
    gateway_id: str | None
    params: tuple[tuple[str, str], ...]

    def param(self, name: str) -> str | None:
        """First value of a query parameter, or None."""
        for key, value in self.params:
            if key == name:
                return value
        return None

    def param_values(self, name: str) -> list[str]:
        """Every value of a (possibly repeated) query parameter, in order."""
        return [value for key, value in self.params if key == name]


_GATEWAY_PATH = re.compile(r"^/v1/(?P<account>[^/]+)/(?P<gateway>[^/]+)/workers-ai/?$")
_DIRECT_PATH = re.compile(r"^/client/v4/accounts/(?P<account>[^/]+)/ai/run/(?P<model>.+?)/?$")
_DEEPGRAM_PATHS: Mapping[str, Service] = MappingProxyType(
    {"/v2/listen": Service.FLUX, "/v1/speak": Service.AURA}
)


def parse_route(path_and_query: str) -> Route:
    """Parse the request target of an upgrade (a path with query, or a full URL).

    Raises :class:`RouteError` for a path that matches none of the three forms, or a gateway /
    ``/v2/listen`` query without ``model``. An unrecognised *model* is not an error here (see
    :class:`Route`).
    """
    parts = urlsplit(path_and_query)
    path = parts.path
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    models = [value for key, value in pairs if key == "model"]
    params = tuple((key, value) for key, value in pairs if key != "model")

    if m := _GATEWAY_PATH.match(path):
        if not models:
            raise RouteError(
                "gateway workers-ai route lacks the 'model' query parameter"
                f" (e.g. model={FLUX_MODEL})",
                status=400,
            )
        return Route(
            form=RouteForm.GATEWAY,
            service=WORKERS_AI_MODELS.get(models[0]),
            model=models[0],
            account_id=unquote(m["account"]),
            gateway_id=unquote(m["gateway"]),
            params=params,
        )
    if m := _DIRECT_PATH.match(path):
        model = unquote(m["model"])
        return Route(
            form=RouteForm.WORKERS_AI,
            service=WORKERS_AI_MODELS.get(model),
            model=model,
            account_id=unquote(m["account"]),
            gateway_id=None,
            params=params,
        )
    service = _DEEPGRAM_PATHS.get(path.rstrip("/"))
    if service is not None:
        if models:
            model = models[0]
        elif service is Service.AURA:
            model = DEEPGRAM_SPEAK_DEFAULT_MODEL
        else:
            raise RouteError(
                "/v2/listen lacks the 'model' query parameter"
                f" (e.g. model={DEFAULT_DEEPGRAM_FLUX_MODEL})",
                status=400,
            )
        known = deepgram_service(model) is service
        return Route(
            form=RouteForm.DEEPGRAM,
            service=service if known else None,
            model=model,
            account_id=None,
            gateway_id=None,
            params=params,
        )
    raise RouteError(f"no route for path {path!r}")


def _query(pairs: Sequence[tuple[str, str]]) -> str:
    # keep '@' and '/' literal in model ids as the docs write them; spaces become %20
    return urlencode(list(pairs), safe="@/", quote_via=quote)


def _with_query(url: str, pairs: Sequence[tuple[str, str]]) -> str:
    return f"{url}?{_query(pairs)}" if pairs else url


GATEWAY_BASE = "wss://gateway.ai.cloudflare.com"
WORKERS_AI_BASE = "wss://api.cloudflare.com"
DEEPGRAM_BASE = "wss://api.deepgram.com"


def gateway_url(
    base: str,
    account_id: str,
    gateway_id: str,
    model: str,
    params: Sequence[tuple[str, str]] = (),
) -> str:
    """``{base}/v1/{account}/{gateway}/workers-ai?model={model}&{params}`` (§1.1)."""
    path = f"/v1/{quote(account_id, safe='')}/{quote(gateway_id, safe='')}/workers-ai"
    return _with_query(base.rstrip("/") + path, [("model", model), *params])


def workers_ai_url(
    base: str, account_id: str, model: str, params: Sequence[tuple[str, str]] = ()
) -> str:
    """``{base}/client/v4/accounts/{account}/ai/run/{model}?{params}`` (§2.1)."""
    path = f"/client/v4/accounts/{quote(account_id, safe='')}/ai/run/{quote(model, safe='@/')}"
    return _with_query(base.rstrip("/") + path, params)


def deepgram_url(
    base: str, service: Service, model: str, params: Sequence[tuple[str, str]] = ()
) -> str:
    """``{base}/v2/listen?model=...`` for Flux, ``{base}/v1/speak?model=...`` for Aura (§6)."""
    path = "/v2/listen" if service is Service.FLUX else "/v1/speak"
    return _with_query(base.rstrip("/") + path, [("model", model), *params])


# --------------------------------------------------------------------------------------------
# Flux query parameters (Workers AI schema, §3.2)
# --------------------------------------------------------------------------------------------

def flux_param_problem(params: Sequence[tuple[str, str]]) -> str | None:
    """First way ``params`` break the Workers AI Flux input schema, or None when they fit.

    The rules live in :mod:`voiceload.protocol.params` (one table per route); this is its
    Workers AI check, kept here for callers of the gateway module.
    """
    return flux_query_problem(Provider.WORKERS_AI, params)


# --------------------------------------------------------------------------------------------
# Authentication (§1.2, §2.1, §6)
# --------------------------------------------------------------------------------------------


class AuthForm(StrEnum):
    """How a client presents its token."""

    AIG_HEADER = "aig-header"  # cf-aig-authorization: <token>   (Workers AI Deepgram examples)
    AIG_BEARER = "aig-bearer"  # cf-aig-authorization: Bearer <token>
    AIG_SUBPROTOCOL = "aig-subprotocol"  # Sec-WebSocket-Protocol: cf-aig-authorization.<token>
    BEARER = "bearer"  # Authorization: Bearer <token>   (direct Workers AI route)
    TOKEN = "token"  # Authorization: Token <key>       (Deepgram)
    TOKEN_SUBPROTOCOL = "token-subprotocol"  # Sec-WebSocket-Protocol: token, <key>  (Deepgram)


AIG_HEADER = "cf-aig-authorization"
AIG_SUBPROTOCOL_PREFIX = "cf-aig-authorization."
_SUBPROTOCOL_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 7230 token


def client_auth(form: AuthForm, token: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(headers, subprotocols) a client sends for ``form``.

    Raises :class:`~voiceload.errors.ConfigError` for an empty token, or a token that a
    subprotocol form cannot carry (subprotocols must be HTTP tokens: no spaces or commas).
    """
    if not token:
        raise ConfigError(f"auth form {form} needs a non-empty token")
    match form:
        case AuthForm.AIG_HEADER:
            return [(AIG_HEADER, token)], []
        case AuthForm.AIG_BEARER:
            return [(AIG_HEADER, f"Bearer {token}")], []
        case AuthForm.BEARER:
            return [("Authorization", f"Bearer {token}")], []
        case AuthForm.TOKEN:
            return [("Authorization", f"Token {token}")], []
    if not _SUBPROTOCOL_TOKEN.match(token):
        raise ConfigError(
            f"auth form {form} sends the token as a WebSocket subprotocol, which allows only"
            " letters, digits and !#$%&'*+-.^_`|~; use a header form instead"
        )
    if form is AuthForm.AIG_SUBPROTOCOL:
        return [], [AIG_SUBPROTOCOL_PREFIX + token]
    return [], ["token", token]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _strip_scheme(value: str, scheme: str) -> str | None:
    """The credential after ``scheme`` (case-insensitive), or None when the scheme differs."""
    head, _, rest = value.strip().partition(" ")
    return rest.strip() if head.lower() == scheme else None


def server_extract_token(
    headers: Mapping[str, str], subprotocols: Sequence[str]
) -> tuple[str | None, AuthForm | None]:
    """The token a client presented and how, or ``(None, None)``.

    Header names match case-insensitively. Precedence: ``cf-aig-authorization`` header, the
    ``cf-aig-authorization.<token>`` subprotocol, ``Authorization: Bearer|Token``, the
    Deepgram ``token, <key>`` subprotocol pair. An empty credential counts as absent.
    """
    token, form = _find_token(headers, list(subprotocols))
    return (token, form) if token else (None, None)


def _find_token(headers: Mapping[str, str], subprotocols: list[str]) -> tuple[str, AuthForm | None]:
    aig = _header(headers, AIG_HEADER)
    if aig is not None:
        bearer = _strip_scheme(aig, "bearer")
        if bearer is not None:
            return bearer, AuthForm.AIG_BEARER
        return aig.strip(), AuthForm.AIG_HEADER
    for protocol in subprotocols:
        if protocol.startswith(AIG_SUBPROTOCOL_PREFIX):
            return protocol[len(AIG_SUBPROTOCOL_PREFIX) :], AuthForm.AIG_SUBPROTOCOL
    authorization = _header(headers, "Authorization")
    if authorization is not None:
        for scheme, form in (("bearer", AuthForm.BEARER), ("token", AuthForm.TOKEN)):
            credential = _strip_scheme(authorization, scheme)
            if credential is not None:
                return credential, form
    if "token" in subprotocols:
        at = subprotocols.index("token")
        if at + 1 < len(subprotocols):
            return subprotocols[at + 1], AuthForm.TOKEN_SUBPROTOCOL
    return "", None


def server_subprotocol(form: AuthForm | None, subprotocols: Sequence[str]) -> str | None:
    """The subprotocol the server should echo in its 101 (browsers abort without it), or None."""
    if form is AuthForm.AIG_SUBPROTOCOL:
        return next((p for p in subprotocols if p.startswith(AIG_SUBPROTOCOL_PREFIX)), None)
    if form is AuthForm.TOKEN_SUBPROTOCOL:
        return "token"
    return None


# --------------------------------------------------------------------------------------------
# Upgrade error bodies (§1.5) and Deepgram close codes (§3.7)
# --------------------------------------------------------------------------------------------


def _body(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _aig_error(status: int, code: int, message: str, *, top_message: bool) -> tuple[int, bytes]:
    """The AiGatewayError envelope; some captures repeat ``message`` at the top level."""
    obj: dict[str, Any] = {
        "success": False,
        "result": [],
        "messages": [],
        "error": [{"code": code, "message": message}],
        "name": "AiGatewayError",
        "httpCode": status,
        "internalCode": code,
    }
    if top_message:
        obj["message"] = message
    return status, _body(obj)


def _workers_ai_error(status: int, code: int, message: str) -> tuple[int, bytes]:
    return status, _body(
        {"success": False, "errors": [{"code": code, "message": message}], "result": None}
    )


def unauthorized() -> tuple[int, bytes]:
    """401, AiGatewayError 2009: missing or wrong ``cf-aig-authorization`` [obs, verified live]."""
    return _aig_error(401, 2009, "Unauthorized", top_message=True)


def gateway_not_found() -> tuple[int, bytes]:
    """400, AiGatewayError 2001: the gateway id does not exist [obs, captured 2026-10-02]."""
    message = "Please configure AI Gateway in the Cloudflare dashboard"
    return _aig_error(400, 2001, message, top_message=False)


def api_authentication_error() -> tuple[int, bytes]:
    """401, code 10000: bad token on the direct ``api.cloudflare.com`` route [obs]."""
    return 401, _body(
        {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}]}
    )


def unknown_model(model: str) -> tuple[int, bytes]:
    """400, Workers AI 5007 ``No such model {model} or task`` [doc errors table; obs body]."""
    return _workers_ai_error(400, 5007, f"No such model {model} or task")


ALLOCATION_EXHAUSTED_MESSAGE = (
    "AiError: you have used up your daily free allocation of 10,000 neurons, please upgrade to"
    " Cloudflare's Workers Paid plan if you would like to continue usage."
)


def allocation_exhausted() -> tuple[int, bytes]:
    """429, code 4006: Workers Free daily allocation used up [obs, measured 2026-09-29].

    The body is the captured object exactly (PROTOCOLS.md §1.5), with no Workers AI envelope:
    ``{"code":4006,"message":"AiError: you have used up ... continue usage."}``. The classifier
    also accepts the code inside the ``errors`` envelope other Workers AI errors use.
    """
    return 429, _body({"code": 4006, "message": ALLOCATION_EXHAUSTED_MESSAGE})


def out_of_capacity() -> tuple[int, bytes]:
    """429, Workers AI 3040 ``No more data centers to forward the request to`` [doc]."""
    return _workers_ai_error(429, 3040, "No more data centers to forward the request to")


def rate_limited() -> tuple[int, bytes]:
    """429 Too Many Requests from a gateway rate limit [doc status; body shape inf, no code]."""
    return 429, _body(
        {
            "success": False,
            "result": [],
            "messages": [],
            "error": [{"message": "Too Many Requests"}],
            "name": "AiGatewayError",
            "httpCode": 429,
            "message": "Too Many Requests",
        }
    )


def bad_parameter(message: str) -> tuple[int, bytes]:
    """400 Bad Request in the direct-route shape of Cloudflare's OpenAPI (§1.5) [doc shape].

    ``message`` is ours (e.g. from :func:`flux_param_problem`); the real text is not documented.
    """
    return 400, _body({"errors": [{"message": message}], "result": {}, "success": False})


def route_not_found(error: RouteError) -> tuple[int, bytes]:
    """The answer to a :class:`RouteError`: its status with a bad-request-shaped body [inf]."""
    return error.status, _body(
        {"errors": [{"message": str(error)}], "result": {}, "success": False}
    )


#: Deepgram's documented error body: ``{"err_code", "err_msg", "request_id"}``
#: (https://developers.deepgram.com/reference/errors). A failed WebSocket upgrade also carries
#: the headers ``dg-request-id`` and ``dg-error`` (https://developers.deepgram.com/changelog/2022/11/8).
DEEPGRAM_ERROR_FIELDS = ("err_code", "err_msg", "request_id")


def deepgram_error(status: int, err_code: str, err_msg: str, request_id: str) -> tuple[int, bytes]:
    """A Deepgram-shaped error answer [doc shape]."""
    return status, _body({"err_code": err_code, "err_msg": err_msg, "request_id": request_id})


def deepgram_bad_request(message: str, request_id: str) -> tuple[int, bytes]:
    """400 ``{"err_code":"Bad Request","err_msg":...}`` [doc shape and code; ``message`` ours]."""
    return deepgram_error(400, "Bad Request", message, request_id)


def deepgram_unauthorized(request_id: str) -> tuple[int, bytes]:
    """401 ``INVALID_AUTH`` / ``Invalid credentials.`` [obs: bodies captured in public code]."""
    return deepgram_error(401, "INVALID_AUTH", "Invalid credentials.", request_id)


def deepgram_unknown_model(model: str, request_id: str) -> tuple[int, bytes]:
    """400 for a model ``/v2/listen`` or ``/v1/speak`` does not serve [inf: wording ours]."""
    return deepgram_bad_request(f"No such model: {model!r}", request_id)


def deepgram_headers(request_id: str, body: bytes | None = None) -> list[tuple[str, str]]:
    """``dg-request-id`` (every upgrade answer) and, for a refusal, ``dg-error`` carrying the
    error's ``err_msg`` [doc: headers named; what ``dg-error`` holds exactly is inf]."""
    headers = [("dg-request-id", request_id)]
    if body is not None:
        try:
            message = json.loads(body).get("err_msg")
        except (ValueError, AttributeError):
            message = None
        if isinstance(message, str):
            headers.append(("dg-error", " ".join(message.split())))
    return headers


@dataclass(frozen=True)
class CloseReason:
    """A WebSocket close frame: status code and reason text."""

    code: int
    reason: str


#: Deepgram streaming close frames (§3.7). NET-0001: no audio from the client for 10 s.
DEEPGRAM_IDLE_TIMEOUT = CloseReason(1011, "NET-0001")
#: NET-0000: the service sent no text frame within its timeout.
DEEPGRAM_NO_RESULT_TIMEOUT = CloseReason(1011, "NET-0000")
#: DATA-0000: the payload cannot be decoded as audio (e.g. odd byte count for linear16).
DEEPGRAM_BAD_AUDIO = CloseReason(1008, "DATA-0000")
#: BIG-0000: message too big (listed among Deepgram TTS close codes; meaning inferred) [inf].
DEEPGRAM_TOO_BIG = CloseReason(1009, "BIG-0000")


# --------------------------------------------------------------------------------------------
# Client side: what a refused upgrade means
# --------------------------------------------------------------------------------------------


_CATEGORY_BY_CODE: Mapping[int, FailureCategory] = MappingProxyType(
    {
        2009: FailureCategory.UNAUTHORIZED,
        10000: FailureCategory.UNAUTHORIZED,
        2001: FailureCategory.GATEWAY_NOT_FOUND,
        5007: FailureCategory.UNKNOWN_MODEL,
        4006: FailureCategory.ALLOCATION_EXHAUSTED,
        3036: FailureCategory.ALLOCATION_EXHAUSTED,
        3040: FailureCategory.OUT_OF_CAPACITY,
    }
)

@dataclass(frozen=True)
class UpgradeFailure:
    """A refused WebSocket upgrade, classified. ``code`` is the service's error code if any."""

    category: FailureCategory
    status: int
    code: int | None
    message: str

    def describe(self) -> str:
        """One actionable line for a user."""
        code = f", code {self.code}" if self.code is not None else ""
        fix = ADVICE[self.category].fix
        return f"HTTP {self.status} ({self.category}{code}): {self.message}; {fix}"


def _first_error(obj: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """(code, message) from any known error body shape."""
    for key in ("error", "errors"):
        items = obj.get(key)
        if isinstance(items, list) and items and isinstance(items[0], dict):
            code, message = items[0].get("code"), items[0].get("message")
            return (
                code if isinstance(code, int) and not isinstance(code, bool) else None,
                message if isinstance(message, str) else None,
            )
    code = obj.get("code", obj.get("internalCode"))
    message = obj.get("message", obj.get("err_msg"))
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        message if isinstance(message, str) else None,
    )


def classify_upgrade_failure(status: int, body: bytes) -> UpgradeFailure:
    """Classify a non-101 answer to an upgrade from its status and body (any shape, even empty).

    Known service codes decide first (2009/10000 unauthorized, 2001 gateway_not_found, 5007
    unknown_model, 4006/3036 allocation_exhausted, 3040 out_of_capacity); otherwise the status
    (401/403 unauthorized, 429 rate_limited, 400/413/422 bad_request, else handshake_refused).
    """
    code: int | None = None
    message: str | None = None
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        obj = None
    if isinstance(obj, dict):
        code, message = _first_error(obj)
    if message is None:
        text = body.decode("utf-8", "replace").strip()
        message = text if text and obj is None else f"HTTP {status}"
    message = " ".join(message.split())[:300]
    category = _CATEGORY_BY_CODE.get(code) if code is not None else None
    if category is None:
        if status in (401, 403):
            category = FailureCategory.UNAUTHORIZED
        elif status == 429:
            category = FailureCategory.RATE_LIMITED
        elif status in (400, 413, 422):
            category = FailureCategory.BAD_REQUEST
        else:
            category = FailureCategory.HANDSHAKE_REFUSED
    return UpgradeFailure(category=category, status=status, code=code, message=message)
