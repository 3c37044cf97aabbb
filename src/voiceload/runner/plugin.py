"""The Locust side of a run: event listeners that own the histograms, phases and artifacts.

One :class:`RunPlugin` lives in every Locust process, created by the ``init`` event
(:func:`register` attaches it). Its parts depend on the process's role, and the same code path
serves a local run and a distributed one:

* a **generator** (local runner or worker) runs users. Each session records its samples, the
  moment they are known, through a :class:`voiceload.runner.sink.SessionSink` into a
  :class:`voiceload.metrics.Recorder` under the current phase (live numbers go to Locust's own
  statistics too); its finished :class:`SessionResult` becomes a sessions.csv row in the
  :class:`voiceload.runner.sink.Outbox`. A greenlet samples the process's CPU every second.
* a **collector** (local runner or master) owns the run's artifacts through a
  :class:`voiceload.runner.collector.Collector` (run directory, merged histograms, sessions.csv)
  and writes run.json and summary.json.

Generators hand collectors a plain-dict *payload* (:meth:`RunPlugin.take_payload`: drained
histograms, new session rows, CPU samples). Locally a greenlet passes it every reporting interval;
on a worker it piggy-backs on ``report_to_master`` and the master merges it in ``worker_report``.
Both end in :meth:`Collector.absorb <voiceload.runner.collector.Collector.absorb>`. This module
keeps the listeners and the lifecycle (:class:`Role`, :class:`RunState`); everything it needs of
Locust beyond its event hooks is in :mod:`voiceload.runner.locust_compat`.

Phases: ``ramp_up`` from ``test_start`` until ``spawning_complete`` plus the start stagger
(``--start-stagger-s``, 1 s: the last spawned users' first sessions start within it), ``steady``
until ``test_stopping``, ``teardown`` after; boundaries go to run.json, headline numbers use
steady.

End of run: a local run finalises on ``test_stop`` (every user has stopped); a master on
``quitting`` (after Locust's grace period for the workers' last reports). Issue 5 replaces the
master's grace with an explicit final-flush handshake: see :meth:`RunPlugin.on_test_stopping`
and :meth:`RunPlugin.worker_finals`.
"""

from __future__ import annotations

import copy
import gc
import itertools
import logging
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import gevent
import gevent.lock
import psutil
from gevent import GreenletExit

from voiceload.client.results import ErrorCategory, SessionError, SessionResult
from voiceload.credentials import load_credentials, redact_stdio
from voiceload.errors import ConfigError
from voiceload.fixtures import load_manifest
from voiceload.metrics import Phase, Recorder
from voiceload.runner import artifacts, collector, distributed, locust_compat, stalls
from voiceload.runner.collector import Collector
from voiceload.runner.locust_compat import (
    STATE_MISSING,
    Environment,
    MasterRunner,
    StopUser,
    WorkerRunner,
)
from voiceload.runner.looplag import LoopLagMonitor
from voiceload.runner.options import RunSettings, add_arguments, probe_tcp, settings_from
from voiceload.runner.sessions import SessionFactory, build_pools, check_pools
from voiceload.runner.sink import (
    LIVE_METRICS,
    Outbox,
    SessionFailed,
    SessionSink,
    join_pieces,
    split_by_metric,
)
from voiceload.runner.validity import AllFailingDetector, Budgets, Validity, WorkerHealth, judge
from voiceload.spend import POLITE_LOAD, gate_run
from voiceload.targets import Target

logger = logging.getLogger("voiceload")

CPU_SAMPLE_INTERVAL_S = 1.0
DRAIN_NOTICE_MS = 5.0  # a local drain longer than this is logged (it delays frames)
FINALISE_WAIT_S = 60.0  # bound on waiting for another greenlet to finish writing artifacts
LOCAL_WORKER_ID = "local"
EXIT_INVALID = 1
STOPPED_DETAIL = "stopped by Locust before it ended (stop timeout or quit); partial measurements"
EXIT_BAD_INPUT = 2

#: Re-exported: what a session sink and a payload are (voiceload.runner.sink).
__all__ = [
    "EXIT_BAD_INPUT", "EXIT_INVALID", "LIVE_METRICS", "STOPPED_DETAIL", "PhaseClock", "Role",
    "RunPlugin", "RunState", "SessionFailed", "join_pieces", "plugin_of", "register",
    "split_by_metric", "stopped_result",
]  # fmt: skip


