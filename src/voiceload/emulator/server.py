"""The emulator's WebSocket server (asyncio ``websockets``): routes, auth, faults, I/O only.

Decisions live elsewhere: routes, auth forms and error bodies in :mod:`voiceload.protocol.gateway`,
delays and faults in :mod:`.behaviour`, the Flux and Aura conversations in :mod:`.flux_stream`
and :mod:`.aura_stream`. This module reads the clock, moves bytes and writes the trace.

Upgrade checks, in the order the real stack applies them (each answers with the real status and
body, never a traceback): ``GET /healthz`` -> 200; unknown path -> :func:`route_not_found`;
token (only when one is configured) -> 401; account / gateway (only when configured) -> 400
2001 (gateway route) or 401 10000 (direct route); unknown model -> 400 5007; bad parameters ->
400. Then the connection gets a number (1, 2, ... per process) and its
:class:`~.behaviour.ConnectionPlan`: an injected upgrade error, the handshake delay, and maybe
a mid-stream fault.

Flux audio takes a short cut (:class:`EmulatorConnection`; the websockets internals it needs are
in :mod:`voiceload.emulator.ws_compat`): a whole binary frame is fed to the
stream as websockets parses it, inside the connection's ``data_received``, instead of being
queued for the handler task's ``recv``, and the messages it makes due (an ``Update`` about
every third 80 ms frame) are sent from there too while the handler task is idle in ``recv``.
That saves a queue round trip and a task switch per frame. The task still wakes for timers,
text frames and output it must send itself (a planned fault, a socket paused by flow
control, the task busy sending); everything else (text frames, a frame that arrives while
earlier ones are still queued, odd-sized audio, a stalled stream's input) goes the ordinary
way, so the stream sees every frame once and in order, and messages leave in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import socket
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from voiceload.emulator import aura_stream, flux_stream, ws_compat
from voiceload.emulator.behaviour import (
    Behaviour,
    ConnectionPlan,
    Distribution,
    EmulatorConfig,
    FaultRule,
)
from voiceload.emulator.flux_stream import AudioDecodeError, Close, FluxStream, ReferenceTurn
from voiceload.emulator.realism import Realism
from voiceload.emulator.trace import TraceWriter
from voiceload.errors import RemoteProtocolError
from voiceload.protocol import aura, gateway, params
from voiceload.protocol.flux import (
    CloseStream,
    FluxError,
    ServerMessage,
    TurnInfo,
    parse_client_message,
    serialize_server_message,
)
from voiceload.protocol.gateway import AuthForm, Route, RouteError, RouteForm, Service

_HTTP_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    413: "Payload Too Large",
    429: "Too Many Requests",
}
_GATEWAY_AUTH = (AuthForm.AIG_HEADER, AuthForm.AIG_BEARER, AuthForm.AIG_SUBPROTOCOL)
_DIRECT_AUTH = (AuthForm.BEARER,)
_DEEPGRAM_AUTH = (AuthForm.TOKEN, AuthForm.TOKEN_SUBPROTOCOL, AuthForm.BEARER)
#: Flux's raw-audio sample rates (PROTOCOLS.md §3.1); the VAD needs one of them.
FLUX_SAMPLE_RATES = params.FLUX_SAMPLE_RATES
#: Whose parameter rules each route form follows (:mod:`voiceload.protocol.params`).
_PROVIDERS = {
    RouteForm.GATEWAY: params.Provider.WORKERS_AI,
    RouteForm.WORKERS_AI: params.Provider.WORKERS_AI,
    RouteForm.DEEPGRAM: params.Provider.DEEPGRAM,
}
_log = logging.getLogger("voiceload.emulator")
_BAD_DATA = (gateway.DEEPGRAM_BAD_AUDIO.code, gateway.DEEPGRAM_BAD_AUDIO.reason)
_MALFORMED_JSON = '{"type":"TurnInfo","event":'  # a truncated message (fault injection)


@dataclass(frozen=True)
class ServerOptions:
    """What ``voiceload emulate`` serves; ``None`` token/account/gateway switch that check off."""

    config: EmulatorConfig = field(default_factory=EmulatorConfig)
    token: str | None = None
    account: str | None = None
    gateway: str | None = None
    references: Mapping[str, tuple[ReferenceTurn, ...]] = field(default_factory=dict)
    process_index: int = 0  # this server's number among `--processes K` (seeds differ)


@dataclass
class _Accepted:
    """What process_request decided for an upgrade it lets through."""

    route: Route
    model: str  # the config's model name (flux, aura-1, aura-2-en, aura-2-es)
    plan: ConnectionPlan
    subprotocol: str | None
    request_id: str  # the stream's request_id (and dg-request-id on the Deepgram route)


def config_model_name(route: Route) -> str:
    """The emulator config's name for the route's model (``@cf/deepgram/aura-1`` -> ``aura-1``).

    Deepgram-style names map onto the Workers AI ones: ``flux-general-*`` -> ``flux``,
    ``aura-2-<voice>-es`` -> ``aura-2-es``, other ``aura-2-*`` -> ``aura-2-en``, ``aura-*`` ->
    ``aura-1``.
    """
    model = route.model.removeprefix("@cf/deepgram/")
    if route.form is not RouteForm.DEEPGRAM:
        return model
    if route.service is Service.FLUX:
        return "flux"
    if model.startswith("aura-2-"):
        return "aura-2-es" if model.endswith("-es") else "aura-2-en"
    return "aura-1"


def _response(
    status: int,
    body: bytes,
    content_type: str = "application/json",
    extra: Sequence[tuple[str, str]] = (),
) -> Response:
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            *extra,
        ]
    )
    return Response(status, _HTTP_REASONS.get(status, "Error"), headers, body)


def _offered_subprotocols(request: Request) -> list[str]:
    return [
        item.strip()
        for value in request.headers.get_all("Sec-WebSocket-Protocol")
        for item in value.split(",")
        if item.strip()
    ]


#: The connection class the server creates: whole binary frames can go to ``audio_sink`` as they
#: are parsed (:class:`voiceload.emulator.ws_compat.AudioTapConnection`, where every use of
#: websockets internals lives).
EmulatorConnection = ws_compat.AudioTapConnection


class EmulatorApp:
    """One process's emulator: the websockets hooks plus the per-connection handlers."""

    def __init__(self, options: ServerOptions, trace: TraceWriter | None = None) -> None:
        self.options = options
        self.behaviour = Behaviour(options.config, options.process_index)
        self.trace = trace
        self.connections = 0
        self.short_cut_frames = 0  # audio frames of closed connections that took the short cut
        self._accepted: weakref.WeakKeyDictionary[ServerConnection, _Accepted] = (
            weakref.WeakKeyDictionary()
        )

    # -- handshake ------------------------------------------------------------------------

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Route, authenticate and plan the upgrade; a Response refuses it."""
        if request.path.split("?", 1)[0] == "/healthz":
            return _response(200, b"ok\n", "text/plain; charset=utf-8")
        try:
            route = gateway.parse_route(request.path)
        except RouteError as exc:
            return self._reject(request, *gateway.route_not_found(exc))
        request_id = str(uuid.uuid4())
        offered = _offered_subprotocols(request)
        refusal = self._check(route, request, offered, request_id)
        if refusal is not None:
            return self._reject(request, *refusal, route=route, request_id=request_id)
        assert route.service is not None  # _check refused unknown models
        self.connections += 1
        model = config_model_name(route)
        plan = self.behaviour.plan(self.connections, route.service.value, model)
        if plan.handshake_delay_ms > 0:
            await asyncio.sleep(plan.handshake_delay_ms / 1000)
        if plan.upgrade_fault is not None:
            fault = _upgrade_fault(plan.upgrade_fault, route, request_id)
            return self._reject(request, *fault, route=route, request_id=request_id)
        _, form = gateway.server_extract_token(request.headers, offered)
        subprotocol = gateway.server_subprotocol(form, offered)
        self._accepted[connection] = _Accepted(route, model, plan, subprotocol, request_id)
        return None

    def process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response:
        """The Deepgram route names the request in ``dg-request-id`` on every answer [doc]."""
        accepted = self._accepted.get(connection)
        if accepted is not None and accepted.route.form is RouteForm.DEEPGRAM:
            response.headers["dg-request-id"] = accepted.request_id
        return response

    def select_subprotocol(
        self, connection: ServerConnection, subprotocols: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        """Echo the auth subprotocol the client offered (browsers abort without it)."""
        accepted = self._accepted.get(connection)
        if accepted is None or accepted.subprotocol is None:
            return None
        return Subprotocol(accepted.subprotocol)

    def _check(
        self, route: Route, request: Request, offered: list[str], request_id: str
    ) -> tuple[int, bytes] | None:
        """Why the upgrade is refused, in the route's own error shape; None lets it through.

        The Deepgram route answers with Deepgram's body (``err_code``, ``err_msg``,
        ``request_id``); the Cloudflare routes with Cloudflare's. Model parameters follow the
        route's rules (:mod:`voiceload.protocol.params`), then what the emulator can serve.
        """
        opts = self.options
        deepgram = route.form is RouteForm.DEEPGRAM
        if opts.token is not None:
            token, form = gateway.server_extract_token(request.headers, offered)
            allowed = {
                RouteForm.GATEWAY: _GATEWAY_AUTH,
                RouteForm.WORKERS_AI: _DIRECT_AUTH,
                RouteForm.DEEPGRAM: _DEEPGRAM_AUTH,
            }[route.form]
            if token != opts.token or form not in allowed:
                if route.form is RouteForm.GATEWAY:
                    return gateway.unauthorized()
                if deepgram:
                    return gateway.deepgram_unauthorized(request_id)
                return gateway.api_authentication_error()
        if opts.account is not None and route.account_id not in (None, opts.account):
            if route.form is RouteForm.GATEWAY:
                return gateway.gateway_not_found()
            return gateway.api_authentication_error()
        if opts.gateway is not None and route.gateway_id not in (None, opts.gateway):
            return gateway.gateway_not_found()
        if route.service is None:
            if deepgram:
                return gateway.deepgram_unknown_model(route.model, request_id)
            return gateway.unknown_model(route.model)
        provider = _PROVIDERS[route.form]
        if route.service is Service.FLUX:
            problem = params.flux_query_problem(provider, route.params)
            problem = problem or flux_stream.emulation_problem(route.params)
        else:
            problem = params.aura_query_problem(provider, route.params)
            problem = problem or aura_stream.param_problem(route.params)
        if problem is not None:
            if deepgram:
                return gateway.deepgram_bad_request(problem, request_id)
            return gateway.bad_parameter(problem)
        return None

    def _reject(
        self,
        request: Request,
        status: int,
        body: bytes,
        *,
        route: Route | None = None,
        request_id: str | None = None,
    ) -> Response:
        if self.trace is not None:
            self.trace.write(
                {"ev": "reject", "ns": time.monotonic_ns(), "path": request.path, "status": status}
            )
        extra: list[tuple[str, str]] = []
        if route is not None and route.form is RouteForm.DEEPGRAM and request_id is not None:
            extra = gateway.deepgram_headers(request_id, body)
        return _response(status, body, extra=extra)

    # -- connections ----------------------------------------------------------------------

    async def handler(self, ws: ServerConnection) -> None:
        """Serve one accepted WebSocket until it closes."""
        accepted = self._accepted.pop(ws, None)
        if accepted is None:  # pragma: no cover - process_request always records one
            return
        route, plan = accepted.route, accepted.plan
        idle_s = self.options.config.flux.idle_timeout_s
        conn = _Conn(ws, plan.connection_no, self.trace, plan.stream_fault, idle_s)
        if self.trace is not None:
            self.trace.write(
                {
                    "ev": "open",
                    "conn": conn.no,
                    "ns": time.monotonic_ns(),
                    "route": route.form.value,
                    "service": route.service,
                    "model": route.model,
                    "tag": route.param("tag"),
                }
            )
        waker = _Waker(ws)
        try:
            if route.service is Service.FLUX:
                await self._serve_flux(conn, accepted, waker)
            else:
                await self._serve_aura(conn, accepted, waker)
        except ConnectionClosed:
            pass
        except Exception as exc:  # a bug here must not print a traceback or stop the server
            _log.error("connection %d failed: %s: %s", conn.no, type(exc).__name__, exc)
            with contextlib.suppress(ConnectionClosed):
                await conn.close(1011, "internal error")
        finally:
            if isinstance(ws, EmulatorConnection):
                ws.audio_sink = None
                self.short_cut_frames += ws.sunk
            waker.close()
            conn.trace_close()

    async def _serve_flux(self, conn: _Conn, accepted: _Accepted, waker: _Waker) -> None:
        route, plan = accepted.route, accepted.plan
        cfg = self.options.config
        latency = cfg.latency_for("flux", accepted.model)
        tag = route.param("tag")
        stream_params = flux_stream.StreamParams(
            sample_rate=int(route.param("sample_rate") or 16000),
            eot_threshold=float(route.param("eot_threshold") or 0.7),
            eager_eot_threshold=(
                float(route.param("eager_eot_threshold") or 0)
                if route.param("eager_eot_threshold")
                else None
            ),
            eot_timeout_ms=int(route.param("eot_timeout_ms") or 5000),
            keyterms=tuple(route.param_values("keyterm")),
            update_interval_s=cfg.flux.update_interval_s,
            placeholder_words_per_s=cfg.flux.placeholder_words_per_s,
            vad_turn_gap_s=cfg.flux.vad_turn_gap_s,
            eager_fraction=cfg.flux.eager_fraction,
            idle_timeout_s=cfg.flux.idle_timeout_s,
            first_response_ms=latency.first_response.sample_ms(plan.rng),
            eot_threshold_max=params.FLUX_RULES[_PROVIDERS[route.form]].eot_threshold.high,
            encoding=route.param("encoding") or "linear16",
        )
        conn.realism = self.behaviour.realism(plan.connection_no)
        stream = FluxStream(
            accepted.request_id,
            stream_params,
            _draws(latency.eot_delay, plan),
            self.options.references.get(tag, ()) if tag else (),
            now_ns=time.monotonic_ns(),
            realism=conn.realism,
        )

        def flux_error(seq: int | None) -> str:
            # the Error takes the place (and sequence_id) of the message it replaces
            err = FluxError(
                seq if seq is not None else stream.machine.next_sequence_id(),
                "INTERNAL_SERVER_ERROR",
                "emulated fault: internal server error",
            )
            return serialize_server_message(err)

        conn.error_text = flux_error

        def take_audio(data: bytes) -> bool:
            """The short cut for audio (module docstring): feed it now; send what it made due
            now too when the task is idle in ``recv`` (else wake the task to send it)."""
            if len(data) % 2 and stream_params.encoding == "linear16":
                return False  # not linear16: the handler reads it and closes 1008
            recv_ns = time.monotonic_ns()
            try:
                stream.feed_audio(data, recv_ns)
                if stream.has_due_output(recv_ns):
                    if waker.idle and not stream.closed and conn.can_send_now():
                        conn.send_now(stream.poll(recv_ns), recv_ns)
                    else:
                        waker.wake_for(recv_ns)  # the task sends it and re-arms its timer
                        return True
                waker.arm(stream.next_wakeup_ns())
            except Exception as exc:  # a bug: fail the handler, not websockets' data_received
                waker.fail(exc)
            return True

        if isinstance(conn.ws, EmulatorConnection):
            conn.ws.audio_sink = take_audio
        recv_ns: int | None = None  # arrival of the frame being answered (for proc_us)
        while True:
            for out in stream.poll(time.monotonic_ns()):
                if isinstance(out, Close):
                    await conn.close(out.code, out.reason)
                    return
                if not await conn.send_flux(out, recv_ns):
                    return
            data = await waker.recv(stream.next_wakeup_ns())
            if data is None:  # a timer is due, or audio taken by the short cut has output
                recv_ns = waker.take_woken_for()
                continue
            recv_ns = time.monotonic_ns()
            try:
                if isinstance(data, bytes):
                    stream.feed_audio(data, recv_ns)
                else:
                    msg = parse_client_message(data)
                    stream.control(None if isinstance(msg, CloseStream) else msg, recv_ns)
            except (AudioDecodeError, RemoteProtocolError):
                await conn.close(*_BAD_DATA)
                return

    async def _serve_aura(self, conn: _Conn, accepted: _Accepted, waker: _Waker) -> None:
        route, plan = accepted.route, accepted.plan
        cfg = self.options.config
        latency = cfg.latency_for("aura", accepted.model)
        rate = route.param("sample_rate")
        conn.realism = self.behaviour.realism(plan.connection_no)
        stream = aura_stream.AuraStream(
            request_id=accepted.request_id,
            model_name=route.model,
            settings=cfg.aura,
            sample_rate=int(rate) if rate else cfg.aura.sample_rate,
            first_byte_ms=_draws(latency.first_byte, plan),
            realism=conn.realism,
            encoding=route.param("encoding") or "linear16",
        )
        conn.error_text = lambda _seq: aura_stream.error_message()
        end_ns = time.monotonic_ns() + aura.MAX_SESSION_S * 1_000_000_000
        recv_ns: int | None = None
        while True:
            for out in stream.poll(time.monotonic_ns()):
                if isinstance(out, Close):
                    await conn.close(out.code, out.reason)
                    return
                if isinstance(out, bytes):
                    ok = await conn.send_audio(out)
                else:
                    record = _aura_record(out) if conn.trace is not None else {}
                    ok = await conn.send_text(conn.rewrite(out), record, recv_ns)
                if not ok:
                    return
            data = await waker.recv(min(stream.next_wakeup_ns() or end_ns, end_ns))
            if time.monotonic_ns() >= end_ns:  # Deepgram's 60-minute session cap
                await conn.close(1000)
                return
            if data is None:  # a chunk is due
                recv_ns = None
                continue
            recv_ns = time.monotonic_ns()
            try:
                if isinstance(data, bytes):  # Aura takes no audio
                    raise RemoteProtocolError("binary frame sent to Aura")
                stream.receive(data, recv_ns)
            except RemoteProtocolError:
                await conn.close(*_BAD_DATA)
                return


class _Waker:
    """``recv`` that returns None once a deadline passes or the stream has output, for one task.

    Cheaper than ``asyncio.timeout`` around every ``recv`` (which allocates a timeout and a
    timer per frame): the timer moves only when a deadline comes *earlier*. When it fires at a
    stale, earlier deadline the caller just polls its stream and waits again. Audio fed by the
    short cut (:class:`EmulatorConnection`) wakes the task with :meth:`wake_for` when it made a
    message due. A wake cancels the task only while it is inside ``recv``, which websockets
    documents as cancel-safe, and at most once per ``recv``; a wake outside ``recv`` makes the
    next ``recv`` return None at once.
    """

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._handle: asyncio.TimerHandle | None = None
        self._at_ns: int | None = None
        self._in_recv = False
        self._woken = False  # recv returns None once
        self._cancelled = False  # this recv's task was cancelled by a wake
        self._woken_for: int | None = None  # arrival of the earliest frame with output unsent
        self._error: Exception | None = None

    async def recv(self, wake_ns: int | None) -> str | bytes | None:
        """The next client frame, or None once ``wake_ns`` (CLOCK_MONOTONIC ns) has passed or
        audio taken by the short cut has output; re-raises what :meth:`fail` recorded."""
        self.arm(wake_ns)
        if self._error is not None:
            raise self._error
        if self._woken:
            self._woken = False
            return None
        self._in_recv = True
        try:
            return await self._ws.recv()
        except asyncio.CancelledError:
            if not self._cancelled or self._task.uncancel() > 0:
                raise  # a real cancellation (server shutdown), not our wake
            if self._error is not None:
                raise self._error from None
            self._woken = False
            return None
        finally:
            self._in_recv = False
            self._cancelled = False

    def arm(self, wake_ns: int | None) -> None:
        """Wake at ``wake_ns`` unless an earlier wake-up is already set."""
        if wake_ns is not None and (self._at_ns is None or wake_ns < self._at_ns):
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self._loop.call_at(wake_ns / 1e9, self._fire)  # loop.time is monotonic
            self._at_ns = wake_ns

    @property
    def idle(self) -> bool:
        """The task waits in ``recv`` with no wake pending: it has sent all it polled."""
        return self._in_recv and not self._woken

    def wake_for(self, recv_ns: int) -> None:
        """Audio received at ``recv_ns`` made a message due: wake the task to send it."""
        if self._woken_for is None:
            self._woken_for = recv_ns
        self._wake()

    def take_woken_for(self) -> int | None:
        """The arrival of the frame that caused the wake (None: a timer); clears it."""
        recv_ns, self._woken_for = self._woken_for, None
        return recv_ns

    def fail(self, exc: Exception) -> None:
        """End the task's ``recv`` with ``exc`` (a bug met outside the task)."""
        self._error = exc
        self._wake()

    def _fire(self) -> None:
        self._handle = None
        self._at_ns = None
        self._wake()

    def _wake(self) -> None:
        self._woken = True
        if self._in_recv and not self._cancelled:
            self._cancelled = True
            self._task.cancel()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def _flux_record(msg: ServerMessage) -> dict[str, Any]:
    """Trace fields of a Flux message."""
    if isinstance(msg, TurnInfo):
        return {
            "type": "TurnInfo",
            "event": msg.event.value,
            "seq": msg.sequence_id,
            "turn": msg.turn_index,
        }
    return {"type": type(msg).__name__, "seq": msg.sequence_id}


