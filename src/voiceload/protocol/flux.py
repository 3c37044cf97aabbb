"""Deepgram Flux (streaming speech-to-text) wire protocol, sans-I/O.

Reference: docs/PROTOCOLS.md §3 (Deepgram AsyncAPI ``listen.v2`` and the Flux
state-machine page). This module owns three things, and nothing here touches a socket or a clock:

1. **Messages.** Typed, frozen objects for every server message (:class:`Connected`,
   :class:`TurnInfo`, :class:`ConfigureSuccess`, :class:`ConfigureFailure`, :class:`FluxError`,
   :class:`FluxWarning`, and :class:`UnknownMessage` for a type added after this was written)
   and client control message (:class:`CloseStream`, :class:`Configure`, :class:`ForceEndTurn`),
   with ``parse_*`` / ``serialize_*`` functions. Binary frames are raw linear16 audio and need no
   wrapper. Parsing is liberal: unknown fields are tolerated (a ``TurnInfo`` keeps them in
   ``extra``), a ``Warning`` becomes a :class:`FluxWarning` and an unknown ``type`` an
   :class:`UnknownMessage`; it raises :class:`~voiceload.errors.RemoteProtocolError` with one
   line naming the field only when a required field of a known type is missing or mistyped.

2. **The turn state machine**, written once as :data:`TRANSITIONS` (states Initial, TurnOngoing,
   AwaitingEnd) plus the content rules of §3.5:

   1. ``Update`` about every :data:`UPDATE_INTERVAL_S` (0.25 s) of transcribed audio. Its
      exact timing cannot be judged from messages alone, so :class:`TurnChecker` only warns
      (a finding of severity ``warning``, :attr:`Rule.UPDATE_CADENCE_GAP`) when
      ``audio_window_end`` advances by more than two intervals plus one audio frame between
      consecutive ``TurnInfo`` messages: Updates come during silence too, so no legal stream
      goes that long without one;
   2. ``EagerEndOfTurn`` always has a non-empty transcript;
   3. ``TurnResumed`` only follows an ``EagerEndOfTurn``;
   4. ``EndOfTurn`` repeats the immediately preceding ``EagerEndOfTurn`` transcript; a changed
      transcript is announced by ``TurnResumed`` first (so an ``Update`` while awaiting the end
      carries the eager transcript unchanged);
   5. ``turn_index`` increments immediately after ``EndOfTurn``;
   6. ``StartOfTurn`` always has a non-empty transcript;
   7. eager events only when ``eager_eot_threshold`` is set. An ``EndOfTurn`` straight from
      TurnOngoing is legal: with eager mode off it is the normal path, and with it on the turn
      may end by ``eot_timeout_ms`` without an eager event. Only when the message itself says
      the model ended the turn (``"trigger": "model"``, hosted Deepgram only) with eager mode
      on is a missing ``EagerEndOfTurn`` a finding; Workers AI sends no ``trigger``, so there
      it is never judged (the "eager before a model end" rule is inferred, not documented).

   Plus stream-wide rules: ``Connected`` comes first with ``sequence_id`` 0; ``sequence_id``
   increases by one on every server message of any type; ``request_id`` never changes;
   ``audio_window_end`` never goes backwards and never precedes ``audio_window_start``.

3. **Two roles over those rules.** :class:`FluxTurnMachine` *generates* legal messages for the
   emulator and raises :class:`~voiceload.errors.LocalProtocolError` when asked for an illegal
   one. :class:`TurnChecker` *checks* what a real service sends, never raises on a bad peer, and
   records everything unexpected as a :class:`Finding` with a stable :class:`Rule` id and a
   :class:`Severity` (``info`` / ``warning`` / ``violation``): only violations make a client
   report the session as broken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import msgspec

from voiceload.errors import LocalProtocolError, RemoteProtocolError
from voiceload.protocol import _json

#: Flux sends an ``Update`` for about every this many seconds of transcribed audio (§3.5 rule 1,
#: "approximately every 0.25 seconds ... unless a state change has occurred").
UPDATE_INTERVAL_S = 0.25

# --------------------------------------------------------------------------------------------
# Server messages
# --------------------------------------------------------------------------------------------


class TurnEvent(StrEnum):
    """The ``event`` of a ``TurnInfo`` message."""

    UPDATE = "Update"
    START_OF_TURN = "StartOfTurn"
    EAGER_END_OF_TURN = "EagerEndOfTurn"
    TURN_RESUMED = "TurnResumed"
    END_OF_TURN = "EndOfTurn"


@dataclass(frozen=True)
class Word:
    """One recognised word; ``start``/``end`` are seconds of stream audio (optional on the wire)."""

    word: str
    confidence: float
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Connected:
    """First server message of every stream (``sequence_id`` 0)."""

    request_id: str
    sequence_id: int


@dataclass(frozen=True)
class TurnInfo:
    """A turn event. Times are seconds of audio received on this stream.

    ``extra`` keeps every field this module does not know (``trigger``, ``languages``,
    ``languages_hinted``, ...) so nothing the service sent is lost; serialising writes them back.
    """

    request_id: str
    sequence_id: int
    event: TurnEvent
    turn_index: int
    audio_window_start: float
    audio_window_end: float
    transcript: str
    words: Sequence[Word]  # a tuple when built here; :class:`Words` when parsed
    end_of_turn_confidence: float
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigureSuccess:
    """Answer to a ``Configure`` that was applied; values are the settings now in force."""

    request_id: str
    sequence_id: int
    thresholds: Mapping[str, float]
    keyterms: tuple[str, ...]
    language_hints: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ConfigureFailure:
    """Answer to a ``Configure`` that was rejected."""

    request_id: str
    sequence_id: int


@dataclass(frozen=True)
class FluxError:
    """Fatal server error (``"type": "Error"``, AsyncAPI ``ListenV2FatalError``); no request_id."""

    sequence_id: int
    code: str
    description: str


@dataclass(frozen=True)
class FluxWarning:
    """A non-fatal condition the service reports (``"type": "Warning"``); the stream goes on.

    Published in Deepgram's SDK (``ListenV2Warning``: ``request_id``, ``sequence_id``, ``code``
    in SCREAMING_SNAKE_CASE, ``description``;
    https://github.com/deepgram/deepgram-python-sdk/blob/main/src/deepgram/listen/v2/types/listen_v2warning.py)
    but not in the AsyncAPI page this module was first written from, so every field is optional.
    """

    sequence_id: int | None
    code: str
    description: str
    request_id: str | None = None


@dataclass(frozen=True)
class UnknownMessage:
    """A JSON object whose ``type`` this module does not know (a type added after it was
    written). Deepgram's own SDK skips such messages with a log line ("update your SDK version
    to support new message types",
    https://github.com/deepgram/deepgram-python-sdk/blob/main/src/deepgram/listen/v2/socket_client.py);
    the client records them as ``info`` findings instead of failing the stream."""

    type: str
    sequence_id: int | None
    fields: Mapping[str, Any] = field(default_factory=dict)


ServerMessage = (
    Connected | TurnInfo | ConfigureSuccess | ConfigureFailure | FluxError | FluxWarning
    | UnknownMessage
)  # fmt: skip

_TURN_INFO_FIELDS = frozenset(
    {
        "type",
        "request_id",
        "sequence_id",
        "event",
        "turn_index",
        "audio_window_start",
        "audio_window_end",
        "transcript",
        "words",
        "end_of_turn_confidence",
    }
)


_NUMBER_TYPES = (float, int)  # exact types: a bool (an int subclass) takes the checked path


def _plain_word(obj: object) -> bool:
    """True for the well-formed word every Update repeats: an object with a string ``word`` and
    numeric ``confidence``, ``start`` and ``end``. Anything else takes :func:`_parse_word`'s
    checked path, which either accepts it (optional times absent) or names what is wrong."""
    if type(obj) is not dict:
        return False
    get = obj.get
    return (
        type(get("word")) is str
        and type(get("confidence")) in _NUMBER_TYPES
        and type(get("start")) in _NUMBER_TYPES
        and type(get("end")) in _NUMBER_TYPES
    )


class Words(Sequence[Word]):
    """The ``words`` of a parsed ``TurnInfo``: checked when the message is parsed, built into
    :class:`Word` objects only when read.

    Flux resends every word of the turn on each ``Update`` (about 33 per message for a 20 s
    monologue) and the load client reads none of them, so building them for every message was
    most of the client's parsing cost. The check is the same as building them (a malformed word
    raises :class:`~voiceload.errors.RemoteProtocolError` at parse time, with the same message),
    so what is accepted and every finding are unchanged. Compares equal to the tuple of the same
    words.
    """

    __slots__ = ("_built", "_raw", "_typed")

    def __init__(self, raw: list[Any]) -> None:
        for obj in raw:
            if not _plain_word(obj):
                _parse_word(obj)  # raises for a malformed word; a valid one is built on read
        self._raw: list[Any] = raw
        self._typed = False
        self._built: tuple[Word, ...] | None = None

    @classmethod
    def _decoded(cls, words: list[_WireWord]) -> Words:
        """Words msgspec already checked while decoding (:func:`_decode_turn_info`)."""
        self = cls.__new__(cls)
        self._raw = words
        self._typed = True
        self._built = None
        return self

    def _words(self) -> tuple[Word, ...]:
        if self._built is None:
            if self._typed:
                self._built = tuple(Word(w.word, w.confidence, w.start, w.end) for w in self._raw)
            else:
                self._built = tuple(_parse_word(w) for w in self._raw)
        return self._built

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, index: Any) -> Any:
        return self._words()[index]

    def __iter__(self) -> Iterator[Word]:
        return iter(self._words())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Words | tuple | list):
            return self._words() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._words())

    def __repr__(self) -> str:
        return repr(self._words())


class _WireWord(msgspec.Struct, gc=False):
    """A well-formed ``TurnInfo`` word as msgspec checks it (unknown keys ignored, as
    :func:`_parse_word` ignores them; numbers are JSON integers or floats, never booleans)."""

    word: str
    confidence: float
    start: float | None = None
    end: float | None = None


class _WireTurnInfo(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A ``TurnInfo`` with every documented field and no other: what Flux sends on each of its
    ``Update``s. Anything else (a field missing, mistyped or unknown) fails to decode and takes
    the checked path, which names the problem or keeps the unknown fields in ``extra``."""

    request_id: str
    sequence_id: int
    event: str
    turn_index: int
    audio_window_start: float
    audio_window_end: float
    transcript: str
    words: list[_WireWord]
    end_of_turn_confidence: float
    type: str | None = None


