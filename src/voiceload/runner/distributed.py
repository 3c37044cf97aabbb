"""Distributed runs: one Locust master, N workers, and every sample accounted for (issue 5).

Workers run the users; the master only collects (see :mod:`voiceload.runner.plugin`: payloads of
drained histograms, session rows and CPU samples piggy-back on Locust's ``report_to_master`` and
are merged in ``worker_report``). This module adds what Locust's own distributed mode lacks:

**The final-flush handshake.** Locust's master waits 0.5 s for the workers' last reports, while a
worker first waits up to ``--stop-timeout`` for its users; everything recorded in between would be
lost, even from Locust's own tables (MEASUREMENTS.md §5). So, inside the master's
``test_stopping`` listener (:meth:`MasterCoordinator.on_test_stopping`):

1. the master stops dispatching users (:meth:`MasterCoordinator.stop_dispatching`) and sends
   ``hdr_stop`` to every worker that has joined and is not lost;
2. each worker (:meth:`WorkerCoordinator.flush`) stops its users, honouring the stop timeout,
   sends its final payload through the usual ``report_to_master`` path (Locust's statistics
   ride along), then answers ``hdr_final`` with the number of sessions it counted;
3. the master waits, with its receive greenlet still running, until each worker has answered or
   is lost, for at most ``stop timeout + FINAL_MARGIN_S``.

A worker's messages reach the master in order, so its final payload is merged before its answer.
A worker that is interrupted itself (Ctrl-C, SIGTERM) flushes the same way before it quits. A
terminal's Ctrl-C reaches Locust's ``--processes`` workers directly; a worker takes it in its
main greenlet only (:func:`interrupt_main_greenlet_on_sigint`), never inside a session.

**Lost workers.** A worker whose heartbeats stop (Locust marks it ``missing``) or that disappears
without answering is *lost* (:class:`WorkerRoster`): the run goes on with the others, the master
does not wait for it, and run.json / validity say so; what it sent before dying is kept.

**Joining.** A headless master started with ``--expect-workers N --expect-workers-max-wait S``
exits with code 2 and one line naming how many workers joined, shortly before Locust would give
up without saying (:meth:`MasterCoordinator.watch_join`).

**One machine** (``voiceload run --workers N``, ``make bench WORKERS=N``):
:func:`run_with_workers` starts N ``locust --worker`` processes beside the master and cleans them
up. Pure helpers (:func:`worker_command`, :func:`worker_cores`, :class:`WorkerRoster`) are tested
without Locust.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
import gevent.lock

from voiceload.errors import ConfigError
from voiceload.runner import locust_compat
from voiceload.runner.locust_compat import (
    STATE_INIT,
    STATE_MISSING,
    STATE_RUNNING,
    STATE_SPAWNING,
    MasterRunner,
    WorkerRunner,
)

if TYPE_CHECKING:
    from voiceload.runner.plugin import RunPlugin

logger = logging.getLogger("voiceload")

HDR_STOP = "hdr_stop"  # master -> worker: stop your users and send your final payload
HDR_FINAL = "hdr_final"  # worker -> master: my final payload is sent; {"worker", "sessions"}
FINAL_MARGIN_S = 10.0  # on top of the stop timeout, for the last payloads to travel and merge
FINAL_POLL_S = 0.1
JOIN_WATCH_LEAD_S = 0.5  # report a short roster this long before Locust gives up by itself
JOIN_POLL_S = 0.25
DEFAULT_JOIN_TIMEOUT_S = 60.0
WORKER_EXIT_GRACE_S = 15.0  # after the master exits, before workers are terminated
EARLY_EXIT_POLL_S = 0.5
EXIT_WORKERS_MISSING = 2
LOOPBACK = "127.0.0.1"

#: Master-only Locust options (with the number of values each takes) left out of a worker's
#: command line: only the master writes artifacts, runs the clock and sizes the load.
_MASTER_ONLY = {
    "--headless": 0, "--csv": 1, "--csv-full-history": 0, "--html": 1, "--json": 0,
    "-t": 1, "--run-time": 1, "-u": 1, "--users": 1, "-r": 1,
    "--spawn-rate": 1, "--master": 0, "--expect-workers": 1, "--expect-workers-max-wait": 1,
    "--master-bind-host": 1, "--master-bind-port": 1, "--autostart": 0, "--autoquit": 1,
}  # fmt: skip


class WorkersMissingError(ConfigError):
    """Fewer workers joined the master than it expected, within the time it waits."""


# -- pure parts ------------------------------------------------------------------------------------


def join_problem(joined: int, expected: int, waited_s: float, master: str) -> str:
    """The one-line error for workers that never joined (pure)."""
    return (
        f"only {joined} of {expected} Locust workers joined the master at {master} within"
        f" {waited_s:g} s: start the missing ones with `locust -f loadtests/locustfile.py --worker"
        " --master-host <master host>` (same checkout, fixtures and .venv), check that the"
        " master port is reachable from them, or lower --expect-workers"
    )


def worker_command(master_command: Sequence[str], master_host: str, master_port: int) -> list[str]:
    """A worker's Locust command line, derived from the master's (pure).

    Everything but master-only options is kept (locustfile, scenario file, voiceload's options
    such as ``--target`` and ``--fixtures``, user classes): a worker checks its target and loads
    its fixtures when it starts, before the master sends it any option. ``--worker`` and the
    master's address are appended. Options are recognised in ``--flag value`` form.
    """
    command: list[str] = []
    skip = 0
    for arg in master_command:
        if skip:
            skip -= 1
            continue
        flag = arg.split("=", 1)[0]
        if flag in _MASTER_ONLY:
            skip = 0 if "=" in arg else _MASTER_ONLY[flag]
            continue
        command.append(arg)
    return [*command, "--worker", "--master-host", master_host, "--master-port", str(master_port)]


def worker_cores(workers: int, emulator_core: int | None, cores: int | None) -> list[int | None]:
    """The CPU core each worker is pinned to, round-robin over the cores the emulator leaves
    (pure). ``None`` for every worker when nothing is pinned (no emulator core, unknown cores)."""
    if emulator_core is None or cores is None or cores < 2:
        return [None] * workers
    free = [c for c in range(cores) if c != emulator_core]
    return [free[i % len(free)] for i in range(workers)]


@dataclass
class WorkerRoster:
    """The master's book of workers for one test (pure: it is fed Locust's view, never reads it).

    A worker *joins* when it connects; it *answers* with ``hdr_final`` once its final payload is
    sent; it is *lost* when it went missing (heartbeats stopped) or vanished from the master's
    list without having answered. An answer clears a worker from lost: its samples all arrived.
    """

    joined: list[str] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)  # worker -> sessions it counted
    missing: set[str] = field(default_factory=set)

    def join(self, worker_id: str) -> None:
        if worker_id not in self.joined:
            self.joined.append(worker_id)

    def answer(self, worker_id: str, sessions_counted: int) -> None:
        self.join(worker_id)
        self.answers[worker_id] = sessions_counted

    def observe(self, states: Mapping[str, str]) -> list[str]:
        """Feed the master's current ``{worker id: Locust state}``; return workers newly lost."""
        newly_lost = []
        for worker_id in self.joined:
            if worker_id in self.answers or worker_id in self.missing:
                continue
            state = states.get(worker_id)
            if state is None or state == STATE_MISSING:
                self.missing.add(worker_id)
                newly_lost.append(worker_id)
        return newly_lost

    def pending(self) -> list[str]:
        """Workers the final flush still waits for: joined, not answered, not lost."""
        return [w for w in self.joined if w not in self.answers and w not in self.missing]

    def lost(self) -> set[str]:
        return self.missing - set(self.answers)

    def new_test(self, states: Mapping[str, str]) -> None:
        """Start a new test: forget answers; keep only workers still connected and alive."""
        self.joined = [w for w in self.joined if states.get(w, STATE_MISSING) != STATE_MISSING]
        self.answers.clear()
        self.missing.clear()