def _aura_record(text: str) -> dict[str, Any]:
    """Trace fields of an Aura text frame: its type and sequence_id (parsed only when tracing)."""
    msg = aura.parse_server_message(text)
    record: dict[str, Any] = {"type": type(msg).__name__}
    if isinstance(msg, aura.Flushed | aura.Cleared):
        record["seq"] = msg.sequence_id
    return record


def _draws(dist: Distribution, plan: ConnectionPlan) -> Iterator[float]:
    """Endless draws from ``dist`` with the connection's own generator."""
    while True:
        yield dist.sample_ms(plan.rng)


def _upgrade_fault(kind: str, route: Route, request_id: str) -> tuple[int, bytes]:
    """The refusal an upgrade fault injects; the Deepgram route answers in Deepgram's shape
    where Deepgram has the case (auth, model, parameter, rate limit)."""
    if route.form is RouteForm.DEEPGRAM:
        match kind:
            case "unauthorized":
                return gateway.deepgram_unauthorized(request_id)
            case "unknown_model":
                return gateway.deepgram_unknown_model(route.model, request_id)
            case "rate_limited":
                return gateway.deepgram_error(
                    429, "TOO_MANY_REQUESTS", "Too many requests (emulated fault)", request_id
                )
            case "bad_param":
                return gateway.deepgram_bad_request(
                    "invalid value for 'encoding' (emulated fault)", request_id
                )
    match kind:
        case "unauthorized":
            return gateway.unauthorized()
        case "unknown_gateway":
            return gateway.gateway_not_found()
        case "unknown_model":
            return gateway.unknown_model(route.model)
        case "allocation_exhausted":
            return gateway.allocation_exhausted()
        case "rate_limited":
            return gateway.rate_limited()
    return gateway.bad_parameter("invalid value for 'encoding' (emulated fault)")


