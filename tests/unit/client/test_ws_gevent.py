"""websockets' sync client under gevent survives a socket closed by another greenlet
(voiceload.client.ws_gevent). Each case runs in a fresh process: gevent's monkey patches and
libev's abort must not touch the test runner."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

# A server greenlet completes the WebSocket handshake and sends one text frame 0.2 s later. The
# client's reader thread (a greenlet) reads it and then waits for the connection lock, which a
# "sender" holds; the sender closes the socket (as websockets' own error path does when a send
# fails) and lets go. The reader then goes back to select() on the closed descriptor.
SCRIPT = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import base64, hashlib, socket, sys
    import gevent
    from websockets.sync.client import connect
    from voiceload.client import ws_gevent

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve():
        peer, _ = server.accept()
        request = b""
        while b"\\r\\n\\r\\n" not in request:
            request += peer.recv(4096)
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\\r\\n")
                   if line.lower().startswith(b"sec-websocket-key"))
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        peer.sendall(b"HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\n"
                     b"Connection: Upgrade\\r\\nSec-WebSocket-Accept: " + accept + b"\\r\\n\\r\\n")
        gevent.sleep(0.2)
        peer.sendall(b"\\x81\\x02hi")
        gevent.sleep(5)

    gevent.spawn(serve)
    if sys.argv[1] == "installed":
        print("installed", ws_gevent.install(), flush=True)
    port = server.getsockname()[1]
    ws = connect(f"ws://127.0.0.1:{port}/", compression=None, proxy=None, open_timeout=5)
    with ws.protocol_mutex:
        gevent.sleep(0.5)
        ws.socket.close()
    ws.recv_events_thread.join(2)
    print("reader ended", not ws.recv_events_thread.is_alive(), flush=True)
    print("state", ws.protocol.state.name, flush=True)
""")


def run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_without_the_patch_libev_aborts_the_process() -> None:
    """What the patch prevents (so the next test shows a difference)."""
    done = run("plain")
    assert done.returncode == -signal.SIGABRT, done.stdout + done.stderr
    assert "invalid fd" in done.stderr


def test_with_the_patch_the_reader_ends_and_the_connection_closes() -> None:
    done = run("installed")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["installed True", "reader ended True", "state CLOSED"]


def test_install_is_a_no_op_without_gevent() -> None:
    code = "from voiceload.client import ws_gevent; print(ws_gevent.install())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.parametrize("version", ["14.2", "18.0"])
def test_an_unchecked_websockets_release_is_refused(
    version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import selectors

    import websockets.sync.connection

    from voiceload.client import ws_gevent
    from voiceload.errors import ConfigError

    monkeypatch.setattr(ws_gevent, "gevent_patched", lambda: True)
    # as before any install in this process (the check runs once, before patching)
    monkeypatch.setattr(websockets.sync.connection, "selectors", selectors)
    monkeypatch.setattr(ws_gevent.websockets.version, "version", version)
    with pytest.raises(ConfigError, match=f"websockets {version} is not supported"):
        ws_gevent.install()