# -- Locust wiring ---------------------------------------------------------------------------------


class Coordinator:
    """What :class:`~voiceload.runner.plugin.RunPlugin` calls; a local run has none."""

    def on_test_stopping(self) -> None:
        """Inside Locust's ``test_stopping`` (the plugin's listener)."""

    def on_quitting(self) -> None:
        """In the plugin's ``quitting`` listener: a worker's first step; a master's just before
        it writes the artifacts (only while its test is still open)."""

    def workers(self) -> list[str]:
        """Every worker seen in this test, in join order."""
        return []

    def lost_workers(self) -> set[str]:
        return set()

    def answered_counts(self) -> dict[str, int]:
        """Each answering worker's own count of its sessions (its ``hdr_final`` answer)."""
        return {}


class MasterCoordinator(Coordinator):
    """The master's half: the roster, the final-flush wait, the join watch."""

    def __init__(self, plugin: RunPlugin, runner: MasterRunner) -> None:
        self.plugin = plugin
        self.runner = runner
        self.roster = WorkerRoster()
        self._flush_done: gevent.event.Event | None = None
        self._dispatcher: Any = None  # the greenlet running MasterRunner.start (test_start)
        events: Any = plugin.environment.events
        events.worker_connect.add_listener(lambda client_id, **_: self.roster.join(client_id))
        events.test_start.add_listener(self._on_test_start)
        runner.register_message(HDR_FINAL, self._on_final)

    def _states(self) -> dict[str, str]:
        return locust_compat.worker_states(self.runner)

    def _observe(self) -> None:
        for worker_id in self.roster.observe(self._states()):
            logger.error("voiceload: worker %s is lost (no heartbeat, no final report); the run"
                         " goes on with the others and keeps what it sent", worker_id)  # fmt: skip

    def _on_test_start(self, **_: Any) -> None:
        self.roster.new_test(self._states())
        self._flush_done = None
        self._dispatcher = gevent.getcurrent()  # Locust fires test_start from MasterRunner.start

    def stop_dispatching(self) -> None:
        """If the master is still sending users to workers (a stop during the ramp-up), end that
        now, as Locust's local runner kills its spawning greenlet when it stops.

        Locust's master kills its dispatch greenlet only after ``test_stopping`` (and, on Ctrl-C
        or SIGTERM, after ``quitting``) has returned, i.e. after the whole handshake. Until then
        it would keep sending ``spawn`` to workers that are flushing, which restart users whose
        sessions never finish, and at the end of the ramp-up ``spawning_complete`` would set
        the state back to running, so that a worker quitting after its answer makes the master
        re-dispatch every user to the others."""
        dispatcher, self._dispatcher = self._dispatcher, None
        if (
            self.runner.state == STATE_SPAWNING
            and isinstance(dispatcher, gevent.Greenlet)
            and dispatcher is not gevent.getcurrent()  # a stop from inside start() itself
            and not dispatcher.dead
            and not locust_compat.is_runner_greenlet(self.runner, dispatcher)  # never its loops
        ):
            logger.info("voiceload: stopping the ramp-up: no more users go to the workers")
            dispatcher.kill(block=True)

    def _on_final(self, environment: Any, msg: Any, **_: Any) -> None:
        worker_id = str(msg.data["worker"])
        counted = int(msg.data["sessions"])
        self.roster.answer(worker_id, counted)
        received = self.plugin.worker_sessions.get(worker_id, 0)
        if received != counted:
            logger.error("voiceload: worker %s counted %d sessions but %d rows reached the master",
                         worker_id, counted, received)  # fmt: skip
        else:
            logger.info("voiceload: worker %s answered the final flush: %d sessions",
                        worker_id, counted)  # fmt: skip

    def workers(self) -> list[str]:
        return list(self.roster.joined)

    def answered_counts(self) -> dict[str, int]:
        return dict(self.roster.answers)

    def lost_workers(self) -> set[str]:
        self._observe()
        return self.roster.lost()

    def on_test_stopping(self) -> None:
        self.collect_finals()

    def on_quitting(self) -> None:
        """Before the plugin writes the artifacts: if the test still runs (Ctrl-C, SIGTERM), stop
        it as Locust's ``quit`` would (``test_stopping`` runs the handshake); if a handshake is
        under way (a signal during the stop), wait for it."""
        if self._flush_done is None and self.runner.state in (STATE_SPAWNING, STATE_RUNNING):
            locust_compat.stop_without_telling_workers(self.runner)
        self.collect_finals()

    def collect_finals(self) -> None:
        """The handshake (module docstring); returns once every worker answered or is lost, or
        after stop timeout + :data:`FINAL_MARGIN_S`. A second call waits for the first."""
        stop_timeout_s = float(self.plugin.environment.stop_timeout or 0)
        limit_s = stop_timeout_s + FINAL_MARGIN_S
        if self._flush_done is not None:
            self._flush_done.wait(timeout=limit_s)
            return
        self._flush_done = done = gevent.event.Event()
        self.stop_dispatching()
        if self.runner.state in (STATE_SPAWNING, STATE_RUNNING):
            # What Locust's stop() does right after this listener, done first: a worker that
            # quits or reconnects during the wait must not make the master re-dispatch users.
            locust_compat.mark_stopping(self.runner)
        try:
            self._observe()
            asked = self.roster.pending()
            for worker_id in asked:
                try:
                    self.runner.send_message(HDR_STOP, None, client_id=worker_id)
                except Exception as exc:  # a dead peer: it will show as lost
                    logger.warning("voiceload: could not ask worker %s for its final report: %s",
                                   worker_id, exc)  # fmt: skip
            logger.info("voiceload: asked %d worker(s) for their final reports (waiting up to"
                        " %g s)", len(asked), limit_s)  # fmt: skip
            deadline_s = time.monotonic() + limit_s
            while self.roster.pending() and time.monotonic() < deadline_s:
                gevent.sleep(FINAL_POLL_S)  # the receive greenlet merges payloads meanwhile
                self._observe()
            late = self.roster.pending()
            if late:
                logger.error("voiceload: no final report within %g s from worker(s) %s: their"
                             " last samples are missing", limit_s, ", ".join(late))  # fmt: skip
        finally:
            done.set()

    def watch_join(self, expected: int, max_wait_s: float, master: str) -> None:
        """Greenlet: if fewer than ``expected`` workers have joined when the wait ends, log
        :func:`join_problem`, tell the joined ones to quit and exit the process with code 2."""
        deadline_s = time.monotonic() + max(0.0, max_wait_s - JOIN_WATCH_LEAD_S)
        while time.monotonic() < deadline_s:
            if self.runner.state != STATE_INIT:
                return  # the test started: every expected worker joined
            gevent.sleep(min(JOIN_POLL_S, max(0.0, deadline_s - time.monotonic())))
        joined = locust_compat.ready_worker_count(self.runner)
        if self.runner.state != STATE_INIT or joined >= expected:
            return
        logger.error("voiceload: %s", join_problem(joined, expected, max_wait_s, master))
        for worker_id in locust_compat.worker_states(self.runner):
            with contextlib.suppress(Exception):  # best effort: the process exits next
                locust_compat.tell_worker_to_quit(self.runner, worker_id)
        raise SystemExit(EXIT_WORKERS_MISSING)  # gevent re-raises it in the main greenlet


