"""The pure parts of distributed runs: command lines, core pinning, the master's worker roster."""

from __future__ import annotations

import pytest

from voiceload.errors import ConfigError
from voiceload.runner.distributed import (
    WorkerRoster,
    join_problem,
    master_command,
    worker_command,
    worker_cores,
)

MASTER = [
    "python", "-m", "locust", "-f", "loadtests/locustfile.py", "--config", "smoke.conf",
    "--headless", "--csv", "runs/r1/locust", "--run-dir", "runs/r1", "--reports-dir", "runs",
    "--target", "emulator", "--emulator-url", "ws://127.0.0.1:9", "--users", "6",
    "--spawn-rate", "2", "--run-time", "30s", "--fixtures", "command_lights", "FluxUser",
]  # fmt: skip


def test_worker_command_keeps_voiceload_options_and_drops_master_only_ones() -> None:
    assert worker_command(MASTER, "10.0.0.5", 5557) == [
        "python", "-m", "locust", "-f", "loadtests/locustfile.py", "--config", "smoke.conf",
        "--run-dir", "runs/r1", "--reports-dir", "runs", "--target", "emulator",
        "--emulator-url", "ws://127.0.0.1:9", "--fixtures", "command_lights", "FluxUser",
        "--worker", "--master-host", "10.0.0.5", "--master-port", "5557",
    ]  # fmt: skip


def test_worker_command_drops_equals_forms_and_short_flags() -> None:
    command = ["locust", "-t", "10s", "--run-time=20s", "-u", "3", "-r", "1", "--users=4",
               "--csv=x", "--frame-ms", "80"]  # fmt: skip
    assert worker_command(command, "h", 1) == [
        "locust", "--frame-ms", "80", "--worker", "--master-host", "h", "--master-port", "1",
    ]  # fmt: skip


def test_a_master_started_by_voiceload_expects_its_workers_for_a_bounded_time() -> None:
    assert master_command(["locust"], 3, 6000, join_timeout_s=45) == [
        "locust", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", "6000",
        "--expect-workers", "3", "--expect-workers-max-wait", "45",
    ]  # fmt: skip


def test_a_join_timeout_given_by_the_user_is_kept() -> None:
    command = master_command(["locust", "--expect-workers-max-wait", "5"], 2, 6000)
    assert command.count("--expect-workers-max-wait") == 1
    assert command[command.index("--expect-workers-max-wait") + 1] == "5"


@pytest.mark.parametrize("workers", [0, -2])
def test_fewer_than_one_worker_is_refused(workers: int) -> None:
    with pytest.raises(ConfigError, match=f"--workers {workers} must be 1 or more"):
        master_command(["locust"], workers, 6000)


@pytest.mark.parametrize(
    ("workers", "emulator_core", "cores", "expected"),
    [
        (3, 1, 2, [0, 0, 0]),  # two cores: the emulator has one, every worker the other
        (3, 3, 4, [0, 1, 2]),
        (4, 3, 4, [0, 1, 2, 0]),
        (2, None, 8, [None, None]),  # nothing pinned
        (2, 0, 1, [None, None]),
        (2, 1, None, [None, None]),
    ],
)
def test_workers_are_pinned_round_robin_off_the_emulator_core(
    workers: int, emulator_core: int | None, cores: int | None, expected: list[int | None]
) -> None:
    assert worker_cores(workers, emulator_core, cores) == expected


def test_the_roster_waits_for_joined_workers_until_they_answer() -> None:
    roster = WorkerRoster()
    roster.join("a")
    roster.join("b")
    roster.join("a")  # a worker that says ready twice (after a web UI stop) is one worker
    assert roster.pending() == ["a", "b"]
    roster.answer("b", 7)
    assert roster.pending() == ["a"]
    assert roster.answers == {"b": 7}
    assert roster.lost() == set()


def test_a_missing_or_vanished_worker_is_lost_and_not_waited_for() -> None:
    roster = WorkerRoster()
    for worker in ("a", "b", "c"):
        roster.join(worker)
    roster.answer("c", 3)
    newly = roster.observe({"a": "missing", "c": "running"})  # b is gone from Locust's list
    assert newly == ["a", "b"]
    assert roster.pending() == []
    assert roster.lost() == {"a", "b"}
    assert roster.observe({}) == []  # reported once; c answered, so it is never lost


def test_an_answer_after_going_missing_means_nothing_was_lost() -> None:
    roster = WorkerRoster()
    roster.join("a")
    roster.observe({"a": "missing"})
    roster.answer("a", 5)  # heartbeats resumed and the final arrived
    assert roster.lost() == set()


def test_a_new_test_forgets_answers_and_dead_workers() -> None:
    roster = WorkerRoster()
    for worker in ("a", "b", "c"):
        roster.join(worker)
    roster.answer("a", 1)
    roster.observe({"a": "ready", "b": "missing", "c": "ready"})
    roster.new_test({"a": "ready", "b": "missing", "c": "ready"})
    assert roster.joined == ["a", "c"]
    assert roster.pending() == ["a", "c"]
    assert roster.lost() == set()


def test_the_join_error_names_how_many_joined() -> None:
    message = join_problem(1, 3, 30, "127.0.0.1:5557")
    assert message.startswith("only 1 of 3 Locust workers joined the master at 127.0.0.1:5557"
                              " within 30 s: ")  # fmt: skip
    assert "\n" not in message
