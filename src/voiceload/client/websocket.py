"""One client WebSocket on a blocking socket: websockets' Sans-I/O protocol, no helper thread.

Every Flux and Aura session talks through a :class:`WebSocket` (opened by
:func:`voiceload.client.connect.open_websocket`). The WebSocket protocol itself — opening
handshake, framing, masking, ping/pong, the closing handshake, close codes, the exceptions —
is websockets' own Sans-I/O layer (``websockets.client.ClientProtocol``, its documented way to
bring websockets to another I/O model); this module only moves its bytes over a socket.

Why not ``websockets.sync.client`` (issue 16): each sync connection starts a background reader
thread (a greenlet under Locust's gevent patches) that waits in a selector, hands every message
to an assembler guarded by locks and events, from which the application's own reader takes it
— two greenlet switches and several locks per message — plus a socket pair per connection to
wake the reader at close. Here the caller's own reader (a Flux session's reader greenlet, an
Aura session's ``recv``) reads the socket itself: one switch per read, one lock around the
protocol. Under gevent the socket is gevent's, so waiting and closing from another greenlet are
gevent's (a reader blocked in ``recv`` when another greenlet closes the socket gets an
``OSError`` and the connection ends ``ConnectionClosedError``); without gevent it works with
threads the same way (``close`` shuts the socket down, which wakes a blocked ``recv``).

Behaviour matches the sync client where voiceload relies on it: ``send`` of ``bytes`` is a
binary message and of ``str`` a text message; ``recv(timeout)`` returns whole (reassembled)
messages and raises ``TimeoutError`` when none came in time; iterating ends quietly after a
normal close (1000/1001) and raises ``ConnectionClosedError`` after any other; ``send`` or
``recv`` on a closed connection raise the protocol's ``ConnectionClosed``; a text message that
is not UTF-8 fails the connection with close code 1007; ``close()`` sends a close frame and
waits at most ``close_timeout`` for the server to end the connection, then drops it.

Rules for the caller: at most one thread/greenlet receives at a time (``recv`` or iteration);
any may send or close.
"""

from __future__ import annotations

import collections
import contextlib
import select
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosedOK, InvalidHandshake
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import USER_AGENT, Response
from websockets.protocol import CLOSED, OPEN
from websockets.typing import Subprotocol
from websockets.uri import WebSocketURI

#: Bytes asked of the socket per read (as websockets' sync client).
RECV_BUFSIZE = 65_536

#: How long closing waits for the server to end the connection (seconds), by default.
CLOSE_TIMEOUT_S = 2.0

Message = str | bytes