class Role(Enum):
    """What this Locust process does: run users (generate), own the artifacts (collect), or
    both."""

    LOCAL = "local"  # generates and collects
    WORKER = "worker"  # generates; its payloads go to the master
    MASTER = "master"  # collects the workers' payloads

    @property
    def generates(self) -> bool:
        return self is not Role.MASTER

    @property
    def collects(self) -> bool:
        return self is not Role.WORKER


class RunState(Enum):
    """The lifecycle of one test in one process (the web UI can run several in a row).

    ``IDLE`` -> (``test_start``) ``RUNNING`` -> (collector: the end of the run is being
    written) ``FINALISING`` -> ``FINALISED``; the next ``test_start`` starts over. A generator
    that is not a collector (a worker) stays ``RUNNING`` until its next test.
    """

    IDLE = "idle"
    RUNNING = "running"
    FINALISING = "finalising"
    FINALISED = "finalised"


@dataclass
class PhaseClock:
    """The current run phase and the wall-clock boundaries of each phase seen so far."""

    phase: Phase = Phase.RAMP_UP
    boundaries_s: dict[str, list[float]] = field(default_factory=dict)

    def enter(self, phase: Phase, now_wall_s: float) -> None:
        """Close the current phase at ``now_wall_s`` and open ``phase`` (idempotent)."""
        if phase.value in self.boundaries_s:
            return
        current = self.boundaries_s.get(self.phase.value)
        if current is not None and len(current) == 2 and current[1] < 0:
            current[1] = now_wall_s
        self.phase = phase
        self.boundaries_s[phase.value] = [now_wall_s, -1.0]

    def close(self, now_wall_s: float) -> dict[str, list[float]]:
        """End the current phase; return ``{phase: [start_s, end_s]}`` for run.json."""
        current = self.boundaries_s.get(self.phase.value)
        if current is not None and current[1] < 0:
            current[1] = now_wall_s
        return {name: list(bounds) for name, bounds in self.boundaries_s.items()}


class SessionDriver(Protocol):
    """What :meth:`RunPlugin.run_user_session` needs of a session driver
    (:class:`~voiceload.client.flux_session.FluxSession` and its siblings)."""

    def run(self) -> SessionResult: ...

    def snapshot(self) -> SessionResult:
        """A copy of everything measured so far; called when Locust kills the session."""
        ...


def stopped_result(
    partial: SessionResult | None, user_type: str, start_wall_s: float, duration_s: float
) -> SessionResult:
    """The result of a session Locust killed before it returned (pure).

    A copy of the driver's ``partial`` result (or an empty one for ``user_type``) lasting
    ``duration_s``, marked :attr:`~voiceload.client.results.SessionResult.stopped` (its
    WER covers the turns that ended); unless it had already failed, its error is
    :data:`STOPPED_DETAIL` as a ``harness_error`` (the harness, not the service, cut it short).
    """
    if partial is None:
        partial = SessionResult(user_type=user_type, fixture="", model="", start_s=start_wall_s)
    result = copy.copy(partial)  # the killed session's threads may still touch the original
    result.start_s = result.start_s or start_wall_s
    result.duration_s = duration_s
    result.stopped = True
    if result.error is None:
        result.error = SessionError(ErrorCategory.HARNESS_ERROR, STOPPED_DETAIL)
    return result


