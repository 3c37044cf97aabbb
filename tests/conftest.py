"""Shared test helpers: paths to the repository and its test data; a listening port and a Locust
environment with voiceload's plugin."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Data only the tests need (alignments, hashes of original recordings): tests/data/.
TEST_DATA = REPO / "tests" / "data"


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def test_data_dir() -> Path:
    return TEST_DATA


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A loopback port that accepts connections (for the runner's start-up TCP probe)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def plugin_environment(user: type, port: int, run_dir: Path, *extra: str) -> tuple[Any, Any]:
    """A Locust ``Environment`` with a local runner and voiceload's plugin, after ``init``:
    ``(environment, RunPlugin)``. Locust is imported here, not at module level: importing it
    monkey-patches the process with gevent, which only the tests that use it want."""
    from locust.env import Environment
    from locust.event import Events

    from voiceload.runner import plugin as vl_plugin
    from voiceload.runner.options import locust_parser

    options = locust_parser().parse_args(
        ["--headless", "--emulator-url", f"ws://127.0.0.1:{port}", "--run-dir", str(run_dir),
         "--reports-dir", str(run_dir.parent), *extra]
    )  # fmt: skip
    events = Events()
    vl_plugin.register(events)
    env = Environment(user_classes=[user], events=events, parsed_options=options)
    runner = env.create_local_runner()
    events.init.fire(environment=env, runner=runner, web_ui=None)
    return env, vl_plugin.plugin_of(env)


@pytest.fixture(name="plugin_environment")
def plugin_environment_fixture() -> Callable[..., tuple[Any, Any]]:
    """:func:`plugin_environment` for tests (a fixture, so test files need not import conftest)."""
    return plugin_environment
