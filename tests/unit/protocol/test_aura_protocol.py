"""Aura messages, the Flush limiter and the Speak size limit (PROTOCOLS.md §4)."""

from __future__ import annotations

import json

import pytest

from voiceload.errors import LocalProtocolError, RemoteProtocolError
from voiceload.protocol import aura
from voiceload.protocol.aura import (
    FLUSH_LIMIT,
    FLUSH_WINDOW_S,
    MAX_SPEAK_CHARS,
    AuraWarning,
    Clear,
    Cleared,
    ClientMessage,
    Close,
    Flush,
    Flushed,
    FlushLimiter,
    Metadata,
    OversizePolicy,
    ServerMessage,
    Speak,
    flush_limit_warning,
    oversize_speak_response,
    parse_client_message,
    parse_server_message,
    serialize_client_message,
    serialize_server_message,
    speak_over_limit,
)

S = 1_000_000_000  # ns per second

METADATA_DOC = (
    '{"type": "Metadata", "request_id": "uuid", "model_name": "aura-2-thalia-en",'
    ' "model_version": "...", "model_uuid": "uuid", "additional_model_uuids": ["uuid"]}'
)


def test_client_messages_serialise_as_documented() -> None:
    assert serialize_client_message(Speak("Hello, how can I help you today?")) == (
        '{"type":"Speak","text":"Hello, how can I help you today?"}'
    )
    assert serialize_client_message(Flush()) == '{"type":"Flush"}'
    assert serialize_client_message(Clear()) == '{"type":"Clear"}'
    assert serialize_client_message(Close()) == '{"type":"Close"}'


@pytest.mark.parametrize("msg", [Speak('héllo "quoted"\n'), Flush(), Clear(), Close()])
def test_client_round_trip(msg: ClientMessage) -> None:
    assert parse_client_message(serialize_client_message(msg)) == msg


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"type":"Speak"}', "Speak message lacks required field 'text'"),
        ('{"type":"Speak","text":5}', "Speak message field 'text' must be a string, got 5"),
        ('{"type":"Shout"}', "unknown Aura client message type 'Shout'"),
        ('{"text":"hi"}', "Aura client message lacks required field 'type'"),
        ("Hello", "Aura client message is not valid JSON"),
    ],
)
def test_bad_client_messages(text: str, error: str) -> None:
    with pytest.raises(RemoteProtocolError, match=error):
        parse_client_message(text)


def test_parse_documented_metadata() -> None:
    msg = parse_server_message(METADATA_DOC)
    assert msg == Metadata("uuid", "aura-2-thalia-en", "...", "uuid", ("uuid",))
    assert json.loads(serialize_server_message(msg)) == json.loads(METADATA_DOC)


def test_metadata_keeps_unknown_fields() -> None:
    obj = json.loads(METADATA_DOC) | {"sample_rate": 24000}
    msg = parse_server_message(json.dumps(obj))
    assert isinstance(msg, Metadata)
    assert msg.extra == {"sample_rate": 24000}
    assert json.loads(serialize_server_message(msg)) == obj


@pytest.mark.parametrize(
    ("msg", "wire"),
    [
        (Flushed(0), '{"type":"Flushed","sequence_id":0}'),
        (Cleared(3), '{"type":"Cleared","sequence_id":3}'),
        (AuraWarning("d", "c"), '{"type":"Warning","description":"d","code":"c"}'),
        (
            Metadata("r", "aura-1", "v", "u"),
            '{"type":"Metadata","request_id":"r","model_name":"aura-1","model_version":"v",'
            '"model_uuid":"u"}',
        ),
    ],
)
def test_server_wire_form_and_round_trip(msg: ServerMessage, wire: str) -> None:
    assert serialize_server_message(msg) == wire
    assert parse_server_message(wire) == msg


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"type":"Flushed"}', "Flushed message lacks required field 'sequence_id'"),
        ('{"type":"Cleared","sequence_id":"1"}', "'sequence_id' must be an integer"),
        ('{"type":"Warning","description":"x"}', "Warning message lacks required field 'code'"),
        ('{"type":"Metadata","request_id":"r"}', "Metadata message lacks required field"),
        ('{"text":"x"}', "Aura server message lacks required field 'type'"),
        ("[]", "Aura server message is a JSON list, not an object"),
    ],
)
def test_bad_server_messages(text: str, error: str) -> None:
    with pytest.raises(RemoteProtocolError, match=error):
        parse_server_message(text)


