"""Opening a WebSocket the one way every session does it, and the session's clock hooks.

Every session's connection is a :class:`voiceload.client.websocket.WebSocket`: websockets'
Sans-I/O protocol over a socket opened here, read by the session's own reader (under Locust's
gevent patches, a greenlet). The options are fixed: no compression (PCM does not compress, and
deflate costs CPU), no proxy (load must never leave for a proxy), no keepalive pings,
``close_timeout`` :data:`CLOSE_TIMEOUT_S` and no message size limit. For ``wss://`` the TLS
context is :func:`voiceload.targets.ssl_context_for`'s (certificate chain and host name
verified, never disabled).

Opening is cheap per session because the per-process parts are done once (issue 16): the TLS
context is built once per process (:func:`shared_ssl_context`; building one loads the trust
store, ~20 ms of CPU), and :func:`open_websocket` resolves the host through :data:`ADDRESSES`:
a literal IP address needs no resolver at all, and a host name is looked up at most once per
:data:`RESOLVE_TTL_S` per process (``socket.create_connection`` would ask gevent's thread-pool
resolver on every session, even for ``127.0.0.1``).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from websockets.uri import WebSocketURI, parse_uri

from voiceload.client.websocket import CLOSE_TIMEOUT_S, WebSocket, gevent_patched
from voiceload.credentials import register_secret
from voiceload.targets import ssl_context_for

NowNs = Callable[[], int]
Sleep = Callable[[float], None]
WallS = Callable[[], float]


def default_sleep(seconds: float) -> None:
    """``time.sleep`` looked up at each call, so gevent's monkey-patched version is used."""
    time.sleep(seconds)


_MAX_SLEEPS = 100  # a timer that keeps waking early still ends (each pass sleeps the rest)


def sleep_until(due_ns: int, now_ns: NowNs, sleep: Sleep) -> None:
    """Sleep until the monotonic clock reaches ``due_ns``; never return before it.

    Timers may wake a little early (gevent's loop has millisecond granularity), and sending
    before the due time would make audio arrive before it was "spoken"; so this sleeps again
    for whatever is left, at most :data:`_MAX_SLEEPS` times.
    """
    for _ in range(_MAX_SLEEPS):
        remaining_ns = due_ns - now_ns()
        if remaining_ns <= 0:
            return
        sleep(remaining_ns / 1e9)


#: How long a host name's resolved addresses are reused by :data:`ADDRESSES` (seconds).
RESOLVE_TTL_S: Final = 30.0

#: One ``socket.getaddrinfo`` entry: (family, type, proto, canonname, sockaddr).
AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
Resolve = Callable[[str, int], list[AddrInfo]]


def _getaddrinfo(host: str, port: int) -> list[AddrInfo]:
    """``socket.getaddrinfo`` for a TCP connection, looked up at each call (gevent's when
    patched)."""
    return [
        (family, type_, proto, name, tuple(sockaddr))
        for family, type_, proto, name, sockaddr in socket.getaddrinfo(
            host, port, 0, socket.SOCK_STREAM
        )
    ]


