"""sleep_until never returns early; secrets_of lists every form; wss:// verifies TLS with one
context per process; hosts are resolved once per TTL (a literal IP never); open_websocket runs the
handshake on the socket it connected and closes it when the opening fails."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from voiceload.client import connect as connect_mod
from voiceload.client.connect import (
    AddressCache,
    AddrInfo,
    open_websocket,
    secrets_of,
    sleep_until,
)
from voiceload.client.websocket import WebSocket


class FakeClock:
    """A monotonic clock whose sleeps wake ``early_ns`` early on the first ``n_early`` calls."""

    def __init__(self, now_ns: int, early_ns: int, n_early: int) -> None:
        self.now = now_ns
        self.early_ns = early_ns
        self.n_early = n_early
        self.sleeps_ns: list[int] = []

    def now_ns(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        asked_ns = round(seconds * 1e9)
        self.sleeps_ns.append(asked_ns)
        early = self.early_ns if len(self.sleeps_ns) <= self.n_early else 0
        self.now += max(0, asked_ns - early)


def test_sleep_until_sleeps_again_after_an_early_wake() -> None:
    clock = FakeClock(now_ns=1_000_000, early_ns=700_000, n_early=2)
    sleep_until(21_000_000, clock.now_ns, clock.sleep)
    assert clock.sleeps_ns == [20_000_000, 700_000, 700_000]
    assert clock.now == 21_000_000


def test_sleep_until_past_due_does_not_sleep() -> None:
    clock = FakeClock(now_ns=5_000, early_ns=0, n_early=0)
    sleep_until(4_000, clock.now_ns, clock.sleep)
    sleep_until(5_000, clock.now_ns, clock.sleep)
    assert clock.sleeps_ns == []


def test_sleep_until_gives_up_on_a_timer_that_never_advances() -> None:
    clock = FakeClock(now_ns=0, early_ns=10**12, n_early=10**6)  # sleeps never move the clock
    sleep_until(1_000, clock.now_ns, clock.sleep)
    assert len(clock.sleeps_ns) == 100


def test_secrets_of_lists_values_and_tokens() -> None:
    secrets = secrets_of(
        {"cf-aig-authorization": "Bearer tok123456"}, ["cf-aig-authorization.tok987654"]
    )
    assert "tok123456" in secrets and "Bearer tok123456" in secrets
    assert "tok987654" in secrets and "cf-aig-authorization.tok987654" in secrets


def test_the_shared_tls_context_verifies_chain_and_host() -> None:
    context = connect_mod.shared_ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert connect_mod.shared_ssl_context() is context  # built once per process


class FakeResolver:
    """Answers every name with ``address`` (or raises ``error``), counting the lookups."""

    def __init__(self, address: tuple[str, int], error: OSError | None = None) -> None:
        self.address = address
        self.error = error
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[AddrInfo]:
        self.calls.append((host, port))
        if self.error is not None:
            raise self.error
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", self.address)]


class FakeSeconds:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_host_name_is_resolved_once_per_ttl_and_port() -> None:
    resolve, clock = FakeResolver(("10.0.0.7", 443)), FakeSeconds()
    cache = AddressCache(resolve, clock, ttl_s=30.0)
    first = cache.addresses("gateway.example", 443)
    clock.now += 29.9
    assert cache.addresses("gateway.example", 443) == first
    assert resolve.calls == [("gateway.example", 443)]
    cache.addresses("gateway.example", 8443)  # another port is another entry
    clock.now += 0.2  # the first entry is now 30.1 s old: looked up again
    cache.addresses("gateway.example", 443)
    assert resolve.calls == [
        ("gateway.example", 443), ("gateway.example", 8443), ("gateway.example", 443)
    ]  # fmt: skip


def test_a_literal_ip_address_needs_no_resolver() -> None:
    resolve = FakeResolver(("10.0.0.7", 1))
    cache = AddressCache(resolve, FakeSeconds())
    assert cache.addresses("127.0.0.1", 8787) == [
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 8787))
    ]
    assert cache.addresses("::1", 8787)[0][0] == socket.AF_INET6
    assert cache.addresses("::1", 8787)[0][4] == ("::1", 8787, 0, 0)
    assert resolve.calls == []


def test_a_failed_lookup_is_not_kept() -> None:
    resolve = FakeResolver(("10.0.0.7", 1), error=socket.gaierror(-2, "Name or service not known"))
    cache = AddressCache(resolve, FakeSeconds())
    for _ in range(2):
        with pytest.raises(socket.gaierror):
            cache.addresses("nowhere.invalid", 443)
    assert len(resolve.calls) == 2  # each session really looks it up (inside flux.connect)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    yield server
    server.close()


class FakeTls:
    """Stands in for the shared TLS context: records what it wraps and for which host."""

    def __init__(self) -> None:
        self.wrapped: list[tuple[socket.socket, str]] = []

    def wrap_socket(self, sock: socket.socket, server_hostname: str) -> socket.socket:
        self.wrapped.append((sock, server_hostname))
        return sock


def test_open_websocket_handshakes_on_the_socket_it_connected(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host goes through the cache (a name: looked up; the socket reaches its address); for
    wss:// the socket is wrapped by the shared TLS context naming the URL's host; the handshake
    runs on that socket with the headers, the subprotocols and the rest of the timeout."""
    port = listener.getsockname()[1]
    seen: dict[str, Any] = {}
    tls = FakeTls()

    def fake_open(sock: socket.socket, uri: Any, headers: Any, subprotocols: Any,
                  timeout_s: float, close_timeout: float) -> str:  # fmt: skip
        seen.update(peer=sock.getpeername(), host=uri.host, secure=uri.secure, headers=headers,
                    subprotocols=subprotocols, timeout_s=timeout_s,
                    close_timeout=close_timeout)  # fmt: skip
        sock.close()
        return "connection"

    monkeypatch.setattr(WebSocket, "open", staticmethod(fake_open))
    monkeypatch.setattr(connect_mod, "shared_ssl_context", lambda: tls)
    resolve = FakeResolver(("127.0.0.1", port))
    cache = AddressCache(resolve, FakeSeconds())
    url = f"wss://voice.example:{port}/v1/listen"
    got = open_websocket(url, {"h": "v"}, ["p"], 5.0, addresses=cache, clock=FakeSeconds())
    assert got == "connection" and resolve.calls == [("voice.example", port)]
    assert seen["peer"] == ("127.0.0.1", port) and seen["secure"]
    assert [host for _, host in tls.wrapped] == ["voice.example"]  # TLS SNI and host check
    assert seen["headers"] == {"h": "v"} and seen["subprotocols"] == ["p"]
    assert seen["timeout_s"] == 5.0 and seen["close_timeout"] == connect_mod.CLOSE_TIMEOUT_S