def test_warning_name_is_the_aura_message() -> None:
    assert aura.Warning is AuraWarning


def test_unknown_type_is_kept_not_refused() -> None:
    msg = parse_server_message('{"type":"Results","x":1}')
    assert msg == aura.UnknownMessage("Results", {"type": "Results", "x": 1})
    assert parse_server_message(serialize_server_message(msg)) == msg


def test_flush_refusal_is_recognised_by_code_or_description() -> None:
    assert aura.is_flush_refusal(aura.flush_limit_warning())
    assert aura.is_flush_refusal(AuraWarning("Flush limit exceeded, try later", "W1"))
    assert not aura.is_flush_refusal(AuraWarning("Input Text Exceeds Character Limits", "413"))


# ---- Flush limiter ------------------------------------------------------------------------


def test_documented_flush_limit() -> None:
    assert (FLUSH_LIMIT, FLUSH_WINDOW_S, MAX_SPEAK_CHARS) == (20, 60, 2000)


def test_twenty_flushes_per_sliding_minute() -> None:
    limiter = FlushLimiter()
    # 20 flushes one second apart: all allowed; the 21st inside the window is refused
    assert all(limiter.allow(i * S) for i in range(20))
    assert limiter.allow(59 * S) is False
    # the first flush (t=0) leaves the window exactly at t=60 s
    assert limiter.allow(60 * S - 1) is False
    assert limiter.allow(60 * S) is True
    assert limiter.allow(60 * S + 1) is False
    assert limiter.allow(61 * S) is True


def test_refused_flushes_do_not_count() -> None:
    limiter = FlushLimiter(limit=2, window_s=10)
    assert [limiter.allow(t * S) for t in (0, 1, 2, 3, 9)] == [True, True, False, False, False]
    assert limiter.allow(10 * S) is True  # only t=0 left the window; t=1 still counts
    assert limiter.allow(10 * S + 1) is False
    assert limiter.allow(11 * S) is True


def test_limiter_rejects_time_going_backwards_and_bad_limits() -> None:
    limiter = FlushLimiter()
    limiter.allow(5 * S)
    with pytest.raises(LocalProtocolError, match="time went backwards"):
        limiter.allow(4 * S)
    with pytest.raises(LocalProtocolError, match="limit >= 1"):
        FlushLimiter(limit=0)


def test_flush_limit_warning_is_a_warning_message() -> None:
    wire = json.loads(serialize_server_message(flush_limit_warning()))
    assert wire["type"] == "Warning"
    assert wire["code"] == "FLUSH_LIMIT_EXCEEDED"
    assert "20 Flush messages every 60 seconds" in wire["description"]


# ---- Speak size limit ---------------------------------------------------------------------


def test_speak_limit_boundary() -> None:
    assert speak_over_limit(2000) is False
    assert speak_over_limit(2001) is True


@pytest.mark.parametrize(
    ("policy", "sends_warning", "closes"),
    [
        (OversizePolicy.WARNING_THEN_CLOSE, True, True),
        (OversizePolicy.WARNING, True, False),
        (OversizePolicy.CLOSE, False, True),
    ],
)
def test_oversize_speak_response(policy: OversizePolicy, sends_warning: bool, closes: bool) -> None:
    warning, close = oversize_speak_response(2345, policy)
    if sends_warning:
        assert warning == AuraWarning(
            "Input Text Exceeds Character Limits (2345 characters; the limit is 2000)", "413"
        )
    else:
        assert warning is None
    if closes:
        assert close is not None
        assert (close.code, close.reason) == (1009, "BIG-0000")
    else:
        assert close is None


def test_oversize_default_policy_warns_then_closes() -> None:
    warning, close = oversize_speak_response(MAX_SPEAK_CHARS + 1)
    assert warning is not None and close is not None
