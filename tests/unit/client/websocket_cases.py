"""voiceload.client.websocket.WebSocket against real local servers on 127.0.0.1.

Most cases talk to a websockets sync server running in a thread, with a handler written per
test; the cases where the server must misbehave (never answer the upgrade, never answer the
close) use a hand-written TCP server. The gevent cases run in a fresh process, where gevent's
monkey patches come first and a libev abort cannot take the test runner down.

Not collected by itself (no ``test_`` prefix): test_websocket.py runs this file in a fresh
process. The servers here are websockets' *sync* server, which under gevent's patches (any
earlier test that imports Locust applies them to the whole test process) can make libev abort the
process when a socket it waits on is closed; voiceload's client never uses it, but a test
process must not depend on test order. Run it directly with
``pytest tests/unit/client/websocket_cases.py``.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
)
from websockets.frames import CloseCode
from websockets.sync.server import ServerConnection, serve
from websockets.utils import accept_key

from voiceload.client import connect
from voiceload.client.connect import open_websocket
from voiceload.client.websocket import WebSocket

pytestmark = pytest.mark.timeout(60)

WAIT_S = 5.0  # bound on every wait for something that should happen at once

Handler = Callable[[ServerConnection], None]

#: What the client sends first where a test wants the server to write only after the upgrade
#: response has been read (frames arriving with the 101 have their own test below).
START = "start"


# -- servers -----------------------------------------------------------------------------------


@pytest.fixture
def ws_server() -> Iterator[Callable[..., int]]:
    """Start a websockets sync server on 127.0.0.1 with the given handler (and ``serve``
    options); returns its port. Every server started is shut down at teardown. A handler
    ended by the client going away ends quietly (the server would log it as an error)."""
    servers: list[tuple[Any, threading.Thread]] = []

    def start(handler: Handler, **options: Any) -> int:
        def quiet(ws: ServerConnection) -> None:
            with contextlib.suppress(ConnectionClosed):
                handler(ws)

        server = serve(quiet, "127.0.0.1", 0, compression=None, **options)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        port: int = server.socket.getsockname()[1]
        return port

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(WAIT_S)


def ignore_everything(peer: socket.socket) -> None:
    """Read and drop what the client sends (its close frame too) until it goes away."""
    with contextlib.suppress(OSError):
        while peer.recv(4096):
            pass


class RawServer:
    """A TCP server on 127.0.0.1 for one connection. With ``upgrade`` it answers the opening
    handshake with a correct 101 (followed by ``extra`` bytes in the same write), then runs
    ``then`` on the connection (default: :func:`ignore_everything`); without, it never accepts
    (the kernel completes the TCP handshake, nobody answers)."""

    def __init__(
        self,
        upgrade: bool,
        extra: bytes = b"",
        then: Callable[[socket.socket], None] = ignore_everything,
    ) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port: int = self.listener.getsockname()[1]
        self.extra = extra
        self.then = then
        self.client_went_away = threading.Event()
        self.thread: threading.Thread | None = None
        if upgrade:
            self.thread = threading.Thread(target=self._serve, daemon=True)
            self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(WAIT_S)
        peer, _ = self.listener.accept()
        with peer:
            peer.settimeout(30)
            request = b""
            while b"\r\n\r\n" not in request:
                request += peer.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip().decode()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            peer.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept_key(key).encode()
                + b"\r\n\r\n"
                + self.extra
            )
            self.then(peer)
            self.client_went_away.set()

    def close(self) -> None:
        self.listener.close()
        if self.thread is not None:
            self.thread.join(WAIT_S)


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(
        upgrade: bool,
        extra: bytes = b"",
        then: Callable[[socket.socket], None] = ignore_everything,
    ) -> RawServer:
        server = RawServer(upgrade, extra, then)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/"


def open_ws(
    port: int, headers: dict[str, str] | None = None, subprotocols: list[str] | None = None
) -> WebSocket:
    return open_websocket(url(port), headers or {}, subprotocols or [], open_timeout_s=WAIT_S)


def echo(ws: ServerConnection, received: queue.Queue[Any]) -> None:
    for message in ws:
        received.put(message)
        ws.send(message)


def close_seen_by(ws: ServerConnection, closes: queue.Queue[Any]) -> None:
    """Handler body: wait for the client to close; report (code, reason) it sent."""
    try:
        for _ in ws:
            pass
    finally:
        rcvd = ws.protocol.close_rcvd
        closes.put(None if rcvd is None else (rcvd.code, rcvd.reason))


# -- messages ----------------------------------------------------------------------------------


def test_bytes_go_as_binary_and_str_as_text_and_come_back_with_their_type(
    ws_server: Callable[..., int],
) -> None:
    received: queue.Queue[Any] = queue.Queue()
    port = ws_server(lambda ws: echo(ws, received))
    with open_ws(port) as ws:
        ws.send(b"\x00\x01\xff")
        assert received.get(timeout=WAIT_S) == b"\x00\x01\xff"
        ws.send("héllo")
        got = received.get(timeout=WAIT_S)
        assert type(got) is str
        assert got == "héllo"
        first, second = ws.recv(timeout=WAIT_S), ws.recv(timeout=WAIT_S)
    assert type(first) is bytes
    assert first == b"\x00\x01\xff"
    assert type(second) is str
    assert second == "héllo"


def test_a_large_message_goes_and_comes_back_whole(ws_server: Callable[..., int]) -> None:
    received: queue.Queue[Any] = queue.Queue()
    port = ws_server(lambda ws: echo(ws, received), max_size=None)
    payload = bytes(range(256)) * 4096  # 1 MiB: many socket reads
    with open_ws(port) as ws:
        ws.send(payload)
        assert ws.recv(timeout=WAIT_S) == payload
    assert received.get(timeout=WAIT_S) == payload


def test_headers_and_subprotocol_reach_the_server(ws_server: Callable[..., int]) -> None:
    seen: queue.Queue[Any] = queue.Queue()

    def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen.put((ws.request.headers.get("Authorization"), ws.subprotocol))
        ws.send("ok")
        ws.recv()

    port = ws_server(handler, subprotocols=["flux.v1"])
    with open_ws(port, headers={"Authorization": "Token abc"}, subprotocols=["flux.v1"]) as ws:
        assert ws.recv(timeout=WAIT_S) == "ok"
        assert ws.subprotocol == "flux.v1"
    assert seen.get(timeout=WAIT_S) == ("Token abc", "flux.v1")


def test_a_fragmented_message_is_delivered_whole(ws_server: Callable[..., int]) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send(["hel", "lo ", "wörld"])
        ws.send([b"ab", b"", b"cd"])
        ws.send("after")
        ws.recv()

    port = ws_server(handler)
    with open_ws(port) as ws:
        assert ws.recv(timeout=WAIT_S) == "hello wörld"
        assert ws.recv(timeout=WAIT_S) == b"abcd"
        assert ws.recv(timeout=WAIT_S) == "after"


def test_frames_that_arrive_with_the_upgrade_response_are_delivered(
    raw_server: Callable[..., RawServer],
) -> None:
    server = raw_server(upgrade=True, extra=b"\x81\x02hi\x82\x01\x07")  # text "hi", binary 7
    ws = open_ws(server.port)
    ws.close_timeout = 0.3
    try:
        assert ws.recv(timeout=WAIT_S) == "hi"
        assert ws.recv(timeout=WAIT_S) == b"\x07"
    finally:
        ws.close()


def test_text_that_is_not_utf8_fails_the_connection_with_1007(
    ws_server: Callable[..., int],
) -> None:
    closes: queue.Queue[Any] = queue.Queue()

    def handler(ws: ServerConnection) -> None:
        ws.send("fine")
        ws.send(b"\xff\xfe", text=True)
        close_seen_by(ws, closes)

    port = ws_server(handler)
    with open_ws(port) as ws:
        assert ws.recv(timeout=WAIT_S) == "fine"
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=WAIT_S)
    code, _ = closes.get(timeout=WAIT_S)
    assert code == CloseCode.INVALID_DATA


# -- the server closes -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY])
def test_iteration_ends_quietly_after_a_normal_close_and_keeps_earlier_messages(
    code: int, ws_server: Callable[..., int]
) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.recv()  # see START
        ws.send("a")
        ws.send(b"b")
        ws.close(code, "done")

    port = ws_server(handler)
    with open_ws(port) as ws:
        ws.send(START)
        messages = list(ws)
        assert messages == ["a", b"b"]
        assert ws.close_code == code
        assert ws.close_reason == "done"
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=WAIT_S)


def test_iteration_raises_after_an_error_close_and_keeps_earlier_messages(
    ws_server: Callable[..., int],
) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.recv()  # see START
        ws.send("a")
        ws.send("b")
        ws.close(CloseCode.INTERNAL_ERROR, "boom")

    port = ws_server(handler)
    messages: list[Any] = []
    with open_ws(port) as ws:
        ws.send(START)
        with pytest.raises(ConnectionClosedError) as caught:
            for message in ws:
                messages.append(message)
        assert messages == ["a", "b"]
        assert ws.close_code == CloseCode.INTERNAL_ERROR
        assert ws.close_reason == "boom"
        assert caught.value.rcvd is not None
        assert caught.value.rcvd.code == CloseCode.INTERNAL_ERROR
        with pytest.raises(ConnectionClosedError):
            ws.send("too late")


def test_a_connection_dropped_without_a_close_frame_raises_1006(
    ws_server: Callable[..., int],
) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send("a")
        ws.socket.shutdown(socket.SHUT_RDWR)

    port = ws_server(handler)
    with open_ws(port) as ws:
        assert ws.recv(timeout=WAIT_S) == "a"
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=WAIT_S)
        assert ws.close_code == CloseCode.ABNORMAL_CLOSURE


# -- timeouts ----------------------------------------------------------------------------------


def test_recv_times_out_and_the_connection_still_works(ws_server: Callable[..., int]) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send(f"late {ws.recv()}")
        ws.recv()

    port = ws_server(handler)
    with open_ws(port) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.2)
        ws.send("go")
        assert ws.recv(timeout=WAIT_S) == "late go"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0)
        ws.send("again")  # still open both ways


# -- opening -----------------------------------------------------------------------------------


@pytest.fixture
def opened_sockets(monkeypatch: pytest.MonkeyPatch) -> list[socket.socket]:
    """Every TCP socket ``open_websocket`` opens (to check it is closed on failure)."""
    sockets: list[socket.socket] = []
    real_open_tcp = connect.open_tcp

    def recording(*args: Any, **kwargs: Any) -> socket.socket:
        sock = real_open_tcp(*args, **kwargs)
        sockets.append(sock)
        return sock

    monkeypatch.setattr(connect, "open_tcp", recording)
    return sockets


def test_a_refused_upgrade_raises_invalid_status_with_the_response(
    ws_server: Callable[..., int], opened_sockets: list[socket.socket]
) -> None:
    body = json.dumps({"err_code": "INVALID_AUTH", "err_msg": "bad key"})

    def refuse(connection: ServerConnection, request: Any) -> Any:
        return connection.respond(401, body)

    port = ws_server(lambda ws: None, process_request=refuse)
    with pytest.raises(InvalidStatus) as caught:
        open_ws(port)
    response = caught.value.response
    assert response.status_code == 401
    assert json.loads(response.body) == {"err_code": "INVALID_AUTH", "err_msg": "bad key"}
    assert len(opened_sockets) == 1
    assert opened_sockets[0].fileno() == -1  # closed


def test_no_answer_to_the_upgrade_raises_timeout_error(
    raw_server: Callable[..., RawServer], opened_sockets: list[socket.socket]
) -> None:
    server = raw_server(upgrade=False)
    with pytest.raises(TimeoutError):
        open_websocket(url(server.port), {}, [], open_timeout_s=0.3)
    assert len(opened_sockets) == 1
    assert opened_sockets[0].fileno() == -1


def test_a_refused_port_raises_connection_refused() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nobody listens on it
    with pytest.raises(ConnectionRefusedError):
        open_ws(port)


# -- closing -----------------------------------------------------------------------------------


def test_close_sends_1000_is_idempotent_and_send_afterwards_raises(
    ws_server: Callable[..., int],
) -> None:
    closes: queue.Queue[Any] = queue.Queue()
    port = ws_server(lambda ws: close_seen_by(ws, closes))
    ws = open_ws(port)
    ws.close()
    assert closes.get(timeout=WAIT_S) == (CloseCode.NORMAL_CLOSURE, "")
    assert ws.close_code == CloseCode.NORMAL_CLOSURE  # the server's echo
    ws.close()  # again: nothing happens, nothing raises
    with pytest.raises(ConnectionClosed):
        ws.send("after close")
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=WAIT_S)
    assert ws.socket.fileno() == -1


def test_close_sends_the_given_code_and_reason(ws_server: Callable[..., int]) -> None:
    closes: queue.Queue[Any] = queue.Queue()
    port = ws_server(lambda ws: close_seen_by(ws, closes))
    ws = open_ws(port)
    ws.close(4000, "session over")
    assert closes.get(timeout=WAIT_S) == (4000, "session over")


def test_leaving_the_context_on_an_exception_closes_with_1011(
    ws_server: Callable[..., int],
) -> None:
    closes: queue.Queue[Any] = queue.Queue()
    port = ws_server(lambda ws: close_seen_by(ws, closes))
    with pytest.raises(RuntimeError), open_ws(port):
        raise RuntimeError("session failed")
    assert closes.get(timeout=WAIT_S) == (CloseCode.INTERNAL_ERROR, "")


def test_close_returns_when_the_server_never_answers_the_close(
    raw_server: Callable[..., RawServer],
) -> None:
    server = raw_server(upgrade=True)
    ws = open_ws(server.port)
    ws.close_timeout = 0.3
    started = time.monotonic()
    ws.close()
    assert time.monotonic() - started < 10
    assert server.client_went_away.wait(WAIT_S)  # the connection was dropped
    assert ws.close_code == CloseCode.ABNORMAL_CLOSURE  # no close frame came back
    with pytest.raises(ConnectionClosed):
        ws.send("after close")
    ws.close()  # idempotent here too


@pytest.mark.parametrize("server_answers", [True, False], ids=["server-answers", "silent-server"])
def test_close_from_another_thread_ends_a_blocked_reader(
    server_answers: bool,
    ws_server: Callable[..., int],
    raw_server: Callable[..., RawServer],
) -> None:
    if server_answers:
        port = ws_server(lambda ws: close_seen_by(ws, queue.Queue()))
    else:
        port = raw_server(upgrade=True).port
    ws = open_ws(port)
    ws.close_timeout = 0.3
    outcome: list[str] = []

    def read() -> None:
        try:
            for _ in ws:
                outcome.append("message")
            outcome.append("ended quietly")
        except ConnectionClosed:
            outcome.append("ConnectionClosed")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.2)  # the reader is (almost surely) blocked in recv by now
    ws.close()
    reader.join(WAIT_S)
    assert not reader.is_alive()
    assert outcome in (["ended quietly"], ["ConnectionClosed"])
    with pytest.raises(ConnectionClosed):
        ws.send("after close")


# -- ping --------------------------------------------------------------------------------------


def test_a_ping_from_the_server_is_answered_while_the_client_reads(
    ws_server: Callable[..., int],
) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.recv()  # see START
        pong = ws.ping(b"are you there")
        ws.send(f"pong received: {pong.wait(WAIT_S)}")
        ws.recv()

    port = ws_server(handler)
    with open_ws(port) as ws:
        ws.send(START)
        # the server sends this only once the pong came back (or after WAIT_S: "False")
        assert ws.recv(timeout=WAIT_S * 2) == "pong received: True"


# -- under gevent --------------------------------------------------------------------------------

# A reader greenlet iterates the WebSocket (it gets "hi" and then waits in recv); the main
# greenlet then ends the connection under it. With websockets' sync client a socket closed by
# another greenlet while the reader waited made libev abort the whole process ("I/O watcher
# with invalid fd"); here the process must exit 0 with the reader ended.
GEVENT_SCRIPT = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import sys
    import gevent
    from websockets.exceptions import ConnectionClosed
    from voiceload.client.connect import open_websocket

    mode, port = sys.argv[1], int(sys.argv[2])
    ws = open_websocket(f"ws://127.0.0.1:{port}/", {}, [], 5)
    ws.close_timeout = 0.5
    outcome = []

    def read():
        try:
            for message in ws:
                outcome.append(message)
            outcome.append("ended quietly")
        except ConnectionClosed as exc:
            outcome.append(type(exc).__name__)

    if mode == "socket-closed-before-reading":
        ws.socket.close()
        reader = gevent.spawn(read)
    else:
        reader = gevent.spawn(read)
        gevent.sleep(0.5)  # the reader got "hi" and waits for more
        if mode == "socket-closed-under-reader":
            ws.socket.close()
        else:
            gevent.spawn(ws.close).join(5)
    reader.join(5)
    print("reader ended", reader.dead, flush=True)
    print("outcome", outcome, flush=True)
    print("closed", ws.protocol.state.name, flush=True)
""")