class RunPlugin:
    """voiceload's state in one Locust process. Create it through :func:`register`."""

    def __init__(
        self,
        environment: Environment,
        settings: RunSettings,
        target: Target,
        factory: SessionFactory | None = None,
    ) -> None:
        self.environment = environment
        self.target = target
        self.factory = factory
        self.events: Any = environment.events  # locust's EventHook methods are untyped
        self.settings = settings
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            self.role = Role.WORKER
            self.worker_id = locust_compat.worker_id_of(runner)
        else:
            self.role = Role.MASTER if isinstance(runner, MasterRunner) else Role.LOCAL
            self.worker_id = LOCAL_WORKER_ID
        self.exit_code: int | None = None
        self.validity: Validity | None = None
        self.coordinator: distributed.Coordinator | None = None  # set by install() (issue 5)
        self._greenlets: list[gevent.Greenlet] = []
        self._merge_lock = gevent.lock.RLock()
        self._report_lock = gevent.lock.Semaphore()  # one worker report encodes at a time
        self._stall_tracer: stalls.StallTracer | None = None  # make perf only (runner/stalls.py)
        self._reset_run_state(time.time())

    @property
    def is_worker(self) -> bool:
        return self.role is Role.WORKER

    @property
    def is_master(self) -> bool:
        return self.role is Role.MASTER

    @property
    def generates(self) -> bool:
        return self.role.generates

    @property
    def collects(self) -> bool:
        return self.role.collects

    @property
    def running(self) -> bool:
        """A test is under way here (until its artifacts are written)."""
        return self.state in (RunState.RUNNING, RunState.FINALISING)

    @property
    def finalised(self) -> bool:
        """Every artifact of this test is written."""
        return self.state is RunState.FINALISED

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The sessions.csv rows collected so far (collector)."""
        return self.collector.rows

    @property
    def worker_sessions(self) -> dict[str, int]:
        """Rows received per worker (collector)."""
        return self.collector.worker_sessions

    @property
    def run_dir(self) -> Path | None:
        return self.collector.run_dir

    @property
    def run_id(self) -> str:
        return self.collector.run_id

    @property
    def budgets(self) -> Budgets:
        """The validity budgets of the current settings."""
        return Budgets(
            send_lag_p99_ms=self.settings.send_lag_budget_ms,
            loop_lag_p99_ms=self.settings.loop_lag_budget_ms,
            worker_cpu_percent=self.settings.cpu_budget_percent,
        )

    # -- state of one test (the web UI can run several in one process) -------------------------

    def _reset_run_state(self, now_wall_s: float) -> None:
        self.state = RunState.IDLE
        self.interrupted = False
        self.early_stop_reason: str | None = None
        self.started_wall_s = now_wall_s
        self.phases = PhaseClock()
        self.recorder = Recorder(now_wall_s)
        self._session_ids = itertools.count(1)
        self._detector = AllFailingDetector(self.settings.fail_fast_sessions or 1)
        self.outbox = Outbox(self.worker_id)  # generator side
        self.collector = Collector(self._merge_lock)  # collector side

    # -- generator side ------------------------------------------------------------------------

    def sink(self) -> SessionSink:
        """A sample sink for one session: records under the current phase, fires live events."""
        return SessionSink(self.recorder, lambda: self.phases.phase, self.events)

    def run_session(
        self,
        run: Callable[[SessionSink], SessionResult],
        user_type: str,
        *,
        partial: Callable[[], SessionResult | None] = lambda: None,
    ) -> SessionResult:
        """Run one session with a fresh sink, then account for its result.

        ``run`` is a session driver's ``run`` (e.g. ``lambda sink: FluxSession(..., sink).run()``).
        A driver that raises (a bug: drivers report errors as data) is counted as a
        ``harness_error`` session instead of killing the user.

        When Locust kills the user mid-session (``GreenletExit`` at the stop timeout or on quit,
        ``StopUser``), the samples the session recorded are already in the histograms, so it
        still gets its sessions.csv row: ``partial()`` (the driver's result so far, e.g.
        ``driver.snapshot()``: turns ended, their latencies and WER, audio streamed, sockets
        opened, matching what reached the histograms), marked as stopped unless it already
        failed; then the kill goes on.
        """
        phase = self.phases.phase
        start_wall_s = time.time()
        start_ns = time.monotonic_ns()
        try:
            result = run(self.sink())
        except (GreenletExit, StopUser):
            duration_s = (time.monotonic_ns() - start_ns) / 1e9
            stopped = stopped_result(partial(), user_type, start_wall_s, duration_s)
            self.account(stopped, phase, judge=False)
            raise
        except Exception as exc:  # a driver bug must not kill the Locust user
            logger.exception("session driver raised; counted as harness_error")
            result = SessionResult(
                user_type=user_type, fixture="", model="", start_s=start_wall_s,
                duration_s=(time.monotonic_ns() - start_ns) / 1e9,
                error=SessionError(ErrorCategory.HARNESS_ERROR, f"{type(exc).__name__}: {exc}"),
            )  # fmt: skip
        self.account(result, phase)
        return result

    def run_user_session(self, user_type: str, rng: random.Random) -> SessionResult:
        """One session of ``user_type`` (flux, aura or agent) on a fixture drawn from ``rng``."""
        factory = self.factory
        if factory is None:
            raise ConfigError(f"no session factory: {user_type} users need the fixtures manifest")
        makers: dict[str, Callable[[SessionSink, random.Random], SessionDriver]] = {
            "flux": factory.flux, "aura": factory.aura, "agent": factory.agent,
        }  # fmt: skip
        drivers: list[SessionDriver] = []

        def run(sink: SessionSink) -> SessionResult:
            drivers.append(makers[user_type](sink, rng))
            return drivers[0].run()

        return self.run_session(
            run, user_type, partial=lambda: drivers[0].snapshot() if drivers else None
        )

    def account(self, result: SessionResult, phase: Phase, *, judge: bool = True) -> None:
        """Turn a finished session into a sessions.csv row and a Locust ``session`` event;
        ``judge=False`` keeps it out of the all-failing detector (a session Locust stopped)."""
        row = result.to_row(
            session_id=f"{self.worker_id}-{next(self._session_ids)}",
            worker=self.worker_id,
            phase=phase.value,
        )
        self.outbox.rows.append(dict(row))
        error = result.error
        self.events.request.fire(
            request_type=result.user_type, name="session",
            response_time=result.duration_s * 1000.0, response_length=0,
            exception=None if error is None else SessionFailed(error.category.value), context={},
        )  # fmt: skip
        if judge and self.settings.fail_fast_sessions:
            reason = self._detector.observe(
                error is None,
                "" if error is None else error.category.value,
                "" if error is None else error.message(),
            )
            if reason:
                self.stop_early(reason)

    def stop_early(self, reason: str) -> None:
        """Stop the whole run with one message (every session failing the same way)."""
        logger.error("voiceload: %s", reason)
        if self.is_worker:
            assert isinstance(self.environment.runner, WorkerRunner)
            self.environment.runner.send_message("voiceload_stop_early", {"reason": reason})
            return
        self._stop_collecting_run(reason)

    def take_payload(
        self, now_wall_s: float, between_metrics: Callable[[], object] = lambda: None
    ) -> dict[str, Any]:
        """Everything measured since the last call, as plain data (msgpack/JSON safe):
        :meth:`voiceload.runner.sink.Outbox.take`."""
        return self.outbox.take(self.recorder, now_wall_s, between_metrics)

    def _sample_cpu(self) -> None:
        """Greenlet: one CPU sample per second; a live warning when it passes the budget."""
        process = psutil.Process()
        process.cpu_percent(None)
        over = False
        while True:
            gevent.sleep(CPU_SAMPLE_INTERVAL_S)
            percent = process.cpu_percent(None)
            self.outbox.cpu.append((self.phases.phase.value, percent))
            if percent > self.budgets.worker_cpu_percent and not over:
                logger.warning(
                    "voiceload: worker %s CPU %.0f %% is above the %g %% budget: latency tails"
                    " now include harness queueing (the run is invalid if it stays there)",
                    self.worker_id, percent, self.budgets.worker_cpu_percent,
                )  # fmt: skip
            over = percent > self.budgets.worker_cpu_percent

    def _measure_loop_lag(self) -> None:
        """Greenlet: ``harness.loop_lag``, this process's event-loop lag (runner/looplag.py).

        Stops once this run's last payload is sent (a worker) or when :meth:`finalise` kills it
        (a local run); the next test's start kills any left over."""
        recorder, phases, outbox = self.recorder, self.phases, self.outbox
        LoopLagMonitor(
            lambda late_us: recorder.record("harness.loop_lag", late_us, phases.phase)
        ).run(should_stop=lambda: outbox.last_sent)

    def _drain_locally(self) -> None:
        """Greenlet (local runs): hand the interval to the collector every reporting interval."""
        while True:
            gevent.sleep(self.settings.report_interval_s)
            with self._merge_lock:  # never killed between draining and merging
                longest_ms = self._pass_on_in_pieces(time.time())
            if longest_ms > DRAIN_NOTICE_MS:
                logger.debug("voiceload: encoding one metric of the interval blocked users for"
                             " %.1f ms", longest_ms)  # fmt: skip

    def _pass_on_in_pieces(self, now_wall_s: float) -> float:
        """Local runs: take the interval (:meth:`voiceload.metrics.Recorder.take`) and absorb it
        one metric at a time, yielding after each encoding and each merge, so users' due frames
        go out between short steps (~0.2-0.4 ms) instead of after one long drain (~1-2 ms, up to
        9 ms on a busy machine). Returns the longest encoding step in ms."""
        rows, cpu = self.outbox.take_rows_and_cpu()
        pieces = self.recorder.take(now_wall_s, final=self.outbox.last_due).pieces()
        longest_ns = 0
        while True:  # one round per metric of the interval, then the end of the iterator
            started_ns = time.monotonic_ns()
            hdr = next(pieces, None)  # encodes this metric's histograms
            longest_ns = max(longest_ns, time.monotonic_ns() - started_ns)
            if hdr is None:
                return longest_ns / 1e6
            gevent.sleep(0)  # due frames go out between encoding and merging, too
            payload = self.outbox.payload(hdr, rows, cpu)
            rows, cpu = [], []  # session rows and CPU samples go with the first piece
            self.absorb(payload)  # merges, then yields

    # -- collector side ------------------------------------------------------------------------

    def absorb(self, payload: dict[str, Any]) -> None:
        """Merge one generator payload (:meth:`voiceload.runner.collector.Collector.absorb`)."""
        self.collector.absorb(payload)

    def _open_run(self, now_wall_s: float) -> None:
        self.collector.open(self.settings, now_wall_s)
        self.collector.write_json("run.json", self._run_json(now_wall_s, None))
        logger.info("voiceload: run %s writing to %s", self.run_id, self.run_dir)

    def _expected_workers(self) -> list[str]:
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            joined = self.coordinator.workers() if self.coordinator is not None else []
            return sorted(set(self.worker_sessions) | set(locust_compat.worker_states(runner))
                          | set(joined))  # fmt: skip
        return [LOCAL_WORKER_ID]

    def _worker_health(self) -> list[WorkerHealth]:
        runner = self.environment.runner
        lost: set[str] = set()
        if isinstance(runner, MasterRunner):
            states = locust_compat.worker_states(runner)
            lost = {w for w, state in states.items() if state == STATE_MISSING}
        if self.coordinator is not None:  # also workers gone from Locust's list without a final
            lost |= self.coordinator.lost_workers()
        return [
            WorkerHealth(
                worker_id=w,
                cpu_samples_percent=tuple(self.collector.worker_cpu.get(w, [])),
                final_report=self.collector.final_received(w),
                lost=w in lost,
            )
            for w in self._expected_workers()
        ]

    def _run_json(self, now_wall_s: float, ended_wall_s: float | None) -> dict[str, Any]:
        env = self.environment
        workers: list[dict[str, Any]] = []
        if ended_wall_s is not None:
            counted = self.coordinator.answered_counts() if self.coordinator else {}
            workers = self.collector.worker_entries(self._worker_health(), counted)
        return collector.run_json(
            run_id=self.run_id, started_wall_s=self.started_wall_s, ended_wall_s=ended_wall_s,
            phases=self.phases.close(now_wall_s) if ended_wall_s else {},
            options=env.parsed_options, user_classes=env.user_classes,
            stop_timeout_s=env.stop_timeout, settings=self.settings, target=self.target,
            facts=self.collector.facts, fixtures=self._fixture_hashes(), workers=workers,
            interrupted=self.interrupted, budgets=self.budgets,
        )  # fmt: skip

    def _fixture_hashes(self) -> dict[str, str]:
        if self.factory is None:
            return {}
        pools = self.factory.pools
        return {f.name: f.sha256 for f in (*pools.flux, *pools.agent)}

    def finalise(self) -> None:
        """Write the final artifacts and judge validity; sets :attr:`exit_code` (idempotent)."""
        if self.state in (RunState.FINALISING, RunState.FINALISED) or not self.collector.is_open:
            return
        self.state = RunState.FINALISING
        with self._merge_lock:  # the drain greenlet is asleep between intervals: safe to kill
            now_wall_s = time.time()
            for greenlet in self._greenlets:
                greenlet.kill(block=True)
            self._greenlets = []
            if self.generates:  # local run: the samples recorded after the last interval
                self.outbox.last_due = True
                self.absorb(self.take_payload(now_wall_s))
            metrics = self.collector.close()
        send_lag = metrics.get("flux.send_lag")
        loop_lag = metrics.get("harness.loop_lag")
        self.validity = judge(
            send_lag_p99_ms=send_lag["p99"] if send_lag else None,
            loop_lag_p99_ms=loop_lag["p99"] if loop_lag else None,
            workers=self._worker_health(),
            out_of_range={name: int(s.get("out_of_range", 0)) for name, s in metrics.items()},
            budgets=self.budgets,
            early_stop_reason=self.early_stop_reason,
        )
        self.collector.close_sessions_csv()
        summary = artifacts.build_summary(self.run_id, metrics, self.rows, self.validity)
        self.collector.write_json("summary.json", summary)
        self.collector.write_json("run.json", self._run_json(now_wall_s, now_wall_s))
        self.state = RunState.FINALISED
        if self.validity.valid and not self.interrupted:
            logger.info("voiceload: run %s is valid; artifacts in %s", self.run_id, self.run_dir)
        else:
            for reason in self.validity.reasons:
                logger.error("voiceload: run %s is INVALID: %s", self.run_id, reason)
            if self.interrupted:
                logger.error("voiceload: run %s was interrupted; artifacts hold what was"
                             " measured, in %s", self.run_id, self.run_dir)  # fmt: skip
            self.exit_code = EXIT_INVALID

    def _stop_collecting_run(self, reason: str) -> None:
        if self.early_stop_reason is None:
            self.early_stop_reason = reason
        runner = self.environment.runner
        assert runner is not None
        headless = bool(getattr(self.environment.parsed_options, "headless", False))
        gevent.spawn(runner.quit if headless else runner.stop)

    # -- Locust event listeners ----------------------------------------------------------------

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        if self.running:
            return
        options = environment.parsed_options
        try:  # the web UI's form may have changed an option: check new ones as at init
            if options is not None and settings_from(options) != self.settings:
                self.settings, self.target, self.factory = check_run(environment)
        except ConfigError as exc:
            logger.error("voiceload: %s; not starting the test", exc)
            runner = environment.runner
            assert runner is not None
            gevent.spawn(runner.stop)
            return
        now_wall_s = time.time()
        for greenlet in self._greenlets:  # a worker's samplers of the previous test
            greenlet.kill(block=True)
        self._greenlets = []
        self._reset_run_state(now_wall_s)
        self.state = RunState.RUNNING
        self.phases.enter(Phase.RAMP_UP, now_wall_s)
        if self.collects:
            self._open_run(now_wall_s)
        if self.generates:
            freeze_heap()
            self._greenlets.append(gevent.spawn(self._sample_cpu))
            self._greenlets.append(gevent.spawn(self._measure_loop_lag))
            if stalls.from_environment() is not None and self._stall_tracer is None:
                self._stall_tracer = stalls.StallTracer()
                self._stall_tracer.install()
        if self.generates and self.collects:
            self._greenlets.append(gevent.spawn(self._drain_locally))

    def on_spawning_complete(self, user_count: int, **_: Any) -> None:
        """Steady starts once the last spawned users have started their first session:
        :attr:`RunSettings.start_stagger_s` after spawning completes (at once without one)."""
        stagger_s = self.settings.start_stagger_s
        if stagger_s > 0 and self.running:
            self._greenlets.append(gevent.spawn_later(stagger_s, self._enter_steady))
        else:
            self._enter_steady()

    def _enter_steady(self) -> None:
        if self.running and self.phases.phase is Phase.RAMP_UP:
            self.phases.enter(Phase.STEADY, time.time())

    def stagger_start(self, rng: random.Random) -> None:
        """A user's first wait (its ``on_start``): a random 0 .. ``start_stagger_s`` seconds.

        Locust spawns each second's users in one batch (``spawn_rate`` users at once), so
        without it every user of a batch would open its connection in the same instant and the
        setup burst would stall the streams already running; staggered, the users start at
        the spawn rate, as the option promises, and the steady phase begins once the last
        batch has started."""
        stagger_s = self.settings.start_stagger_s
        if stagger_s > 0:
            gevent.sleep(rng.uniform(0.0, stagger_s))

    def on_test_stopping(self, environment: Environment, **_: Any) -> None:
        """Teardown starts; a master runs the final-flush handshake (runner/distributed.py)."""
        if self.running:
            self.phases.enter(Phase.TEARDOWN, time.time())
            if self.coordinator is not None:
                self.coordinator.on_test_stopping()

    def on_test_stop(self, environment: Environment, **_: Any) -> None:
        self.outbox.last_due = True  # a worker's next report carries final=True
        prefix = stalls.from_environment()
        if self._stall_tracer is not None:
            self._stall_tracer.uninstall()
            if prefix is not None:
                self._stall_tracer.write(Path(f"{prefix}.{self.worker_id}.json"))
            self._stall_tracer = None
        if self.generates and self.collects:
            self.finalise()

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        """Ctrl-C / SIGTERM arrive here with the test still running: stop it, then write."""
        if self.is_worker and self.coordinator is not None:  # stop users, send the final report
            self.coordinator.on_quitting()
        if self.collects and self.running and not self.finalised:
            runner = environment.runner
            if runner is not None and not locust_compat.is_stopping_or_stopped(runner):
                self.interrupted = True
                logger.warning("voiceload: interrupted; stopping users and writing artifacts")
            if runner is not None and self.generates:
                runner.stop()  # fires test_stop, which finalises
            elif self.coordinator is not None:  # master: stop the workers, collect their finals
                self.coordinator.on_quitting()
            self.finalise()
        deadline_s = time.monotonic() + FINALISE_WAIT_S
        while self.state is RunState.FINALISING and time.monotonic() < deadline_s:
            gevent.sleep(0.05)  # another greenlet (an early stop) is writing the artifacts
        if self.exit_code is not None:
            locust_compat.set_process_exit_code(environment, self.exit_code)

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        """Worker: piggy-back everything measured since the last report (final after stop).

        The interval is taken at once (:meth:`voiceload.metrics.Recorder.take`) and encoded one
        metric at a time, yielding after each, so users' due frames go out between short steps
        instead of waiting for every histogram (~0.1-0.3 ms each). Reports that overlap (the
        periodic one and a final flush) encode one after the other, in the order they took
        their intervals, so the final payload is never sent before an earlier one."""
        with self._report_lock:
            if not self.running or self.outbox.last_sent:
                return
            final = self.outbox.last_due  # as take_payload takes the interval, before any yield
            data["voiceload"] = self.take_payload(time.time(), between_metrics=gevent.sleep)
            self.outbox.last_sent = final

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        payload = data.get("voiceload")
        if payload:
            self.absorb(payload)

    def install(self) -> None:
        """Attach the listeners for this process's role to ``environment.events``."""
        events = self.events
        events.test_start.add_listener(self.on_test_start)
        events.spawning_complete.add_listener(self.on_spawning_complete)
        events.test_stopping.add_listener(self.on_test_stopping)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)
        if self.is_worker:
            events.report_to_master.add_listener(self.on_report_to_master)
        if self.is_master:
            events.worker_report.add_listener(self.on_worker_report)
            runner = self.environment.runner
            assert isinstance(runner, MasterRunner)
            runner.register_message(
                "voiceload_stop_early",
                lambda environment, msg, **_: self._stop_collecting_run(msg.data["reason"]),
            )
        self.coordinator = distributed.install(self)