_TURN_INFO_DECODER = msgspec.json.Decoder(_WireTurnInfo)
_TURN_EVENTS: Mapping[str, TurnEvent] = MappingProxyType({str(e): e for e in TurnEvent})


def _decode_turn_info(data: str | bytes) -> TurnInfo | None:
    """The fast path of :func:`parse_server_message`: a well-formed ``TurnInfo`` decoded and
    checked in one pass by msgspec (C), about 3x faster than decoding with orjson and checking
    each word in Python (9–11 vs 31 µs for a 60-word ``Update``, over the runs measured).
    ``None`` for anything else (another message type, a malformed or unusual ``TurnInfo``):
    the checked path decides. Every value is the one the checked path gives (integers read into
    float fields become floats, as ``float()`` makes them there)."""
    try:
        wire = _TURN_INFO_DECODER.decode(data)
    except (msgspec.DecodeError, UnicodeEncodeError):
        return None
    if wire.type is not None and wire.type != "TurnInfo":
        return None
    event = _TURN_EVENTS.get(wire.event)
    if event is None:
        return None
    return TurnInfo(
        request_id=wire.request_id,
        sequence_id=wire.sequence_id,
        event=event,
        turn_index=wire.turn_index,
        audio_window_start=wire.audio_window_start,
        audio_window_end=wire.audio_window_end,
        transcript=wire.transcript,
        words=Words._decoded(wire.words),
        end_of_turn_confidence=wire.end_of_turn_confidence,
    )


