"""Aura sessions: one socket, one or more ``Speak`` + ``Flush`` requests, measured.

The driver times the handshake (``aura.connect``), sleeps until each request's scheduled time
``r``, sends ``Speak`` and ``Flush``, then stamps every frame on arrival and feeds the pure
:class:`~voiceload.client.aura_request.AuraRequest` until ``Flushed``. Requests on one socket
run one after another: request ``k`` is scheduled at ``r0 + k·interval`` when an interval is
set (latency then includes any wait behind a slow earlier request, as a caller would see it),
else as soon as the previous one has finished.

:func:`run_request` is shared with the voice agent, which drives a persistent Aura socket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed

from voiceload.client.aura_format import UnmeasurableAudio
from voiceload.client.aura_request import AuraRequest
from voiceload.client.connect import (
    NowNs,
    Sleep,
    WallS,
    default_sleep,
    open_websocket,
    register_session_secrets,
    sleep_until,
)
from voiceload.client.errors import (
    classify_connect_error,
    close_facts,
    closed_by_server,
    harness_error,
)
from voiceload.client.flux_turns import UNPARSEABLE_RULE
from voiceload.client.results import ErrorCategory, SampleSink, SessionError, SessionResult
from voiceload.client.websocket import WebSocket
from voiceload.credentials import redact
from voiceload.errors import ConfigError, RemoteProtocolError
from voiceload.pacing import ns_to_us
from voiceload.protocol import aura
from voiceload.protocol.flux import Finding, Rule, Severity

AURA_CONNECT = "aura.connect"
NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class AuraOptions:
    """Per-session Aura settings."""

    sample_rate_hz: int = aura.DEFAULT_SAMPLE_RATE_HZ  # the rate the URL asks for
    encoding: str = "linear16"  # the encoding the URL asks for (a WAV header overrides both)
    open_timeout_s: float = 10.0
    request_timeout_s: float = 30.0  # from r to Flushed
    request_interval_s: float | None = None  # None: back to back


class RequestTimeout(Exception):
    """No ``Flushed`` within the request timeout (internal: becomes a SessionError)."""


class FlushRefused(Exception):
    """The service answered the Flush with a Warning refusing it (the Flush limit): no audio
    and no ``Flushed`` will come for this request (internal: becomes a SessionError)."""

    def __init__(self, warning: aura.Warning) -> None:
        super().__init__(f"Warning {warning.code}: {warning.description}")
        self.warning = warning


#: Rule ids of Aura findings (the Flux ones are :class:`voiceload.protocol.flux.Rule`).
SERVICE_WARNING_RULE = str(Rule.SERVICE_WARNING)
UNKNOWN_TYPE_RULE = str(Rule.UNKNOWN_MESSAGE_TYPE)


def run_request(
    ws: WebSocket,
    request: AuraRequest,
    text: str,
    sink: SampleSink,
    findings: list[Finding],
    *,
    timeout_s: float,
    now_ns: NowNs,
    sleep: Sleep,
    on_samples: Callable[[AuraRequest], None] | None = None,
) -> None:
    """Send ``text`` at ``request.scheduled_ns`` and receive until ``Flushed``.

    Samples go to ``sink`` as they complete; ``on_samples`` is called after each (the agent
    uses it to catch the moment speech becomes audible). Text frames that are not what this
    client expects become findings: an unreadable one a violation, a ``Warning`` a warning
    (with its code), an unknown type info. Raises :class:`RequestTimeout` after ``timeout_s``
    past ``r`` without ``Flushed``, :class:`FlushRefused` when a Warning refuses the Flush,
    :class:`~voiceload.client.aura_format.UnmeasurableAudio` on audio it cannot time, and
    ``ConnectionClosed`` if the peer closes.
    """
    sleep_until(request.scheduled_ns, now_ns, sleep)
    ws.send(aura.serialize_client_message(aura.Speak(text)))
    ws.send(aura.serialize_client_message(aura.Flush()))
    deadline_ns = request.scheduled_ns + round(timeout_s * NS_PER_S)
    while not request.done:
        remaining_ns = deadline_ns - now_ns()
        if remaining_ns <= 0:
            raise RequestTimeout
        try:
            message = ws.recv(timeout=remaining_ns / NS_PER_S)
        except TimeoutError:
            raise RequestTimeout from None
        arrival_ns = now_ns()
        if isinstance(message, bytes):
            samples = request.on_audio(message, arrival_ns)
        else:
            samples = _on_text(request, message, arrival_ns, findings)
        for metric, value_us in samples:
            sink.record(metric, value_us)
        if samples and on_samples is not None:
            on_samples(request)


def _on_text(
    request: AuraRequest, message: str, arrival_ns: int, findings: list[Finding]
) -> list[tuple[str, int]]:
    try:
        msg = aura.parse_server_message(message)
    except RemoteProtocolError as exc:
        findings.append(Finding(rule=UNPARSEABLE_RULE, message=str(exc), sequence_id=None))
        return []
    if isinstance(msg, aura.Flushed):
        return request.on_flushed(arrival_ns)
    if isinstance(msg, aura.Warning):
        text = f"Aura sent Warning {msg.code}: {msg.description}"
        findings.append(Finding(SERVICE_WARNING_RULE, text, None, Severity.WARNING, msg.code))
        if aura.is_flush_refusal(msg) and not request.done:
            raise FlushRefused(msg)
    elif isinstance(msg, aura.UnknownMessage):
        findings.append(Finding(UNKNOWN_TYPE_RULE, f"unknown Aura message type"
                                f" {msg.type!r} (skipped)", None, Severity.INFO))  # fmt: skip
    return []  # Metadata, Cleared: nothing to measure


class AuraSession:
    """Speaks ``texts`` over one Aura socket; :meth:`run` returns the session's result.

    ``url`` must already carry the model and, where the route takes them, the output format
    (``options.encoding`` at ``options.sample_rate_hz``; what arrives is checked anyway).
    Clock hooks as in :class:`~voiceload.client.flux_session.FluxSession`.
    """

    service = "Aura"

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        subprotocols: Sequence[str],
        texts: Sequence[str],
        sink: SampleSink,
        *,
        fixture: str = "",
        model: str = "",
        options: AuraOptions | None = None,
        now_ns: NowNs = time.monotonic_ns,
        sleep: Sleep = default_sleep,
        wall_s: WallS = time.time,
    ) -> None:
        if not texts:
            raise ConfigError("an Aura session needs at least one text to speak")
        self.url = url
        self.headers = dict(headers)
        self.subprotocols = list(subprotocols)
        self.texts = list(texts)
        self.sink = sink
        self.options = options or AuraOptions()
        self.now_ns = now_ns
        self.sleep = sleep
        self.wall_s = wall_s
        self.result = SessionResult(user_type="aura", fixture=fixture, model=model, start_s=0.0)
        register_session_secrets(self.headers, self.subprotocols)

    def snapshot(self) -> SessionResult:
        """A copy of everything measured so far (requests, connections, findings)."""
        return self.result.copy()

    def run(self) -> SessionResult:
        """Run every request; never raises for service or network failures."""
        self.result.start_s = self.wall_s()
        started_ns = self.now_ns()
        try:
            self._run()
        except Exception as exc:  # a bug here must not kill a Locust user
            self._fail(harness_error(self.service, exc))
        self.result.duration_s = (self.now_ns() - started_ns) / NS_PER_S
        return self.result

    def _run(self) -> None:
        connect_ns = self.now_ns()
        try:
            ws_cm = open_websocket(
                self.url, self.headers, self.subprotocols, self.options.open_timeout_s
            )
        except Exception as exc:
            self._fail(classify_connect_error(exc, self.service))
            return
        with ws_cm as ws:
            opened_ns = self.now_ns()
            connect_us = ns_to_us(opened_ns - connect_ns)
            self.result.connections += 1
            self.result.connect_us.append(connect_us)
            self.sink.record(AURA_CONNECT, connect_us)
            self._requests(ws, opened_ns)
            if self.result.error is None:
                ws.send(aura.serialize_client_message(aura.Close()))

    def _requests(self, ws: WebSocket, r0_ns: int) -> None:
        interval_s = self.options.request_interval_s
        for k, text in enumerate(self.texts):
            if interval_s is None:
                r_ns = max(r0_ns, self.now_ns())
            else:
                r_ns = r0_ns + round(k * interval_s * NS_PER_S)
            request = AuraRequest(text, r_ns, self.options.sample_rate_hz, self.options.encoding)
            self.result.aura_requests.append(request.record)
            try:
                run_request(
                    ws, request, text, self.sink, self.result.findings,
                    timeout_s=self.options.request_timeout_s, now_ns=self.now_ns,
                    sleep=self.sleep,
                )  # fmt: skip
            except RequestTimeout:
                self._fail(request_timeout_error(k, self.options.request_timeout_s, request))
                return
            except FlushRefused as exc:
                self._fail(flush_refused_error(k, exc))
                return
            except UnmeasurableAudio as exc:
                self._fail(unmeasurable_audio_error(exc))
                return
            except ConnectionClosed as exc:
                code, reason = close_facts(exc)
                self._fail(closed_by_server(self.service, code, reason, f"waiting for request {k}"))
                return
        violations = [f for f in self.result.findings if f.is_violation]
        if self.result.error is None and violations:  # Warnings and unknown types never fail
            self._fail(
                SessionError(
                    ErrorCategory.PROTOCOL_VIOLATION,
                    f"Aura sent {len(violations)} unreadable message(s); first: "
                    f"{violations[0].message}",
                )
            )

    def _fail(self, error: SessionError) -> None:
        if self.result.error is None:
            self.result.error = error


def flush_refused_error(k: int, exc: FlushRefused) -> SessionError:
    """The service refused request ``k``'s Flush (a Warning, not a timeout)."""
    return SessionError(
        ErrorCategory.RATE_LIMITED,
        f"Aura refused the Flush of request {k}: {redact(str(exc))} (at most"
        f" {aura.FLUSH_LIMIT} Flush messages every {aura.FLUSH_WINDOW_S} s per socket)",
        service_code=exc.warning.code or None,
    )


def unmeasurable_audio_error(exc: UnmeasurableAudio) -> SessionError:
    """Aura's audio is in a format voiceload cannot time: refused, not measured wrongly."""
    return SessionError(ErrorCategory.BAD_REQUEST, redact(str(exc)))


def request_timeout_error(k: int, timeout_s: float, request: AuraRequest) -> SessionError:
    """``Flushed`` for request ``k`` did not come in time (says whether any audio did)."""
    got = "no audio" if request.first_audio_ns is None else "audio but no Flushed"
    return SessionError(
        ErrorCategory.TRANSCRIPT_TIMEOUT,
        f"Aura request {k}: {got} within {timeout_s:g} s of its scheduled time",
    )