class _Conn:
    """One accepted socket: sends, traces, and applies the planned mid-stream fault.

    ``error_text`` builds the service's fatal ``Error`` frame (set by the service handler).
    """

    def __init__(
        self,
        ws: ServerConnection,
        no: int,
        trace: TraceWriter | None,
        fault: FaultRule | None,
        idle_timeout_s: float,
    ) -> None:
        self.ws = ws
        self.no = no
        self.trace = trace
        self.fault = fault
        self.idle_timeout_s = idle_timeout_s
        self.error_text: Callable[[int | None], str] = lambda _seq: _MALFORMED_JSON
        self.realism: Realism | None = None  # the [realism] variations of this connection
        self.sent = 0
        self.close_code: int | None = None
        self._closed_traced = False

    async def _before_send(self, seq: int | None = None) -> bool:
        """Apply the planned fault once it is due; False: send nothing more, the stream is over."""
        fault = self.fault
        if fault is None or self.sent < fault.after_messages:
            return True
        self.fault = None
        match fault.kind:
            case "disconnect":  # abrupt: no close frame
                ws_compat.abort(self.ws)
                return False
            case "stall":
                await self._drain()
                return False
            case "malformed_json":
                await self._send_raw(_MALFORMED_JSON, {"type": "malformed"})
                return True
        await self._send_raw(self.error_text(seq), {"type": "Error", "seq": seq})
        await self.close(None)
        return False

    async def send_text(
        self, text: str, record: dict[str, Any], recv_ns: int | None = None
    ) -> bool:
        """Send one JSON text frame, traced with ``record``; False ends the connection."""
        if not await self._before_send(record.get("seq")):
            return False
        await self._send_raw(text, record, recv_ns)
        return True

    async def send_flux(
        self, msg: ServerMessage | flux_stream.RawText, recv_ns: int | None
    ) -> bool:
        """Send one Flux message; False ends the connection."""
        if isinstance(msg, flux_stream.RawText):
            return await self.send_text(self.rewrite(msg.text), dict(msg.record), recv_ns)
        text = self.rewrite(serialize_server_message(msg))
        return await self.send_text(text, _flux_record(msg), recv_ns)

    def rewrite(self, text: str) -> str:
        """``text`` as the realism profile varies it (unchanged when it is off)."""
        realism = self.realism
        return realism.rewrite(text) if realism is not None and realism.rewrites else text

    async def send_audio(self, chunk: bytes) -> bool:
        """Send one binary audio frame; False ends the connection."""
        if not await self._before_send():
            return False
        await self._send_raw(chunk, {"type": "audio", "bytes": len(chunk)})
        return True

    def can_send_now(self) -> bool:
        """Whether :meth:`send_now` may write: open, no planned fault to apply, not paused."""
        ws = self.ws
        return self.fault is None and ws_compat.can_write_now(ws)

    def send_now(self, messages: Sequence[flux_stream.Outgoing], recv_ns: int) -> None:
        """Send Flux messages from outside the handler task (the audio short cut); call only
        when :meth:`can_send_now` and the task has nothing unsent, so the order holds."""
        texts, records = [], []
        for msg in messages:
            if isinstance(msg, Close):
                raise RuntimeError("the audio short cut cannot close a stream")
            if isinstance(msg, flux_stream.RawText):
                texts.append(self.rewrite(msg.text))
                records.append(dict(msg.record))
                continue
            texts.append(self.rewrite(serialize_server_message(msg)))
            records.append(_flux_record(msg))
        ws_compat.write_texts_now(self.ws, texts)
        for record in records:
            self._sent(record, recv_ns)

    async def _send_raw(
        self, data: str | bytes, record: dict[str, Any], recv_ns: int | None = None
    ) -> None:
        await self.ws.send(data)
        self._sent(record, recv_ns)

    def _sent(self, record: dict[str, Any], recv_ns: int | None) -> None:
        self.sent += 1
        if self.trace is not None:
            send_ns = time.monotonic_ns()
            record["ev"] = "send"
            record["conn"] = self.no
            record["send_ns"] = send_ns
            if recv_ns is not None:
                record["proc_us"] = (send_ns - recv_ns) // 1000
            self.trace.write(record)

    async def _drain(self) -> None:
        """Stalled: read and drop input until the client leaves or goes idle, then drop it."""
        if isinstance(self.ws, EmulatorConnection):
            self.ws.audio_sink = None  # the stalled stream's input is read here, not fed
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            while True:
                async with asyncio.timeout(self.idle_timeout_s):
                    await self.ws.recv()
        ws_compat.abort(self.ws)

    async def close(self, code: int | None, reason: str = "") -> None:
        """Close with ``code`` (None: a close frame without status code, as Flux does)."""
        self.close_code = code
        if code is None:
            with contextlib.suppress(ConnectionClosed):
                await ws_compat.close_without_status(self.ws)
        else:
            await self.ws.close(code, reason)

    def trace_close(self) -> None:
        if self.trace is None or self._closed_traced:
            return
        self._closed_traced = True
        if self.realism is not None and self.realism.log:  # ground truth of what was varied
            self.trace.write({"ev": "realism", "conn": self.no, "varied": self.realism.log})
        self.trace.write(
            {"ev": "close", "conn": self.no, "ns": time.monotonic_ns(), "code": self.close_code}
        )