def _parse_word(obj: object) -> Word:
    if _plain_word(obj):
        assert isinstance(obj, dict)
        return Word(
            word=obj["word"], confidence=float(obj["confidence"]),
            start=float(obj["start"]), end=float(obj["end"]),
        )  # fmt: skip
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"TurnInfo word must be an object, got {obj!r}")
    return Word(
        word=_json.req_str(obj, "word", "TurnInfo word"),
        confidence=_json.req_float(obj, "confidence", "TurnInfo word"),
        start=_json.opt_float(obj, "start", "TurnInfo word"),
        end=_json.opt_float(obj, "end", "TurnInfo word"),
    )


def _parse_turn_info(obj: dict[str, Any]) -> TurnInfo:
    name = "TurnInfo"
    raw_event = _json.req_str(obj, "event", name)
    try:
        event = TurnEvent(raw_event)
    except ValueError:
        raise RemoteProtocolError(f"TurnInfo message has unknown event {raw_event!r}") from None
    return TurnInfo(
        request_id=_json.req_str(obj, "request_id", name),
        sequence_id=_json.req_int(obj, "sequence_id", name),
        event=event,
        turn_index=_json.req_int(obj, "turn_index", name),
        audio_window_start=_json.req_float(obj, "audio_window_start", name),
        audio_window_end=_json.req_float(obj, "audio_window_end", name),
        transcript=_json.req_str(obj, "transcript", name),
        words=Words(_json.req_list(obj, "words", name)),
        end_of_turn_confidence=_json.req_float(obj, "end_of_turn_confidence", name),
        extra={k: v for k, v in obj.items() if k not in _TURN_INFO_FIELDS},
    )


def _parse_connected(obj: dict[str, Any]) -> Connected:
    return Connected(
        request_id=_json.req_str(obj, "request_id", "Connected"),
        sequence_id=_json.req_int(obj, "sequence_id", "Connected"),
    )


def _parse_configure_success(obj: dict[str, Any]) -> ConfigureSuccess:
    name = "ConfigureSuccess"
    hints = obj.get("language_hints")
    return ConfigureSuccess(
        request_id=_json.req_str(obj, "request_id", name),
        sequence_id=_json.req_int(obj, "sequence_id", name),
        thresholds=_json.number_map(_json.req_object(obj, "thresholds", name), "thresholds", name),
        keyterms=_json.str_tuple(_json.req_list(obj, "keyterms", name), "keyterms", name),
        language_hints=None
        if hints is None
        else _json.str_tuple(_json.req_list(obj, "language_hints", name), "language_hints", name),
    )


def _parse_configure_failure(obj: dict[str, Any]) -> ConfigureFailure:
    return ConfigureFailure(
        request_id=_json.req_str(obj, "request_id", "ConfigureFailure"),
        sequence_id=_json.req_int(obj, "sequence_id", "ConfigureFailure"),
    )


def _opt_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if type(value) is int else None


def _parse_warning(obj: dict[str, Any]) -> FluxWarning:
    code, description, request_id = obj.get("code"), obj.get("description"), obj.get("request_id")
    return FluxWarning(
        sequence_id=_opt_int(obj, "sequence_id"),
        code=code if isinstance(code, str) else "",
        description=description if isinstance(description, str) else "",
        request_id=request_id if isinstance(request_id, str) else None,
    )


def _parse_error(obj: dict[str, Any]) -> FluxError:
    return FluxError(
        sequence_id=_json.req_int(obj, "sequence_id", "Error"),
        code=_json.req_str(obj, "code", "Error"),
        description=_json.req_str(obj, "description", "Error"),
    )


_SERVER_PARSERS: Mapping[str, Callable[[dict[str, Any]], ServerMessage]] = MappingProxyType(
    {
        "Connected": _parse_connected,
        "TurnInfo": _parse_turn_info,
        "ConfigureSuccess": _parse_configure_success,
        "ConfigureFailure": _parse_configure_failure,
        "Error": _parse_error,
        "Warning": _parse_warning,
    }
)