_PLUGINS: dict[int, RunPlugin] = {}


def freeze_heap() -> None:
    """Before users start: collect once, then move every object alive (modules, Locust,
    fixtures' audio, the plugin) to the permanent generation (``gc.freeze``), so the
    collector's passes during the run scan only what the sessions allocate. Measured with the
    stall tracer (runner/stalls.py): without it, generation-1 and -2 passes over the startup
    heap stalled a 300-stream worker's loop for 10-70 ms (docs/PERFORMANCE.md)."""
    gc.collect()
    gc.freeze()


def plugin_of(environment: Environment) -> RunPlugin:
    """The :class:`RunPlugin` of ``environment`` (created by the ``init`` event)."""
    try:
        return _PLUGINS[id(environment)]
    except KeyError:
        raise ConfigError(
            "voiceload's plugin is not installed: load loadtests/locustfile.py"
            " (or call voiceload.runner.plugin.register(events)) before starting users"
        ) from None


def _session_factory(
    environment: Environment, settings: RunSettings, target: Target
) -> SessionFactory | None:
    """The factory for the voiceload users this run has (``None`` when it has none)."""
    user_types = sorted(
        {
            t
            for cls in environment.user_classes
            if (t := getattr(cls, "user_type", None))
            and (getattr(cls, "weight", 1) > 0 or getattr(cls, "fixed_count", 0) > 0)
        }
    )
    if not user_types:
        return None
    manifest = load_manifest()
    pools = build_pools(manifest, settings.fixtures)
    check_pools(pools, user_types, str(manifest.path))
    return SessionFactory(settings, target, pools, user_types)  # checks the audio fixtures


