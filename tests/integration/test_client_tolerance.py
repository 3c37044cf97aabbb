"""The client meets a service that differs from the documentation in harmless ways.

A scripted Flux server on 127.0.0.1 (no Connected, a Warning, a message type and a field this
client does not know, one reference turn ended twice) must give an ok session with those
differences recorded as findings of the right severity and the turns paired by audio time;
the emulator's own Flush limit must give a refused Flush, not a timeout.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from voiceload.client.aura_session import AuraOptions, AuraSession
from voiceload.client.flux_session import FluxOptions, FluxSession
from voiceload.client.results import ErrorCategory, ListSink
from voiceload.emulator.behaviour import parse_config
from voiceload.emulator.server import BackgroundEmulator, ServerOptions
from voiceload.fixtures import Turn
from voiceload.protocol import gateway
from voiceload.protocol.flux import Severity

pytestmark = pytest.mark.slow

FRAME_MS = 20
FRAMES = tuple(bytes(640) for _ in range(50))  # 1 s of 16 kHz linear16 silence
TURNS = [Turn(0.2, 0.5, "hello there", "x"), Turn(0.6, 0.9, "good bye", "y")]


def _turn(seq: int, event: str, index: int, start: float, end: float, text: str,
          **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {"type": "TurnInfo", "request_id": "r", "sequence_id": seq, "event": event,
            "turn_index": index, "audio_window_start": start, "audio_window_end": end,
            "transcript": text, "words": [], "end_of_turn_confidence": 0.8, **extra}  # fmt: skip


SCRIPT: list[dict[str, Any]] = [  # no Connected: the stream counts from 1
    _turn(1, "Update", 0, 0.0, 0.2, ""),
    {"type": "Warning", "request_id": "r", "sequence_id": 2, "code": "SLOW_AUDIO",
     "description": "audio is arriving slowly"},
    {"type": "SpeechStarted", "sequence_id": 3, "timestamp": 0.2},
    _turn(4, "StartOfTurn", 0, 0.0, 0.3, "hello", speaker=0),
    _turn(5, "EndOfTurn", 0, 0.0, 0.4, "hello"),  # turn 0 ended past its midpoint ...
    _turn(6, "StartOfTurn", 1, 0.4, 0.5, "there"),
    _turn(7, "EndOfTurn", 1, 0.4, 0.55, "there"),  # ... and again: a split, not turn 1
    _turn(8, "StartOfTurn", 2, 0.55, 0.7, "good"),
    _turn(9, "EndOfTurn", 2, 0.55, 0.95, "good bye"),
]  # fmt: skip


def _scripted(ws: ServerConnection) -> None:
    """Send the script as soon as the first audio frame arrives, then drain until the
    client's CloseStream and close normally."""
    try:
        ws.recv()
        for message in SCRIPT:
            ws.send(json.dumps(message))
        for message in ws:
            if isinstance(message, str) and "CloseStream" in message:
                break
    except ConnectionClosed:
        pass


@pytest.fixture()
def flux_server() -> Iterator[str]:
    with serve(_scripted, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/v2/listen"
        server.shutdown()
        thread.join(5)


def test_harmless_differences_are_findings_not_failures(flux_server: str) -> None:
    sink = ListSink()
    result = FluxSession(
        flux_server, {}, [], FRAMES, TURNS, FRAME_MS, sink, random.Random(3), fixture="t",
        options=FluxOptions(trailing_bound_s=1.0, eot_timeout_ms=500),
    ).run()  # fmt: skip
    assert result.error is None, result.error
    assert (result.turns_ended, result.turns_split, result.turns_missed) == (2, 1, 0)
    assert result.turns[0].transcript == "hello there" and result.wer == 0.0
    assert len(sink.values("flux.eot")) == 2
    by_rule = {(f.rule, f.severity) for f in result.findings}
    assert by_rule == {
        ("connected-missing", Severity.WARNING),
        ("service-warning", Severity.WARNING),
        ("unknown-message-type", Severity.INFO),
        ("unknown-field", Severity.INFO),
    }
    assert next(f.code for f in result.findings if f.rule == "service-warning") == "SLOW_AUDIO"
    row = result.to_row()
    assert (row["findings"], row["findings_warning"], row["findings_info"]) == (0, 2, 2)
    assert (row["turns_split"], row["turns_merged"], row["turns_extra"]) == (1, 0, 0)


def test_a_refused_flush_is_reported_as_refused_not_as_a_timeout() -> None:
    config = parse_config({
        "aura": {"speed": 8.0, "leading_silence_ms": 0},
        "latency": {"aura": {"first_byte": {"kind": "fixed", "ms": 1}}},
    })  # fmt: skip
    with BackgroundEmulator(ServerOptions(config=config)) as emulator:
        url = gateway.gateway_url(emulator.url, "acct", "gw", "@cf/deepgram/aura-1", [])
        texts = ["Hi."] * 21  # one Flush more than the documented 20 per 60 s
        result = AuraSession(
            url, {}, [], texts, ListSink(), options=AuraOptions(request_timeout_s=10.0)
        ).run()
    assert result.error is not None
    assert result.error.category is ErrorCategory.RATE_LIMITED, result.error
    assert "refused the Flush of request 20" in result.error.detail
    assert result.error.service_code == "FLUSH_LIMIT_EXCEEDED"
    assert all(r.flushed_us is not None for r in result.aura_requests[:20])
    warnings = [f for f in result.findings if f.severity is Severity.WARNING]
    assert [f.code for f in warnings] == ["FLUSH_LIMIT_EXCEEDED"]
