"""sleep_until never returns early; secrets_of lists every form; wss:// verifies TLS; hosts are
resolved once per TTL (a literal IP never); open_websocket hands websockets its own socket."""

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
    connect_options,
    open_websocket,
    secrets_of,
    sleep_until,
)


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


def test_wss_connections_get_a_verifying_tls_context() -> None:
    options = connect_options("wss://gateway.example/v1/a/b", {"k": "v"}, ["p"], 5.0)
    context = options["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert options["additional_headers"] == {"k": "v"} and options["subprotocols"] == ["p"]
    assert options["proxy"] is None and options["compression"] is None


def test_ws_connections_get_no_tls_argument() -> None:
    options = connect_options("ws://127.0.0.1:8787/v2/listen", {}, [], 5.0)
    assert "ssl" not in options  # websockets refuses ssl= for ws://
    assert options["subprotocols"] is None and options["open_timeout"] == 5.0


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


def test_wss_connections_share_one_tls_context_and_name_the_host() -> None:
    url = "wss://gateway.example:8443/v1/a/b"
    first = connect_options(url, {}, [], 5.0)
    second = connect_options(url, {}, [], 5.0)
    assert first["ssl"] is second["ssl"]  # built once per process, not per session
    assert first["server_hostname"] == "gateway.example"  # TLS SNI and host check: the URL's host
    assert "server_hostname" not in connect_options("ws://127.0.0.1:1/x", {}, [], 5.0)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    yield server
    server.close()


def test_open_websocket_hands_websockets_a_socket_it_connected(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host goes through the cache (a name: looked up; the socket reaches its address) and
    websockets gets the connected socket, the URL's host for TLS and the rest of the timeout."""
    port = listener.getsockname()[1]
    seen: dict[str, Any] = {}

    def fake_connect(url: str, **kwargs: Any) -> str:
        seen.update(kwargs, url=url, peer=kwargs["sock"].getpeername())
        kwargs["sock"].close()
        return "connection"

    monkeypatch.setattr(connect_mod, "connect", fake_connect)
    resolve = FakeResolver(("127.0.0.1", port))
    cache = AddressCache(resolve, FakeSeconds())
    url = f"wss://voice.example:{port}/v1/listen"
    got = open_websocket(url, {"h": "v"}, [], 5.0, addresses=cache, clock=FakeSeconds())
    assert got == "connection" and resolve.calls == [("voice.example", port)]
    assert seen["peer"] == ("127.0.0.1", port) and seen["url"] == url
    assert seen["server_hostname"] == "voice.example" and seen["ssl"].check_hostname
    assert seen["open_timeout"] == 5.0 and seen["additional_headers"] == {"h": "v"}


def test_open_websocket_closes_its_socket_when_websockets_fails(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    socks: list[socket.socket] = []

    def failing_connect(url: str, **kwargs: Any) -> None:
        socks.append(kwargs["sock"])
        raise ssl.SSLError("certificate verify failed")

    monkeypatch.setattr(connect_mod, "connect", failing_connect)
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
