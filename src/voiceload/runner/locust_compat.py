"""Every use of Locust beyond its documented plugin API, in one place, behind a version check.

voiceload's plugin (:mod:`voiceload.runner.plugin`) and its distributed handshake
(:mod:`voiceload.runner.distributed`) need more of Locust than event hooks: the master's worker
table (``runner.clients``, each node's ``id`` and ``state``), the runner's own greenlet group,
its state constants and ``update_state``, a worker's ``client_id`` and ``start_worker``
(what a ``spawn`` message runs), Locust's internal ``stats`` and ``quit`` message types, the
``process_exit_code`` of an environment, and the command-line parser builders of
``locust.argument_parser``. None of these is a stable API, so nothing else in voiceload imports
Locust: the rest uses the names and helpers defined here, and importing this module with a
Locust release outside :data:`SUPPORTED` fails at once with one clear line.

Moving to a new Locust release: check each helper below against its source, run
tests/integration/test_locust_plugin.py, test_distributed.py and test_locust_run.py, then widen
:data:`SUPPORTED` (and ``locust`` in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import locust
from locust import argument_parser
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import (
    STATE_CLEANUP,
    STATE_INIT,
    STATE_MISSING,
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPED,
    STATE_STOPPING,
    MasterRunner,
    WorkerRunner,
)

from voiceload.versions import Supported, check_supported, parse_version

__all__ = [
    "STATE_INIT", "STATE_MISSING", "STATE_RUNNING", "STATE_SPAWNING", "STATE_STOPPING",
    "SUPPORTED", "Environment", "MasterRunner", "StopUser", "WorkerRunner", "check_version",
    "parse_version",
]  # fmt: skip

#: The Locust releases whose internals this module was checked against: [low, high).
SUPPORTED: Final[Supported] = ((2, 40), (3, 0))


def check_version(version: str) -> None:
    """Raise :class:`~voiceload.errors.ConfigError` when ``version`` is outside
    :data:`SUPPORTED` (:func:`voiceload.versions.check_supported`)."""
    check_supported("locust", version, SUPPORTED, "voiceload")


check_version(locust.__version__)


# -- the master's view of its workers ---------------------------------------------------------


def worker_states(runner: MasterRunner) -> dict[str, str]:
    """Every worker the master knows: id -> Locust state (``STATE_MISSING`` once its heartbeats
    stop)."""
    return {client.id: client.state for client in runner.clients.all}


def ready_worker_count(runner: MasterRunner) -> int:
    """How many workers have joined and are ready for users."""
    return len(runner.clients.ready)


def is_runner_greenlet(runner: MasterRunner, greenlet: Any) -> bool:
    """Whether ``greenlet`` is one of the runner's own loops (never to be killed)."""
    return greenlet in runner.greenlet


def mark_stopping(runner: MasterRunner) -> None:
    """Put the master in ``STATE_STOPPING`` now, as its ``stop()`` would after
    ``test_stopping``: a worker that quits meanwhile must not make it re-dispatch users."""
    runner.update_state(STATE_STOPPING)


def tell_worker_to_quit(runner: MasterRunner, worker_id: str) -> None:
    """Send Locust's own ``quit`` message to one worker."""
    runner.send_message("quit", None, client_id=worker_id)


def stop_without_telling_workers(runner: MasterRunner) -> None:
    """Stop the test on the master only (the handshake tells the workers itself)."""
    runner.stop(send_stop_to_client=False)


# -- a worker ---------------------------------------------------------------------------------


def worker_id_of(runner: WorkerRunner) -> str:
    """The id the master knows this worker by."""
    return str(runner.client_id)


def intercept_spawn(runner: WorkerRunner, replacement: Callable[..., None]) -> Callable[..., None]:
    """Make a ``spawn`` message run ``replacement`` instead of the worker's ``start_worker``;
    returns the original, for ``replacement`` to call."""
    original: Callable[..., None] = runner.start_worker
    runner.start_worker = replacement  # type: ignore[method-assign]
    return original


def send_stats_now(runner: WorkerRunner, environment: Environment) -> None:
    """What Locust's stats reporter sends every few seconds, sent now: ``report_to_master``
    listeners fill the data (voiceload's payload rides there), then the ``stats`` message."""
    data: dict[str, Any] = {}
    events: Any = environment.events
    events.report_to_master.fire(client_id=runner.client_id, data=data)
    runner.send_message("stats", data)


# -- any runner -------------------------------------------------------------------------------


def is_stopping_or_stopped(runner: Any) -> bool:
    """Whether the runner's test is stopping or over (a Ctrl-C then is not an interruption)."""
    return runner.state in (STATE_STOPPED, STATE_STOPPING, STATE_CLEANUP)


def runner_state(runner: Any) -> str:
    """The runner's Locust state (``STATE_INIT``, ``STATE_SPAWNING``, ...)."""
    return str(runner.state)


def set_process_exit_code(environment: Environment, code: int) -> None:
    """The exit code Locust's ``main`` ends the process with."""
    environment.process_exit_code = code


def empty_locust_parser() -> Any:
    """A parser with every Locust option and none of the config files (untyped in Locust)."""
    locust_args: Any = argument_parser
    parser = locust_args.get_empty_argument_parser(add_help=False, default_config_files=[])
    locust_args.setup_parser_arguments(parser)
    return parser
