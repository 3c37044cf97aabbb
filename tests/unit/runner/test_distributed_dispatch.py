"""Stops and interrupts around the final-flush handshake (issue 5).

The master's handshake ends a ramp-up still in progress: Locust's master kills its user dispatch
only after the handshake, so it would keep sending users to workers that are flushing (a fake
master stands in for Locust's, with Locust's real event hooks). A worker takes Ctrl-C in its
main greenlet, never in a session that happens to be running.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import gevent
import gevent.pool
import pytest
from locust.event import Events
from locust.runners import STATE_RUNNING, STATE_SPAWNING

from voiceload.runner import distributed
from voiceload.runner.distributed import MasterCoordinator

STEPS = 1000


@dataclass
class FakeMaster:
    """What MasterCoordinator reads of Locust's MasterRunner."""

    state: str = STATE_SPAWNING
    greenlet: gevent.pool.Group = field(default_factory=gevent.pool.Group)
    clients: Any = field(default_factory=lambda: SimpleNamespace(all=[], ready=[]))

    def register_message(self, *_: Any, **__: Any) -> None:
        pass


@dataclass
class Setup:
    events: Events
    master: FakeMaster
    coordinator: MasterCoordinator
    sent: list[int]

    def dispatch(self) -> None:
        """As MasterRunner.start does: fire test_start, then send users one step at a time."""
        self.events.test_start.fire(environment=None)
        for step in range(STEPS):
            self.sent.append(step)
            gevent.sleep(0.001)


@pytest.fixture
def setup() -> Iterator[Setup]:
    events = Events()
    master = FakeMaster()
    plugin: Any = SimpleNamespace(environment=SimpleNamespace(events=events))
    yield Setup(events, master, MasterCoordinator(plugin, master), [])  # type: ignore[arg-type]
    master.greenlet.kill()


def started(setup: Setup, own: bool = False) -> gevent.Greenlet:
    dispatcher = gevent.spawn(setup.dispatch)
    if own:
        setup.master.greenlet.add(dispatcher)
    while len(setup.sent) < 3:
        gevent.sleep(0.001)
    return dispatcher


def test_a_stop_during_the_ramp_up_sends_no_more_users(setup: Setup) -> None:
    dispatcher = started(setup)
    setup.coordinator.stop_dispatching()
    assert dispatcher.dead
    sent = len(setup.sent)
    gevent.sleep(0.02)
    assert len(setup.sent) == sent < STEPS


def test_a_finished_ramp_up_is_left_alone(setup: Setup) -> None:
    dispatcher = started(setup)
    setup.master.state = STATE_RUNNING  # spawning_complete fired: nothing to stop
    setup.coordinator.stop_dispatching()
    assert not dispatcher.dead
    dispatcher.kill()


def test_the_runners_own_greenlets_are_never_killed(setup: Setup) -> None:
    dispatcher = started(setup, own=True)  # e.g. a rebalance started by the client listener
    setup.coordinator.stop_dispatching()
    assert not dispatcher.dead


SIGINT_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import gevent
    from voiceload.runner.distributed import interrupt_main_greenlet_on_sigint

    if sys.argv[1] == "handler":
        interrupt_main_greenlet_on_sigint()

    def session():  # busy in Python code when the signal arrives, as a session can be
        total = 0
        for i in range(2_000_000):
            total += i
            if i == 1000:
                os.kill(os.getpid(), signal.SIGINT)
        gevent.sleep(0.01)

    busy = gevent.spawn(session)
    try:
        busy.join()
        gevent.sleep(1)
    except KeyboardInterrupt:
        print("main greenlet interrupted")
    busy.join()
    print("session", "finished" if busy.successful() else f"died: {busy.exception!r}")
""")


@pytest.mark.parametrize(
    ("mode", "session"), [("handler", "session finished"), ("python", "session died")]
)
def test_ctrl_c_in_a_worker_interrupts_the_main_greenlet_not_a_session(
    mode: str, session: str
) -> None:
    """("python": what happens without the handler, so the test shows a difference.)"""
    done = subprocess.run([sys.executable, "-c", SIGINT_SCRIPT, mode], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    lines = done.stdout.splitlines()
    assert lines[0] == "main greenlet interrupted", done.stdout + done.stderr
    assert lines[1].startswith(session), done.stdout + done.stderr


@dataclass
class FakeWorker:
    """What WorkerCoordinator uses of Locust's WorkerRunner."""

    client_id: str = "w1"
    started: list[dict[str, int]] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)

    def register_message(self, *_: Any, **__: Any) -> None:
        pass

    def start_worker(self, user_classes_count: dict[str, int], **_: Any) -> None:
        self.started.append(user_classes_count)

    def stop(self) -> None:
        pass

    def send_message(self, kind: str, data: Any = None) -> None:
        self.sent.append(kind)


def test_a_worker_starts_no_users_once_its_final_flush_began(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A `spawn` the master sent before it learnt of the stop arrives after the worker's own
    Ctrl-C flush: Locust would start those users (spawn -> start_worker); they must not start."""
    monkeypatch.setattr(distributed, "interrupt_main_greenlet_on_sigint", lambda: None)
    events = Events()
    worker = FakeWorker()
    plugin: Any = SimpleNamespace(environment=SimpleNamespace(events=events))
    coordinator = distributed.WorkerCoordinator(plugin, worker)  # type: ignore[arg-type]
    worker.start_worker({"FluxUser": 2})  # Locust's spawn handler calls it through the instance
    coordinator.flush()
    assert worker.sent == ["stats", distributed.HDR_FINAL]
    worker.start_worker({"FluxUser": 4})
    assert worker.started == [{"FluxUser": 2}]
    events.test_start.fire(environment=None)  # a new test (web UI): users start again
    worker.start_worker({"FluxUser": 1})
    assert worker.started == [{"FluxUser": 2}, {"FluxUser": 1}]