async def start(
    options: ServerOptions,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sock: socket.socket | None = None,
    trace: TraceWriter | None = None,
) -> tuple[Server, EmulatorApp]:
    """Start serving on ``host:port`` (or a ready socket); the caller closes the server."""
    app = EmulatorApp(options, trace)
    kwargs: dict[str, Any] = {"sock": sock} if sock is not None else {"host": host, "port": port}
    server = await serve(
        app.handler,
        create_connection=EmulatorConnection,
        process_request=app.process_request,
        process_response=app.process_response,
        select_subprotocol=app.select_subprotocol,
        compression=None,
        ping_interval=None,
        max_size=1 << 20,
        **kwargs,
    )
    return server, app


def _native_threading() -> tuple[Callable[..., int], Callable[[], Any]]:
    """The OS's ``_thread.start_new_thread`` and ``allocate_lock``, even under gevent.

    Locust monkey-patches threading on import, which turns a ``threading.Thread`` into a greenlet
    of the calling OS thread. asyncio allows one running loop per OS thread, so two emulators in
    greenlets of one thread collide ("Cannot run the event loop while another loop is running").
    A background emulator therefore always takes a real thread and real locks.
    """
    import _thread

    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent comes with locust
        return _thread.start_new_thread, _thread.allocate_lock
    start: Callable[..., int] = monkey.get_original("_thread", "start_new_thread")
    lock: Callable[[], Any] = monkey.get_original("_thread", "allocate_lock")
    return start, lock


