"""Session drivers against the real emulator on 127.0.0.1, port 0 (no Locust, no mocks).

The emulator runs in-process (``BackgroundEmulator``: its own asyncio loop on a real thread).
The Flux fixture is made here: two tone "turns" whose onsets/offsets come from the project's VAD
(as the manifest's do), with reference transcripts the emulator reveals for the fixture's ``tag``.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from voiceload.audio import detect_speech, frame_pcm
from voiceload.client import connect as connect_mod
from voiceload.client.agent_session import AgentSession
from voiceload.client.aura_session import AuraOptions, AuraSession
from voiceload.client.flux_session import FluxOptions, FluxSession
from voiceload.client.results import ErrorCategory, ListSink, SessionResult
from voiceload.emulator.behaviour import parse_config
from voiceload.emulator.flux_stream import ReferenceTurn
from voiceload.emulator.server import BackgroundEmulator, ServerOptions
from voiceload.fixtures import Turn
from voiceload.protocol import gateway

pytestmark = pytest.mark.slow

RATE = 16_000
FRAME_MS = 20
EOT_DELAY_MS = 300
FIRST_BYTE_MS = 50
LEADING_SILENCE_MS = 100
TAG = "two-turns"
REFERENCES = ("Hello there, how are you?", "Goodbye now.")
REPLIES = ("I am fine, thanks.", "Bye!")


def _tone(seconds: float) -> np.ndarray[Any, np.dtype[np.int16]]:
    t = np.arange(round(seconds * RATE)) / RATE
    wobble = 1 + 0.3 * np.sin(2 * np.pi * 3 * t)  # a little loudness movement, like speech
    return (6000 * wobble * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


def _silence(seconds: float) -> np.ndarray[Any, np.dtype[np.int16]]:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


@pytest.fixture(scope="module")
def fixture_audio() -> tuple[tuple[bytes, ...], list[Turn]]:
    pcm = np.concatenate(
        [_silence(0.4), _tone(1.0), _silence(1.5), _tone(0.6), _silence(0.3)]
    )
    segments = detect_speech(pcm, RATE)
    assert len(segments) == 2
    turns = [
        Turn(s.onset_s, s.offset_s, ref, reply)
        for s, ref, reply in zip(segments, REFERENCES, REPLIES, strict=True)
    ]
    return frame_pcm(pcm, RATE, FRAME_MS), turns


class Emulator:
    """The emulator in-process (``BackgroundEmulator``: its own loop on a real OS thread)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        refs = {
            TAG: tuple(
                ReferenceTurn(tuple(r.replace(",", "").split()), 1.0) for r in REFERENCES
            )
        }
        self.options = ServerOptions(config=parse_config(config), references=refs)
        self._background = BackgroundEmulator(self.options).__enter__()
        self.port = int(self._background.url.rsplit(":", 1)[1])

    def flux_url(self, **params: str) -> str:
        pairs = [("encoding", "linear16"), ("sample_rate", str(RATE)), *params.items()]
        return gateway.gateway_url(
            f"ws://127.0.0.1:{self.port}", "acct", "gw", "@cf/deepgram/flux", pairs
        )

    def aura_url(self) -> str:
        return gateway.gateway_url(
            f"ws://127.0.0.1:{self.port}", "acct", "gw", "@cf/deepgram/aura-1",
            [("encoding", "linear16"), ("sample_rate", "24000")],
        )  # fmt: skip

    def close(self) -> None:
        self._background.__exit__(None, None, None)


def _config(faults: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "aura": {"leading_silence_ms": LEADING_SILENCE_MS, "speed": 4.0},
        "latency": {
            "flux": {"eot_delay": {"kind": "fixed", "ms": EOT_DELAY_MS}},
            "aura": {"first_byte": {"kind": "fixed", "ms": FIRST_BYTE_MS}},
        },
        "faults": faults or [],
    }


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator(_config())
    yield emu
    emu.close()


def _flux(
    url: str,
    audio: tuple[tuple[bytes, ...], list[Turn]],
    sink: ListSink,
    **options: Any,
) -> SessionResult:
    frames, turns = audio
    session = FluxSession(
        url, {}, [], frames, turns, FRAME_MS, sink, random.Random(7), fixture=TAG,
        model="@cf/deepgram/flux", options=FluxOptions(**options),
    )  # fmt: skip
    return session.run()