def gevent_patched() -> bool:
    """True when gevent has patched ``threading`` (Locust imports do): threads are greenlets."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


class WebSocket:
    """An open client WebSocket over ``sock`` driven by ``protocol`` (already past its opening
    handshake: build one with :meth:`open`)."""

    def __init__(
        self, sock: socket.socket, protocol: ClientProtocol, close_timeout: float = CLOSE_TIMEOUT_S
    ) -> None:
        self.socket = sock
        self.protocol = protocol
        #: How long :meth:`close` waits for the server to end the connection (seconds).
        self.close_timeout = close_timeout
        self._lock = threading.Lock()  # the protocol and the socket's writing side
        self._messages: collections.deque[Message] = collections.deque()
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._receiving = False  # a recv is in progress (it owns the reading side)
        self._iterating = False  # someone iterates: it reads, even between two recv calls
        self._closed = threading.Event()  # protocol CLOSED and socket closed
        self._close_deadline: float | None = None  # monotonic s: drop the connection then
        self._connection_error: BaseException | None = None

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        sock: socket.socket,
        uri: WebSocketURI,
        headers: Mapping[str, str],
        subprotocols: Sequence[str],
        timeout_s: float,
        close_timeout: float = CLOSE_TIMEOUT_S,
    ) -> WebSocket:
        """Run the opening handshake on the connected ``sock`` (TLS already set up for
        ``wss://``) within ``timeout_s``; no compression, no message size limit.

        Raises what websockets' sync ``connect`` raises: ``InvalidStatus`` (with the response
        and its body) for a refused upgrade, another ``InvalidHandshake`` for a malformed
        answer, ``TimeoutError`` when no answer came in time, ``OSError`` from the socket.
        The caller closes ``sock`` on failure.
        """
        protocol = ClientProtocol(
            uri, subprotocols=[Subprotocol(p) for p in subprotocols] or None, max_size=None
        )
        request = protocol.connect()
        request.headers.update(headers)
        request.headers.setdefault("User-Agent", USER_AGENT)
        protocol.send_request(request)
        deadline = time.monotonic() + timeout_s
        ws = cls(sock, protocol, close_timeout)
        try:
            for data in protocol.data_to_send():
                sock.settimeout(max(deadline - time.monotonic(), 1e-3))
                sock.sendall(data)
            response: Response | None = None
            while response is None:
                sock.settimeout(max(deadline - time.monotonic(), 1e-3))
                try:
                    data = sock.recv(RECV_BUFSIZE)
                except TimeoutError:
                    raise TimeoutError("timed out while waiting for handshake response") from None
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                events = protocol.events_received()
                if events and isinstance(events[0], Response):
                    response = events[0]
                    for event in events[1:]:  # frames that came with the response
                        assert isinstance(event, Frame)
                        ws._on_frame(event)
                    ws._write_pending()  # a pong or close echo they called for
                    if protocol.close_expected():
                        ws._arm_close_deadline()
                elif not data:
                    break
            if protocol.handshake_exc is not None:
                raise protocol.handshake_exc
            if response is None:
                raise InvalidHandshake("connection closed while waiting for handshake response")
        finally:
            sock.settimeout(None)
        return ws

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose, if any."""
        return self.protocol.subprotocol

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(CloseCode.NORMAL_CLOSURE if exc_type is None else CloseCode.INTERNAL_ERROR)

    # -- sending ---------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        """Send one message: ``bytes`` as a binary frame, ``str`` as a text frame. Raises
        ``ConnectionClosed`` when the connection is closing or closed (or breaks now)."""
        with self._lock:
            if self.protocol.state is OPEN:
                if isinstance(message, bytes):
                    self.protocol.send_binary(message)
                else:
                    self.protocol.send_text(message.encode())
                try:
                    self._write_pending()
                except OSError as exc:
                    self._drop_locked(exc)
                else:
                    return
        self._wait_closed(self.close_timeout)
        raise self._close_exc()

    def _write_pending(self) -> None:
        """Write what the protocol has queued (hold ``_lock``); the empty chunk is EOF."""
        for data in self.protocol.data_to_send():
            if data:
                # one send() writes a whole frame almost always; gevent's sendall() would
                # also ask the socket for its buffer size on every call
                sent = self.socket.send(data)
                if sent < len(data):
                    self.socket.sendall(memoryview(data)[sent:])
            else:
                with contextlib.suppress(OSError):  # already closed
                    self.socket.shutdown(socket.SHUT_WR)

    # -- receiving -------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Message]:
        """Messages until the connection closes: quietly after a normal close, else raising
        ``ConnectionClosedError``."""
        self._iterating = True  # this iteration owns the reading side until it ends
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return
        finally:
            self._iterating = False

    def recv(self, timeout: float | None = None) -> Message:
        """The next whole message; ``TimeoutError`` when none came within ``timeout`` seconds
        (``None``: wait as long as it takes); ``ConnectionClosed`` once the connection is
        closed and every message before the close was taken."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._messages:
            if self._closed.is_set():
                raise self._close_exc()
            self._receiving = True
            try:
                self._read(deadline)
            finally:
                self._receiving = False
        return self._messages.popleft()

    def _read(self, deadline: float | None) -> None:
        """Read the socket once (waiting at most until ``deadline``) and feed the protocol;
        ``TimeoutError`` when nothing came by then."""
        closing = self._close_deadline
        if closing is not None and (deadline is None or closing < deadline):
            deadline = closing
        try:
            data = self.socket.recv(RECV_BUFSIZE) if deadline is None else self._recv_by(deadline)
        except TimeoutError:
            if closing is not None and time.monotonic() >= closing:
                self._drop(None)  # the server never ended the connection: stop waiting
                return
            raise
        except OSError as exc:  # closed by another thread/greenlet, or reset by the peer
            self._drop(exc)
            return
        with self._lock:
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
            events = self.protocol.events_received()
            try:
                self._write_pending()
            except OSError as exc:
                self._drop_locked(exc)
            if self.protocol.close_expected():
                self._arm_close_deadline()
        for event in events:
            assert isinstance(event, Frame)
            self._on_frame(event)
        if self.protocol.state is CLOSED:
            self._drop(None)

    def _recv_by(self, deadline: float) -> bytes:
        """One read that gives up at ``deadline`` (``TimeoutError``) without touching the
        socket's own timeout, which a concurrent ``send`` would inherit: under gevent a
        ``gevent.Timeout`` around the read (which waits on gevent's own socket watcher, so a
        close from another greenlet still ends it cleanly); with threads a ``select``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for a message")
        if gevent_patched():
            import gevent

            with gevent.Timeout(remaining, TimeoutError("timed out waiting for a message")):
                return self.socket.recv(RECV_BUFSIZE)
        pending = getattr(self.socket, "pending", None)  # TLS: bytes already decrypted
        if not (pending is not None and pending()):
            try:
                ready, _, _ = select.select([self.socket], [], [], remaining)
            except ValueError as exc:  # closed meanwhile (descriptor -1)
                raise OSError(str(exc)) from exc
            if not ready:
                raise TimeoutError("timed out waiting for a message")
        return self.socket.recv(RECV_BUFSIZE)

    def _on_frame(self, frame: Frame) -> None:
        """Reassemble data frames into messages (control frames are the protocol's)."""
        opcode = frame.opcode
        data = bytes(frame.data)  # already bytes when parsed: no copy
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._deliver(data, opcode is Opcode.TEXT)
            else:
                self._fragments = [data]
                self._fragment_text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT:
            self._fragments.append(data)
            if frame.fin:
                whole, self._fragments = b"".join(self._fragments), []
                self._deliver(whole, self._fragment_text)

    def _deliver(self, data: bytes, text: bool) -> None:
        if not text:
            self._messages.append(data)
            return
        try:
            self._messages.append(data.decode())
        except UnicodeDecodeError as exc:  # as websockets: fail the connection, 1007
            with self._lock:
                self._connection_error = exc
                self.protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
                with contextlib.suppress(OSError):
                    self._write_pending()
                self._arm_close_deadline()

    # -- closing ---------------------------------------------------------------------------

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Send a close frame (if the connection is open) and wait at most
        :attr:`close_timeout` for the server to end the connection; then drop it. Idempotent;
        never raises for a connection that is already broken."""
        with self._lock:
            if self.protocol.state is OPEN:
                self.protocol.send_close(code, reason)
                self._arm_close_deadline()
                try:
                    self._write_pending()
                except OSError as exc:
                    self._drop_locked(exc)
        self._wait_closed(self.close_timeout)

    def _arm_close_deadline(self) -> None:
        """A close is under way: stop waiting for the server :attr:`close_timeout` from now
        (from the first time a close was seen; later calls keep that deadline)."""
        if self._close_deadline is None:
            self._close_deadline = time.monotonic() + self.close_timeout

    @property
    def close_code(self) -> int | None:
        """The close code the server sent (1006 when it sent none), once closed; else None."""
        return self.protocol.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason the server sent, once closed; else None."""
        return self.protocol.close_reason

    def _wait_closed(self, timeout: float) -> None:
        """Wait at most ``timeout`` for the connection to end (reading it ourselves if nobody
        else is); then drop it."""
        if self._closed.is_set():
            return
        if self._receiving or self._iterating:  # another reader will see the end
            if not self._closed.wait(timeout):
                self._drop(None)
            return
        deadline = time.monotonic() + timeout
        while not self._closed.is_set():
            if time.monotonic() >= deadline:
                self._drop(None)
                return
            self._receiving = True
            try:
                self._read(deadline)
            except TimeoutError:
                pass
            finally:
                self._receiving = False
            self._messages.clear()  # nobody will take them now

    def _drop(self, error: BaseException | None) -> None:
        with self._lock:
            self._drop_locked(error)

    def _drop_locked(self, error: BaseException | None) -> None:
        """Close the socket and end the protocol (hold ``_lock``); idempotent."""
        if self._connection_error is None:
            self._connection_error = error
        if self._closed.is_set():
            return
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
        with contextlib.suppress(OSError):
            self.socket.close()
        self.protocol.receive_eof()  # idempotent; the state becomes CLOSED
        self.protocol.data_to_send()  # nothing can be written any more
        self._closed.set()

    def _close_exc(self) -> BaseException:
        exc = self.protocol.close_exc
        if self._connection_error is not None:
            exc.__cause__ = self._connection_error
        return exc
