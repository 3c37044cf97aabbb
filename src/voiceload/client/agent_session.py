"""A voice-agent conversation: a Flux stream and a persistent Aura socket in one session.

The caller's side of the conversation fixture streams into Flux exactly as a
:class:`~voiceload.client.flux_session.FluxSession` does. When turn ``i`` ends (its
``EndOfTurn`` arrives), a worker thread waits the optional think time (standing in for the
language model) and speaks that turn's scripted reply on an Aura socket opened at the start and
kept for the whole conversation. Replies run one after another, like a real agent's.

``agent.voice_to_voice`` (docs/METRICS.md) = first audible reply audio (first
byte + leading silence, as in ``aura.ttfa``) − ``S(offset_i)``: the pause the caller hears
after they stop talking, think time included; ``TurnRecord.think_ms`` reports it beside. The
reply's own ``aura.*`` metrics are recorded too, measured from its scheduled time
(``EndOfTurn`` arrival + think time).

:meth:`AgentSession.snapshot` gives everything measured so far at any moment (both
connections, turns, replies). A conversation killed mid-way (``GreenletExit`` from Locust's stop)
closes both sockets and kills its reader and reply worker, each wait bounded by
:data:`~voiceload.client.flux_session.STOP_WAIT_S` (a few seconds at worst, not the 31 s a
reply could take), then lets the kill go on.
"""

from __future__ import annotations

import queue
import random
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from websockets.exceptions import ConnectionClosed

from voiceload.client.aura_format import UnmeasurableAudio
from voiceload.client.aura_request import AuraRequest
from voiceload.client.aura_session import (
    AURA_CONNECT,
    AuraOptions,
    FlushRefused,
    RequestTimeout,
    flush_refused_error,
    request_timeout_error,
    run_request,
    unmeasurable_audio_error,
)
from voiceload.client.connect import (
    Helper,
    NowNs,
    Sleep,
    WallS,
    close_within,
    default_sleep,
    open_websocket,
    register_session_secrets,
)
from voiceload.client.errors import (
    classify_connect_error,
    close_facts,
    closed_by_server,
    harness_error,
)
from voiceload.client.flux_session import STOP_WAIT_S, FluxOptions, FluxSession
from voiceload.client.flux_turns import EndOfTurnEvent, FluxTurnTracker
from voiceload.client.results import SampleSink, SessionError, SessionResult
from voiceload.client.websocket import WebSocket
from voiceload.pacing import ns_to_us
from voiceload.protocol import aura
from voiceload.protocol.flux import Finding

AGENT_VOICE_TO_VOICE = "agent.voice_to_voice"
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


class AgentTurnSpec(Protocol):
    """A conversation turn: the caller's speech (onset/offset, transcript) and the reply."""

    @property
    def onset_s(self) -> float: ...

    @property
    def offset_s(self) -> float: ...

    @property
    def transcript(self) -> str: ...

    @property
    def reply(self) -> str: ...