def test_flux_session_measures_every_turn(
    emulator: Emulator, fixture_audio: tuple[tuple[bytes, ...], list[Turn]]
) -> None:
    sink = ListSink()
    result = _flux(emulator.flux_url(), fixture_audio, sink)
    assert result.error is None, result.error
    assert (result.turns_expected, result.turns_ended, result.turns_missed) == (2, 2, 0)
    assert result.wer == 0.0 and [t.wer for t in result.turns] == [0.0, 0.0]
    # EndOfTurn can never come before the configured end-of-turn delay after S(offset)
    eots = sink.values("flux.eot")
    assert len(eots) == 2 and min(eots) >= EOT_DELAY_MS * 1000
    assert [t.eot_us for t in result.turns] == eots and result.turns_premature == 0
    assert len(sink.values("flux.ttft")) == 2 and len(sink.values("flux.connect")) == 1
    assert len(sink.values("flux.first_response")) == 1
    assert sink.values("flux.transcript_lag")  # every Update gives one
    frames, _ = fixture_audio
    assert len(sink.values("flux.send_lag")) == round(result.flux_audio_s * 1000 / FRAME_MS)
    assert result.flux_audio_s >= len(frames) * FRAME_MS / 1000  # trailing silence counted
    assert result.connections == 1 and result.findings == []
    row = result.to_row(session_id="s", worker="w", phase="steady")
    assert row["outcome"] == "ok" and row["eot_ms"] == eots[0] / 1000


def test_flux_eager_mode(
    emulator: Emulator, fixture_audio: tuple[tuple[bytes, ...], list[Turn]]
) -> None:
    sink = ListSink()
    url = emulator.flux_url(eager_eot_threshold="0.5")
    result = _flux(url, fixture_audio, sink, eager=True)
    assert result.error is None, result.error
    eager = sink.values("flux.eager_eot")
    assert len(eager) == 2
    for turn in result.turns:
        assert turn.eager_eot_us is not None and turn.eot_us is not None
        assert 0 < turn.eager_eot_us <= turn.eot_us


@pytest.mark.parametrize(
    ("fault", "category", "status"),
    [
        ("unauthorized", ErrorCategory.UNAUTHORIZED, 401),
        ("unknown_gateway", ErrorCategory.GATEWAY_NOT_FOUND, 400),
        ("unknown_model", ErrorCategory.UNKNOWN_MODEL, 400),
        ("allocation_exhausted", ErrorCategory.ALLOCATION_EXHAUSTED, 429),
        ("rate_limited", ErrorCategory.RATE_LIMITED, 429),
        ("bad_param", ErrorCategory.BAD_REQUEST, 400),
    ],
)
def test_upgrade_faults_become_categories(
    fault: str,
    category: ErrorCategory,
    status: int,
    fixture_audio: tuple[tuple[bytes, ...], list[Turn]],
) -> None:
    emu = Emulator(_config([{"kind": fault, "every": 1}]))
    try:
        sink = ListSink()
        result = _flux(emu.flux_url(), fixture_audio, sink)
    finally:
        emu.close()
    assert result.error is not None
    assert (result.error.category, result.error.http_status) == (category, status)
    assert result.connections == 0 and result.turns_missed == 2 and sink.samples == []


@pytest.mark.parametrize(
    ("fault", "category"),
    [
        ("disconnect", ErrorCategory.CLOSED_BY_SERVER),
        ("error_message", ErrorCategory.CLOSED_BY_SERVER),
        ("malformed_json", ErrorCategory.PROTOCOL_VIOLATION),
        ("stall", ErrorCategory.TRANSCRIPT_TIMEOUT),
    ],
)
def test_stream_faults_keep_what_was_measured(
    fault: str, category: ErrorCategory, fixture_audio: tuple[tuple[bytes, ...], list[Turn]]
) -> None:
    emu = Emulator(_config([{"kind": fault, "every": 1, "after_messages": 3}]))
    try:
        sink = ListSink()
        result = _flux(
            emu.flux_url(), fixture_audio, sink, eot_timeout_ms=500, trailing_bound_s=0.5
        )
    finally:
        emu.close()
    assert result.error is not None and result.error.category is category, result.error
    # what was measured before the fault is still there
    assert result.connections == 1 and len(sink.values("flux.connect")) == 1
    assert result.flux_audio_s > 0 and sink.values("flux.send_lag")
    if fault == "error_message":
        assert result.error.service_code is not None
    if fault == "malformed_json":
        assert result.findings