def test_open_websocket_uses_no_tls_for_ws(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = FakeTls()
    monkeypatch.setattr(connect_mod, "shared_ssl_context", lambda: tls)
    monkeypatch.setattr(WebSocket, "open", staticmethod(lambda sock, *a: sock.close() or "ok"))
    port = listener.getsockname()[1]
    assert open_websocket(f"ws://127.0.0.1:{port}/x", {}, [], 5.0) == "ok"
    assert tls.wrapped == []


def test_open_websocket_closes_its_socket_when_the_opening_fails(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    socks: list[socket.socket] = []

    def failing_open(sock: socket.socket, *args: Any) -> None:
        socks.append(sock)
        raise ssl.SSLError("certificate verify failed")

    monkeypatch.setattr(WebSocket, "open", staticmethod(failing_open))
    port = listener.getsockname()[1]
    with pytest.raises(ssl.SSLError):
        open_websocket(f"ws://127.0.0.1:{port}/x", {}, [], 5.0, addresses=AddressCache())
    assert socks and socks[0].fileno() == -1  # closed


def test_open_websocket_reports_a_refused_port_as_before() -> None:
    with socket.socket() as probe:  # bound, never listening: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        with pytest.raises(ConnectionRefusedError):
            open_websocket(f"ws://127.0.0.1:{port}/x", {}, [], 5.0, addresses=AddressCache())