class BackgroundEmulator:
    """An emulator on its own event loop in a real OS thread, for tests and tools.

    ``with BackgroundEmulator(options) as emu:`` serves on ``emu.url`` (port 0 by default: a free
    port) until the block ends; ``emu.app`` exposes the connection counter. Start-up and
    shutdown are bounded by ``timeout_s``.
    """

    def __init__(
        self,
        options: ServerOptions | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        trace: TraceWriter | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.options = options if options is not None else ServerOptions()
        self.host, self.port = host, port
        self.trace = trace
        self.timeout_s = timeout_s
        self.url = ""
        self.app: EmulatorApp | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        start_thread, allocate_lock = _native_threading()
        self._start_thread = start_thread
        # Held while starting / running; the loop's thread releases them (real OS locks).
        self._ready = allocate_lock()
        self._done = allocate_lock()

    def __enter__(self) -> BackgroundEmulator:
        self._ready.acquire()
        self._done.acquire()
        self._start_thread(self._run, ())
        if not self._ready.acquire(timeout=self.timeout_s) or self._error is not None:
            raise RuntimeError(f"emulator did not start: {self._error!r}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._done.acquire(timeout=self.timeout_s):
            self._done.release()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by __enter__
            self._error = exc
            if self._ready.locked():
                self._ready.release()
        finally:
            self._done.release()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server, self.app = await start(
            self.options, host=self.host, port=self.port, trace=self.trace
        )
        host, port = server.sockets[0].getsockname()[:2]
        self.url = f"ws://{host}:{port}"
        self._ready.release()
        await self._stop.wait()
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout_s):
                await server.wait_closed()
        if self.trace is not None:
            self.trace.close()