def interrupt_main_greenlet_on_sigint() -> Any:
    """Make SIGINT raise ``KeyboardInterrupt`` in the main greenlet only; returns the handler
    (``.cancel()`` removes it).

    Python raises it in whichever greenlet is running when the signal arrives: a user's
    session (its samples recorded, its row never written) or Locust's message loop. Locust's
    ``main()`` waits in the main greenlet and shuts down when it gets ``KeyboardInterrupt``
    (the ``quitting`` event, where a worker flushes), so that is the one place it belongs."""

    def interrupt() -> None:
        gevent.get_hub().parent.throw(KeyboardInterrupt())

    return gevent.signal_handler(signal.SIGINT, interrupt)


class WorkerCoordinator(Coordinator):
    """A worker's half: answer ``hdr_stop`` (or its own interruption) with one final flush."""

    def __init__(self, plugin: RunPlugin, runner: WorkerRunner) -> None:
        self.plugin = plugin
        self.runner = runner
        self.worker_id = locust_compat.worker_id_of(runner)
        self.sessions_counted = 0
        self.answered = False
        self.stopping = False  # this test's final flush has begun: no more users start
        self._lock = gevent.lock.Semaphore()
        events: Any = plugin.environment.events
        events.request.add_listener(self._on_request)
        events.test_start.add_listener(self._on_test_start)
        runner.register_message(HDR_STOP, lambda environment, msg, **_: self.flush(),
                                concurrent=True)  # fmt: skip
        self._start_worker = locust_compat.intercept_spawn(runner, self._start_users)
        interrupt_main_greenlet_on_sigint()
        logger.info("voiceload: worker %s is pid %d", self.worker_id, os.getpid())

    def _on_request(self, name: str, **_: Any) -> None:
        if name == "session":  # the plugin fires one "session" request per finished session
            self.sessions_counted += 1

    def _on_test_start(self, **_: Any) -> None:
        self.sessions_counted = 0
        self.answered = False
        self.stopping = False

    def _start_users(self, user_classes_count: dict[str, int], **kwargs: Any) -> None:
        """Locust's ``start_worker`` (what a ``spawn`` message runs), except once the final
        flush has begun: a ``spawn`` the master sent before it learnt of the stop (a Ctrl-C
        reaching every process during the ramp-up) would start sessions that end after the
        final report, their first samples counted and their rows lost."""
        if self.stopping:
            logger.info("voiceload: worker %s starts no users after its final flush began",
                        self.worker_id)  # fmt: skip
            return
        self._start_worker(user_classes_count, **kwargs)

    def on_quitting(self) -> None:
        if self.plugin.running:
            self.flush()

    def flush(self) -> None:
        """Stop the users (honouring the stop timeout), send the final payload, answer
        ``hdr_final``. Runs once per test; a concurrent second call waits for the first."""
        with self._lock:
            if self.answered:
                return
            self.stopping = True
            runner = self.runner
            runner.stop()  # fires test_stop: the plugin marks its next payload final
            locust_compat.send_stats_now(runner, self.plugin.environment)  # now, not in 3 s
            runner.send_message(HDR_FINAL, {"worker": self.worker_id,
                                            "sessions": self.sessions_counted})  # fmt: skip
            self.answered = True
            logger.info("voiceload: worker %s sent its final report: %d sessions counted",
                        self.worker_id, self.sessions_counted)  # fmt: skip


