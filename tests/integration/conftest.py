"""Fixtures shared by integration tests: loopback-only name lookups, a TLS listener nobody
should trust, a short synthetic utterance."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


@pytest.fixture
def loopback_only_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process, ``socket.getaddrinfo`` answers only for loopback names (by asking the
    real resolver, which needs no DNS for them); any other name fails as an unknown host
    (``EAI_NONAME``) without a query leaving the machine."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in LOOPBACK_NAMES:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (test resolver)")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="module")
def self_signed_tls_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A TLS listener on 127.0.0.1 with a self-signed certificate (made with the openssl CLI);
    yields its port. It completes (or fails) the TLS handshake and hangs up: no HTTP, no
    WebSocket. Skips the test when openssl is missing."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("openssl is needed to make a self-signed certificate")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        for _ in range(10_000):  # bounded; each wait is at most 0.2 s
            if stop.is_set():
                return
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


@pytest.fixture(scope="session")
def utterance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.3 s silence, 0.9 s of speech-band sound (syllable-rate modulated), 0.2 s silence."""
    rate = 16_000
    t = np.arange(int(0.9 * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * f * t) for f in (180, 360, 720, 1400)) / 4
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4 * t)) * 0.6
    audio = np.concatenate([np.zeros(int(0.3 * rate)), voiced * envelope, np.zeros(rate // 5)])
    path = tmp_path_factory.mktemp("audio") / "utterance.wav"
    soundfile.write(path, audio.astype(np.float32), rate, subtype="PCM_16")
    return path
