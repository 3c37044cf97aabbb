"""Turn what went wrong on a WebSocket into a :class:`SessionError` (data, never a traceback).

* A refused upgrade (non-101 answer) is classified by the service's own error body through
  :func:`voiceload.protocol.gateway.classify_upgrade_failure` (401 + 2009 -> unauthorized,
  2001 -> gateway_not_found, 5007 -> unknown_model, 4006 -> allocation_exhausted, 429 ->
  rate_limited, ...), so the client and the emulator share one table and one enum
  (:class:`voiceload.protocol.failures.FailureCategory`).
* A connection that never reached HTTP says which layer failed: DNS, TCP, TLS, or a timeout.
* A close by the peer keeps its close code and reason.

Every detail passes through :func:`voiceload.credentials.redact`, which removes every registered
secret (the sessions register their header values and subprotocols when they are built:
:func:`voiceload.client.connect.register_session_secrets`), so a message never carries a
credential and every redaction looks the same.
"""

from __future__ import annotations

import socket
import ssl

from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from voiceload.client.results import ErrorCategory, SessionError
from voiceload.credentials import redact
from voiceload.protocol.gateway import classify_upgrade_failure


def classify_connect_error(exc: BaseException, service: str) -> SessionError:
    """The :class:`SessionError` for an exception raised while opening a WebSocket.

    ``service`` names the endpoint in the message (``"Flux"``, ``"Aura"``); text from the
    exception or the service passes through :func:`~voiceload.credentials.redact`.
    """
    if isinstance(exc, InvalidStatus):
        response = exc.response
        body = bytes(response.body or b"")
        failure = classify_upgrade_failure(response.status_code, body)
        return SessionError(
            failure.category,
            f"{service} refused the WebSocket upgrade: {redact(failure.describe())}",
            http_status=response.status_code,
            service_code=failure.code,
        )
    if isinstance(exc, InvalidURI):
        return SessionError(
            ErrorCategory.HARNESS_ERROR, f"{service}: invalid target URL: {redact(str(exc))}"
        )
    if isinstance(exc, InvalidHandshake):
        return SessionError(
            ErrorCategory.PROTOCOL_VIOLATION,
            f"{service}: bad WebSocket opening handshake: {redact(str(exc))}",
        )
    layer, hint = _connection_layer(exc)
    return SessionError(
        ErrorCategory.CONNECTION_FAILED,
        f"{service}: {layer} failed: {redact(str(exc)) or type(exc).__name__}; {hint}",
    )


def _connection_layer(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, socket.gaierror):
        return "DNS lookup", "check the host name in the target URL"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "TLS handshake", "check the scheme (ws/wss) and the certificate"
    if isinstance(exc, TimeoutError):
        return "opening handshake (timeout)", "the target is slow or unreachable"
    if isinstance(exc, ConnectionRefusedError):
        return "TCP connect (refused)", "is the target (or the emulator) running on that port?"
    if isinstance(exc, OSError):
        return "TCP connect", "check the network path to the target"
    if isinstance(exc, EOFError):
        return "opening handshake (connection closed)", "the peer hung up during the upgrade"
    return "connection", "see the detail"


def close_facts(exc: ConnectionClosed) -> tuple[int | None, str]:
    """The close code and reason the peer sent (``None``, ``""`` when it sent no close frame)."""
    if exc.rcvd is None:
        return None, ""
    return exc.rcvd.code, exc.rcvd.reason


def closed_by_server(service: str, code: int | None, reason: str, while_doing: str) -> SessionError:
    """The peer closed the connection before we were done (``while_doing`` says when)."""
    code_text = "without a close frame" if code is None else f"with close code {code}"
    reason_text = f" ({redact(reason)})" if reason else ""
    return SessionError(
        ErrorCategory.CLOSED_BY_SERVER,
        f"{service} closed the connection {code_text}{reason_text} while {while_doing}",
        close_code=code,
    )


def harness_error(service: str, exc: BaseException) -> SessionError:
    """An unexpected exception in voiceload itself: type and message, no traceback."""
    text = redact(str(exc))
    return SessionError(
        ErrorCategory.HARNESS_ERROR,
        f"{service}: voiceload bug or overload: {type(exc).__name__}: {text}",
    )