def _confirm_spend(environment: Environment, settings: RunSettings, target: Target) -> None:
    """For a paid target: print the upper-bound spend estimate and require confirmation
    (:func:`voiceload.spend.gate_run`); nothing happens for the emulator or loopback URLs."""
    options = environment.parsed_options
    weights, fixed_counts = user_mix(environment.user_classes)
    gate_run(
        is_real_target=target.is_real, target_label=target.name,
        users=int(getattr(options, "num_users", None) or 1), user_weights=weights,
        run_time_s=float(getattr(options, "run_time", None) or POLITE_LOAD.run_time_s),
        yes=settings.yes, out=sys.stderr, aura_model=settings.aura_model,
        fixed_counts=fixed_counts,
    )  # fmt: skip


def user_mix(user_classes: Iterable[type]) -> tuple[dict[str, float], dict[str, int]]:
    """Weights and fixed counts per voiceload user type (``flux``/``aura``/``agent``).

    As in Locust's dispatcher, a class with a ``fixed_count`` (e.g. from ``--config-users``)
    gets exactly that many users and takes no part in the weighted share of the rest.
    """
    weights: dict[str, float] = {}
    fixed: dict[str, int] = {}
    for cls in user_classes:
        user_type = getattr(cls, "user_type", None)
        if not user_type:
            continue
        count = int(getattr(cls, "fixed_count", 0) or 0)
        if count > 0:
            fixed[user_type] = fixed.get(user_type, 0) + count
        else:
            weights[user_type] = weights.get(user_type, 0.0) + float(getattr(cls, "weight", 1))
    return weights, fixed


