"""Opening a WebSocket the one way every session does it, and the session's clock hooks.

``websockets.sync`` works under Locust's gevent patches (docs/MEASUREMENTS.md
§1): its threads become greenlets. The options are fixed here: no compression (PCM does not
compress, and deflate costs CPU), no proxy (load must never leave for a proxy), no keepalive
pings, ``close_timeout=2`` and no message size limit. For ``wss://`` the TLS context is
:func:`voiceload.targets.ssl_context_for`'s (certificate chain and host name verified, never
disabled), passed explicitly rather than left to the library's default.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from voiceload.client import ws_gevent
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


def connect_options(
    url: str,
    headers: Mapping[str, str],
    subprotocols: Sequence[str],
    open_timeout_s: float,
) -> dict[str, Any]:
    """The keyword arguments :func:`open_websocket` gives ``websockets.sync.client.connect``.

    ``ssl`` is present exactly when ``url`` is ``wss://``: a context that verifies the
    certificate chain and the host name (:func:`~voiceload.targets.ssl_context_for`).
    """
    options: dict[str, Any] = {
        "additional_headers": dict(headers),
        "subprotocols": [Subprotocol(p) for p in subprotocols] or None,
        "compression": None,
        "proxy": None,
        "ping_interval": None,
        "open_timeout": open_timeout_s,
        "close_timeout": 2,
        "max_size": None,
    }
    context = ssl_context_for(url)
    if context is not None:  # websockets refuses an ssl argument for ws://
        options["ssl"] = context
    return options


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
        if _gevent_patched():
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


def close_within(ws: ClientConnection, timeout_s: float) -> None:
    """Close ``ws`` waiting at most ``timeout_s`` for the server's answer (a killed session's
    quick exit); a socket that is already broken has nothing left to close."""
    try:
        ws.close_timeout = min(ws.close_timeout or timeout_s, timeout_s)
        ws.close()
    except Exception:
        pass


def _gevent_patched() -> bool:
    """True when gevent has patched ``threading`` (Locust imports do): threads are greenlets."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def open_websocket(
    url: str,
    headers: Mapping[str, str],
    subprotocols: Sequence[str],
    open_timeout_s: float,
) -> ClientConnection:
    """Connect with :func:`connect_options` (use the result as a context manager); raises what
    ``connect`` raises (a certificate that does not verify: :class:`ssl.SSLError`)."""
    ws_gevent.install()  # under gevent: a socket closed by another greenlet must not abort us
    connection: ClientConnection = connect(
        url, **connect_options(url, headers, subprotocols, open_timeout_s)
    )
    return connection


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

    Keys already present are left alone, and the existing query is kept byte for byte.
    """
    parts = urllib.parse.urlsplit(url)
    present = {k for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)}
    added = urllib.parse.urlencode({k: v for k, v in params.items() if k not in present and v})
    if not added:
        return url
    query = f"{parts.query}&{added}" if parts.query else added
    return urllib.parse.urlunsplit(parts._replace(query=query))
