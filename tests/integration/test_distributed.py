"""Done-when tests of issue 5: a Locust master and two worker processes on loopback, against
the emulator (``voiceload emulate --port 0``), with a stop timeout long enough for every session
in flight at the stop to finish.

Conservation is checked three ways that do not depend on one another: the sessions each worker
counted itself (its log line), the rows of sessions.csv the master wrote, and the merged
``flux.connect`` histogram (one sample per Flux session). Locust's own table must agree too.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from voiceload.metrics import merged_histogram, read_hlog
from voiceload.runner import distributed
from voiceload.runner.cli import Emulator

pytestmark = pytest.mark.slow

FIXTURES = "command_lights,command_weather"  # ~2.7 s Flux sessions, one turn each
STOP_TIMEOUT_S = 5  # longer than a session: each one in flight at the stop finishes
USERS = 6
PROCESS_LIMIT_S = 90.0  # bound on any one process of these tests
FINAL_RE = re.compile(r"voiceload: worker (\S+) sent its final report: (\d+) sessions counted")
PID_RE = re.compile(r"voiceload: worker (\S+) is pid (\d+)")


def locust_command(emulator_url: str, run_dir: Path, run_time_s: int) -> list[str]:
    return [
        sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--headless",
        "--users", str(USERS), "--spawn-rate", str(USERS), "--run-time", f"{run_time_s}s",
        "--stop-timeout", str(STOP_TIMEOUT_S), "--fixtures", FIXTURES,
        "--emulator-url", emulator_url, "--run-dir", str(run_dir),
        "--reports-dir", str(run_dir.parent), "--csv", str(run_dir / "locust"), "FluxUser",
    ]  # fmt: skip


def read_rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "sessions.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [row for row in csv.DictReader(f) if row.get("voice_to_voice_ms") is not None]


def log_matches(path: Path, pattern: re.Pattern[str]) -> list[tuple[str, ...]]:
    return [m.groups() for m in pattern.finditer(path.read_text(errors="replace"))]


@dataclass
class RunFiles:
    rows: list[dict[str, str]]
    run: dict[str, Any]
    summary: dict[str, Any]
    connects_all_phases: int  # merged flux.connect samples, every phase
    locust_sessions: int  # Locust's own "flux session" request count

    @staticmethod
    def read(run_dir: Path) -> RunFiles:
        hlog = run_dir / "flux.connect.hlog"
        connects = int(merged_histogram(read_hlog(hlog), None).get_total_count())
        with (run_dir / "locust_stats.csv").open(newline="", encoding="utf-8") as f:
            locust = [r for r in csv.DictReader(f) if (r["Type"], r["Name"]) == ("flux", "session")]
        return RunFiles(
            rows=read_rows(run_dir),
            run=json.loads((run_dir / "run.json").read_text()),
            summary=json.loads((run_dir / "summary.json").read_text()),
            connects_all_phases=connects,
            locust_sessions=int(locust[0]["Request Count"]) if locust else 0,
        )

    def workers(self) -> dict[str, dict[str, Any]]:
        return {w["id"]: w for w in self.run["workers"]}


def assert_conserved(files: RunFiles, counted: dict[str, int]) -> None:
    """Every session each worker counted is a row, a flux.connect sample, a Locust request."""
    rows_by_worker = Counter(row["worker"] for row in files.rows)
    assert sum(counted.values()) > 0
    assert dict(rows_by_worker) == counted
    assert {w: e["sessions"] for w, e in files.workers().items()} == counted
    assert all(row["connections"] == "1" for row in files.rows)  # one connect sample each
    assert files.connects_all_phases == len(files.rows) == sum(counted.values())
    assert files.summary["metrics"]["flux.connect"]["count_all_phases"] == len(files.rows)
    assert files.locust_sessions == len(files.rows)


def assert_sessions_finished_during_the_stop(files: RunFiles) -> None:
    """Some session was in flight when teardown began and still made it into the artifacts."""
    teardown_start_s = files.run["phases"]["teardown"][0]
    assert any(float(r["start_s"]) + float(r["duration_s"]) > teardown_start_s for r in files.rows)


def wait_until(condition: Any, limit_s: float, what: str) -> None:
    deadline_s = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline_s:
            raise AssertionError(f"{what} did not happen within {limit_s:g} s")
        time.sleep(0.2)


@dataclass
class Cluster:
    master: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    log_dir: Path
    run_dir: Path

    def worker_log(self, i: int) -> Path:
        return self.log_dir / f"worker-{i + 1}.log"

    def worker_id(self, i: int) -> str:
        wait_until(lambda: log_matches(self.worker_log(i), PID_RE), 30, f"worker {i + 1} start")
        return log_matches(self.worker_log(i), PID_RE)[0][0]

    def counted(self) -> dict[str, int]:
        """Sessions each worker says it counted, from its own log."""
        found: dict[str, int] = {}
        for i in range(len(self.workers)):
            for worker_id, n in log_matches(self.worker_log(i), FINAL_RE):
                found[worker_id] = int(n)
        return found

    def master_log(self) -> str:
        return (self.log_dir / "master.log").read_text(errors="replace")


@contextmanager
def cluster(tmp_path: Path, run_time_s: int, workers: int = 2, expect: int = 2,
            join_wait_s: float = 30) -> Iterator[Cluster]:  # fmt: skip
    """The emulator, a master expecting ``expect`` workers and ``workers`` worker processes."""
    run_dir = tmp_path / "reports" / "run"
    with Emulator(tmp_path / "emulator.log", core=None) as emulator:
        command = locust_command(emulator.url, run_dir, run_time_s)
        port = distributed.free_port()
        master_cmd = distributed.master_command(command, expect, port, join_wait_s)
        worker_cmd = distributed.worker_command(command, "127.0.0.1", port)
        procs = distributed.start_workers(worker_cmd, [None] * workers, tmp_path)
        with (tmp_path / "master.log").open("wb") as log:
            master = subprocess.Popen(master_cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield Cluster(master, procs, tmp_path, run_dir)
        finally:
            if master.poll() is None:
                master.kill()
            master.wait(timeout=PROCESS_LIMIT_S)
            distributed.stop_workers(procs, grace_s=PROCESS_LIMIT_S / 3)


def test_a_run_ended_by_run_time_keeps_every_session(tmp_path: Path, repo_root: Path) -> None:
    """Through `voiceload run --workers 2` (what `make bench WORKERS=2` calls)."""
    scenario = tmp_path / "dist.conf"
    scenario.write_text(f"users = {USERS}\nspawn-rate = {USERS}\nrun-time = 10s\n"
                        f"stop-timeout = {STOP_TIMEOUT_S}\n")  # fmt: skip
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "voiceload.cli", "run", "--scenario", str(scenario),
         "--workers", "2", "--user-classes", "FluxUser", "--fixtures", FIXTURES,
         "--reports-dir", str(reports), "--no-report"],
        cwd=repo_root, capture_output=True, text=True, timeout=PROCESS_LIMIT_S,
    )  # fmt: skip
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir() and not p.is_symlink()]
    assert (run_dir / "summary.json").is_file(), done.stdout[-2000:] + done.stderr[-2000:]
    counted: dict[str, int] = {}
    for log in sorted(run_dir.glob("worker-*.log")):
        counted.update({w: int(n) for w, n in log_matches(log, FINAL_RE)})
    assert len(counted) == 2

    files = RunFiles.read(run_dir)
    assert_conserved(files, counted)
    assert_sessions_finished_during_the_stop(files)
    assert all(w["final_report"] and not w["lost"] for w in files.workers().values())
    assert files.summary["validity"]["missing_worker_finals"] == []
    assert files.run["interrupted"] is False


def test_sigterm_to_the_master_stops_workers_and_keeps_every_session(tmp_path: Path) -> None:
    with cluster(tmp_path, run_time_s=60) as c:
        ids = [c.worker_id(0), c.worker_id(1)]
        wait_until(lambda: set(ids) <= {r["worker"] for r in read_rows(c.run_dir)}, 40,
                   "rows from both workers")  # fmt: skip
        c.master.send_signal(signal.SIGTERM)
        code = c.master.wait(timeout=PROCESS_LIMIT_S)
        worker_codes = [w.wait(timeout=30) for w in c.workers]  # the master told them to quit

    assert code != 0
    assert worker_codes == [0, 0]
    files = RunFiles.read(c.run_dir)
    assert files.run["interrupted"] is True
    assert_conserved(files, c.counted())
    assert_sessions_finished_during_the_stop(files)
    assert all(w["final_report"] and not w["lost"] for w in files.workers().values())


def test_a_killed_worker_is_marked_lost_and_the_run_completes(tmp_path: Path) -> None:
    with cluster(tmp_path, run_time_s=14) as c:
        victim, survivor = c.worker_id(0), c.worker_id(1)
        wait_until(lambda: victim in {r["worker"] for r in read_rows(c.run_dir)}, 40,
                   "rows from the worker to kill")  # fmt: skip
        killed_at_s = time.time()
        c.workers[0].send_signal(signal.SIGKILL)
        code = c.master.wait(timeout=PROCESS_LIMIT_S)
        assert c.workers[1].wait(timeout=30) == 0

    assert code != 0  # the run is invalid
    files = RunFiles.read(c.run_dir)
    rows_by_worker = Counter(row["worker"] for row in files.rows)
    workers = files.workers()
    assert workers[victim]["lost"] is True and workers[victim]["final_report"] is False
    assert workers[victim]["sessions"] == rows_by_worker[victim] > 0  # what it sent before dying
    assert workers[survivor]["lost"] is False and workers[survivor]["final_report"] is True
    assert any(float(r["start_s"]) > killed_at_s for r in files.rows if r["worker"] == survivor)
    assert c.counted() == {survivor: rows_by_worker[survivor]}
    validity = files.summary["validity"]
    assert validity["valid"] is False
    assert validity["missing_worker_finals"] == [victim]
    assert any(victim in reason for reason in validity["reasons"])
    assert f"worker {victim} is lost" in c.master_log()


def test_ctrl_c_to_locust_processes_keeps_every_session(tmp_path: Path) -> None:
    """Locust's own one-machine form (``--processes 2``): a terminal's Ctrl-C reaches the master
    and its forked workers at once; each worker flushes before it quits."""
    run_dir = tmp_path / "reports" / "run"
    log_path = tmp_path / "locust.log"
    with Emulator(tmp_path / "emulator.log", core=None) as emulator:
        command = [*locust_command(emulator.url, run_dir, 60), "--processes", "2"]
        with log_path.open("wb") as log:
            locust = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)  # fmt: skip
        try:
            wait_until(lambda: len({r["worker"] for r in read_rows(run_dir)}) == 2, 40,
                       "rows from both workers")  # fmt: skip
            os.killpg(locust.pid, signal.SIGINT)
            code = locust.wait(timeout=PROCESS_LIMIT_S)
        finally:
            if locust.poll() is None:
                os.killpg(locust.pid, signal.SIGKILL)
                locust.wait(timeout=PROCESS_LIMIT_S)

    assert code != 0
    files = RunFiles.read(run_dir)
    assert files.run["interrupted"] is True
    counted = {w: int(n) for w, n in log_matches(log_path, FINAL_RE)}
    assert len(counted) == 2
    assert_conserved(files, counted)
    assert all(w["final_report"] and not w["lost"] for w in files.workers().values())


def test_a_worker_that_never_joins_is_a_clear_error(tmp_path: Path) -> None:
    with cluster(tmp_path, run_time_s=10, workers=1, expect=2, join_wait_s=6) as c:
        code = c.master.wait(timeout=PROCESS_LIMIT_S)
        worker_code = c.workers[0].wait(timeout=30)  # told to quit by the master

    assert code == distributed.EXIT_WORKERS_MISSING
    assert worker_code == 0
    assert "only 1 of 2 Locust workers joined the master at 127.0.0.1:" in c.master_log()
    assert not (c.run_dir / "summary.json").exists()
