"""Done-when tests of issue 5: a Locust master and two worker processes on loopback, against
the emulator (``voiceload emulate --port 0``), with a stop timeout long enough for every session
in flight at the stop to finish.

Conservation is checked between numbers that come from different places:

* what each worker counted itself (its own log line, written as it answers the final-flush
  handshake) and the answer the master received (the master's log);
* the rows of sessions.csv the master wrote (read strictly: a malformed row fails the test) and
  its per-worker table in run.json;
* the merged histograms: ``flux.connect`` (one sample per Flux session) and ``flux.eot`` /
  ``flux.ttft``, whose merged distributions must equal those of the rows' own values;
* Locust's own table.

Users start one a second, in turn on each worker, with no start stagger (``--start-stagger-s 0``:
its random delays could bunch the starts), so session starts are spread over the ~2.7 s a session
lasts: whenever the stop comes, some session in flight ends well after it (``LATE_S``).
Those are the samples Locust's own 0.5 s wait for the workers' last reports would lose.
"""

from __future__ import annotations

import csv
import io
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

from voiceload.cli.run import Emulator
from voiceload.client.results import SESSIONS_CSV_COLUMNS
from voiceload.metrics import Phase, merged_histogram, new_histogram, read_hlog
from voiceload.runner import distributed

pytestmark = pytest.mark.slow

FIXTURES = "command_lights,command_weather"  # ~2.7 s Flux sessions, one turn each
STOP_TIMEOUT_S = 5  # longer than a session: each one in flight at the stop finishes
USERS = 6
SPAWN_RATE = 1  # one user a second: session starts spread over a session's length
LATE_S = 1.0  # a session ending this long after the stop: twice Locust's own 0.5 s wait
PROCESS_LIMIT_S = 90.0  # bound on any one process of these tests
FINAL_RE = re.compile(r"voiceload: worker (\S+) sent its final report: (\d+) sessions counted")
ANSWER_RE = re.compile(r"voiceload: worker (\S+) (?:answered the final flush: (\d+) sessions"
                       r"|counted (\d+) sessions but)")  # fmt: skip
PID_RE = re.compile(r"voiceload: worker (\S+) is pid (\d+)")
ROW_METRICS = {"eot_ms": "flux.eot", "ttft_ms": "flux.ttft"}  # one sample per one-turn session


def locust_command(emulator_url: str, run_dir: Path, run_time_s: int, users: int = USERS
                   ) -> list[str]:  # fmt: skip
    return [
        sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--headless",
        "--users", str(users), "--spawn-rate", str(SPAWN_RATE), "--run-time", f"{run_time_s}s",
        "--stop-timeout", str(STOP_TIMEOUT_S), "--start-stagger-s", "0", "--fixtures", FIXTURES,
        "--emulator-url", emulator_url, "--run-dir", str(run_dir),
        "--reports-dir", str(run_dir.parent), "--csv", str(run_dir / "locust"), "FluxUser",
    ]  # fmt: skip


def parse_rows(text: str, where: str) -> list[dict[str, str]]:
    """Every row of a sessions.csv text; any row that is not a full, well-formed row fails."""
    records = list(csv.reader(io.StringIO(text, newline="")))
    assert records and tuple(records[0]) == SESSIONS_CSV_COLUMNS, f"{where}: header {records[:1]}"
    rows = []
    for line, fields in enumerate(records[1:], start=2):
        assert len(fields) == len(SESSIONS_CSV_COLUMNS), f"{where}:{line}: malformed row {fields}"
        row = dict(zip(SESSIONS_CSV_COLUMNS, fields, strict=True))
        assert row["worker"] and row["session_id"].startswith(row["worker"]), f"{where}:{line}"
        assert float(row["start_s"]) > 0 and float(row["duration_s"]) >= 0, f"{where}:{line}"
        assert int(row["connections"]) >= 0, f"{where}:{line}"
        rows.append(row)
    return rows


def read_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a finished run's sessions.csv (it must exist)."""
    path = run_dir / "sessions.csv"
    return parse_rows(path.read_text(encoding="utf-8"), str(path))


def rows_so_far(run_dir: Path) -> list[dict[str, str]]:
    """While the master writes: the complete lines written so far (none before the file)."""
    path = run_dir / "sessions.csv"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    return parse_rows(text[: text.rfind("\n") + 1], str(path)) if "\n" in text else []