def parse_server_message(data: str | bytes) -> ServerMessage:
    """Decode one Flux JSON text frame sent by the server.

    A message without ``type`` but with an ``event`` field is read as ``TurnInfo``: the Workers AI
    output schema omits ``type`` (PROTOCOLS.md §8 q3). A ``type`` string this module does not
    know gives an :class:`UnknownMessage` (liberal in what it accepts, as Deepgram's SDK is).
    Raises :class:`RemoteProtocolError` on invalid JSON, a missing or non-string ``type``, or a
    missing/mistyped required field of a known type.
    """
    fast = _decode_turn_info(data)
    if fast is not None:
        return fast
    obj = _json.loads_object(data, "Flux server message")
    msg_type = obj.get("type")
    if msg_type is None:
        if "event" in obj:
            return _parse_turn_info(obj)
        raise RemoteProtocolError("Flux server message lacks required field 'type'")
    if not isinstance(msg_type, str):
        raise RemoteProtocolError(f"Flux server message has a non-string type {msg_type!r}")
    parser = _SERVER_PARSERS.get(msg_type)
    if parser is None:
        return UnknownMessage(type=msg_type, sequence_id=_opt_int(obj, "sequence_id"), fields=obj)
    return parser(obj)


def _word_json(w: Word) -> dict[str, Any]:
    out: dict[str, Any] = {"word": w.word, "confidence": w.confidence}
    if w.start is not None:
        out["start"] = w.start
    if w.end is not None:
        out["end"] = w.end
    return out


def serialize_server_message(msg: ServerMessage) -> str:
    """Encode a server message as compact JSON with exactly the documented field names."""
    obj: dict[str, Any]
    match msg:
        case Connected():
            obj = {
                "type": "Connected",
                "request_id": msg.request_id,
                "sequence_id": msg.sequence_id,
            }
        case TurnInfo():
            obj = {
                "type": "TurnInfo",
                "request_id": msg.request_id,
                "sequence_id": msg.sequence_id,
                "event": str(msg.event),
                "turn_index": msg.turn_index,
                "audio_window_start": msg.audio_window_start,
                "audio_window_end": msg.audio_window_end,
                "transcript": msg.transcript,
                "words": [_word_json(w) for w in msg.words],
                "end_of_turn_confidence": msg.end_of_turn_confidence,
            }
            obj.update((k, v) for k, v in msg.extra.items() if k not in _TURN_INFO_FIELDS)
        case ConfigureSuccess():
            obj = {
                "type": "ConfigureSuccess",
                "request_id": msg.request_id,
                "sequence_id": msg.sequence_id,
                "thresholds": dict(msg.thresholds),
                "keyterms": list(msg.keyterms),
            }
            if msg.language_hints is not None:
                obj["language_hints"] = list(msg.language_hints)
        case ConfigureFailure():
            obj = {
                "type": "ConfigureFailure",
                "request_id": msg.request_id,
                "sequence_id": msg.sequence_id,
            }
        case FluxError():
            obj = {
                "type": "Error",
                "sequence_id": msg.sequence_id,
                "code": msg.code,
                "description": msg.description,
            }
        case FluxWarning():
            obj = {"type": "Warning"}
            if msg.request_id is not None:
                obj["request_id"] = msg.request_id
            if msg.sequence_id is not None:
                obj["sequence_id"] = msg.sequence_id
            obj.update(code=msg.code, description=msg.description)
        case UnknownMessage():
            obj = {**msg.fields, "type": msg.type}
    return _json.dumps(obj)


# --------------------------------------------------------------------------------------------
# Client messages (binary frames are raw audio and need no wrapper)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloseStream:
    """Ask the server to decode the audio already sent, emit its Updates, and close (§3.4)."""


@dataclass(frozen=True)
class ForceEndTurn:
    """End the current turn now (newest hosted Flux; not confirmed on Workers AI, §8 q4)."""


@dataclass(frozen=True)
class Configure:
    """Change settings mid-stream; ``None`` fields are omitted and keep their current value."""

    thresholds: Mapping[str, float] | None = None
    keyterms: tuple[str, ...] | None = None
    language_hints: tuple[str, ...] | None = None


ClientMessage = CloseStream | ForceEndTurn | Configure


def parse_client_message(data: str | bytes) -> ClientMessage:
    """Decode one Flux JSON text frame sent by the client (the emulator's side).

    Raises :class:`RemoteProtocolError` (the client is the peer) on invalid JSON, an unknown or
    missing ``type``, or a mistyped field.
    """
    obj = _json.loads_object(data, "Flux client message")
    msg_type = _json.req_str(obj, "type", "Flux client")
    if msg_type == "CloseStream":
        return CloseStream()
    if msg_type == "ForceEndTurn":
        return ForceEndTurn()
    if msg_type == "Configure":
        name = "Configure"
        thresholds = (
            None
            if obj.get("thresholds") is None
            else _json.number_map(_json.req_object(obj, "thresholds", name), "thresholds", name)
        )
        keyterms = (
            None
            if obj.get("keyterms") is None
            else _json.str_tuple(_json.req_list(obj, "keyterms", name), "keyterms", name)
        )
        hints = (
            None
            if obj.get("language_hints") is None
            else _json.str_tuple(
                _json.req_list(obj, "language_hints", name), "language_hints", name
            )
        )
        return Configure(thresholds=thresholds, keyterms=keyterms, language_hints=hints)
    raise RemoteProtocolError(f"unknown Flux client message type {msg_type!r}")


def serialize_client_message(msg: ClientMessage) -> str:
    """Encode a client control message as compact JSON; ``None`` fields of Configure are omitted."""
    obj: dict[str, Any]
    match msg:
        case CloseStream():
            obj = {"type": "CloseStream"}
        case ForceEndTurn():
            obj = {"type": "ForceEndTurn"}
        case Configure():
            obj = {"type": "Configure"}
            if msg.thresholds is not None:
                obj["thresholds"] = dict(msg.thresholds)
            if msg.keyterms is not None:
                obj["keyterms"] = list(msg.keyterms)
            if msg.language_hints is not None:
                obj["language_hints"] = list(msg.language_hints)
    return _json.dumps(obj)


