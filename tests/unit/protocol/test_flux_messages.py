"""Flux message parsing and serialisation (PROTOCOLS.md §3.3, §3.4)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from voiceload.errors import RemoteProtocolError
from voiceload.protocol.flux import (
    CloseStream,
    ConfigureFailure,
    ConfigureSuccess,
    Connected,
    FluxError,
    FluxWarning,
    ForceEndTurn,
    ServerMessage,
    TurnEvent,
    TurnInfo,
    UnknownMessage,
    Word,
    parse_client_message,
    parse_server_message,
    serialize_client_message,
    serialize_server_message,
)
from voiceload.protocol.flux import Configure as FluxConfigure

# The documented example (PROTOCOLS.md §3.3), verbatim.
TURN_INFO_DOC = """{
  "type": "TurnInfo",
  "request_id": "550e8400-e29b-41d4-a716-446655440000",
  "sequence_id": 3,
  "event": "StartOfTurn",
  "turn_index": 0,
  "audio_window_start": 0.0,
  "audio_window_end": 0.6,
  "transcript": "Hi I",
  "words": [
    {"word": "Hi", "confidence": 0.95, "start": 0.42, "end": 0.56},
    {"word": "I", "confidence": 0.92, "start": 0.56, "end": 0.6}
  ],
  "end_of_turn_confidence": 0.1
}"""

CONFIGURE_SUCCESS_DOC = (
    '{"type": "ConfigureSuccess", "request_id": "r", "sequence_id": 3,'
    ' "thresholds": {"eager_eot_threshold": 0.5, "eot_threshold": 0.7, "eot_timeout_ms": 5000},'
    ' "keyterms": ["alpha", "beta"], "language_hints": ["en"]}'
)


def test_parse_documented_turn_info() -> None:
    msg = parse_server_message(TURN_INFO_DOC)
    assert msg == TurnInfo(
        request_id="550e8400-e29b-41d4-a716-446655440000",
        sequence_id=3,
        event=TurnEvent.START_OF_TURN,
        turn_index=0,
        audio_window_start=0.0,
        audio_window_end=0.6,
        transcript="Hi I",
        words=(Word("Hi", 0.95, 0.42, 0.56), Word("I", 0.92, 0.56, 0.6)),
        end_of_turn_confidence=0.1,
    )


def test_serialise_turn_info_is_compact_and_uses_documented_names() -> None:
    text = serialize_server_message(parse_server_message(TURN_INFO_DOC))
    assert " " not in text.replace("Hi I", "")
    assert json.loads(text) == json.loads(TURN_INFO_DOC)
    assert list(json.loads(text)) == list(json.loads(TURN_INFO_DOC))


@pytest.mark.parametrize(
    "msg",
    [
        Connected("550e8400", 0),
        ConfigureFailure("r", 4),
        FluxError(12, "INTERNAL_SERVER_ERROR", "..."),
        ConfigureSuccess("r", 3, {"eot_threshold": 0.8, "eot_timeout_ms": 5000}, ("a",)),
        ConfigureSuccess("r", 3, {}, (), ("en",)),
        TurnInfo("r", 1, TurnEvent.UPDATE, 2, 0.0, 0.25, "", (Word("a", 0.5),), 0.0),
    ],
)
def test_server_round_trip(msg: ServerMessage) -> None:
    assert parse_server_message(serialize_server_message(msg)) == msg


def test_wire_names_of_each_server_type() -> None:
    assert json.loads(serialize_server_message(Connected("r", 0))) == {
        "type": "Connected",
        "request_id": "r",
        "sequence_id": 0,
    }
    assert json.loads(serialize_server_message(FluxError(5, "C", "D"))) == {
        "type": "Error",
        "sequence_id": 5,
        "code": "C",
        "description": "D",
    }
    assert json.loads(serialize_server_message(ConfigureFailure("r", 4))) == {
        "type": "ConfigureFailure",
        "request_id": "r",
        "sequence_id": 4,
    }


def test_configure_success_keeps_integers_and_hints() -> None:
    msg = parse_server_message(CONFIGURE_SUCCESS_DOC)
    assert isinstance(msg, ConfigureSuccess)
    assert msg.keyterms == ("alpha", "beta")
    assert msg.language_hints == ("en",)
    assert json.loads(serialize_server_message(msg)) == json.loads(CONFIGURE_SUCCESS_DOC)
    assert '"eot_timeout_ms":5000}' in serialize_server_message(msg)


def test_unknown_fields_are_tolerated_and_kept_on_turn_info() -> None:
    obj = json.loads(TURN_INFO_DOC)
    obj |= {"event": "EndOfTurn", "trigger": "timeout", "languages": ["en"]}
    msg = parse_server_message(json.dumps(obj))
    assert isinstance(msg, TurnInfo)
    assert msg.extra == {"trigger": "timeout", "languages": ["en"]}
    assert json.loads(serialize_server_message(msg)) == obj
    connected = parse_server_message('{"type":"Connected","request_id":"r","sequence_id":0,"x":1}')
    assert connected == Connected("r", 0)


def test_turn_info_without_type_is_accepted() -> None:
    """Workers AI's schema omits `type` on TurnInfo (PROTOCOLS.md §8 q3)."""
    obj = json.loads(TURN_INFO_DOC)
    del obj["type"]
    msg = parse_server_message(json.dumps(obj).encode())
    assert isinstance(msg, TurnInfo)
    assert msg.extra == {}
    assert msg.event is TurnEvent.START_OF_TURN