def log_matches(path: Path, pattern: re.Pattern[str]) -> list[tuple[str, ...]]:
    return [m.groups() for m in pattern.finditer(path.read_text(errors="replace"))]


def answers(master_log: str) -> dict[str, int]:
    """The count each worker sent in its handshake answer, as the master logged it."""
    return {m[1]: int(m[2] or m[3]) for m in ANSWER_RE.finditer(master_log)}


def row_histogram(rows: list[dict[str, str]], column: str) -> Any:
    histogram = new_histogram()
    for row in rows:
        if row[column] != "":
            histogram.record_value(round(float(row[column]) * 1000))  # ms with 3 decimals -> µs
    return histogram


def same_distribution(a: Any, b: Any) -> bool:
    def counts(h: Any) -> dict[int, int]:
        return {v.value_iterated_to: v.count_at_value_iterated_to
                for v in h.get_recorded_iterator()}  # fmt: skip

    return bool(a.get_total_count() == b.get_total_count() and counts(a) == counts(b))


@dataclass
class RunFiles:
    run_dir: Path
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
            run_dir=run_dir,
            rows=read_rows(run_dir),
            run=json.loads((run_dir / "run.json").read_text()),
            summary=json.loads((run_dir / "summary.json").read_text()),
            connects_all_phases=connects,
            locust_sessions=int(locust[0]["Request Count"]) if locust else 0,
        )

    def workers(self) -> dict[str, dict[str, Any]]:
        return {w["id"]: w for w in self.run["workers"]}

    def merged(self, metric: str, phase: Phase | None = None) -> Any:
        return merged_histogram(read_hlog(self.run_dir / f"{metric}.hlog"), phase)


def assert_conserved(files: RunFiles, counted: dict[str, int], answered: dict[str, int]) -> None:
    """Every session each worker counted is a row, a flux.connect sample, a Locust request, and
    its turn's samples are in the merged flux.eot / flux.ttft histograms."""
    assert len(counted) == 2 and sum(counted.values()) > 0, counted
    rows_by_worker = Counter(row["worker"] for row in files.rows)
    assert dict(rows_by_worker) == counted
    assert {w: e["sessions"] for w, e in files.workers().items()} == counted
    assert {w: e["sessions_counted"] for w, e in files.workers().items()} == counted
    assert all(row["connections"] == "1" for row in files.rows)  # one connect sample each
    assert files.connects_all_phases == len(files.rows) == sum(counted.values())
    assert files.summary["metrics"]["flux.connect"]["count_all_phases"] == len(files.rows)
    assert files.locust_sessions == len(files.rows)
    assert all(row["turns_expected"] == "1" and row["outcome"] == "ok" for row in files.rows)
    for column, metric in ROW_METRICS.items():
        assert same_distribution(row_histogram(files.rows, column), files.merged(metric)), metric
    assert answered == counted  # the handshake carried each worker's own count to the master


def assert_sessions_in_flight_at_the_stop_are_kept(files: RunFiles) -> None:
    """Some session still ran ``LATE_S`` after the stop (run.json's teardown start), and its
    samples reached the merged histograms: Locust's own 0.5 s wait would have lost it."""
    stop_s = files.run["phases"]["teardown"][0]
    ends = sorted(float(r["start_s"]) + float(r["duration_s"]) - stop_s for r in files.rows)
    late = [r for r in files.rows
            if float(r["start_s"]) + float(r["duration_s"]) > stop_s + LATE_S]  # fmt: skip
    assert late, f"no session ended {LATE_S:g} s after the stop; ends - stop: {ends[-6:]}"
    eot = files.merged("flux.eot")
    for row in late:  # (assert_conserved compares the whole distributions)
        assert eot.get_count_at_value(round(float(row["eot_ms"]) * 1000)) > 0, row
    assert files.merged("flux.eot", Phase.TEARDOWN).get_total_count() > 0


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

    def rows_from(self) -> set[str]:
        return {row["worker"] for row in rows_so_far(self.run_dir)}


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
    scenario.write_text(f"users = {USERS}\nspawn-rate = {SPAWN_RATE}\nrun-time = 10s\n"
                        f"stop-timeout = {STOP_TIMEOUT_S}\nstart-stagger-s = 0\n")  # fmt: skip
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

    files = RunFiles.read(run_dir)
    assert_conserved(files, counted, answers(done.stderr + done.stdout))
    assert_sessions_in_flight_at_the_stop_are_kept(files)
    assert all(w["final_report"] and not w["lost"] for w in files.workers().values())
    assert files.summary["validity"]["missing_worker_finals"] == []
    assert files.run["interrupted"] is False


