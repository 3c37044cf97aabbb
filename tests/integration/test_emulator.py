"""The emulator over real sockets on 127.0.0.1 (port 0): routes, auth, bad input, faults, Flux.

Each test runs its own emulator (``BackgroundEmulator``: an asyncio loop in a thread) and talks
to it with websockets' sync client. Expected refusals are built with the same
``voiceload.protocol.gateway`` functions the emulator must use, so every status and body is
compared byte for byte.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from voiceload.audio import prepare
from voiceload.cli.emulate import load_references
from voiceload.emulator.behaviour import parse_config
from voiceload.emulator.flux_stream import FluxStream
from voiceload.emulator.server import BackgroundEmulator, ServerOptions
from voiceload.emulator.trace import TraceWriter
from voiceload.protocol import aura, gateway
from voiceload.protocol.gateway import AuthForm

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "fixtures" / "audio" / "arctic_a0009.wav"
REFERENCE = "He turned sharply, and faced Gregson across the table."

FLUX_Q = "encoding=linear16&sample_rate=16000"
GATEWAY_FLUX = f"/v1/acc/gw/workers-ai?model=@cf/deepgram/flux&{FLUX_Q}"
DIRECT_FLUX = f"/client/v4/accounts/acc/ai/run/@cf/deepgram/flux?{FLUX_Q}"
DEEPGRAM_FLUX = f"/v2/listen?model=flux-general-en&{FLUX_Q}"
GATEWAY_AURA = "/v1/acc/gw/workers-ai?model=@cf/deepgram/aura-1"
DEEPGRAM_AURA = "/v1/speak?model=aura-2-thalia-en"
TOKEN = "sekret-token"
SILENCE_80MS = bytes(2560)


def refused(url: str, **kwargs: Any) -> tuple[int, bytes]:
    """Status and body of an upgrade the server must refuse."""
    with pytest.raises(InvalidStatus) as info:
        connect(url, compression=None, open_timeout=10, **kwargs).close()
    return info.value.response.status_code, info.value.response.body


Answer = tuple[int, bytes] | Callable[[str], tuple[int, bytes]]


def assert_refused(url: str, expected: Answer, **kwargs: Any) -> None:
    """The refusal equals ``expected`` byte for byte; a callable builds a Deepgram answer from
    the request_id the server chose, which must also be in ``dg-request-id`` (and the message
    in ``dg-error``)."""
    with pytest.raises(InvalidStatus) as info:
        connect(url, compression=None, open_timeout=10, **kwargs).close()
    response = info.value.response
    answer = (response.status_code, response.body)
    if callable(expected):
        body = json.loads(response.body)
        assert tuple(body) == gateway.DEEPGRAM_ERROR_FIELDS, body
        assert response.headers["dg-request-id"] == body["request_id"]
        assert response.headers["dg-error"] == body["err_msg"]
        assert answer == expected(body["request_id"]), url
    else:
        assert answer == expected, url


def auth_kwargs(form: AuthForm, token: str) -> dict[str, Any]:
    headers, subprotocols = gateway.client_auth(form, token)
    kwargs: dict[str, Any] = {"additional_headers": headers}
    if subprotocols:
        kwargs["subprotocols"] = subprotocols
    return kwargs


def recv_json(ws: ClientConnection) -> dict[str, Any]:
    msg = ws.recv(timeout=10)
    assert isinstance(msg, str)
    obj: dict[str, Any] = json.loads(msg)
    return obj


def faulty(kind: str, **rule: Any) -> ServerOptions:
    """An emulator whose first connection gets ``kind``."""
    return ServerOptions(
        config=parse_config({"faults": [{"kind": kind, "connections": [1], **rule}]})
    )


# --------------------------------------------------------------------------------------------
# health, routes, auth
# --------------------------------------------------------------------------------------------


def test_healthz_answers_200() -> None:
    with BackgroundEmulator() as emu:
        http_url = emu.url.replace("ws://", "http://") + "/healthz"
        with urllib.request.urlopen(http_url, timeout=10) as resp:
            assert (resp.status, resp.read()) == (200, b"ok\n")


@pytest.mark.parametrize(
    ("path", "form", "subprotocol"),
    [
        (GATEWAY_FLUX, AuthForm.AIG_HEADER, None),
        (GATEWAY_FLUX, AuthForm.AIG_BEARER, None),
        (GATEWAY_FLUX, AuthForm.AIG_SUBPROTOCOL, f"cf-aig-authorization.{TOKEN}"),
        (DIRECT_FLUX, AuthForm.BEARER, None),
        (DEEPGRAM_FLUX, AuthForm.TOKEN, None),
        (DEEPGRAM_FLUX, AuthForm.TOKEN_SUBPROTOCOL, "token"),
        (GATEWAY_AURA, AuthForm.AIG_SUBPROTOCOL, f"cf-aig-authorization.{TOKEN}"),
        (DEEPGRAM_AURA, AuthForm.TOKEN, None),
    ],
)
def test_every_auth_form_is_accepted_and_subprotocols_echoed(
    path: str, form: AuthForm, subprotocol: str | None
) -> None:
    options = ServerOptions(token=TOKEN, account="acc", gateway="gw")
    with (
        BackgroundEmulator(options) as emu,
        connect(
            emu.url + path, compression=None, open_timeout=10, **auth_kwargs(form, TOKEN)
        ) as ws,
    ):
        assert ws.subprotocol == subprotocol
        first = recv_json(ws)
        assert first["type"] == ("Connected" if "flux" in path else "Metadata")


def test_the_deepgram_route_names_its_request_in_dg_request_id() -> None:
    with BackgroundEmulator() as emu:
        for path, first in ((DEEPGRAM_FLUX, "Connected"), (DEEPGRAM_AURA, "Metadata")):
            with connect(emu.url + path, compression=None, open_timeout=10) as ws:
                message = recv_json(ws)
                assert ws.response is not None and message["type"] == first
                assert ws.response.headers["dg-request-id"] == message["request_id"]
        with connect(emu.url + GATEWAY_FLUX, compression=None, open_timeout=10) as ws:
            assert ws.response is not None and "dg-request-id" not in ws.response.headers


@pytest.mark.parametrize(
    ("path", "form", "token", "expected"),
    [
        (GATEWAY_FLUX, None, None, gateway.unauthorized()),
        (GATEWAY_FLUX, AuthForm.AIG_HEADER, "wrong", gateway.unauthorized()),
        (GATEWAY_FLUX, AuthForm.AIG_SUBPROTOCOL, "wrong", gateway.unauthorized()),
        (GATEWAY_FLUX, AuthForm.BEARER, TOKEN, gateway.unauthorized()),  # not a gateway form
        (DIRECT_FLUX, None, None, gateway.api_authentication_error()),
        (DIRECT_FLUX, AuthForm.BEARER, "wrong", gateway.api_authentication_error()),
        (DEEPGRAM_FLUX, AuthForm.TOKEN, "wrong", gateway.deepgram_unauthorized),
        (DEEPGRAM_AURA, None, None, gateway.deepgram_unauthorized),
    ],
)
def test_missing_or_wrong_token_is_refused(
    path: str, form: AuthForm | None, token: str | None, expected: Answer
) -> None:
    options = ServerOptions(token=TOKEN)
    kwargs = auth_kwargs(form, token) if form is not None and token is not None else {}
    with BackgroundEmulator(options) as emu:
        assert_refused(emu.url + path, expected, **kwargs)


def test_bad_routes_models_and_parameters_get_the_real_answers() -> None:
    options = ServerOptions(account="acc", gateway="gw")
    with pytest.raises(gateway.RouteError) as route_error:
        gateway.parse_route("/v1/nothing/here")
    cases: list[tuple[str, Answer]] = [
        ("/v1/nothing/here", gateway.route_not_found(route_error.value)),
        (GATEWAY_FLUX.replace("/gw/", "/other/"), gateway.gateway_not_found()),
        (GATEWAY_FLUX.replace("/acc/", "/other/"), gateway.gateway_not_found()),
        (DIRECT_FLUX.replace("/acc/", "/other/"), gateway.api_authentication_error()),
        (
            GATEWAY_FLUX.replace("deepgram/flux", "deepgram/nova-9"),
            gateway.unknown_model("@cf/deepgram/nova-9"),
        ),
        (
            GATEWAY_FLUX.replace("linear16", "mulaw"),
            gateway.bad_parameter("invalid value for 'encoding': 'mulaw', expected 'linear16'"),
        ),
        (
            DEEPGRAM_FLUX.replace("&sample_rate=16000", ""),
            lambda rid: gateway.deepgram_bad_request(
                "missing required parameter 'sample_rate'", rid
            ),
        ),
        (
            DEEPGRAM_FLUX.replace("flux-general-en", "nova-9"),
            lambda rid: gateway.deepgram_unknown_model("nova-9", rid),
        ),
        (
            DEEPGRAM_FLUX + "&eot_threshold=2",
            lambda rid: gateway.deepgram_bad_request(
                "invalid value for 'eot_threshold': '2', expected 0.5 .. 1", rid
            ),
        ),
        (
            GATEWAY_FLUX + "&eot_threshold=0.95",  # Workers AI: 0.5 - 0.9
            gateway.bad_parameter("invalid value for 'eot_threshold': '0.95', expected 0.5 .. 0.9"),
        ),
        (
            DEEPGRAM_FLUX.replace("linear16", "opus").replace("16000", "48000"),  # not emulated
            lambda rid: gateway.deepgram_bad_request(
                "encoding 'opus' is accepted by the service but not emulated: the voiceload"
                " emulator decodes linear16, linear32, mulaw, alaw only", rid,
            ),
        ),
        (
            DEEPGRAM_AURA + "&sample_rate=11025",
            lambda rid: gateway.deepgram_bad_request(
                "invalid value for 'sample_rate': '11025', expected one of 8000, 16000, 24000,"
                " 32000, 48000", rid,
            ),
        ),
        (
            GATEWAY_FLUX.replace("16000", "0"),
            gateway.bad_parameter(
                "invalid value for 'sample_rate': '0', expected one of 8000, 16000, 24000,"
                " 44100, 48000"
            ),
        ),
        (
            GATEWAY_AURA + "&encoding=mp3",  # Workers AI takes it; not emulated
            gateway.bad_parameter(
                "encoding 'mp3' is accepted by the service but not emulated: the voiceload"
                " emulator synthesises linear16, mulaw, alaw only"
            ),
        ),
    ]
    with BackgroundEmulator(options) as emu:
        for path, expected in cases:
            assert_refused(emu.url + path, expected)
        # what each route accepts, the emulator accepts on that route
        for path in (
            DEEPGRAM_FLUX + "&eot_threshold=1.0&eot_timeout_ms=60000",
            GATEWAY_FLUX + "&eot_threshold=0.9&eager_eot_threshold=0.3&eot_timeout_ms=500",
            GATEWAY_AURA + "&encoding=linear16&sample_rate=11025",
            DEEPGRAM_AURA + "&encoding=linear16&sample_rate=48000",
            "/v2/listen?model=flux-general-en",  # containerized audio: no encoding, no rate
            DEEPGRAM_FLUX.replace("linear16", "mulaw").replace("16000", "8000"),
            DEEPGRAM_AURA + "&encoding=alaw&sample_rate=8000",
        ):
            with connect(emu.url + path, compression=None, open_timeout=10) as ws:
                assert recv_json(ws)["type"] in ("Connected", "Metadata"), path
        # and it keeps serving
        with connect(emu.url + GATEWAY_FLUX, compression=None, open_timeout=10) as ws:
            assert recv_json(ws)["type"] == "Connected"


# --------------------------------------------------------------------------------------------
# bad input on an open socket
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"\x01\x02\x03", "not json", '{"type":"Dance"}'])
def test_non_audio_data_closes_1008_data_0000(payload: bytes | str) -> None:
    with BackgroundEmulator() as emu:
        with connect(emu.url + DEEPGRAM_FLUX, compression=None, open_timeout=10) as ws:
            recv_json(ws)
            ws.send(payload)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1008, "DATA-0000")
        with connect(emu.url + DEEPGRAM_FLUX, compression=None, open_timeout=10) as ws:
            assert recv_json(ws)["type"] == "Connected"


def test_oversized_speak_gets_warning_413_then_1009() -> None:
    with (
        BackgroundEmulator() as emu,
        connect(emu.url + DEEPGRAM_AURA, compression=None, open_timeout=10) as ws,
    ):
        recv_json(ws)
        ws.send(json.dumps({"type": "Speak", "text": "a" * (aura.MAX_SPEAK_CHARS + 1)}))
        warning = recv_json(ws)
        assert (warning["type"], warning["code"]) == ("Warning", "413")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1009, "BIG-0000")


def test_no_audio_closes_1011_net_0001() -> None:
    options = ServerOptions(config=parse_config({"flux": {"idle_timeout_s": 0.3}}))
    with (
        BackgroundEmulator(options) as emu,
        connect(emu.url + GATEWAY_FLUX, compression=None, open_timeout=10) as ws,
    ):
        recv_json(ws)
        ws.send(SILENCE_80MS)
        with pytest.raises(ConnectionClosed) as info:
            for _ in range(100):
                ws.recv(timeout=10)
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1011, "NET-0001")


def test_close_stream_closes_without_status_code() -> None:
    with (
        BackgroundEmulator() as emu,
        connect(emu.url + GATEWAY_FLUX, compression=None, open_timeout=10) as ws,
    ):
        recv_json(ws)
        for _ in range(4):
            ws.send(SILENCE_80MS)
        ws.send(json.dumps({"type": "CloseStream"}))
        events = []
        with pytest.raises(ConnectionClosed) as info:
            for _ in range(100):
                events.append(recv_json(ws)["event"])
        assert events == ["Update"]  # 0.32 s of audio: one Update, no EndOfTurn
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1005  # an empty close frame: no status code


def test_aura_speak_flush_audio_flushed() -> None:
    options = ServerOptions(
        config=parse_config({"latency": {"aura": {"first_byte": {"kind": "fixed", "ms": 0}}}})
    )
    with (
        BackgroundEmulator(options) as emu,
        connect(
            emu.url + GATEWAY_AURA + "&sample_rate=16000", compression=None, open_timeout=10
        ) as ws,
    ):
        assert recv_json(ws)["type"] == "Metadata"
        ws.send(json.dumps({"type": "Speak", "text": "Fourteen chars"}))
        ws.send(json.dumps({"type": "Flush"}))
        audio = b""
        for _ in range(1000):
            msg = ws.recv(timeout=10)
            if isinstance(msg, str):
                break
            audio += msg
        assert json.loads(msg) == {"type": "Flushed", "sequence_id": 0}
        assert len(audio) == 2 * (1600 + 16000)  # 100 ms silence + 14 chars at 14 chars/s


# --------------------------------------------------------------------------------------------
# injected faults
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("unauthorized", gateway.unauthorized()),
        ("unknown_gateway", gateway.gateway_not_found()),
        ("unknown_model", gateway.unknown_model("@cf/deepgram/flux")),
        ("allocation_exhausted", gateway.allocation_exhausted()),
        ("rate_limited", gateway.rate_limited()),
        ("bad_param", gateway.bad_parameter("invalid value for 'encoding' (emulated fault)")),
    ],
)
def test_upgrade_faults_then_normal_service(kind: str, expected: tuple[int, bytes]) -> None:
    with BackgroundEmulator(faulty(kind)) as emu:
        assert refused(emu.url + GATEWAY_FLUX) == expected
        with connect(emu.url + GATEWAY_FLUX, compression=None, open_timeout=10) as ws:
            assert recv_json(ws)["type"] == "Connected"


def stream_silence_collect(ws: ClientConnection, frames: int) -> list[str | bytes]:
    """Send ``frames`` silent frames, then read until the socket closes (bounded)."""
    for _ in range(frames):
        ws.send(SILENCE_80MS)
    got: list[str | bytes] = []
    for _ in range(1000):
        got.append(ws.recv(timeout=10))
    return got


def test_disconnect_fault_drops_the_tcp_connection_without_close_frame() -> None:
    with BackgroundEmulator(faulty("disconnect", after_messages=2)) as emu:
        with connect(emu.url + GATEWAY_FLUX, compression=None, open_timeout=10) as ws:
            got: list[str | bytes] = []
            with pytest.raises(ConnectionClosed) as info:
                got = stream_silence_collect(ws, 10)
        assert info.value.rcvd is None  # no close frame: the connection was cut
        del got


def test_error_message_fault_sends_error_then_closes_without_status() -> None:
    with (
        BackgroundEmulator(faulty("error_message", after_messages=1)) as emu,
        connect(emu.url + GATEWAY_FLUX, compression=None, open_timeout=10) as ws,
    ):
        assert recv_json(ws)["type"] == "Connected"
        for _ in range(4):
            ws.send(SILENCE_80MS)
        assert recv_json(ws) == {
            "type": "Error",
            "sequence_id": 1,
            "code": "INTERNAL_SERVER_ERROR",
            "description": "emulated fault: internal server error",
        }
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1005


def test_malformed_json_fault_sends_one_bad_frame_then_carries_on() -> None:
    with (
        BackgroundEmulator(faulty("malformed_json", after_messages=1)) as emu,
        connect(emu.url + GATEWAY_FLUX, compression=None, open_timeout=10) as ws,
    ):
        assert recv_json(ws)["type"] == "Connected"
        for _ in range(4):
            ws.send(SILENCE_80MS)
        bad = ws.recv(timeout=10)
        assert isinstance(bad, str)
        with pytest.raises(json.JSONDecodeError):
            json.loads(bad)
        nxt = recv_json(ws)
        assert (nxt["event"], nxt["sequence_id"]) == ("Update", 1)


def test_stall_fault_sends_nothing_more(tmp_path: Path) -> None:
    trace_path = tmp_path / "trace.jsonl"
    with (
        BackgroundEmulator(faulty("stall", after_messages=1), trace=TraceWriter(trace_path)) as emu,
        connect(emu.url + GATEWAY_FLUX, compression=None, open_timeout=10) as ws,
    ):
        assert recv_json(ws)["type"] == "Connected"
        for _ in range(10):  # 0.8 s of audio would bring 3 Updates
            ws.send(SILENCE_80MS)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1.0)
    sends = [
        json.loads(line)
        for line in trace_path.read_text().splitlines()
        if json.loads(line)["ev"] == "send"
    ]
    assert [s["type"] for s in sends] == ["Connected"]


def test_slow_handshake_fault_delays_the_upgrade() -> None:
    with BackgroundEmulator(faulty("slow_handshake", delay_ms=400)) as emu:
        t0 = time.monotonic()
        with connect(emu.url + GATEWAY_FLUX, compression=None, open_timeout=10) as ws:
            assert time.monotonic() - t0 >= 0.4
            assert recv_json(ws)["type"] == "Connected"


# --------------------------------------------------------------------------------------------
# a real fixture, in real time
# --------------------------------------------------------------------------------------------


class Reader(threading.Thread):
    """Collects (arrival monotonic ns, decoded message) until the socket closes."""

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(daemon=True)
        self.ws = ws
        self.messages: list[tuple[int, dict[str, Any]]] = []
        self.end_of_turn = threading.Event()

    def run(self) -> None:
        try:
            for msg in self.ws:
                obj = json.loads(msg)
                self.messages.append((time.monotonic_ns(), obj))
                if obj.get("event") == "EndOfTurn":
                    self.end_of_turn.set()
        except ConnectionClosed:
            pass


@pytest.fixture
def references() -> Iterator[dict[str, Any]]:
    refs = load_references(REPO / "fixtures" / "audio" / "manifest.toml")
    if "arctic_a0009" not in refs:
        pytest.skip("fixtures manifest lacks arctic_a0009")
    yield refs


@pytest.mark.slow
@pytest.mark.parametrize("path", [DEEPGRAM_FLUX, GATEWAY_FLUX])
def test_real_fixture_in_real_time_gets_the_reference_transcript(
    path: str, references: dict[str, Any], tmp_path: Path
) -> None:
    eot_ms = 700  # counted from the frame holding the last speech sample
    options = ServerOptions(
        config=parse_config({"latency": {"flux": {"eot_delay": {"kind": "fixed", "ms": eot_ms}}}}),
        token=TOKEN,
        references=references,
    )
    audio = prepare(FIXTURE, 16000, 80)
    offset_s = references["arctic_a0009"][0].speech_s + 0.15  # manifest onset 0.15 s
    offset_frame = int(offset_s * 1000) // 80
    trace_path = tmp_path / "trace.jsonl"
    form = AuthForm.TOKEN if path.startswith("/v2") else AuthForm.AIG_SUBPROTOCOL
    with (
        BackgroundEmulator(options, trace=TraceWriter(trace_path)) as emu,
        connect(
            f"{emu.url}{path}&tag=arctic_a0009",
            compression=None,
            open_timeout=10,
            **auth_kwargs(form, TOKEN),
        ) as ws,
    ):
        reader = Reader(ws)
        reader.start()
        frames = [*audio.frames, *([SILENCE_80MS] * 40)]  # + 3.2 s of trailing silence
        sent_ns: list[int] = []
        t0 = time.monotonic()
        for k, frame in enumerate(frames):
            time.sleep(max(0.0, t0 + (k + 1) * 0.080 - time.monotonic()))
            ws.send(frame)
            sent_ns.append(time.monotonic_ns())
            if reader.end_of_turn.is_set():
                break
        assert reader.end_of_turn.wait(10)
        ws.close()
        reader.join(10)

    msgs = [m for _, m in reader.messages]
    assert msgs[0]["type"] == "Connected"
    assert [m["sequence_id"] for m in msgs] == list(range(len(msgs)))
    start = next(m for m in msgs if m.get("event") == "StartOfTurn")
    ref_words = REFERENCE.split()
    start_words = start["transcript"].split()
    assert 0 < len(start_words) < len(ref_words)
    assert start_words == ref_words[: len(start_words)]
    eot_ns, eot = next((t, m) for t, m in reader.messages if m.get("event") == "EndOfTurn")
    assert eot["transcript"] == REFERENCE
    # EndOfTurn comes no sooner than eot_ms after the frame holding the last speech sample
    assert eot_ns - sent_ns[offset_frame] >= eot_ms * 1_000_000
    # the trace saw the same messages, with consecutive sequence ids and processing times
    trace = [json.loads(line) for line in trace_path.read_text().splitlines()]
    sends = [r for r in trace if r["ev"] == "send"]
    assert [r["seq"] for r in sends] == [m["sequence_id"] for m in msgs]
    assert any("proc_us" in r for r in sends)
    opened = next(r for r in trace if r["ev"] == "open")
    assert (opened["tag"], opened["service"]) == ("arctic_a0009", "flux")


# --------------------------------------------------------------------------------------------
# the audio short cut (EmulatorConnection): fed in data_received, still once and in order
# --------------------------------------------------------------------------------------------


def _raw_frames(*messages: str | bytes) -> bytes:
    """Client frames (masked) for ``messages``, to write to the socket in one piece."""
    out = b""
    for msg in messages:
        opcode = Opcode.TEXT if isinstance(msg, str) else Opcode.BINARY
        data = msg.encode() if isinstance(msg, str) else msg
        out += Frame(opcode, data).serialize(mask=True, extensions=[])
    return out


def test_audio_takes_the_short_cut_and_answers_as_before() -> None:
    audio = prepare(FIXTURE, 16000, 80)
    with BackgroundEmulator() as emu:
        with connect(emu.url + DEEPGRAM_FLUX, compression=None, open_timeout=10) as ws:
            reader = Reader(ws)
            reader.start()
            for frame in [*audio.frames, *([SILENCE_80MS] * 20)]:
                ws.send(frame)
                time.sleep(0.005)  # the handler is idle in recv when most frames arrive
            assert reader.end_of_turn.wait(10)
            ws.send(json.dumps({"type": "CloseStream"}))
            reader.join(10)
        assert emu.app is not None
        deadline = time.monotonic() + 10
        while emu.app.short_cut_frames == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # counted when the handler ends
        # most frames were fed in data_received; the rest went through recv
        assert emu.app.short_cut_frames > len(audio.frames) // 2
    msgs = [m for _, m in reader.messages]
    assert [m["sequence_id"] for m in msgs] == list(range(len(msgs)))
    events = [m.get("event", m["type"]) for m in msgs]
    assert events[0] == "Connected"
    assert "StartOfTurn" in events and "EndOfTurn" in events
    # every Update's window ends on a frame boundary it has received, in order
    ends = [m["audio_window_end"] for m in msgs if m.get("event") == "Update"]
    assert ends == sorted(ends) and len(ends) >= 8


def test_audio_behind_a_queued_text_frame_waits_its_turn() -> None:
    """Configure then audio in one TCP write: the audio must not overtake the Configure."""
    with BackgroundEmulator() as emu:
        with connect(emu.url + DEEPGRAM_FLUX, compression=None, open_timeout=10) as ws:
            assert recv_json(ws)["type"] == "Connected"
            configure = json.dumps({"type": "Configure", "thresholds": {"eot_threshold": 0.8}})
            # 0.32 s of audio after the Configure: one Update, caused by frames behind it
            ws.socket.sendall(_raw_frames(configure, *([SILENCE_80MS] * 4)))
            first, second = recv_json(ws), recv_json(ws)
        assert first["type"] == "ConfigureSuccess"
        assert (second["type"], second["event"]) == ("TurnInfo", "Update")
        assert (first["sequence_id"], second["sequence_id"]) == (1, 2)


def test_a_bug_met_in_the_short_cut_closes_1011_and_the_server_serves_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = {"n": 0}
    feed = FluxStream.feed_audio

    def failing_feed(self: FluxStream, pcm: bytes, now_ns: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected bug")
        feed(self, pcm, now_ns)

    monkeypatch.setattr(FluxStream, "feed_audio", failing_feed)
    with BackgroundEmulator() as emu:
        with connect(emu.url + DEEPGRAM_FLUX, compression=None, open_timeout=10) as ws:
            assert recv_json(ws)["type"] == "Connected"
            with pytest.raises(ConnectionClosed) as info:
                for _ in range(50):
                    ws.send(SILENCE_80MS)
                    time.sleep(0.01)
                    with contextlib.suppress(TimeoutError):
                        ws.recv(timeout=0.01)
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1011, "internal error")
        with connect(emu.url + DEEPGRAM_FLUX, compression=None, open_timeout=10) as ws:
            assert recv_json(ws)["type"] == "Connected"
            ws.send(SILENCE_80MS)


@pytest.mark.slow
def test_the_realism_profile_varies_what_goes_on_the_wire(
    references: dict[str, Any], tmp_path: Path
) -> None:
    """Every [realism] variation reaches the client intact: a split turn, Warnings with their
    sequence ids, word timings left out, unknown fields added; the trace records what varied."""
    from voiceload.emulator.realism import EXTRA_FIELD

    config = {
        "latency": {"flux": {"eot_delay": {"kind": "fixed", "ms": 100}},
                    "aura": {"first_byte": {"kind": "fixed", "ms": 10}}},
        "realism": {"split_turn": 1.0, "flux_warning": 1.0, "aura_warning": 1.0,
                    "omit_optional": 1.0, "extra_fields": 1.0},
    }  # fmt: skip
    options = ServerOptions(config=parse_config(config), references=references)
    audio = prepare(FIXTURE, 16000, 80)  # arctic_a0009: one turn with a pause inside it
    trace_path = tmp_path / "trace.jsonl"
    flux_msgs: list[dict[str, Any]] = []
    with BackgroundEmulator(options, trace=TraceWriter(trace_path)) as emu:
        with connect(f"{emu.url}{GATEWAY_FLUX}&tag=arctic_a0009", compression=None,
                     open_timeout=10) as ws:  # fmt: skip
            for frame in [*audio.frames, *([SILENCE_80MS] * 20)]:
                ws.send(frame)
            deadline = time.monotonic() + 10
            while sum(m.get("event") == "EndOfTurn" for m in flux_msgs) < 2:
                assert time.monotonic() < deadline, flux_msgs
                flux_msgs.append(recv_json(ws))
        with connect(emu.url + GATEWAY_AURA, compression=None, open_timeout=10) as ws:
            ws.send(aura.serialize_client_message(aura.Speak("Hello there.")))
            ws.send(aura.serialize_client_message(aura.Flush()))
            aura_types = []
            while "Flushed" not in aura_types:
                msg = ws.recv(timeout=10)
                if isinstance(msg, str):
                    aura_types.append(json.loads(msg)["type"])
    assert [m["sequence_id"] for m in flux_msgs] == list(range(len(flux_msgs)))
    assert all(EXTRA_FIELD in m for m in flux_msgs)
    events = [m.get("event") or m["type"] for m in flux_msgs if m["type"] != "Connected"]
    events = [e for e in events if e != "Update"]
    assert events == ["StartOfTurn", "Warning", "EndOfTurn"] * 2
    ends = [m for m in flux_msgs if m.get("event") == "EndOfTurn"]
    assert " ".join(m["transcript"] for m in ends) == REFERENCE  # split, not lost
    assert all(m["trigger"] == "model" for m in ends)
    assert all(set(w) == {"word", "confidence"} for m in ends for w in m["words"])
    assert aura_types[-2:] == ["Warning", "Flushed"]
    trace = [json.loads(line) for line in trace_path.read_text().splitlines()]
    varied = [r for r in trace if r["ev"] == "realism"]
    assert {v["kind"] for r in varied for v in r["varied"]} >= {
        "split_turn", "flux_warning", "aura_warning", "omit_optional", "extra_fields"
    }