def test_words_without_times() -> None:
    obj = json.loads(TURN_INFO_DOC)
    obj["words"] = [{"word": "Hi", "confidence": 1}]
    msg = parse_server_message(json.dumps(obj))
    assert isinstance(msg, TurnInfo)
    assert msg.words == (Word("Hi", 1.0),)
    assert json.loads(serialize_server_message(msg))["words"] == [{"word": "Hi", "confidence": 1.0}]


@pytest.mark.parametrize(
    "field",
    [
        "request_id",
        "sequence_id",
        "event",
        "turn_index",
        "audio_window_start",
        "audio_window_end",
        "transcript",
        "words",
        "end_of_turn_confidence",
    ],
)
def test_missing_turn_info_field(field: str) -> None:
    obj = json.loads(TURN_INFO_DOC)
    del obj[field]
    with pytest.raises(RemoteProtocolError) as info:
        parse_server_message(json.dumps(obj))
    assert str(info.value) == f"TurnInfo message lacks required field {field!r}"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("turn_index", "0", "TurnInfo message field 'turn_index' must be an integer, got \"0\""),
        ("sequence_id", 1.5, "TurnInfo message field 'sequence_id' must be an integer, got 1.5"),
        ("audio_window_end", True, "field 'audio_window_end' must be a number, got true"),
        ("transcript", None, "TurnInfo message field 'transcript' must be a string, got null"),
        ("words", {}, "TurnInfo message field 'words' must be a list, got {}"),
        ("event", "Finished", "TurnInfo message has unknown event 'Finished'"),
    ],
)
def test_mistyped_turn_info_field(field: str, value: object, error: str) -> None:
    obj = json.loads(TURN_INFO_DOC)
    obj[field] = value
    with pytest.raises(RemoteProtocolError, match=error.replace("(", r"\(")):
        parse_server_message(json.dumps(obj))


def test_word_lacking_confidence() -> None:
    obj = json.loads(TURN_INFO_DOC)
    obj["words"] = [{"word": "Hi"}]
    with pytest.raises(RemoteProtocolError, match="TurnInfo word message lacks required field"):
        parse_server_message(json.dumps(obj))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"type":7}', "Flux server message has a non-string type 7"),
        ('{"request_id":"r"}', "Flux server message lacks required field 'type'"),
        ("{not json", "Flux server message is not valid JSON"),
        ("[1, 2]", "Flux server message is a JSON list, not an object"),
        (
            '{"type":"Error","sequence_id":1,"code":"X"}',
            "Error message lacks required field 'description'",
        ),
        (
            '{"type":"ConfigureSuccess","request_id":"r","sequence_id":1,'
            '"thresholds":{"eot_threshold":"high"},"keyterms":[]}',
            "'thresholds' must be an object of numbers",
        ),
    ],
)
def test_bad_server_messages(text: str, error: str) -> None:
    with pytest.raises(RemoteProtocolError, match=error):
        parse_server_message(text)


# required fields of the smaller server messages (PROTOCOLS.md §3.3), each one left out in turn
REQUIRED_FIELDS = {
    "Connected": {"request_id": "r", "sequence_id": 0},
    "ConfigureSuccess": {
        "request_id": "r",
        "sequence_id": 3,
        "thresholds": {"eot_threshold": 0.7},
        "keyterms": ["alpha"],
    },
    "ConfigureFailure": {"request_id": "r", "sequence_id": 4},
}


@pytest.mark.parametrize(
    ("msg_type", "field"),
    [(msg_type, field) for msg_type, fields in REQUIRED_FIELDS.items() for field in fields],
)
def test_missing_required_field_is_named(msg_type: str, field: str) -> None:
    obj: dict[str, object] = {"type": msg_type, **REQUIRED_FIELDS[msg_type]}
    parse_server_message(json.dumps(obj))  # complete: parses
    del obj[field]
    with pytest.raises(RemoteProtocolError) as info:
        parse_server_message(json.dumps(obj))
    assert str(info.value) == f"{msg_type} message lacks required field {field!r}"