@pytest.mark.parametrize(
    ("mode", "outcomes"),
    [
        ("socket-closed-under-reader", [["hi", "ConnectionClosedError"]]),
        # "hi" may have come in with the upgrade response, before the socket was closed
        (
            "socket-closed-before-reading",
            [["ConnectionClosedError"], ["hi", "ConnectionClosedError"]],
        ),
        ("close", [["hi", "ended quietly"]]),
    ],
)
def test_under_gevent_ending_the_connection_under_a_waiting_reader_ends_the_reader(
    mode: str, outcomes: list[list[str]], ws_server: Callable[..., int]
) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send("hi")
        for _ in ws:
            pass

    port = ws_server(handler)
    done = subprocess.run(
        [sys.executable, "-c", GEVENT_SCRIPT, mode, str(port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() in (
        ["reader ended True", f"outcome {outcome!r}", "closed CLOSED"] for outcome in outcomes
    ), done.stdout + done.stderr


# -- bugs found while writing these tests (each failed before its fix) ------------------------


def test_a_close_frame_that_arrives_with_the_upgrade_response_is_answered(
    raw_server: Callable[..., RawServer],
) -> None:
    answers: queue.Queue[bytes] = queue.Queue()

    def wait_for_the_close_echo(peer: socket.socket) -> None:
        peer.settimeout(1.0)  # then end the connection, so the client never waits long
        try:
            answers.put(peer.recv(4096))
        except TimeoutError:
            answers.put(b"")

    close_1000 = b"\x88\x02\x03\xe8"
    server = raw_server(upgrade=True, extra=b"\x81\x01a" + close_1000, then=wait_for_the_close_echo)
    ws = open_ws(server.port)
    assert list(ws) == ["a"]
    assert answers.get(timeout=WAIT_S)[:1] == b"\x88"  # the client's (masked) close frame


def test_a_send_blocked_by_a_slow_server_survives_a_concurrent_recv_with_timeout(
    raw_server: Callable[..., RawServer],
) -> None:
    def busy_then_read(peer: socket.socket) -> None:
        time.sleep(1.0)  # reads nothing for a while: the client's send blocks
        ignore_everything(peer)

    server = raw_server(upgrade=True, then=busy_then_read)
    ws = open_ws(server.port)
    ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16_384)
    stop = threading.Event()

    def poll() -> None:  # as a session's reader with a deadline would
        with contextlib.suppress(ConnectionClosed):
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    ws.recv(timeout=0.1)

    reader = threading.Thread(target=poll, daemon=True)
    reader.start()
    try:
        for _ in range(64):  # 4 MiB: far more than the socket buffers hold
            ws.send(b"x" * 65_536)
    finally:
        stop.set()
        ws.close_timeout = 0.3
        ws.close()
        reader.join(WAIT_S)


# Under gevent, close() reads the socket itself when no recv is in progress at that moment; a
# reader greenlet that was only busy with its last message (it yielded: a lock, a callback's
# I/O) then calls recv while close() still waits on the socket for the server's answer.
TWO_READERS_SCRIPT = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import socket
    import gevent
    from websockets.exceptions import ConnectionClosed
    from websockets.utils import accept_key
    from voiceload.client.connect import open_websocket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        peer, _ = listener.accept()
        request = b""
        while b"\\r\\n\\r\\n" not in request:
            request += peer.recv(4096)
        key = next(line.split(b":", 1)[1].strip().decode() for line in request.split(b"\\r\\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        peer.sendall(b"HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\n"
                     b"Connection: Upgrade\\r\\nSec-WebSocket-Accept: "
                     + accept_key(key).encode() + b"\\r\\n\\r\\n")
        gevent.sleep(0.1)
        peer.sendall(b"\\x81\\x02hi")
        peer.recv(4096)  # the client's close frame
        gevent.sleep(0.5)  # a slow server
        peer.sendall(b"\\x88\\x02\\x03\\xe8")  # close 1000
        peer.close()

    gevent.spawn(serve)
    ws = open_websocket(f"ws://127.0.0.1:{listener.getsockname()[1]}/", {}, [], 5)
    outcome = []

    def read():
        try:
            for message in ws:
                outcome.append(message)
                gevent.sleep(0.2)  # busy with the message, not in recv
            outcome.append("ended quietly")
        except ConnectionClosed as exc:
            outcome.append(type(exc).__name__)
        except Exception as exc:
            outcome.append(type(exc).__name__)

    reader = gevent.spawn(read)
    gevent.sleep(0.2)  # the reader has "hi" and is busy with it
    gevent.spawn(ws.close).join(5)
    reader.join(5)
    print("outcome", outcome, flush=True)
""")


def test_under_gevent_close_while_the_reader_is_busy_ends_the_reader_quietly() -> None:
    done = subprocess.run(
        [sys.executable, "-c", TWO_READERS_SCRIPT],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["outcome ['hi', 'ended quietly']"], done.stderr
