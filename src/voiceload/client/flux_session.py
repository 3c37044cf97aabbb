"""One Flux stream: connect, stream a fixture in real time, measure every turn, close.

The driver only moves data and stamps times; decisions live in pure code
(:mod:`voiceload.pacing` for the schedule, :class:`~voiceload.client.flux_turns.FluxTurnTracker`
for the metrics, :class:`voiceload.protocol.flux.TurnChecker` for the protocol rules).

Timeline (docs/METRICS.md):

1. ``flux.connect``: the opening handshake is timed (connect call -> open).
2. ``t0 = start_time_ns(now, frame_ms, rng)``: the scheduled start, with a random phase so
   users do not align. Frame ``k`` is due at ``t0 + (k+1)·frame_ms``; the driver sleeps until
   then, sends, and records ``flux.send_lag`` (actual send − due).
3. A reader thread (a greenlet under Locust's gevent patches) stamps each message with
   ``now_ns()`` on arrival and feeds the tracker; its samples reach the sink at once.
4. After the fixture, paced all-zero frames (trailing silence, counted in ``flux_audio_s``)
   continue until every expected turn has ended or ``S(last offset) + eot_timeout_ms +
   trailing_bound_s`` passes.
5. ``CloseStream``, a short wait for the server to close, close.

Failures become a :class:`~voiceload.client.results.SessionError` in the returned result,
which keeps everything measured until then. ``result`` is filled in as the session goes
(connections, audio streamed, turn records); :meth:`FluxSession.snapshot` copies it at any
moment. A session killed mid-way (``GreenletExit`` from Locust's stop) closes its socket
within :data:`STOP_WAIT_S`, stops its reader and lets the kill go on.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from websockets.exceptions import ConnectionClosed

from voiceload.client.connect import (
    Helper,
    NowNs,
    Sleep,
    WallS,
    close_within,
    default_sleep,
    open_websocket,
    register_session_secrets,
    sleep_until,
    with_query,
)
from voiceload.client.errors import (
    classify_connect_error,
    close_facts,
    closed_by_server,
    harness_error,
)
from voiceload.client.flux_turns import EndOfTurnEvent, FluxTurnTracker, TurnSpec
from voiceload.client.results import ErrorCategory, SampleSink, SessionError, SessionResult
from voiceload.client.websocket import WebSocket
from voiceload.errors import ConfigError
from voiceload.pacing import (
    FrameSchedule,
    ns_to_us,
    start_time_ns,
    trailing_silence_deadline_ns,
)
from voiceload.protocol.flux import CloseStream, serialize_client_message

FLUX_CONNECT = "flux.connect"
FLUX_SEND_LAG = "flux.send_lag"

NS_PER_S = 1_000_000_000
STOP_WAIT_S = 1.0  # a killed session waits at most this long for its socket and its reader


@dataclass(frozen=True)
class FluxOptions:
    """Per-session Flux settings (defaults: Flux's own ``eot_timeout_ms``, 5 s margin)."""

    eager: bool = False
    eot_timeout_ms: int = 5_000
    trailing_bound_s: float = 5.0  # silence may continue this long past eot_timeout_ms
    open_timeout_s: float = 10.0
    close_wait_s: float = 2.0  # after CloseStream, wait this long for the server's close


class FluxSession:
    """Streams one fixture into Flux over one WebSocket; :meth:`run` returns its result.

    ``frames`` are the fixture's linear16 frames of ``frame_ms`` each (``PreparedAudio.frames``)
    and ``turns`` its manifest turns (onset/offset seconds, reference transcript). The fixture
    name is sent as Flux's ``tag`` query parameter (the emulator uses it to reveal that
    fixture's words). ``on_end_of_turn`` is called from the reader when a manifest turn ends
    (the voice agent hooks in there); it must not block. ``on_connect(connect_us)`` is called
    when the socket opens. ``now_ns``/``sleep``/``wall_s`` are
    the clock hooks (monotonic ns, gevent-friendly sleep, wall-clock epoch seconds).
    """

    service = "Flux"

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        subprotocols: Sequence[str],
        frames: Sequence[bytes],
        turns: Sequence[TurnSpec],
        frame_ms: int,
        sink: SampleSink,
        rng: random.Random,
        *,
        fixture: str = "",
        model: str = "",
        options: FluxOptions | None = None,
        on_end_of_turn: Callable[[EndOfTurnEvent], None] | None = None,
        on_connect: Callable[[int], None] | None = None,
        now_ns: NowNs = time.monotonic_ns,
        sleep: Sleep = default_sleep,
        wall_s: WallS = time.time,
    ) -> None:
        if not frames:
            raise ConfigError(f"fixture {fixture!r} has no audio frames: check its audio file")
        self.url = with_query(url, tag=fixture)
        self.headers = dict(headers)
        self.subprotocols = list(subprotocols)
        self.frames = frames
        self.turns = list(turns)
        self.frame_ms = frame_ms
        self.sink = sink
        self.rng = rng
        self.options = options or FluxOptions()
        self.on_end_of_turn = on_end_of_turn
        self.on_connect = on_connect
        self.now_ns = now_ns
        self.sleep = sleep
        self.wall_s = wall_s
        self.result = SessionResult(user_type="flux", fixture=fixture, model=model, start_s=0.0)
        # every turn counts as missed until the stream's tracker takes over the records
        self.result.turns = FluxTurnTracker(self.turns, 0, frame_ms, eager=False).records
        register_session_secrets(self.headers, self.subprotocols)
        self._lock = threading.Lock()
        self._tracker: FluxTurnTracker | None = None
        self._reader_error: SessionError | None = None
        self._reader_done = threading.Event()
        self._close_stream_sent = False
        self._stopping = False  # killed: our own close is not the server's doing

    def snapshot(self) -> SessionResult:
        """A copy of everything measured so far (safe to call while the session runs or after
        it was killed): turns with their latencies and WER, findings, audio streamed,
        connections, and the failure seen so far if any."""
        with self._lock:
            result = self.result.copy()
            tracker = self._tracker
            if tracker is not None:
                result.first_response_us = tracker.first_response_us
                result.turns_extra = tracker.extra_turns
        result.error = self._settled_error(result.error)
        return result

    # -- the session -----------------------------------------------------------------------

    def run(self) -> SessionResult:
        """Run the whole session; never raises for service or network failures."""
        self.result.start_s = self.wall_s()
        started_ns = self.now_ns()
        try:
            self._run()
        except ConnectionClosed as exc:
            self._fail(self._closed_error(exc, "streaming audio"))
        except Exception as exc:  # a bug here must not kill a Locust user
            self._fail(harness_error(self.service, exc))
        self._finish()
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
            connect_us = ns_to_us(self.now_ns() - connect_ns)
            self.result.connections += 1
            self.result.connect_us.append(connect_us)
            self.sink.record(FLUX_CONNECT, connect_us)
            if self.on_connect is not None:
                self.on_connect(connect_us)
            self._stream(ws)

    def _stream(self, ws: WebSocket) -> None:
        t0_ns = start_time_ns(self.now_ns(), self.frame_ms, self.rng)
        tracker = FluxTurnTracker(self.turns, t0_ns, self.frame_ms, eager=self.options.eager)
        with self._lock:  # the result shows the tracker's records as they fill in
            self._tracker = tracker
            self.result.turns = tracker.records
            self.result.findings = tracker.findings
        schedule = FrameSchedule(t0_ns, self.frame_ms, len(self.frames))
        last_offset_s = max((t.offset_s for t in self.turns), default=0.0)
        deadline_ns = trailing_silence_deadline_ns(
            t0_ns,
            last_offset_s,
            self.options.eot_timeout_ms,
            round(self.options.trailing_bound_s * 1000),
        )
        reader = Helper(self._read, ws)
        try:
            self._send_audio(ws, reader, schedule, deadline_ns)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # GreenletExit: Locust is killing this user
                self._stop_now(ws, reader)
            raise
        self._settle(tracker)
        if not self._all_ended():  # a close or Error seen by the reader overrides this
            waited_s = (self.now_ns() - (t0_ns + round(last_offset_s * NS_PER_S))) / NS_PER_S
            missing = [r.index for r in tracker.records if not r.ended]
            self._fail(
                SessionError(
                    ErrorCategory.TRANSCRIPT_TIMEOUT,
                    f"Flux sent no EndOfTurn for turn(s) {missing} within {waited_s:.1f} s"
                    f" after the last turn's speech ended (eot_timeout_ms="
                    f"{self.options.eot_timeout_ms}, bound {self.options.trailing_bound_s} s)",
                )
            )

    def _send_audio(
        self, ws: WebSocket, reader: Helper, schedule: FrameSchedule, deadline_ns: int
    ) -> None:
        """Send the fixture, then trailing silence, then ``CloseStream``; wait for the reader."""
        silence = bytes(len(self.frames[0]))
        k = 0
        while not self._reader_done.is_set():
            if k < len(self.frames):
                frame = self.frames[k]
            elif self._all_ended() or schedule.next_due(k) > deadline_ns:
                break
            else:
                frame = silence
            sleep_until(schedule.next_due(k), self.now_ns, self.sleep)
            if self._reader_done.is_set():
                break
            ws.send(frame)
            lag_us = ns_to_us(schedule.send_lag_ns(self.now_ns(), k))
            self.sink.record(FLUX_SEND_LAG, lag_us)
            self.result.send_lag_max_us = max(self.result.send_lag_max_us, lag_us)
            k += 1
            self.result.flux_audio_s = schedule.audio_s(k)
        if not self._reader_done.is_set():
            self._close_stream_sent = True
            ws.send(serialize_client_message(CloseStream()))
            reader.join(self.options.close_wait_s)

    def _settle(self, tracker: FluxTurnTracker) -> None:
        """The stream is over: turns that only got pieces of ``EndOfTurn`` end at the last."""
        with self._lock:
            step = tracker.finish()
        for metric, value_us in step.samples:
            self.sink.record(metric, value_us)
        if self.on_end_of_turn is not None:
            for event in step.ended_turns:
                self.on_end_of_turn(event)

    def _stop_now(self, ws: WebSocket, reader: Helper) -> None:
        """Killed mid-session: close the socket (waiting at most :data:`STOP_WAIT_S` for the
        server's answer) and end the reader; neither failure is reported as the server's."""
        self._stopping = True
        close_within(ws, STOP_WAIT_S)
        reader.stop(STOP_WAIT_S)

    def _read(self, ws: WebSocket) -> None:
        """Reader thread: stamp, feed the tracker, record samples; quiet on close."""
        tracker = self._tracker
        assert tracker is not None
        try:
            for message in ws:
                arrival_ns = self.now_ns()
                if isinstance(message, bytes):
                    with self._lock:
                        tracker.on_binary()
                    continue
                with self._lock:
                    step = tracker.on_text(message, arrival_ns)
                    self.result.first_response_us = tracker.first_response_us
                for metric, value_us in step.samples:
                    self.sink.record(metric, value_us)
                if step.error is not None:
                    self._reader_error = SessionError(
                        ErrorCategory.CLOSED_BY_SERVER,
                        f"Flux sent Error: {step.error.description}",
                        service_code=step.error.code,
                    )
                if self.on_end_of_turn is not None:
                    for event in step.ended_turns:
                        self.on_end_of_turn(event)
            if self._reader_error is not None and self._reader_error.close_code is None:
                # the service's Error message explains the close; keep its close code too
                self._reader_error = replace(self._reader_error, close_code=ws.close_code)
            elif not self._close_stream_sent and self._reader_error is None and not self._stopping:
                self._reader_error = closed_by_server(
                    self.service, ws.close_code, ws.close_reason or "", "streaming audio"
                )  # fmt: skip
        except ConnectionClosed as exc:
            if not self._close_stream_sent and self._reader_error is None and not self._stopping:
                self._reader_error = self._closed_error(exc, "streaming audio")
        except Exception as exc:
            if not self._stopping:
                self._reader_error = harness_error(self.service, exc)
        finally:
            self._reader_done.set()

    # -- bookkeeping -----------------------------------------------------------------------

    def _all_ended(self) -> bool:
        with self._lock:
            return self._tracker is not None and self._tracker.all_ended

    def _closed_error(self, exc: ConnectionClosed, while_doing: str) -> SessionError:
        code, reason = close_facts(exc)
        return closed_by_server(self.service, code, reason, while_doing)

    def _fail(self, error: SessionError) -> None:
        """Keep the first error: later ones are consequences."""
        if self.result.error is None:
            self.result.error = error

    def _settled_error(self, error: SessionError | None) -> SessionError | None:
        """``error``, unless the reader's close or Error explains it (a timeout we may have
        noted meanwhile, or a close seen from the sending side)."""
        if self._reader_error is not None and (
            error is None
            or error.category in (ErrorCategory.TRANSCRIPT_TIMEOUT, ErrorCategory.CLOSED_BY_SERVER)
        ):
            return self._reader_error
        return error

    def _finish(self) -> None:
        """Copy the tracker's records into the result and settle the outcome."""
        self.result.error = self._settled_error(self.result.error)
        tracker = self._tracker
        if tracker is None:  # never connected: every turn is missed (the records from __init__)
            return
        with self._lock:
            self.result.turns = tracker.records
            self.result.findings = list(tracker.findings)
            self.result.turns_extra = tracker.extra_turns
            self.result.first_response_us = tracker.first_response_us
        violations = tracker.violations  # info and warning findings never fail a session
        if self.result.error is None and violations:
            first = violations[0]
            self.result.error = SessionError(
                ErrorCategory.PROTOCOL_VIOLATION,
                f"Flux broke the protocol {len(violations)} time(s); first: "
                f"{first.message} [{first.rule}]",
            )
