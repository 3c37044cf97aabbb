"""Deepgram Aura (streaming text-to-speech) wire protocol and limits, sans-I/O.

Reference: docs/PROTOCOLS.md §4 (Deepgram ``speak.v1`` AsyncAPI, the streaming
TTS limits page) and §4.4 (Aura on Workers AI). Binary frames from the server are raw audio
(linear16, 24 kHz mono by default) and need no wrapper.

Parsing follows the Flux rules: unknown fields are tolerated (``Metadata`` keeps them in
``extra``), an unknown ``type`` gives an :class:`UnknownMessage`; a missing or mistyped required
field or invalid JSON raises :class:`~voiceload.errors.RemoteProtocolError` with one line naming
the field.

**Over-long Speak.** Deepgram documents that more than 2,000 characters "can result in a 413:
Input Text Exceeds Character Limits error" but not how a WebSocket carries it (PROTOCOLS.md §4.2,
§8 q6). :func:`oversize_speak_response` therefore takes an :class:`OversizePolicy`; the default
(``warning-close``) sends a ``Warning`` with code ``"413"`` and that description, then closes with
1009 ``BIG-0000`` (Deepgram's TTS "message too big" close code) [inf].
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from voiceload.errors import LocalProtocolError, RemoteProtocolError
from voiceload.protocol import _json
from voiceload.protocol.gateway import DEEPGRAM_TOO_BIG, CloseReason
from voiceload.protocol.params import AURA_RATE_BY_ENCODING

MAX_SPEAK_CHARS = 2000  # characters per Speak (Aura-1 and Aura-2) [doc]
FLUSH_LIMIT = 20  # Flush messages ...
FLUSH_WINDOW_S = 60  # ... per this many seconds; more gets a Warning [doc]
CHARS_PER_MINUTE_LIMIT = 2400  # throughput limit, characters sent per minute [doc]
MAX_SESSION_S = 3600  # an active socket times out 60 minutes after connecting [doc]
DEFAULT_SAMPLE_RATE_HZ = 24000  # /v1/speak default; the gateway example plays 24 kHz [doc]
#: Streaming output encodings (Deepgram ``SpeakV1Encoding``: linear16, mulaw, alaw [doc]) and
#: the rate voiceload asks for with each when none is given: 24 kHz for linear16 (the
#: default), 8 kHz (telephony, one of the listed rates) for the G.711 ones [inf].
SAMPLE_RATE_BY_ENCODING: Mapping[str, int] = AURA_RATE_BY_ENCODING  # one table: protocol.params

# --------------------------------------------------------------------------------------------
# Client messages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Speak:
    """Text to add to the synthesis buffer."""

    text: str


@dataclass(frozen=True)
class Flush:
    """Synthesise the buffered text now; the server answers with audio then ``Flushed``."""


@dataclass(frozen=True)
class Clear:
    """Drop buffered text and stop audio in flight; the server answers ``Cleared``."""


@dataclass(frozen=True)
class Close:
    """Flush, send the remaining audio, then close the connection."""


ClientMessage = Speak | Flush | Clear | Close

_NO_FIELD_CLIENT: Mapping[str, ClientMessage] = MappingProxyType(
    {"Flush": Flush(), "Clear": Clear(), "Close": Close()}
)


def parse_client_message(data: str | bytes) -> ClientMessage:
    """Decode one Aura JSON text frame sent by the client (the emulator's side)."""
    obj = _json.loads_object(data, "Aura client message")
    msg_type = _json.req_str(obj, "type", "Aura client")
    if msg_type == "Speak":
        return Speak(text=_json.req_str(obj, "text", "Speak"))
    msg = _NO_FIELD_CLIENT.get(msg_type)
    if msg is None:
        raise RemoteProtocolError(f"unknown Aura client message type {msg_type!r}")
    return msg


def serialize_client_message(msg: ClientMessage) -> str:
    """Encode a client message as compact JSON (``{"type":"Speak","text":...}``, ...)."""
    if isinstance(msg, Speak):
        return _json.dumps({"type": "Speak", "text": msg.text})
    return _json.dumps({"type": type(msg).__name__})


# --------------------------------------------------------------------------------------------
# Server messages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metadata:
    """Sent once when the socket opens; ``extra`` keeps fields this module does not know."""

    request_id: str
    model_name: str
    model_version: str
    model_uuid: str
    additional_model_uuids: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Flushed:
    """All audio for the text flushed so far has been sent."""

    sequence_id: int


@dataclass(frozen=True)
class Cleared:
    """The buffer was cleared and audio in flight stopped."""

    sequence_id: int


@dataclass(frozen=True)
class Warning:  # Deepgram's name; it shadows the builtin, so import AuraWarning or aura.Warning
    """A non-fatal problem (e.g. too many Flush messages); the socket stays open."""

    description: str
    code: str


AuraWarning = Warning


@dataclass(frozen=True)
class UnknownMessage:
    """A message whose ``type`` this module does not know (added after it was written): kept,
    not refused, as Deepgram's SDK skips such messages rather than failing."""

    type: str
    fields: Mapping[str, Any] = field(default_factory=dict)


ServerMessage = Metadata | Flushed | Cleared | Warning | UnknownMessage

_METADATA_FIELDS = frozenset(
    {"type", "request_id", "model_name", "model_version", "model_uuid", "additional_model_uuids"}
)


def _parse_metadata(obj: dict[str, Any]) -> Metadata:
    name = "Metadata"
    extra_uuids = obj.get("additional_model_uuids")
    return Metadata(
        request_id=_json.req_str(obj, "request_id", name),
        model_name=_json.req_str(obj, "model_name", name),
        model_version=_json.req_str(obj, "model_version", name),
        model_uuid=_json.req_str(obj, "model_uuid", name),
        additional_model_uuids=None
        if extra_uuids is None
        else _json.str_tuple(
            _json.req_list(obj, "additional_model_uuids", name), "additional_model_uuids", name
        ),
        extra={k: v for k, v in obj.items() if k not in _METADATA_FIELDS},
    )


_SERVER_PARSERS: Mapping[str, Callable[[dict[str, Any]], ServerMessage]] = MappingProxyType(
    {
        "Metadata": _parse_metadata,
        "Flushed": lambda obj: Flushed(_json.req_int(obj, "sequence_id", "Flushed")),
        "Cleared": lambda obj: Cleared(_json.req_int(obj, "sequence_id", "Cleared")),
        "Warning": lambda obj: Warning(
            description=_json.req_str(obj, "description", "Warning"),
            code=_json.req_str(obj, "code", "Warning"),
        ),
    }
)


def parse_server_message(data: str | bytes) -> ServerMessage:
    """Decode one Aura JSON text frame sent by the server (binary frames are audio).

    An unknown ``type`` gives an :class:`UnknownMessage`; invalid JSON, a missing ``type`` or
    a missing required field of a known type raise :class:`RemoteProtocolError`."""
    obj = _json.loads_object(data, "Aura server message")
    msg_type = _json.req_str(obj, "type", "Aura server")
    parser = _SERVER_PARSERS.get(msg_type)
    if parser is None:
        return UnknownMessage(type=msg_type, fields=obj)
    return parser(obj)


def is_flush_refusal(warning: Warning) -> bool:
    """Whether ``warning`` says a Flush was refused for exceeding the Flush limit.

    Deepgram documents the limit ("more gets a Warning") but not the Warning's code, so both
    the emulator's code (:func:`flush_limit_warning`) and a description naming the Flush limit
    count [inf]."""
    text = warning.description.lower()
    return warning.code == "FLUSH_LIMIT_EXCEEDED" or (
        "flush" in text and ("limit" in text or "exceed" in text)
    )


def serialize_server_message(msg: ServerMessage) -> str:
    """Encode a server message as compact JSON with exactly the documented field names."""
    obj: dict[str, Any]
    match msg:
        case Metadata():
            obj = {
                "type": "Metadata",
                "request_id": msg.request_id,
                "model_name": msg.model_name,
                "model_version": msg.model_version,
                "model_uuid": msg.model_uuid,
            }
            if msg.additional_model_uuids is not None:
                obj["additional_model_uuids"] = list(msg.additional_model_uuids)
            obj.update((k, v) for k, v in msg.extra.items() if k not in _METADATA_FIELDS)
        case Flushed():
            obj = {"type": "Flushed", "sequence_id": msg.sequence_id}
        case Cleared():
            obj = {"type": "Cleared", "sequence_id": msg.sequence_id}
        case Warning():
            obj = {"type": "Warning", "description": msg.description, "code": msg.code}
        case UnknownMessage():
            obj = {**msg.fields, "type": msg.type}
    return _json.dumps(obj)


# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------


class FlushLimiter:
    """Deepgram's Flush limit: at most ``limit`` Flush messages in any sliding ``window_s``.

    Pure: the caller passes the time. Only *allowed* flushes count toward the window (a refused
    one is answered with :func:`flush_limit_warning` and synthesises nothing) [inf: Deepgram
    does not say whether refused flushes count]. Memory is bounded by ``limit``.
    """

    def __init__(self, limit: int = FLUSH_LIMIT, window_s: float = FLUSH_WINDOW_S) -> None:
        if limit < 1 or window_s <= 0:
            raise LocalProtocolError(
                f"flush limit needs limit >= 1 and window_s > 0, got {limit} and {window_s}"
            )
        self.limit = limit
        self.window_ns = int(window_s * 1_000_000_000)
        self._allowed_ns: deque[int] = deque(maxlen=limit)

    def allow(self, now_ns: int) -> bool:
        """Record a Flush at ``now_ns`` (monotonic, never decreasing); True if within the limit."""
        if self._allowed_ns and now_ns < self._allowed_ns[-1]:
            raise LocalProtocolError(
                f"FlushLimiter time went backwards ({now_ns} ns after {self._allowed_ns[-1]} ns)"
            )
        while self._allowed_ns and self._allowed_ns[0] <= now_ns - self.window_ns:
            self._allowed_ns.popleft()
        if len(self._allowed_ns) >= self.limit:
            return False
        self._allowed_ns.append(now_ns)
        return True


def flush_limit_warning() -> Warning:
    """The ``Warning`` for a Flush over the limit (wording and code ours [inf])."""
    return Warning(
        description=f"Flush limit exceeded: at most {FLUSH_LIMIT} Flush messages"
        f" every {FLUSH_WINDOW_S} seconds",
        code="FLUSH_LIMIT_EXCEEDED",
    )


class OversizePolicy(StrEnum):
    """How the emulator answers a Speak over :data:`MAX_SPEAK_CHARS` (unconfirmed, §8 q6)."""

    WARNING_THEN_CLOSE = "warning-close"  # Warning 413, then close 1009 BIG-0000 (default)
    WARNING = "warning"  # Warning 413; the text is dropped, the socket stays open
    CLOSE = "close"  # close 1009 BIG-0000 without a message


def speak_over_limit(chars: int) -> bool:
    """Whether ``chars`` characters of Speak text exceed the documented limit."""
    return chars > MAX_SPEAK_CHARS


def oversize_speak_response(
    chars: int, policy: OversizePolicy = OversizePolicy.WARNING_THEN_CLOSE
) -> tuple[Warning | None, CloseReason | None]:
    """(message to send or None, close frame or None) for ``chars`` characters of Speak text."""
    warning = Warning(
        description=f"Input Text Exceeds Character Limits ({chars} characters;"
        f" the limit is {MAX_SPEAK_CHARS})",
        code="413",
    )
    match policy:
        case OversizePolicy.WARNING_THEN_CLOSE:
            return warning, DEEPGRAM_TOO_BIG
        case OversizePolicy.WARNING:
            return warning, None
        case OversizePolicy.CLOSE:
            return None, DEEPGRAM_TOO_BIG