# --------------------------------------------------------------------------------------------
# The turn state machine: one table, one set of rules, two roles
# --------------------------------------------------------------------------------------------


class TurnState(StrEnum):
    """States of the Flux turn state machine (Deepgram's names)."""

    INITIAL = "Initial"
    TURN_ONGOING = "TurnOngoing"
    AWAITING_END = "AwaitingEnd"


_S = TurnState
_E = TurnEvent

#: (state, event) -> next state, for every legal pair. ``Update`` never changes the state.
#: ``TurnOngoing --EndOfTurn--> Initial`` is the eager-off path (rule 7 limits it when eager is on).
TRANSITIONS: Mapping[tuple[TurnState, TurnEvent], TurnState] = MappingProxyType(
    {
        (_S.INITIAL, _E.UPDATE): _S.INITIAL,
        (_S.INITIAL, _E.START_OF_TURN): _S.TURN_ONGOING,
        (_S.TURN_ONGOING, _E.UPDATE): _S.TURN_ONGOING,
        (_S.TURN_ONGOING, _E.EAGER_END_OF_TURN): _S.AWAITING_END,
        (_S.TURN_ONGOING, _E.END_OF_TURN): _S.INITIAL,
        (_S.AWAITING_END, _E.UPDATE): _S.AWAITING_END,
        (_S.AWAITING_END, _E.TURN_RESUMED): _S.TURN_ONGOING,
        (_S.AWAITING_END, _E.END_OF_TURN): _S.INITIAL,
    }
)

#: Where each state-changing event leads, whatever the state it came from. After an illegal
#: event the checker follows the peer to this state, so one fault yields one finding, not a cascade.
EVENT_TARGET: Mapping[TurnEvent, TurnState] = MappingProxyType(
    {event: target for (_, event), target in TRANSITIONS.items() if event is not _E.UPDATE}
)

EAGER_EVENTS = frozenset({_E.EAGER_END_OF_TURN, _E.TURN_RESUMED})

#: ``EndOfTurn.trigger`` values that end a turn without the model's eager path (hosted Flux).
FORCED_TRIGGERS = frozenset({"timeout", "manual"})

#: Optional ``TurnInfo`` fields documented by Deepgram that :class:`TurnInfo` keeps in ``extra``
#: (hosted Flux's ``trigger``; the multilingual ``languages`` / ``languages_hinted``): known, so
#: never reported as unknown.
DOCUMENTED_OPTIONAL_FIELDS = frozenset({"trigger", "languages", "languages_hinted"})

#: ``EndOfTurn.trigger`` of a turn the model ended (hosted Flux); only then, with eager mode on,
#: does a missing ``EagerEndOfTurn`` count as a finding (rule 7).
MODEL_TRIGGER = "model"


class Rule(StrEnum):
    """Stable ids of the protocol rules a :class:`Finding` can report."""

    CONNECTED_NOT_FIRST = "connected-not-first"
    SEQUENCE_ID_NOT_CONSECUTIVE = "sequence-id-not-consecutive"
    REQUEST_ID_CHANGED = "request-id-changed"
    TURN_INDEX_NOT_INCREMENTED = "turn-index-not-incremented"
    TURN_INDEX_UNEXPECTED = "turn-index-unexpected"
    EVENT_ILLEGAL_IN_STATE = "event-illegal-in-state"
    START_OF_TURN_EMPTY = "start-of-turn-empty"
    EAGER_END_OF_TURN_EMPTY = "eager-end-of-turn-empty"
    TURN_RESUMED_WITHOUT_EAGER = "turn-resumed-without-eager"
    END_OF_TURN_TRANSCRIPT_DIFFERS = "end-of-turn-transcript-differs"
    TRANSCRIPT_CHANGED_WITHOUT_RESUME = "transcript-changed-without-resume"
    EAGER_WITHOUT_THRESHOLD = "eager-without-threshold"
    END_OF_TURN_WITHOUT_EAGER = "end-of-turn-without-eager"
    AUDIO_WINDOW_END_BACKWARDS = "audio-window-end-backwards"
    AUDIO_WINDOW_INVERTED = "audio-window-inverted"
    UPDATE_CADENCE_GAP = "update-cadence-gap"
    CONNECTED_MISSING = "connected-missing"
    SERVICE_WARNING = "service-warning"
    UNKNOWN_MESSAGE_TYPE = "unknown-message-type"
    UNKNOWN_FIELD = "unknown-field"


class Severity(StrEnum):
    """How much a :class:`Finding` matters.

    * ``violation``: the service broke a documented rule that the measurements rely on (turn
      state machine, transcripts, audio windows, unreadable messages); the session is reported
      as a ``protocol_violation`` (everything measured is kept);
    * ``warning``: a difference from the documentation that does not change any number
      (``Connected`` missing or not first, ``sequence_id`` / ``request_id`` / ``turn_index``
      bookkeeping, the Update cadence, a ``Warning`` message from the service); recorded and
      counted, the session stays ok;
    * ``info``: something this client does not know but may legally appear (a message type or
      field added after this client was written); recorded once, never a failure.
    """

    INFO = "info"
    WARNING = "warning"
    VIOLATION = "violation"


