"""Error classification: refused upgrades, connection layers, closes; no credential leaks."""

from __future__ import annotations

import socket
import ssl
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import (
    ConnectionClosedError,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
)
from websockets.frames import Close
from websockets.http11 import Response

from voiceload.client.connect import register_session_secrets, with_query
from voiceload.client.errors import (
    classify_connect_error,
    close_facts,
    closed_by_server,
    harness_error,
)
from voiceload.client.results import ErrorCategory
from voiceload.credentials import REDACTED, forget_secrets, mask
from voiceload.protocol import gateway
from voiceload.protocol.gateway import FailureCategory

TOKEN = "s3cr3t-token-abcdef"


def _refused(status: int, body: bytes) -> InvalidStatus:
    return InvalidStatus(Response(status, "x", Headers(), body))


@pytest.mark.parametrize(
    ("status_body", "category", "code"),
    [
        (gateway.unauthorized(), ErrorCategory.UNAUTHORIZED, 2009),
        (gateway.gateway_not_found(), ErrorCategory.GATEWAY_NOT_FOUND, 2001),
        (gateway.unknown_model("@cf/x/y"), ErrorCategory.UNKNOWN_MODEL, 5007),
        (gateway.allocation_exhausted(), ErrorCategory.ALLOCATION_EXHAUSTED, 4006),
        (gateway.rate_limited(), ErrorCategory.RATE_LIMITED, None),
        ((503, b"upstream down"), ErrorCategory.HANDSHAKE_REFUSED, None),
    ],
)
def test_refused_upgrade(
    status_body: tuple[int, bytes], category: ErrorCategory, code: int | None
) -> None:
    status, body = status_body
    err = classify_connect_error(_refused(status, body), "Flux")
    assert (err.category, err.http_status, err.service_code) == (category, status, code)
    assert err.detail.startswith("Flux refused the WebSocket upgrade: ")
    assert "\n" not in err.message()


def test_every_gateway_category_is_a_session_category() -> None:
    assert {c.value for c in FailureCategory} <= {c.value for c in ErrorCategory}


@pytest.mark.parametrize(
    ("exc", "layer"),
    [
        (socket.gaierror(-2, "Name or service not known"), "DNS lookup failed"),
        (ConnectionRefusedError(111, "Connection refused"), "TCP connect (refused) failed"),
        (ssl.SSLError(1, "wrong version number"), "TLS handshake failed"),
        (TimeoutError("timed out during opening handshake"), "opening handshake (timeout)"),
        (OSError(113, "No route to host"), "TCP connect failed"),
    ],
)
def test_connection_layers(exc: BaseException, layer: str) -> None:
    err = classify_connect_error(exc, "Aura")
    assert err.category is ErrorCategory.CONNECTION_FAILED
    assert err.detail.startswith(f"Aura: {layer}")


def test_handshake_and_uri_problems() -> None:
    bad = classify_connect_error(InvalidUpgrade("Upgrade", "h2c"), "Flux")
    assert bad.category is ErrorCategory.PROTOCOL_VIOLATION
    uri = classify_connect_error(InvalidURI("http://x", "scheme isn't ws or wss"), "Flux")
    assert uri.category is ErrorCategory.HARNESS_ERROR


@pytest.fixture
def empty_registry() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.usefixtures("empty_registry")
def test_no_credential_in_any_message() -> None:
    register_session_secrets(
        {"cf-aig-authorization": f"Bearer {TOKEN}"}, [f"cf-aig-authorization.{TOKEN}"]
    )
    body = f'{{"error":[{{"code":2009,"message":"bad token {TOKEN}"}}]}}'.encode()
    errors = [
        classify_connect_error(_refused(401, body), "Flux"),
        classify_connect_error(OSError(f"proxy said {TOKEN}"), "Flux"),
        harness_error("Flux", ValueError(f"cf-aig-authorization.{TOKEN}")),
        closed_by_server("Flux", 1008, f"token {TOKEN} revoked", "streaming"),
    ]
    for err in errors:
        # one marker everywhere: the registry's (with the token's last 4 characters)
        assert TOKEN not in err.message() and mask(TOKEN) in err.message()
        assert "***" not in err.message()


@pytest.mark.usefixtures("empty_registry")
def test_short_session_strings_are_not_treated_as_secrets() -> None:
    register_session_secrets({"x-mode": "short"}, ["token"])
    err = closed_by_server("Flux", 1008, "short token", "streaming")
    assert "short token" in err.detail and REDACTED not in err.detail


def test_close_facts_and_message() -> None:
    exc = ConnectionClosedError(Close(1011, "NET-0001"), None)
    assert close_facts(exc) == (1011, "NET-0001")
    assert close_facts(ConnectionClosedError(None, None)) == (None, "")
    err = closed_by_server("Flux", 1011, "NET-0001", "streaming audio")
    assert err.category is ErrorCategory.CLOSED_BY_SERVER and err.close_code == 1011
    assert err.message() == (
        "closed_by_server: Flux closed the connection with close code 1011 (NET-0001)"
        " while streaming audio"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://h/v2/listen?model=flux", "ws://h/v2/listen?model=flux&tag=greeting"),
        ("ws://h/v2/listen", "ws://h/v2/listen?tag=greeting"),
        ("ws://h/w?model=@cf/deepgram/flux&tag=x", "ws://h/w?model=@cf/deepgram/flux&tag=x"),
    ],
)
def test_with_query(url: str, expected: str) -> None:
    assert with_query(url, tag="greeting") == expected


def test_with_query_parses_a_url_once_per_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every session of a fixture gets the same URL without parsing it again."""
    url = "ws://127.0.0.1:8787/v2/listen?model=flux&x=unique-to-this-test"
    first = with_query(url, tag="greeting")
    calls: list[str] = []
    real = urllib.parse.urlsplit

    def counting_urlsplit(u: str, *args: Any) -> Any:
        calls.append(u)
        return real(u, *args)

    monkeypatch.setattr(urllib.parse, "urlsplit", counting_urlsplit)
    assert with_query(url, tag="greeting") == first == f"{url}&tag=greeting"
    assert calls == []
    assert with_query(url, tag="other").endswith("&tag=other")  # another fixture: parsed once
    assert calls == [url]