def literal_address(host: str, port: int) -> AddrInfo | None:
    """The address of ``host`` when it is a literal IPv4/IPv6 address (no resolver needed),
    else ``None`` (a host name, or an IPv6 address with a scope, left to the resolver)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 4:
        return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))
    if "%" in host:
        return None
    return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port, 0, 0))


class AddressCache:
    """The addresses to connect to for (host, port): a literal IP address as it is, a host name
    resolved by ``resolve`` and reused for ``ttl_s`` seconds of ``clock``.

    One per process (:data:`ADDRESSES`); a failed lookup is not kept (the next session asks
    again), so a lookup that really happens is always inside the caller's timing.
    """

    def __init__(
        self,
        resolve: Resolve = _getaddrinfo,
        clock: Callable[[], float] = time.monotonic,
        ttl_s: float = RESOLVE_TTL_S,
    ) -> None:
        self._resolve = resolve
        self._clock = clock
        self._ttl_s = ttl_s
        self._entries: dict[tuple[str, int], tuple[float, list[AddrInfo]]] = {}
        self._literals: dict[tuple[str, int], list[AddrInfo]] = {}  # never expire
        self._names: set[tuple[str, int]] = set()  # not literal addresses: resolved

    def addresses(self, host: str, port: int) -> list[AddrInfo]:
        """Raises what ``resolve`` raises (``socket.gaierror`` for a name that does not
        resolve)."""
        key = (host, port)
        literal = self._literals.get(key)
        if literal is None and key not in self._names:
            address = literal_address(host, port)  # ~25 µs of parsing: once per (host, port)
            if address is None:
                self._names.add(key)
            else:
                literal = self._literals[key] = [address]
        if literal is not None:
            return literal
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and now < entry[0]:
            return entry[1]
        found = self._resolve(host, port)
        self._entries[key] = (now + self._ttl_s, found)
        return found


#: The process's address cache, used by :func:`open_websocket`.
ADDRESSES: Final = AddressCache()


def open_tcp(host: str, port: int, timeout_s: float, addresses: AddressCache) -> socket.socket:
    """A TCP connection to the first of ``host``'s addresses that accepts one (as
    ``socket.create_connection`` does), with ``TCP_NODELAY`` and no timeout left on it;
    raises the last address's error (``TimeoutError`` after ``timeout_s`` for each)."""
    error: OSError | None = None
    for family, type_, proto, _, sockaddr in addresses.addresses(host, port):
        sock = socket.socket(family, type_, proto)
        try:
            sock.settimeout(timeout_s)
            sock.connect(sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            sock.settimeout(None)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error if error is not None else OSError(f"no address to connect to for {host}")


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The process's TLS context for ``wss://`` (:func:`~voiceload.targets.ssl_context_for`:
    certificate chain and host name verified); built once, as building one loads the system
    trust store (~20 ms of CPU). No TLS session is resumed through it: every handshake is full."""
    context = ssl_context_for("wss://")
    assert context is not None
    return context


@functools.lru_cache(maxsize=64)
def _ws_uri(url: str) -> WebSocketURI:
    """websockets' own parse of ``url`` (raises ``InvalidURI`` as ``connect`` would)."""
    return parse_uri(url)