def install(plugin: RunPlugin) -> Coordinator | None:
    """The coordinator for this process's role (``None`` in a local run); called once, from
    :meth:`RunPlugin.install`."""
    runner = plugin.environment.runner
    if isinstance(runner, WorkerRunner):
        return WorkerCoordinator(plugin, runner)
    if not isinstance(runner, MasterRunner):
        return None
    coordinator = MasterCoordinator(plugin, runner)
    options = plugin.environment.parsed_options
    max_wait_s = float(getattr(options, "expect_workers_max_wait", 0) or 0)
    if getattr(options, "headless", False) and max_wait_s > 0:
        master = f"{runner.master_bind_host or '*'}:{runner.master_bind_port}"
        expected = int(getattr(options, "expect_workers", 1) or 1)
        gevent.spawn(coordinator.watch_join, expected, max_wait_s, master)
    return coordinator


# -- one machine: master + N worker processes ------------------------------------------------------


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now (for the master's bind port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def master_command(
    command: Sequence[str], workers: int, port: int, join_timeout_s: float = DEFAULT_JOIN_TIMEOUT_S
) -> list[str]:
    """``command`` (a headless Locust command) as a master expecting ``workers`` (pure)."""
    if workers < 1:
        raise ConfigError(f"--workers {workers} must be 1 or more")
    extra = ["--master", "--master-bind-host", LOOPBACK, "--master-bind-port", str(port),
             "--expect-workers", str(workers)]  # fmt: skip
    if not any(a.split("=", 1)[0] == "--expect-workers-max-wait" for a in command):
        extra += ["--expect-workers-max-wait", f"{join_timeout_s:g}"]
    return [*command, *extra]