#: The severity of each rule; rules not listed are violations. turn_index rules are warnings
#: because turns are paired with the manifest by audio time, not by index
#: (:mod:`voiceload.client.turn_alignment`).
RULE_SEVERITY: Mapping[str, Severity] = MappingProxyType(
    {
        Rule.CONNECTED_NOT_FIRST: Severity.WARNING,
        Rule.CONNECTED_MISSING: Severity.WARNING,
        Rule.SEQUENCE_ID_NOT_CONSECUTIVE: Severity.WARNING,
        Rule.REQUEST_ID_CHANGED: Severity.WARNING,
        Rule.TURN_INDEX_NOT_INCREMENTED: Severity.WARNING,
        Rule.TURN_INDEX_UNEXPECTED: Severity.WARNING,
        Rule.UPDATE_CADENCE_GAP: Severity.WARNING,
        Rule.SERVICE_WARNING: Severity.WARNING,
        Rule.UNKNOWN_MESSAGE_TYPE: Severity.INFO,
        Rule.UNKNOWN_FIELD: Severity.INFO,
    }
)


def severity_of(rule: str) -> Severity:
    """The severity of ``rule`` (:data:`RULE_SEVERITY`; any other rule is a violation)."""
    return RULE_SEVERITY.get(rule, Severity.VIOLATION)


@dataclass(frozen=True)
class Finding:
    """One thing a stream did that the documentation does not lead us to expect: which rule, a
    plain message, where (``sequence_id``), how much it matters, and the service's own code
    when the finding is a ``Warning`` message it sent."""

    rule: str
    message: str
    sequence_id: int | None
    severity: Severity = Severity.VIOLATION
    code: str | None = None

    @property
    def is_violation(self) -> bool:
        return self.severity is Severity.VIOLATION


@dataclass
class _TurnTrack:
    """Where a stream stands in the turn state machine. Shared by both roles; mutable."""

    state: TurnState = TurnState.INITIAL
    turn_index: int = 0
    eager_transcript: str | None = None  # transcript of the EagerEndOfTurn awaiting its end
    audio_window_end: float | None = None

    def violations(
        self,
        event: TurnEvent,
        *,
        transcript: str,
        audio_window_start: float,
        audio_window_end: float,
        eager_enabled: bool | None,
        trigger: object = None,
    ) -> list[tuple[Rule, str]]:
        """Every rule the next ``TurnInfo`` would break; ``eager_enabled`` None = not known."""
        found: list[tuple[Rule, str]] = []
        if event in EAGER_EVENTS and eager_enabled is False:
            found.append((Rule.EAGER_WITHOUT_THRESHOLD, f"{event} without eager_eot_threshold"))
        if (self.state, event) not in TRANSITIONS:
            if event is _E.TURN_RESUMED:
                found.append(
                    (
                        Rule.TURN_RESUMED_WITHOUT_EAGER,
                        "TurnResumed without preceding EagerEndOfTurn",
                    )
                )
            else:
                found.append(
                    (Rule.EVENT_ILLEGAL_IN_STATE, f"{event} is illegal in state {self.state}")
                )
        elif (
            event is _E.END_OF_TURN
            and self.state is _S.TURN_ONGOING
            and eager_enabled is True
            and trigger == MODEL_TRIGGER
        ):
            found.append(
                (
                    Rule.END_OF_TURN_WITHOUT_EAGER,
                    "EndOfTurn (trigger model) without preceding EagerEndOfTurn"
                    " while eager mode is on",
                )
            )
        if not transcript.strip():
            if event is _E.START_OF_TURN:
                found.append((Rule.START_OF_TURN_EMPTY, "StartOfTurn with empty transcript"))
            elif event is _E.EAGER_END_OF_TURN:
                found.append((Rule.EAGER_END_OF_TURN_EMPTY, "EagerEndOfTurn with empty transcript"))
        if self.state is _S.AWAITING_END and self.eager_transcript is not None:
            if event is _E.END_OF_TURN and transcript != self.eager_transcript:
                found.append(
                    (
                        Rule.END_OF_TURN_TRANSCRIPT_DIFFERS,
                        "EndOfTurn transcript differs from preceding EagerEndOfTurn",
                    )
                )
            elif event is _E.UPDATE and transcript != self.eager_transcript:
                found.append(
                    (
                        Rule.TRANSCRIPT_CHANGED_WITHOUT_RESUME,
                        "Update transcript differs from preceding EagerEndOfTurn"
                        " without TurnResumed",
                    )
                )
        if audio_window_start > audio_window_end:
            found.append(
                (
                    Rule.AUDIO_WINDOW_INVERTED,
                    f"audio_window_start {audio_window_start} is after"
                    f" audio_window_end {audio_window_end}",
                )
            )
        if self.audio_window_end is not None and audio_window_end < self.audio_window_end:
            found.append(
                (
                    Rule.AUDIO_WINDOW_END_BACKWARDS,
                    f"audio_window_end went backwards ({audio_window_end}"
                    f" after {self.audio_window_end})",
                )
            )
        return found

    def advance(self, event: TurnEvent, *, transcript: str, audio_window_end: float) -> None:
        """Move past the event (legal or not: an illegal one leads to its usual target state)."""
        self.state = TRANSITIONS.get((self.state, event), EVENT_TARGET.get(event, self.state))
        if event is _E.EAGER_END_OF_TURN:
            self.eager_transcript = transcript
        elif event in (_E.TURN_RESUMED, _E.END_OF_TURN):
            self.eager_transcript = None
        if event is _E.END_OF_TURN:
            self.turn_index += 1
        self.audio_window_end = audio_window_end