def test_connection_refused_names_the_layer(
    fixture_audio: tuple[tuple[bytes, ...], list[Turn]],
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _flux(f"ws://127.0.0.1:{port}/v2/listen", fixture_audio, ListSink())
    assert result.error is not None
    assert result.error.category is ErrorCategory.CONNECTION_FAILED
    assert "TCP connect (refused)" in result.error.detail


def test_an_untrusted_certificate_fails_the_session_at_tls(
    fixture_audio: tuple[tuple[bytes, ...], list[Turn]], self_signed_tls_port: int
) -> None:
    """Load sessions verify certificates: a self-signed server is a connection failure at the
    TLS layer, for Flux and Aura alike, before any audio or text is sent."""
    url = f"wss://127.0.0.1:{self_signed_tls_port}/v2/listen"
    flux = _flux(url, fixture_audio, ListSink())
    aura = AuraSession(url, {}, [], ["Hello."], ListSink()).run()
    for result in (flux, aura):
        assert result.error is not None
        assert result.error.category is ErrorCategory.CONNECTION_FAILED
        assert "TLS handshake failed" in result.error.detail
        assert "CERTIFICATE_VERIFY_FAILED" in result.error.detail
        assert result.connections == 0
    assert flux.flux_audio_s == 0


def test_aura_session_two_requests(emulator: Emulator) -> None:
    sink = ListSink()
    texts = ["Hello there, how can I help you today?", "Goodbye."]
    result = AuraSession(
        emulator.aura_url(), {}, [], texts, sink, model="@cf/deepgram/aura-1",
        options=AuraOptions(sample_rate_hz=24_000),
    ).run()  # fmt: skip
    assert result.error is None, result.error
    assert result.aura_chars == sum(len(t) for t in texts) and result.connections == 1
    assert len(result.aura_requests) == 2 and result.aura_audio_s > 0
    for req in result.aura_requests:
        assert req.ttfb_us is not None and req.ttfb_us >= FIRST_BYTE_MS * 1000
        assert req.leading_silence_us is not None and req.ttfa_us is not None
        # the emulator's leading silence, to within one 10 ms VAD window
        assert abs(req.leading_silence_us - LEADING_SILENCE_MS * 1000) <= 10_000
        assert req.flushed_us is not None and req.flushed_us >= req.ttfb_us
        assert req.stall_us is not None and req.realtime_factor is not None
    for metric in ("aura.ttfb", "aura.ttfa", "aura.flushed", "aura.stall"):
        assert len(sink.values(metric)) == 2, metric


def test_agent_conversation(
    emulator: Emulator, fixture_audio: tuple[tuple[bytes, ...], list[Turn]]
) -> None:
    frames, turns = fixture_audio
    sink = ListSink()
    think_ms = 50
    result = AgentSession(
        emulator.flux_url(), {}, [], emulator.aura_url(), {}, [], frames, turns, FRAME_MS,
        sink, random.Random(3), fixture=TAG, think_time_ms=think_ms,
        aura_options=AuraOptions(sample_rate_hz=24_000),
    ).run()  # fmt: skip
    assert result.error is None, result.error
    assert result.user_type == "agent" and result.connections == 2
    assert result.turns_ended == 2 and len(result.aura_requests) == 2
    v2v = sink.values("agent.voice_to_voice")
    assert len(v2v) == 2
    floor_us = (EOT_DELAY_MS + think_ms + FIRST_BYTE_MS) * 1000  # every part of the wait
    for turn in result.turns:
        assert turn.think_ms == think_ms
        assert turn.voice_to_voice_us is not None and turn.voice_to_voice_us >= floor_us
    assert result.to_row()["voice_to_voice_ms"] == v2v[0] / 1000


def test_connect_includes_a_lookup_only_when_one_happens(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``aura.connect`` / ``flux.connect`` (docs/METRICS.md): a host name lookup that really
    happens is inside the measured interval; the next session within the TTL reuses the answer
    and asks nothing. The fake resolver moves the sessions' clock on by 1000 s, so the interval
    that contains it cannot be mistaken for one that does not."""
    jump_ns = [0]
    lookups: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[Any]:
        lookups.append((host, port))
        jump_ns[0] += 1_000 * 1_000_000_000
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]

    monkeypatch.setattr(connect_mod, "ADDRESSES", connect_mod.AddressCache(resolve))
    url = emulator.aura_url().replace("127.0.0.1", "voice-emulator.test")
    connect_us: list[int] = []
    for _ in range(2):
        sink = ListSink()
        result = AuraSession(
            url, {}, [], ["Goodbye."], sink, model="@cf/deepgram/aura-1",
            options=AuraOptions(sample_rate_hz=24_000),
            now_ns=lambda: time.monotonic_ns() + jump_ns[0],
        ).run()  # fmt: skip
        assert result.error is None, result.error
        connect_us += sink.values("aura.connect")
    assert lookups == [("voice-emulator.test", emulator.port)]  # once: the second reused it
    assert connect_us[0] >= 1_000 * 1_000_000  # the lookup is inside the first interval
    assert connect_us[1] < 1_000 * 1_000_000  # and not inside the second (nothing was asked)