def _pinned(command: list[str], core: int | None) -> list[str]:
    return command if core is None else ["taskset", "-c", str(core), *command]


def start_workers(
    command: Sequence[str], cores: Iterable[int | None], log_dir: Path
) -> list[subprocess.Popen[bytes]]:
    """One worker process per entry of ``cores``, output in ``log_dir/worker-<i>.log``; each in
    its own session, so a terminal's Ctrl-C reaches only the master, which stops them in order."""
    processes = []
    for i, core in enumerate(cores, start=1):
        with (log_dir / f"worker-{i}.log").open("wb") as log:
            processes.append(subprocess.Popen(_pinned(list(command), core), stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))
    return processes


def stop_workers(processes: Sequence[subprocess.Popen[bytes]], grace_s: float) -> list[int]:
    """Wait up to ``grace_s`` for workers to exit (the master tells them to), then SIGTERM and,
    10 s later, SIGKILL the rest; their exit codes."""
    deadline_s = time.monotonic() + grace_s
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline_s - time.monotonic()))
    for process in processes:
        if process.poll() is None:
            logger.warning("voiceload: worker pid %d did not exit; terminating it", process.pid)
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return [int(p.returncode) for p in processes]


def run_with_workers(
    command: Sequence[str],
    workers: int,
    log_dir: Path,
    run_master: Callable[[list[str]], int],
    *,
    emulator_core: int | None = None,
    cores: int | None = None,
) -> int:
    """Run ``command`` as a master on a free loopback port with ``workers`` worker processes
    beside it; ``run_master(master_command)`` runs the master in the foreground and returns its
    exit code, which this returns. Workers are always stopped before returning."""
    port = free_port()
    master = master_command(command, workers, port)
    worker = worker_command(command, LOOPBACK, port)
    processes = start_workers(worker, worker_cores(workers, emulator_core, cores), log_dir)
    print(f"{workers} Locust worker(s) (pids {', '.join(str(p.pid) for p in processes)}), logs"
          f" in {log_dir}/worker-*.log; master on {LOOPBACK}:{port}", flush=True)  # fmt: skip
    master_done = threading.Event()
    watcher = threading.Thread(target=_report_early_exits, args=(processes, log_dir, master_done),
                               daemon=True)  # fmt: skip
    watcher.start()
    try:
        return run_master(master)
    finally:
        master_done.set()
        watcher.join(timeout=5)
        stop_workers(processes, WORKER_EXIT_GRACE_S)


def _report_early_exits(
    processes: Sequence[subprocess.Popen[bytes]], log_dir: Path, master_done: threading.Event
) -> None:
    """Thread: say at once when a worker fails while the master still runs (a bad option, an
    import error, a kill), with the last line of its log, instead of only the master's error."""
    reported: set[int] = set()
    while not master_done.wait(EARLY_EXIT_POLL_S) and len(reported) < len(processes):
        for i, process in enumerate(processes, start=1):
            code = process.poll()
            if not code or i in reported:  # running, or told to quit by the master (code 0)
                continue
            reported.add(i)
            log = log_dir / f"worker-{i}.log"
            lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            print(f"voiceload run: worker {i} (pid {process.pid}) exited with code {code}:"
                  f" {lines[-1] if lines else '(no output)'} (log: {log})",
                  file=sys.stderr, flush=True)  # fmt: skip