def check_run(environment: Environment) -> tuple[RunSettings, Target, SessionFactory | None]:
    """Check voiceload's options, fixtures, spend and the target; raise :class:`ConfigError`.

    Runs at ``init`` and again at ``test_start`` when the options changed (the web UI's form).
    """
    if environment.parsed_options is None:
        raise ConfigError("Locust environment has no parsed options: pass parsed_options=")
    settings = settings_from(environment.parsed_options)
    credentials = load_credentials()
    if credentials.api_token or credentials.deepgram_api_key:
        # Every Locust process holding a secret redacts its own output, whoever started it:
        # `voiceload run` does this too, but `locust -f ... --worker` and `--processes N`
        # children reach voiceload only through this init (redact_stdio is idempotent).
        # (load_credentials has already turned on log redaction for a process holding one)
        redact_stdio()
    target = settings.resolve_target(credentials)
    factory = _session_factory(environment, settings, target)
    if not isinstance(environment.runner, WorkerRunner):
        _confirm_spend(environment, settings, target)
    if not isinstance(environment.runner, MasterRunner):
        problem = probe_tcp(target.flux.url)
        if problem:
            raise ConfigError(problem)
    return settings, target, factory


def on_init(environment: Environment, **_: Any) -> None:
    """``init`` listener: check options and the target once, then install a :class:`RunPlugin`.

    Bad options or a target that refuses connections end the process here with one log line
    and exit code 2, before any user starts.
    """
    try:
        settings, target, factory = check_run(environment)
    except ConfigError as exc:
        logger.error("voiceload: %s", exc)
        raise SystemExit(EXIT_BAD_INPUT) from None
    plugin = RunPlugin(environment, settings, target, factory)
    _PLUGINS[id(environment)] = plugin
    plugin.install()


def register(events: Any) -> None:
    """Hook voiceload into Locust: its command-line options and the ``init`` listener."""
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(on_init)