class FluxTurnMachine:
    """Generate role: builds a legal Flux server message sequence for one stream (emulator).

    Call :meth:`connected` first (it is ``sequence_id`` 0), then :meth:`emit` for each turn event,
    and :meth:`next_sequence_id` (or the ``configure_*``/``error`` helpers) for other messages,
    so ``sequence_id`` stays consecutive across all types. ``turn_index`` is assigned here and
    increments after each ``EndOfTurn``. Anything that would break a §3.5 rule raises
    :class:`LocalProtocolError` and leaves the machine unchanged.
    """

    def __init__(self, request_id: str, eager_enabled: bool) -> None:
        self.request_id = request_id
        self.eager_enabled = eager_enabled
        self._track = _TurnTrack()
        self._next_seq = 0

    @property
    def state(self) -> TurnState:
        return self._track.state

    @property
    def turn_index(self) -> int:
        return self._track.turn_index

    def connected(self) -> Connected:
        """The ``Connected`` message; only valid as the very first message."""
        if self._next_seq != 0:
            raise LocalProtocolError("Connected must be the first message of a Flux stream")
        self._next_seq = 1
        return Connected(request_id=self.request_id, sequence_id=0)

    def next_sequence_id(self) -> int:
        """Reserve the next ``sequence_id`` for a message built elsewhere."""
        if self._next_seq == 0:
            raise LocalProtocolError("send Connected before any other Flux message")
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def emit(
        self,
        event: TurnEvent,
        *,
        transcript: str,
        words: tuple[Word, ...] = (),
        audio_window_start: float,
        audio_window_end: float,
        end_of_turn_confidence: float,
        extra: Mapping[str, Any] | None = None,
    ) -> TurnInfo:
        """The next ``TurnInfo``; raises :class:`LocalProtocolError` naming the broken rule."""
        extra = dict(extra or {})
        found = self._track.violations(
            event,
            transcript=transcript,
            audio_window_start=audio_window_start,
            audio_window_end=audio_window_end,
            eager_enabled=self.eager_enabled,
            trigger=extra.get("trigger"),
        )
        if found:
            reasons = "; ".join(message for _, message in found)
            raise LocalProtocolError(f"cannot emit {event} in state {self.state}: {reasons}")
        msg = TurnInfo(
            request_id=self.request_id,
            sequence_id=self.next_sequence_id(),
            event=event,
            turn_index=self._track.turn_index,
            audio_window_start=audio_window_start,
            audio_window_end=audio_window_end,
            transcript=transcript,
            words=words,
            end_of_turn_confidence=end_of_turn_confidence,
            extra=extra,
        )
        self._track.advance(event, transcript=transcript, audio_window_end=audio_window_end)
        return msg

    def emit_end_of_turn_forced(
        self,
        *,
        transcript: str,
        words: tuple[Word, ...] = (),
        audio_window_start: float,
        audio_window_end: float,
        end_of_turn_confidence: float,
    ) -> list[TurnInfo]:
        """End the current turn now (the ``eot_timeout_ms`` path), keeping every rule.

        Emits ``EndOfTurn`` (no ``trigger``, as Workers AI sends it), preceded only by what the
        rules require: a ``TurnResumed`` when an ``EagerEndOfTurn`` is awaiting its end with a
        different transcript (rule 4). No ``EagerEndOfTurn`` is invented: a timeout may end a
        turn straight from TurnOngoing. All messages share the given window and transcript.
        Raises in state Initial.
        """
        if self.state is _S.INITIAL:
            raise LocalProtocolError("cannot force EndOfTurn in state Initial: no turn is open")
        events: list[TurnEvent] = []
        if self.state is _S.AWAITING_END and self._track.eager_transcript != transcript:
            events.append(_E.TURN_RESUMED)
        events.append(_E.END_OF_TURN)
        out: list[TurnInfo] = []
        for event in events:
            out.append(
                self.emit(
                    event,
                    transcript=transcript,
                    words=words,
                    audio_window_start=audio_window_start,
                    audio_window_end=audio_window_end,
                    end_of_turn_confidence=end_of_turn_confidence,
                )
            )
        return out

    def configure_success(
        self,
        thresholds: Mapping[str, float],
        keyterms: tuple[str, ...],
        language_hints: tuple[str, ...] | None = None,
    ) -> ConfigureSuccess:
        return ConfigureSuccess(
            request_id=self.request_id,
            sequence_id=self.next_sequence_id(),
            thresholds=dict(thresholds),
            keyterms=keyterms,
            language_hints=language_hints,
        )

    def configure_failure(self) -> ConfigureFailure:
        return ConfigureFailure(request_id=self.request_id, sequence_id=self.next_sequence_id())

    def error(self, code: str, description: str) -> FluxError:
        return FluxError(sequence_id=self.next_sequence_id(), code=code, description=description)