# ---- client messages ---------------------------------------------------------------------


def test_client_messages_serialise_as_documented() -> None:
    assert serialize_client_message(CloseStream()) == '{"type":"CloseStream"}'
    assert serialize_client_message(ForceEndTurn()) == '{"type":"ForceEndTurn"}'
    assert serialize_client_message(FluxConfigure()) == '{"type":"Configure"}'
    assert (
        serialize_client_message(FluxConfigure(thresholds={"eot_threshold": 0.8}))
        == '{"type":"Configure","thresholds":{"eot_threshold":0.8}}'
    )


@pytest.mark.parametrize(
    "msg",
    [
        CloseStream(),
        ForceEndTurn(),
        FluxConfigure(),
        FluxConfigure(
            thresholds={"eot_threshold": 0.8, "eot_timeout_ms": 3000},
            keyterms=("alpha", "customer service"),
            language_hints=("en",),
        ),
    ],
)
def test_client_round_trip(msg: CloseStream | ForceEndTurn | FluxConfigure) -> None:
    assert parse_client_message(serialize_client_message(msg)) == msg


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"type":"KeepAlive"}', "unknown Flux client message type 'KeepAlive'"),
        ("{}", "Flux client message lacks required field 'type'"),
        ('{"type":"Configure","keyterms":"alpha"}', "'keyterms' must be a list"),
        ('{"type":"Configure","keyterms":[1]}', "'keyterms' must be a list of strings"),
        ("not json", "Flux client message is not valid JSON"),
    ],
)
def test_bad_client_messages(text: str, error: str) -> None:
    with pytest.raises(RemoteProtocolError, match=error):
        parse_client_message(text)


def test_client_unknown_fields_tolerated() -> None:
    assert parse_client_message('{"type":"CloseStream","reason":"done"}') == CloseStream()


def test_serialised_json_is_compact_utf8_as_the_standard_library_writes_it() -> None:
    """The orjson encoder writes what ``json.dumps(separators=(",", ":"), ensure_ascii=False)``
    writes for Flux messages: same keys, order, numbers and non-ASCII text."""
    msg = TurnInfo(
        request_id="r-1",
        sequence_id=7,
        event=TurnEvent.UPDATE,
        turn_index=2,
        audio_window_start=0.0,
        audio_window_end=12.34,
        transcript="Grüße, señor 東京",
        words=(Word("Grüße,", 0.9, 0.1, 0.45), Word("señor", 0.875), Word("東京", 1, 0.5, 2.0)),
        end_of_turn_confidence=0.0123,
    )
    text = serialize_server_message(msg)
    obj = json.loads(text)
    assert text == json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    assert parse_server_message(text) == msg


def test_unknown_types_and_warnings_are_parsed_not_refused() -> None:
    # Deepgram's SDK skips unknown types and documents a Warning message (ListenV2Warning)
    unknown = parse_server_message('{"type":"SpeechStarted","sequence_id":4,"timestamp":1.5}')
    assert unknown == UnknownMessage(
        "SpeechStarted", 4, {"type": "SpeechStarted", "sequence_id": 4, "timestamp": 1.5}
    )
    assert parse_server_message(serialize_server_message(unknown)) == unknown
    warning = parse_server_message(
        '{"type":"Warning","request_id":"r","sequence_id":3,"code":"AUDIO_SLOW",'
        '"description":"audio arrives slower than real time"}'
    )
    assert warning == FluxWarning(3, "AUDIO_SLOW", "audio arrives slower than real time", "r")
    assert parse_server_message(serialize_server_message(warning)) == warning
    # a Warning missing its optional fields is still a Warning
    assert parse_server_message('{"type":"Warning"}') == FluxWarning(None, "", "")


# -- words are checked at parse time and built only when read (issue 16) --------------------


def _turn_info_with(words: list[object]) -> str:
    obj = json.loads(TURN_INFO_DOC)
    obj["words"] = words
    return json.dumps(obj)


