"""RunPlugin split by job (issue 17): roles, the lifecycle state, the outbox, the collector."""

from __future__ import annotations

import json
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
    env, plugin = plugin_environment(IdleUser, listening_port, tmp_path / "run")
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