class AgentSession:
    """One conversation; :meth:`run` returns a ``user_type="agent"`` result.

    Arguments as for :class:`FluxSession` (``flux_*``) and :class:`AuraSession` (``aura_*``);
    ``think_time_ms`` is the fixed pause between ``EndOfTurn`` and sending the reply.
    """

    def __init__(
        self,
        flux_url: str,
        flux_headers: Mapping[str, str],
        flux_subprotocols: Sequence[str],
        aura_url: str,
        aura_headers: Mapping[str, str],
        aura_subprotocols: Sequence[str],
        frames: Sequence[bytes],
        turns: Sequence[AgentTurnSpec],
        frame_ms: int,
        sink: SampleSink,
        rng: random.Random,
        *,
        fixture: str = "",
        flux_model: str = "",
        aura_model: str = "",
        think_time_ms: int = 0,
        flux_options: FluxOptions | None = None,
        aura_options: AuraOptions | None = None,
        now_ns: NowNs = time.monotonic_ns,
        sleep: Sleep = default_sleep,
        wall_s: WallS = time.time,
    ) -> None:
        self.flux_args = (flux_url, flux_headers, flux_subprotocols)
        self.aura_url = aura_url
        self.aura_headers = dict(aura_headers)
        self.aura_subprotocols = list(aura_subprotocols)
        self.frames = frames
        self.turns = list(turns)
        self.frame_ms = frame_ms
        self.sink = sink
        self.rng = rng
        self.fixture = fixture
        self.flux_model = flux_model
        self.think_time_ms = think_time_ms
        self.flux_options = flux_options or FluxOptions()
        self.aura_options = aura_options or AuraOptions()
        self.now_ns = now_ns
        self.sleep = sleep
        self.wall_s = wall_s
        model = "+".join(m for m in (flux_model, aura_model) if m)
        self.result = SessionResult(user_type="agent", fixture=fixture, model=model, start_s=0.0)
        register_session_secrets(self.aura_headers, self.aura_subprotocols)
        self._ended: queue.Queue[EndOfTurnEvent | None] = queue.Queue()
        self._voice_to_voice_us: dict[int, int] = {}
        self._aura_findings: list[Finding] = []
        self._aura_error: SessionError | None = None
        self._flux: FluxSession | None = None
        self._stopping = False  # killed: errors from our own closing are not the service's

    def snapshot(self) -> SessionResult:
        """A copy of everything measured so far (safe while the conversation runs or after it
        was killed): both halves folded together as :meth:`run` does at the end."""
        result = self.result.copy()
        flux = None if self._flux is None else self._flux.snapshot()
        self._fold(result, flux)
        return result

    def run(self) -> SessionResult:
        """Run the conversation; never raises for service or network failures."""
        self.result.start_s = self.wall_s()
        started_ns = self.now_ns()
        flux_result: SessionResult | None = None
        try:
            flux_result = self._run()
        except Exception as exc:  # a bug here must not kill a Locust user
            self._aura_error = self._aura_error or harness_error("Agent", exc)
        self._fold(self.result, flux_result)
        self.result.duration_s = (self.now_ns() - started_ns) / NS_PER_S
        return self.result

    def _run(self) -> SessionResult | None:
        connect_ns = self.now_ns()
        try:
            aura_cm = open_websocket(
                self.aura_url,
                self.aura_headers,
                self.aura_subprotocols,
                self.aura_options.open_timeout_s,
            )
        except Exception as exc:
            self._aura_error = classify_connect_error(exc, "Aura")
            return None
        with aura_cm as aura_ws:
            self._connected(ns_to_us(self.now_ns() - connect_ns), AURA_CONNECT)
            worker = Helper(self._speak_replies, aura_ws)
            flux = FluxSession(
                *self.flux_args, self.frames, self.turns, self.frame_ms, self.sink, self.rng,
                fixture=self.fixture, model=self.flux_model, options=self.flux_options,
                on_end_of_turn=self._ended.put,
                on_connect=lambda us: self._connected(us, None),
                now_ns=self.now_ns, sleep=self.sleep, wall_s=self.wall_s,
            )  # fmt: skip
            self._flux = flux
            try:
                flux_result = flux.run()  # never raises an Exception
                self._ended.put(None)  # the worker finishes the replies queued so far
                worker.join(self.aura_options.request_timeout_s + 1.0)
            except BaseException:  # GreenletExit: Locust is killing this user, now
                self._stop_now(aura_ws, worker)
                raise
            if worker.is_alive() and self._aura_error is None:
                self._aura_error = harness_error(
                    "Aura", RuntimeError("reply worker did not finish in time")
                )
            if self._aura_error is None:
                aura_ws.send(aura.serialize_client_message(aura.Close()))
            return flux_result

    def _connected(self, connect_us: int, metric: str | None) -> None:
        """A socket opened (counted the moment it opens; Flux records its own sample)."""
        self.result.connections += 1
        self.result.connect_us.append(connect_us)
        if metric is not None:
            self.sink.record(metric, connect_us)

    def _stop_now(self, aura_ws: WebSocket, worker: Helper) -> None:
        """Killed mid-conversation: close the Aura socket (at most :data:`STOP_WAIT_S` waiting
        for the server) and kill the reply worker (bounded too); the Flux half has already
        closed its own socket and reader."""
        self._stopping = True
        self._ended.put(None)
        close_within(aura_ws, STOP_WAIT_S)
        worker.stop(STOP_WAIT_S)

    def _speak_replies(self, ws: WebSocket) -> None:
        """Worker: one reply per ended turn, in order; stops at the first Aura failure."""
        k = 0
        while (event := self._ended.get()) is not None:
            if self._aura_error is not None:
                continue  # drain: no replies after a failure
            reply = self.turns[event.index].reply if event.index < len(self.turns) else ""
            if not reply:
                continue
            scheduled_ns = event.arrival_ns + self.think_time_ms * NS_PER_MS
            request = AuraRequest(reply, scheduled_ns, self.aura_options.sample_rate_hz,
                                  self.aura_options.encoding)  # fmt: skip
            self.result.aura_requests.append(request.record)

            def on_samples(req: AuraRequest, event: EndOfTurnEvent = event) -> None:
                audible_ns = req.audible_ns
                if audible_ns is not None and event.index not in self._voice_to_voice_us:
                    v2v_us = ns_to_us(audible_ns - event.offset_ns)
                    self._voice_to_voice_us[event.index] = v2v_us
                    self.sink.record(AGENT_VOICE_TO_VOICE, max(0, v2v_us))

            try:
                run_request(
                    ws, request, reply, self.sink, self._aura_findings,
                    timeout_s=self.aura_options.request_timeout_s, now_ns=self.now_ns,
                    sleep=self.sleep, on_samples=on_samples,
                )  # fmt: skip
            except RequestTimeout:
                self._aura_error = request_timeout_error(
                    k, self.aura_options.request_timeout_s, request
                )
            except FlushRefused as exc:
                self._aura_error = flush_refused_error(k, exc)
            except UnmeasurableAudio as exc:
                self._aura_error = unmeasurable_audio_error(exc)
            except ConnectionClosed as exc:
                if self._stopping:
                    return  # our own close: the session was killed
                code, reason = close_facts(exc)
                self._aura_error = closed_by_server(
                    "Aura", code, reason, f"speaking the reply to turn {event.index}"
                )  # fmt: skip
            except Exception as exc:
                if self._stopping:
                    return
                self._aura_error = harness_error("Aura", exc)
            k += 1

    def _fold(self, r: SessionResult, flux: SessionResult | None) -> None:
        """Fold the Flux half into the agent result ``r``; the first failure names the session.
        (Connections are already counted, as they opened.)"""
        if flux is None:  # Aura never opened: the caller was never heard
            r.turns = FluxTurnTracker(self.turns, 0, self.frame_ms, eager=False).records
            r.findings = list(self._aura_findings)
        else:
            r.turns = flux.turns
            r.findings = [*flux.findings, *self._aura_findings]
            r.flux_audio_s = flux.flux_audio_s
            r.first_response_us = flux.first_response_us
            r.turns_extra = flux.turns_extra
            r.send_lag_max_us = flux.send_lag_max_us
            r.error = flux.error
        for turn in r.turns:
            if turn.transcript is not None:  # merged turns got no reply of their own
                turn.think_ms = self.think_time_ms
            turn.voice_to_voice_us = self._voice_to_voice_us.get(turn.index)
        if r.error is None:
            r.error = self._aura_error
