"""Why a session or a check failed: the one failure taxonomy, and what to do about each (pure).

Every failure voiceload counts has exactly one :class:`FailureCategory`. Its value is the
``error_category`` column of sessions.csv and the key of ``errors`` in summary.json, so the
values are a contract: never rename one. The same category is produced by the load client
(:mod:`voiceload.client.errors`), named by the preflight check (:mod:`voiceload.preflight`) and
explained by the report (:mod:`voiceload.report.model`), all from :data:`ADVICE`, in the setup
guide's words where it has them (docs/PROTOCOLS.md §9). How a refused upgrade maps to a category
is :func:`voiceload.protocol.gateway.classify_upgrade_failure`'s job.

There is no fallback: a value that is not a category is a bug (or a file from another version),
and :func:`parse_category` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from voiceload.errors import VoiceloadError


class FailureCategory(StrEnum):
    """Why a session failed; one label per cause a user can act on (counted, never raised).

    The first eight are refused upgrades (non-101 answers); the rest happen outside or after it.
    """

    HANDSHAKE_REFUSED = "handshake_refused"  # upgrade answered non-101, not one of the below
    UNAUTHORIZED = "unauthorized"  # 401/403: token missing, invalid or lacking permission
    GATEWAY_NOT_FOUND = "gateway_not_found"  # AI Gateway 2001: gateway id does not exist
    UNKNOWN_MODEL = "unknown_model"  # Workers AI 5007 / 3042
    RATE_LIMITED = "rate_limited"  # 429: gateway or service rate limit
    ALLOCATION_EXHAUSTED = "allocation_exhausted"  # 429 + 4006/3036: daily free neurons used up
    OUT_OF_CAPACITY = "out_of_capacity"  # 429 + 3040: no data centre could take the request
    BAD_REQUEST = "bad_request"  # 400/413/422 without a known code: bad query parameters
    CONNECTION_FAILED = "connection_failed"  # DNS, TCP, TLS or handshake timeout (detail says)
    CLOSED_BY_SERVER = "closed_by_server"  # the peer closed (or sent Error) before we were done
    PROTOCOL_VIOLATION = "protocol_violation"  # the peer broke the Flux/Aura protocol
    TRANSCRIPT_TIMEOUT = "transcript_timeout"  # expected EndOfTurn / Flushed never came
    HARNESS_ERROR = "harness_error"  # a bug or overload in voiceload itself


class UnknownFailureCategoryError(VoiceloadError, ValueError):
    """A string that is not a :class:`FailureCategory` value."""


def parse_category(value: str) -> FailureCategory:
    """``value`` as a :class:`FailureCategory`; raises :class:`UnknownFailureCategoryError`."""
    try:
        return FailureCategory(value)
    except ValueError:
        known = ", ".join(c.value for c in FailureCategory)
        raise UnknownFailureCategoryError(
            f"{value!r} is not a failure category voiceload writes (known: {known})"
        ) from None


@dataclass(frozen=True)
class Advice:
    """What a failure means (``problem``) and the fix to try (``fix``); each one line."""

    problem: str
    fix: str


_URL_FIX: Final = (
    "check the URL format wss://gateway.ai.cloudflare.com/v1/{account_id}/{gateway_id}/"
    "workers-ai?model=...; isolate with a plain HTTP request"
)

#: The token permissions Cloudflare's docs require: "AI Gateway Run" for an authenticated
#: gateway (https://developers.cloudflare.com/ai-gateway/configuration/authentication/: "Create
#: authentication token ... with the required Run permissions"; "Any token with AI Gateway Run
#: can send requests through every gateway"), "Workers AI Read" for Workers AI models
#: (https://developers.cloudflare.com/ai-gateway/usage/providers/workersai/: "generate an API
#: token with Workers AI Read access").
GATEWAY_TOKEN_PERMISSIONS: Final = "AI Gateway Run + Workers AI Read"
WORKERS_AI_TOKEN_PERMISSION: Final = "Workers AI Read"

#: One entry per category (a test checks it is complete). Preflight prints ``problem: fix``;
#: the report shows both; a refused upgrade's one-line description ends with ``fix``.
ADVICE: Final = MappingProxyType(
    {
        FailureCategory.GATEWAY_NOT_FOUND: Advice(
            'AI Gateway not found ({"error": "AI Gateway not found"}): the gateway id is wrong '
            "or in another account",
            "check that the gateway exists, that CLOUDFLARE_GATEWAY_ID matches the dashboard, "
            "and that it is in the same account as the Worker",
        ),
        FailureCategory.UNAUTHORIZED: Advice(
            "Unauthorized (token invalid, lacking AI Gateway Run / Workers AI Read, or header "
            'not sent; {"error": "Unauthorized", "status": 401})',
            "check the token (CLOUDFLARE_API_TOKEN) is valid and not expired, has the "
            f"{GATEWAY_TOKEN_PERMISSIONS} permissions (an authenticated gateway needs AI Gateway "
            "Run), and that the cf-aig-authorization header is actually sent (try --auth-form "
            "aig-bearer)",
        ),
        FailureCategory.UNKNOWN_MODEL: Advice(
            "unknown model: Workers AI does not know the model (5007 / 3042)",
            "check --flux-model / --aura-model: Workers AI serves @cf/deepgram/flux, "
            "@cf/deepgram/aura-1, @cf/deepgram/aura-2-en, @cf/deepgram/aura-2-es",
        ),
        FailureCategory.ALLOCATION_EXHAUSTED: Advice(
            "allocation used up (4006): the daily free allocation of 10,000 Neurons is spent "
            "(429; older error code 3036)",
            "wait for the reset at 00:00 UTC, or move the account to Workers Paid; see the cost "
            "section",
        ),
        FailureCategory.RATE_LIMITED: Advice(
            "rate limited (429): a gateway rate limit or a Workers AI limit",
            "lower the load or wait a minute; check the gateway's rate-limiting settings and "
            "the 720 requests/min speech-recognition limit",
        ),
        FailureCategory.OUT_OF_CAPACITY: Advice(
            "rate limited: Workers AI is out of capacity (3040)", "retry later or lower the load"
        ),
        FailureCategory.BAD_REQUEST: Advice(
            "WebSocket connection failed at the upgrade layer: bad request (400)",
            "check the model parameters (Workers AI Flux needs encoding=linear16 and a numeric "
            "sample_rate; thresholds in range)",
        ),
        FailureCategory.HANDSHAKE_REFUSED: Advice(
            "WebSocket connection failed at the upgrade layer: the server refused the upgrade "
            "(HTTP status in the message)",
            _URL_FIX,
        ),
        FailureCategory.CONNECTION_FAILED: Advice(
            "WebSocket connection to 'wss://...' failed: client vs server problem unclear",
            _URL_FIX,
        ),
        FailureCategory.CLOSED_BY_SERVER: Advice(
            "the service closed the connection before the session was done (close code in the "
            "message)",
            "look up the close code (1008 DATA-0000: audio not decodable; 1011 NET-0001: no "
            "audio for 10 s); check the audio format and the harness's send lag",
        ),
        FailureCategory.PROTOCOL_VIOLATION: Advice(
            "the service broke the Flux/Aura protocol (the message names the rule)",
            "check the target speaks the Deepgram protocol of docs/PROTOCOLS.md; report it with "
            "the run's sessions.csv",
        ),
        FailureCategory.TRANSCRIPT_TIMEOUT: Advice(
            "an expected EndOfTurn or Flushed never came",
            "check the fixture ends with silence and eot_timeout_ms; lower the load if the "
            "service is saturated",
        ),
        FailureCategory.HARNESS_ERROR: Advice(
            "voiceload itself failed or was stopped (a bug, an overload, or Locust's stop)",
            "check the run's validity (send lag, CPU); report a bug with the message if it "
            "repeats",
        ),
    }
)


def advice(category: FailureCategory) -> Advice:
    """The :class:`Advice` for ``category``."""
    return ADVICE[category]