class Helper:
    """A session's helper (a reader, a reply worker) running ``target(*args)`` beside it.

    Under gevent's monkey patches (Locust) it is a greenlet that :meth:`stop` kills, so a
    session Locust kills stops its helpers at once instead of waiting for them; otherwise it is
    a daemon thread, which :meth:`stop` can only wait for (a bounded join). ``target`` must
    catch its own exceptions (a kill ends it with ``GreenletExit``, which it must not catch).
    """

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        self._greenlet: Any = None
        self._thread: threading.Thread | None = None
        if gevent_patched():
            import gevent

            self._greenlet = gevent.spawn(target, *args)
        else:
            self._thread = threading.Thread(target=target, args=args, daemon=True)
            self._thread.start()

    def join(self, timeout_s: float) -> None:
        """Wait at most ``timeout_s`` for the helper to finish."""
        if self._greenlet is not None:
            self._greenlet.join(timeout_s)
        elif self._thread is not None:
            self._thread.join(timeout_s)

    def is_alive(self) -> bool:
        if self._greenlet is not None:
            return not self._greenlet.dead
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 1.0) -> None:
        """End the helper now: kill the greenlet (waiting at most ``timeout_s`` for it to
        unwind), or join the thread for at most ``timeout_s``."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=timeout_s)
        else:
            self.join(timeout_s)


def close_within(ws: WebSocket, timeout_s: float) -> None:
    """Close ``ws`` waiting at most ``timeout_s`` for the server's answer (a killed session's
    quick exit); a socket that is already broken has nothing left to close."""
    try:
        ws.close_timeout = min(ws.close_timeout or timeout_s, timeout_s)
        ws.close()
    except Exception:
        pass


def open_websocket(
    url: str,
    headers: Mapping[str, str],
    subprotocols: Sequence[str],
    open_timeout_s: float,
    *,
    addresses: AddressCache | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> WebSocket:
    """Open a :class:`~voiceload.client.websocket.WebSocket` to ``url`` (use the result as a
    context manager): no compression, no proxy, no keepalive pings, no message size limit,
    ``close_timeout`` :data:`CLOSE_TIMEOUT_S`.

    The host is resolved through ``addresses`` (default: the process's :data:`ADDRESSES`) and
    the TCP connection opened here (:func:`open_tcp`); for ``wss://`` TLS is set up with
    :func:`shared_ssl_context` (chain and host name verified); the opening handshake gets what
    is left of ``open_timeout_s``. Raises what websockets' ``connect`` raises (a name that does
    not resolve: ``socket.gaierror``; a refused port: ``ConnectionRefusedError``; a certificate
    that does not verify: :class:`ssl.SSLError`; a refused upgrade: ``InvalidStatus``; an
    invalid URL: ``InvalidURI``; no answer in time: ``TimeoutError``).
    """
    uri = _ws_uri(url)
    started_s = clock()

    def left_s() -> float:
        return max(open_timeout_s - (clock() - started_s), 1e-3)

    sock = open_tcp(uri.host, uri.port, open_timeout_s, addresses or ADDRESSES)
    try:
        if uri.secure:
            sock.settimeout(left_s())
            sock = shared_ssl_context().wrap_socket(sock, server_hostname=uri.host)
            sock.settimeout(None)
        return WebSocket.open(sock, uri, headers, subprotocols, left_s(), CLOSE_TIMEOUT_S)
    except BaseException:
        sock.close()
        raise


def secrets_of(headers: Mapping[str, str], subprotocols: Sequence[str]) -> list[str]:
    """Strings an error message must never show: header values and auth subprotocols.

    For ``cf-aig-authorization.<token>`` the token alone is listed too, as is the part after
    ``Bearer `` in a header value.
    """
    out: list[str] = []
    for value in [*headers.values(), *subprotocols]:
        out.append(value)
        for sep in (".", " "):
            _, found, tail = value.partition(sep)
            if found and tail:
                out.append(tail)
    return out


def register_session_secrets(headers: Mapping[str, str], subprotocols: Sequence[str]) -> None:
    """Register every string of :func:`secrets_of` with :func:`voiceload.credentials.redact`
    (process-wide, from now on), so error details and log lines never carry a session's
    credentials — redacted with the one marker, :data:`voiceload.credentials.REDACTED`.

    Sessions call it when they are built, before any connection is attempted. Strings shorter
    than :data:`voiceload.credentials.MIN_SECRET_CHARS` are left alone (see there)."""
    for secret in secrets_of(headers, subprotocols):
        register_secret(secret)


def with_query(url: str, **params: str) -> str:
    """``url`` with non-empty ``params`` appended to its query string.

    Keys already present are left alone, and the existing query is kept byte for byte. Pure,
    so the answer is kept per (url, params): every session of a fixture builds the same URL,
    and parsing it again cost each session ~11 µs.
    """
    return _with_query(url, tuple(params.items()))


@functools.lru_cache(maxsize=256)
def _with_query(url: str, items: tuple[tuple[str, str], ...]) -> str:
    params = dict(items)
    parts = urllib.parse.urlsplit(url)
    present = {k for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)}
    added = urllib.parse.urlencode({k: v for k, v in params.items() if k not in present and v})
    if not added:
        return url
    query = f"{parts.query}&{added}" if parts.query else added
    return urllib.parse.urlunsplit(parts._replace(query=query))
