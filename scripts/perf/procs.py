"""Pinned processes for ``make perf``: the emulator, the load generators, ``voiceload run``.

Pinning: on a machine with two or more cores, load generators run on core 0 (``taskset -c
0``) and the emulator on the last core, so neither steals the other's CPU. Every wait is
bounded; every process started here is stopped here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perf import PerfError
from voiceload.runner.stalls import merge_tables

REPO = Path(__file__).resolve().parents[2]
#: The directory holding the ``perf`` package: perf scripts run as ``python -m perf.<name>``
#: with it on ``PYTHONPATH`` (no ``sys.path`` edits in the code).
SCRIPTS_ROOT = REPO / "scripts"
VOICELOAD = [sys.executable, "-m", "voiceload.cli"]
READY_PREFIX = "voiceload emulator listening on "
START_LIMIT_S = 30.0
STOP_LIMIT_S = 15.0


def cores() -> tuple[str | None, str | None]:
    """``(load_cores, emulator_cores)`` for ``taskset -c``; None when pinning is not possible."""
    count = os.cpu_count() or 1
    if count < 2 or shutil.which("taskset") is None:
        return None, None
    return "0", str(count - 1)


def pinned(command: Sequence[str], cpu_list: str | None) -> list[str]:
    return list(command) if cpu_list is None else ["taskset", "-c", cpu_list, *command]


class EmulatorProcess:
    """``voiceload emulate --port 0`` pinned to ``cpu_list``; a context manager that stops it."""

    def __init__(
        self, config: Path, cpu_list: str | None, *, trace: Path | None = None, processes: int = 1
    ) -> None:
        command = [*VOICELOAD, "emulate", "--port", "0", "--config", str(config),
                   "--processes", str(processes)]  # fmt: skip
        if trace is not None:
            command += ["--trace", str(trace)]
        self.process = subprocess.Popen(
            pinned(command, cpu_list), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip
        try:
            self.url = self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_LIMIT_S
        fd = self.process.stdout.fileno()
        os.set_blocking(fd, False)
        seen = ""
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(BlockingIOError):
                seen += os.read(fd, 4096).decode(errors="replace")
            for line in seen.splitlines():
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX) :].strip()
            time.sleep(0.05)
        self.stop()
        raise PerfError(f"the emulator did not start within {START_LIMIT_S:g} s: {seen[-200:]!r}")

    def cpu_seconds(self) -> float:
        """User+system CPU of the emulator and its children so far (0 if it is gone)."""
        import psutil

        try:
            proc = psutil.Process(self.process.pid)
            procs = [proc, *proc.children(recursive=True)]
            return sum(p.cpu_times().user + p.cpu_times().system for p in procs)
        except psutil.Error:
            return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_LIMIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_LIMIT_S)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def perf_env() -> dict[str, str]:
    """This process's environment with :data:`SCRIPTS_ROOT` first on ``PYTHONPATH``."""
    paths = [str(SCRIPTS_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def run_json(command: Sequence[str], cpu_list: str | None, limit_s: float) -> dict[str, Any]:
    """Run a perf script pinned; return the JSON object on its last stdout line."""
    name = command[2] if command[1:2] == ["-m"] else Path(command[1]).name
    try:
        done = subprocess.run(
            pinned(command, cpu_list), capture_output=True, text=True, timeout=limit_s, cwd=REPO,
            env=perf_env(),
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise PerfError(f"{name} did not finish within {limit_s:g} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise PerfError(f"{name} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def script(module: str, *args: object) -> list[str]:
    """The command running ``perf.<module>`` (e.g. ``"baseline"``) with ``args``."""
    return [sys.executable, "-m", f"perf.{module}", *map(str, args)]


def spawn_rate(users: int) -> int:
    """Users ``voiceload_run`` starts per second: all within about 5 s (at least 20/s)."""
    return max(20, users // 5)


def ramp_s(users: int) -> float:
    """How long ``voiceload_run`` takes to start ``users`` (the baseline ramps the same)."""
    return users / spawn_rate(users)


def voiceload_run(
    emulator_url: str, users: int, frame_ms: int, duration_s: int, reports_dir: Path, *,
    fixtures: str = "", stall_trace: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """One ``voiceload run`` of Flux users (scenario ``flux-capacity``) against the emulator.

    ``voiceload run`` pins Locust to core 0 itself. Returns ``{"summary", "run", "stalls"}``
    (the run's summary.json and run.json; the stall tables, None unless ``stall_trace``).
    Spawn rate: :func:`spawn_rate`. ``fixtures``: ``--fixtures`` (empty: every manifest
    fixture). ``stall_trace``: run with ``VOICELOAD_STALL_TRACE`` (greenlet.settrace on every
    switch: costs CPU, so capacity trials run without it).
    """
    command = [*VOICELOAD, "run", "--scenario", "flux-capacity", "--users", str(users),
               "--spawn-rate", str(spawn_rate(users)), "--duration", f"{duration_s}s",
               "--emulator-url", emulator_url, "--frame-ms", str(frame_ms), "--no-report",
               "--reports-dir", str(reports_dir)]  # fmt: skip
    if fixtures:
        command += ["--fixtures", fixtures]
    command += ["--", "--stop-timeout", "5"]
    limit_s = duration_s + 90.0
    # the stall tracer (voiceload.runner.stalls): each generator writes <prefix>.<worker>.json
    prefix = reports_dir / f"stalls-{users}-{frame_ms}-{time.monotonic_ns()}"
    env = dict(os.environ)
    env.pop("VOICELOAD_STALL_TRACE", None)
    if stall_trace:
        env["VOICELOAD_STALL_TRACE"] = str(prefix)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=limit_s, cwd=REPO, env=env
        )
    except subprocess.TimeoutExpired:
        raise PerfError(f"voiceload run ({users} users) did not finish in {limit_s:g} s") from None
    found = re.search(r"results in (\S+)", done.stdout)
    run_dir = Path(found.group(1)) if found else None
    if run_dir is None or not (run_dir / "summary.json").is_file():
        raise PerfError(
            f"voiceload run ({users} users) wrote no summary.json: {done.stderr.strip()[-300:]}"
        )
    tables = [json.loads(f.read_text(encoding="utf-8"))["stalls"]
              for f in sorted(reports_dir.glob(f"{prefix.name}.*.json"))]  # fmt: skip
    return {
        "summary": json.loads((run_dir / "summary.json").read_text(encoding="utf-8")),
        "run": json.loads((run_dir / "run.json").read_text(encoding="utf-8")),
        "stalls": merge_tables(tables) if stall_trace else None,
    }