class TurnChecker:
    """Check role: feed every server message of one stream; what it breaks becomes findings.

    ``eager_enabled`` is whether the client set ``eager_eot_threshold`` (None: unknown, so the
    eager-mode rules are not judged). ``frame_s`` is the longest audio frame the client sends:
    the cadence warning allows ``2 * UPDATE_INTERVAL_S + frame_s`` of audio between consecutive
    ``TurnInfo`` messages. Never raises on a bad peer. After a violation the checker follows
    what the peer said (its ``sequence_id``, ``turn_index``, state), so one fault gives one
    finding rather than one per later message. Every finding carries its :class:`Severity`
    (:func:`severity_of`); :attr:`findings` holds them all, in arrival order.
    """

    def __init__(self, eager_enabled: bool | None = None, *, frame_s: float = 0.1) -> None:
        self.eager_enabled = eager_enabled
        self.max_update_gap_s = 2 * UPDATE_INTERVAL_S + frame_s
        self._track = _TurnTrack()
        self._findings: list[Finding] = []
        self._expected_seq: int | None = None  # None until the first message with a sequence_id
        self._seen_message = False
        self._request_id: str | None = None
        self._last_event: TurnEvent | None = None
        self._unknown_seen: set[str] = set()  # unknown types / fields already reported
        # set when a turn_index that did not increment after EndOfTurn was reported: a peer
        # that increments at the next StartOfTurn instead is then followed without a 2nd finding
        self._index_late = False

    @property
    def findings(self) -> list[Finding]:
        """Every finding so far, of every severity, in arrival order (a copy)."""
        return list(self._findings)

    @property
    def violations(self) -> list[Finding]:
        """The findings of severity ``violation`` (a copy)."""
        return [f for f in self._findings if f.is_violation]

    @property
    def state(self) -> TurnState:
        return self._track.state

    @property
    def turn_index(self) -> int:
        """The ``turn_index`` the next turn message should carry."""
        return self._track.turn_index

    def feed(self, msg: ServerMessage) -> list[Finding]:
        """Check one server message; returns the findings it caused (also kept in findings)."""
        seq = msg.sequence_id
        new: list[Finding] = []

        def add(rule: Rule, message: str, code: str | None = None) -> None:
            new.append(Finding(str(rule), message, seq, severity_of(rule), code))

        first = not self._seen_message
        self._seen_message = True
        if first and not isinstance(msg, Connected):
            add(Rule.CONNECTED_MISSING, f"first message is {_type_name(msg)}, not Connected")
        elif not first and isinstance(msg, Connected):
            add(Rule.CONNECTED_NOT_FIRST, "Connected is not the first message")
        if seq is not None:
            if self._expected_seq is None:
                # without Connected the stream may count from 0 or from 1: take it as it comes
                expected = 0 if isinstance(msg, Connected) else seq
            else:
                expected = self._expected_seq
            if seq != expected:
                add(
                    Rule.SEQUENCE_ID_NOT_CONSECUTIVE,
                    f"sequence_id not consecutive (expected {expected}, got {seq})",
                )
            self._expected_seq = seq + 1

        request_id = getattr(msg, "request_id", None)
        if isinstance(request_id, str):
            if self._request_id is not None and request_id != self._request_id:
                add(
                    Rule.REQUEST_ID_CHANGED,
                    f"request_id changed from {self._request_id!r} to {request_id!r}",
                )
            self._request_id = request_id

        if isinstance(msg, TurnInfo):
            self._check_turn(msg, add)
            for name in msg.extra:
                if name not in DOCUMENTED_OPTIONAL_FIELDS and self._first(f"field:{name}"):
                    add(Rule.UNKNOWN_FIELD, f"TurnInfo has a field this client does not know:"
                                            f" {name!r}")  # fmt: skip
        elif isinstance(msg, FluxWarning):
            add(Rule.SERVICE_WARNING, f"Flux sent Warning {msg.code}: {msg.description}",
                code=msg.code)  # fmt: skip
        elif isinstance(msg, UnknownMessage) and self._first(f"type:{msg.type}"):
            add(Rule.UNKNOWN_MESSAGE_TYPE, f"unknown Flux message type {msg.type!r} (skipped)")
        self._findings.extend(new)
        return new

    def _first(self, key: str) -> bool:
        """True the first time ``key`` is seen on this stream (unknowns are reported once)."""
        if key in self._unknown_seen:
            return False
        self._unknown_seen.add(key)
        return True

    def _check_turn(self, msg: TurnInfo, add: Callable[[Rule, str], None]) -> None:
        expected_index = self._track.turn_index
        late_increment = (
            self._index_late
            and msg.event is _E.START_OF_TURN
            and msg.turn_index == expected_index + 1
        )
        if msg.event is _E.START_OF_TURN:
            self._index_late = False
        if msg.turn_index != expected_index:
            if late_increment:
                pass  # the increment reported missing arrives late: one fault, one finding
            elif msg.turn_index == expected_index - 1 and self._last_event is _E.END_OF_TURN:
                add(
                    Rule.TURN_INDEX_NOT_INCREMENTED,
                    f"turn_index did not increment after EndOfTurn"
                    f" (expected {expected_index}, got {msg.turn_index})",
                )
                self._index_late = True
            else:
                add(
                    Rule.TURN_INDEX_UNEXPECTED,
                    f"turn_index unexpected (expected {expected_index}, got {msg.turn_index})",
                )
            self._track.turn_index = msg.turn_index
        for rule, message in self._track.violations(
            msg.event,
            transcript=msg.transcript,
            audio_window_start=msg.audio_window_start,
            audio_window_end=msg.audio_window_end,
            eager_enabled=self.eager_enabled,
            trigger=msg.extra.get("trigger"),
        ):
            add(rule, message)
        previous_end = self._track.audio_window_end
        gap_s = None if previous_end is None else msg.audio_window_end - previous_end
        if gap_s is not None and gap_s > self.max_update_gap_s + 1e-6:  # 1 us: float rounding
            add(
                Rule.UPDATE_CADENCE_GAP,
                f"no TurnInfo for {gap_s:.2f} s of audio"
                f" (Updates come about every {UPDATE_INTERVAL_S} s)",
            )
        self._track.advance(
            msg.event, transcript=msg.transcript, audio_window_end=msg.audio_window_end
        )
        self._last_event = msg.event


def _type_name(msg: ServerMessage) -> str:
    if isinstance(msg, UnknownMessage):
        return msg.type
    return {FluxError: "Error", FluxWarning: "Warning"}.get(type(msg), type(msg).__name__)