def test_parsed_words_are_built_only_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import voiceload.protocol.flux as flux

    built: list[object] = []

    real_word = flux.Word

    def counting_word(*args: object, **kwargs: object) -> object:
        built.append(args or kwargs)
        return real_word(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flux, "Word", counting_word)
    words = [{"word": f"w{i}", "confidence": 0.9, "start": i / 4, "end": i / 4 + 0.2}
             for i in range(33)]  # fmt: skip
    msg = parse_server_message(_turn_info_with(words))
    assert isinstance(msg, TurnInfo)
    assert len(msg.words) == 33 and built == []  # parsing checked them, built none
    assert [w.word for w in msg.words] == [f"w{i}" for i in range(33)]
    assert len(built) == 33
    list(msg.words)
    assert len(built) == 33  # built once


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("Hi", "TurnInfo word must be an object, got 'Hi'"),
        ({"confidence": 1}, "TurnInfo word message lacks required field 'word'"),
        ({"word": "Hi", "confidence": True}, "field 'confidence' must be a number, got true"),
        ({"word": "Hi", "confidence": 1, "start": "0.1"}, "field 'start' must be a number"),
        ({"word": 7, "confidence": 1, "start": 0.1, "end": 0.2}, "field 'word' must be a string"),
    ],
)
def test_a_malformed_word_is_refused_when_the_message_is_parsed(bad: object, message: str) -> None:
    good = {"word": "ok", "confidence": 1, "start": 0, "end": 0.1}
    with pytest.raises(RemoteProtocolError, match=re.escape(message)):
        parse_server_message(_turn_info_with([good, bad]))


def test_parsed_words_equal_the_tuple_of_the_same_words() -> None:
    words = [
        {"word": "Hi", "confidence": 1},
        {"word": "I", "confidence": 0.5, "start": 1, "end": 2},
    ]
    msg = parse_server_message(_turn_info_with(words))
    expected = (Word("Hi", 1.0), Word("I", 0.5, 1.0, 2.0))
    assert isinstance(msg, TurnInfo)
    assert msg.words == expected and expected == msg.words
    assert msg.words[1] == expected[1] and msg.words[-1:] == expected[-1:]
    assert hash(msg.words) == hash(expected)
    again = parse_server_message(serialize_server_message(msg))
    assert again == msg and replace(msg, words=expected) == msg


# -- the decoding fast path (issue 16): one msgspec pass for a well-formed TurnInfo ----------

WELL_FORMED_TURN_INFOS = [
    TURN_INFO_DOC,
    _turn_info_with([]),
    _turn_info_with([{"word": "Hi", "confidence": 1}]),  # times absent, an integer confidence
    _turn_info_with([{"word": "Hi", "confidence": 0.5, "start": None, "end": 2}]),
    _turn_info_with([{"word": "Hi", "confidence": 0.5, "start": 0, "end": 1, "punct": "Hi."}]),
    json.dumps({k: v for k, v in json.loads(TURN_INFO_DOC).items() if k != "type"}),  # no type
    json.dumps(json.loads(TURN_INFO_DOC) | {"audio_window_end": 3, "sequence_id": 2**40}),
]


@pytest.mark.parametrize("text", WELL_FORMED_TURN_INFOS)
def test_the_fast_path_reads_a_well_formed_turn_info_as_the_checked_path_does(text: str) -> None:
    import voiceload.protocol.flux as flux

    fast = flux._decode_turn_info(text)
    assert fast is not None  # decoded by msgspec, not by the checked path
    checked = flux._parse_turn_info(json.loads(text))
    assert fast == checked
    types = {k: type(v) for k, v in vars(checked).items()}
    assert {k: type(v) for k, v in vars(fast).items()} == types  # integers in float fields too
    assert [vars(w) for w in fast.words] == [vars(w) for w in checked.words]
    assert flux._decode_turn_info(text.encode()) == fast  # bytes as well as str


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(json.loads(TURN_INFO_DOC) | {"trigger": ["x"]}),  # an unknown field: kept
        _turn_info_with([{"word": "Hi", "confidence": True}]),  # a bool is not a number
        _turn_info_with(["Hi"]),
        json.dumps(json.loads(TURN_INFO_DOC) | {"event": "Later"}),  # an unknown event
        json.dumps(json.loads(TURN_INFO_DOC) | {"sequence_id": 3.0}),  # not an integer
        json.dumps(json.loads(TURN_INFO_DOC) | {"type": "Somethingelse"}),
        '{"type": "Connected", "request_id": "r", "sequence_id": 0}',
        "not json",
        "[]",
    ],
)
def test_anything_else_takes_the_checked_path(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path declines (None), so parse_server_message answers exactly as it does with
    no fast path at all: the same message, or the same error text (unknown fields in ``extra``)."""
    import voiceload.protocol.flux as flux

    def parse(text: str) -> object:
        try:
            return parse_server_message(text)
        except RemoteProtocolError as exc:
            return f"error: {exc}"

    assert flux._decode_turn_info(text) is None
    got = parse(text)
    monkeypatch.setattr(flux, "_decode_turn_info", lambda data: None)
    assert got == parse(text)
    if "trigger" in text:
        assert isinstance(got, TurnInfo) and got.extra == {"trigger": ["x"]}