def test_sigterm_to_the_master_stops_workers_and_keeps_every_session(tmp_path: Path) -> None:
    with cluster(tmp_path, run_time_s=60) as c:
        ids = [c.worker_id(0), c.worker_id(1)]
        wait_until(lambda: "All users spawned" in c.master_log(), 40, "the end of the ramp-up")
        wait_until(lambda: set(ids) <= c.rows_from(), 40, "rows from both workers")
        c.master.send_signal(signal.SIGTERM)
        code = c.master.wait(timeout=PROCESS_LIMIT_S)
        worker_codes = [w.wait(timeout=30) for w in c.workers]  # the master told them to quit

    assert code != 0
    assert worker_codes == [0, 0]
    files = RunFiles.read(c.run_dir)
    assert files.run["interrupted"] is True
    assert_conserved(files, c.counted(), answers(c.master_log()))
    assert_sessions_in_flight_at_the_stop_are_kept(files)
    assert all(w["final_report"] and not w["lost"] for w in files.workers().values())


def test_a_killed_worker_is_marked_lost_and_the_run_completes(tmp_path: Path) -> None:
    with cluster(tmp_path, run_time_s=14) as c:
        victim, survivor = c.worker_id(0), c.worker_id(1)
        wait_until(lambda: victim in c.rows_from(), 40, "rows from the worker to kill")
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
    assert c.counted() == answers(c.master_log()) == {survivor: rows_by_worker[survivor]}
    validity = files.summary["validity"]
    assert validity["valid"] is False
    assert validity["missing_worker_finals"] == [victim]
    assert any(victim in reason for reason in validity["reasons"])
    assert f"worker {victim} is lost" in c.master_log()


def test_ctrl_c_during_the_ramp_up_to_locust_processes_keeps_every_session(
    tmp_path: Path,
) -> None:
    """Locust's own one-machine form (``--processes 2``): a terminal's Ctrl-C reaches the master
    and its forked workers at once; each worker flushes before it quits. The stop comes while
    the master still sends users to the workers (10 users at one a second): it must send no
    more, and no worker quitting after its answer may make it re-dispatch users."""
    run_dir = tmp_path / "reports" / "run"
    log_path = tmp_path / "locust.log"
    with Emulator(tmp_path / "emulator.log", core=None) as emulator:
        port = str(distributed.free_port())  # not Locust's 5557: other runs may use it
        command = [*locust_command(emulator.url, run_dir, 60, users=10), "--processes", "2",
                   "--master-bind-port", port, "--master-port", port]  # fmt: skip
        with log_path.open("wb") as log:
            locust = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)  # fmt: skip
        try:
            wait_until(lambda: len({r["worker"] for r in rows_so_far(run_dir)}) == 2, 40,
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
    assert "steady" not in files.run["phases"]  # the stop came during the ramp-up
    log = log_path.read_text(errors="replace")
    assert log.count("Sending spawn jobs") == 1 and "All users spawned" not in log
    counted = {w: int(n) for w, n in log_matches(log_path, FINAL_RE)}
    assert_conserved(files, counted, answers(log))
    assert_sessions_in_flight_at_the_stop_are_kept(files)
    assert all(w["final_report"] and not w["lost"] for w in files.workers().values())


def test_a_worker_that_never_joins_is_a_clear_error(tmp_path: Path) -> None:
    with cluster(tmp_path, run_time_s=10, workers=1, expect=2, join_wait_s=6) as c:
        code = c.master.wait(timeout=PROCESS_LIMIT_S)
        worker_code = c.workers[0].wait(timeout=30)  # told to quit by the master

    assert code == distributed.EXIT_WORKERS_MISSING
    assert worker_code == 0
    assert "only 1 of 2 Locust workers joined the master at 127.0.0.1:" in c.master_log()
    assert not (c.run_dir / "summary.json").exists()
