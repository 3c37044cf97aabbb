"""RunPlugin split by job (issue 17): roles, the lifecycle state, the outbox, the collector."""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust import User, task

from voiceload.metrics import Phase, Recorder
from voiceload.runner import plugin as vl_plugin
from voiceload.runner.plugin import Role, RunState
from voiceload.runner.sink import Outbox


class IdleUser(User):
    @task
    def nothing(self) -> None:
        pass


def test_roles_decide_who_generates_and_who_collects() -> None:
    assert (Role.LOCAL.generates, Role.LOCAL.collects) == (True, True)
    assert (Role.WORKER.generates, Role.WORKER.collects) == (True, False)
    assert (Role.MASTER.generates, Role.MASTER.collects) == (False, True)


def test_outbox_hands_rows_and_cpu_on_once_and_marks_the_last_payload() -> None:
    recorder = Recorder(100.0)
    outbox = Outbox("w-1")
    recorder.record("flux.eot", 5_000, Phase.STEADY)
    outbox.rows.append({"session_id": "w-1-1"})
    outbox.cpu.append(("steady", 40.0))
    first = outbox.take(recorder, 101.0)
    assert (first["worker"], first["sessions"], first["cpu"]) == (
        "w-1", [{"session_id": "w-1-1"}], [("steady", 40.0)],
    )  # fmt: skip
    assert first["hdr"]["final"] is False and "flux.eot" in first["hdr"]["histograms"]
    outbox.last_due = True
    last = outbox.take(recorder, 102.0)
    assert (last["sessions"], last["cpu"], last["hdr"]["final"]) == ([], [], True)


def test_a_local_test_goes_idle_running_finalised_and_writes_its_artifacts(
    tmp_path: Path, listening_port: int, plugin_environment: Callable[..., Any]
) -> None:
    env, plugin = plugin_environment(
        IdleUser, listening_port, tmp_path / "run", "--start-stagger-s", "0"
    )
    assert (plugin.role, plugin.state, plugin.running) == (Role.LOCAL, RunState.IDLE, False)
    plugin.on_test_start(env)
    assert (plugin.state, plugin.running, plugin.finalised) == (RunState.RUNNING, True, False)
    assert plugin.run_dir == tmp_path / "run" and (plugin.run_dir / "run.json").is_file()
    plugin.on_spawning_complete(user_count=0)
    plugin.on_test_stopping(env)
    plugin.on_test_stop(env)
    assert (plugin.state, plugin.running, plugin.finalised) == (RunState.FINALISED, False, True)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert set(run["phases"]) == {"ramp_up", "steady", "teardown"}
    assert [w["id"] for w in run["workers"]] == ["local"]
    assert (tmp_path / "run" / "summary.json").is_file()
    plugin.finalise()  # idempotent: nothing is written twice
    assert plugin.state is RunState.FINALISED
    assert vl_plugin.plugin_of(env) is plugin


def test_steady_starts_once_the_start_stagger_after_spawning_has_passed(
    tmp_path: Path, listening_port: int, plugin_environment: Callable[..., Any]
) -> None:
    """Locust spawns a second's users at once; each waits a random part of the stagger before
    its first session, so the steady phase begins only when the last of them has started."""
    import gevent

    env, plugin = plugin_environment(
        IdleUser, listening_port, tmp_path / "run", "--start-stagger-s", "0.3"
    )
    plugin.on_test_start(env)
    plugin.on_spawning_complete(user_count=0)
    assert plugin.phases.phase is Phase.RAMP_UP  # the last users may not have started yet
    gevent.sleep(0.6)
    assert plugin.phases.phase is Phase.STEADY
    plugin.on_test_stopping(env)
    plugin.on_test_stop(env)


def test_without_a_stagger_steady_starts_when_spawning_completes(
    tmp_path: Path, listening_port: int, plugin_environment: Callable[..., Any]
) -> None:
    env, plugin = plugin_environment(
        IdleUser, listening_port, tmp_path / "run", "--start-stagger-s", "0"
    )
    plugin.on_test_start(env)
    plugin.on_spawning_complete(user_count=0)
    assert plugin.phases.phase is Phase.STEADY
    plugin.on_test_stopping(env)
    plugin.on_test_stop(env)


class _Uniform:
    """An rng whose ``uniform(a, b)`` answers ``b`` and records the bounds asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.asked.append((a, b))
        return b


def test_each_user_waits_a_random_part_of_the_stagger_before_its_first_session(
    tmp_path: Path,
    listening_port: int,
    plugin_environment: Callable[..., Any],
    monkeypatch: Any,
) -> None:
    _, plugin = plugin_environment(
        IdleUser, listening_port, tmp_path / "run", "--start-stagger-s", "0.7"
    )
    _, unstaggered = plugin_environment(
        IdleUser, listening_port, tmp_path / "run2", "--start-stagger-s", "0"
    )
    slept: list[float] = []
    # the plugin's own name for gevent only (patching gevent.sleep itself would make every
    # other greenlet of this process spin)
    monkeypatch.setattr(vl_plugin, "gevent", types.SimpleNamespace(sleep=slept.append))
    rng = _Uniform()
    plugin.stagger_start(rng)
    assert rng.asked == [(0.0, 0.7)] and slept == [0.7]
    unstaggered.stagger_start(rng)
    assert slept == [0.7] and len(rng.asked) == 1  # no wait at all
