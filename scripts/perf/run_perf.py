"""``make perf``: measure the harness's own capacity and accuracy; write docs/PERFORMANCE.md.

    make perf                # full, about 30 minutes on 2 cores
    PERF_QUICK=1 make perf   # about 5 minutes, coarser (1 pair, 80 ms only)

(``make perf`` runs ``python -m perf.run_perf`` from ``scripts/``, the directory that holds the
``perf`` package and the scripts it imports.)

Sections (issue 9), all on loopback, load generators on core 0, emulator on the last core:

1. capacity: largest Flux user count one ``voiceload run`` worker sustains with steady
   ``flux.send_lag`` p99 <= 5 ms and no failed session, for 80 ms and 20 ms frames
   (:class:`perf.search.CapacitySearch`), with the worker's and the emulator's CPU there, in
   alternating pairs with the baseline (6., :mod:`perf.pairs`); both sides stream the same
   long fixture (:data:`LONG_FIXTURE`) once per user, and every trial ends before the first
   stream does, so no session ends or reconnects inside the measured window (per-frame cost,
   like for like); capacity trials run without the stall tracer, which then runs once at the
   capacity found (a diagnostic trial);
2. accuracy: :mod:`perf.harness_load` at 25/50/100 % of the 80 ms capacity against an emulator
   with a fixed end-of-turn delay and Aura first-byte delay and ``--trace``; the harness's
   ``flux.eot`` / ``aura.ttfb`` samples are matched to the trace per message (:mod:`perf.accuracy`);
3. emulator capacity: streams per emulator process at its own processing p99 <= 2 ms (trace
   ``proc_us``), searched with points of scripts/bench_emulator.py, for 1 and 2 processes;
4. report rendering of a synthetic one-hour run (``scripts/bench_report.py``'s generator);
5. memory per stream: RSS slope over the accuracy runs (harness) and baseline trials;
6. the plain-asyncio baseline (:mod:`perf.baseline`) searched the same way, interleaved trial
   by trial with voiceload's search (3 pairs; PERF_QUICK: 1); median ratio and its spread.

Raw results are also written next to the page as docs/perf-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perf import PerfError
from perf.accuracy import AURA_TTFB, FLUX_EOT, HarnessSample, error_summary_ms, match, read_trace
from perf.memory import SlopeFit, rss_slope
from perf.pairs import BASELINE, VOICELOAD, run_pair, summarise, verdicts
from perf.procs import REPO, EmulatorProcess, cores, ramp_s, run_json, script, voiceload_run
from perf.search import CapacitySearch
from perf.sorted_stats import summary

SEND_LAG_BUDGET_MS = 5.0
EMULATOR_PROC_BUDGET_MS = 2.0
#: An emulator whose event loop runs this late (p99) is queueing frames: saturated, even while
#: each message's own processing (``proc_us``, measured from the frame's read) stays fast.
EMULATOR_LOOP_LAG_BUDGET_MS = 5.0
EOT_DELAY_MS = 300
FIRST_BYTE_MS = 50
AURA_INTERVAL_S = 2.5
PAGE = REPO / "docs" / "PERFORMANCE.md"
RESULTS = REPO / "docs" / "perf-results.json"
NOTES = Path(__file__).with_name("notes.md")
EMULATOR_CONFIG = f"""\
[latency.flux]
handshake = {{kind = "fixed", ms = 0}}
first_response = {{kind = "fixed", ms = 0}}
eot_delay = {{kind = "fixed", ms = {EOT_DELAY_MS}}}
[latency.aura]
handshake = {{kind = "fixed", ms = 0}}
first_byte = {{kind = "fixed", ms = {FIRST_BYTE_MS}}}
"""


#: Both sides' capacity workload: one 19.7 s synthetic monologue per user (fixtures/audio).
LONG_FIXTURE = "monologue_long"
#: Workloads: ``long`` = :data:`LONG_FIXTURE` once per user, nobody reconnects inside the
#: window (per-frame cost); ``churn`` = every Flux fixture of the manifest (many 2-4 s), each
#: user reconnecting after a 0.5-1.5 s pause (per-session setup cost too), as a Locust user does.
WORKLOADS = {"long": LONG_FIXTURE, "churn": ""}


@dataclass(frozen=True)
class Plan:
    """How long and how far each section searches (full vs PERF_QUICK=1).

    ``capacity_s``: length of one capacity trial (``voiceload run --duration``; the baseline's
    ramp + window). It must end before the first user's :data:`LONG_FIXTURE` stream does (19.7
    s), so that no session ends or reconnects inside the measured window on either side.
    ``pairs``: voiceload/baseline pairs per frame size; ``pair_trials``: trials per side and pair;
    ``churn_pairs``: pairs of the ``churn`` workload (80 ms frames only).
    """

    quick: bool
    frames_ms: tuple[int, ...]
    capacity_s: int
    pairs: int
    pair_trials: int
    ramp_s: float
    warmup_s: float
    measure_s: float
    emulator_trials: int
    emulator_processes: tuple[int, ...]
    churn_pairs: int

    @classmethod
    def from_env(cls) -> Plan:
        if os.environ.get("PERF_QUICK") == "1":
            return cls(True, (80,), 17, 1, 3, 2.0, 1.0, 4.0, 2, (1,), 0)
        return cls(False, (80, 20), 17, 3, 7, 3.0, 2.0, 10.0, 5, (1, 2), 1)


SEARCH_START = {80: dict(start=600, max_n=3000, granularity=50),
                20: dict(start=200, max_n=1500, granularity=25)}  # fmt: skip


def log(message: str) -> None:
    print(f"[perf {time.strftime('%H:%M:%S')}] {message}", flush=True)


def log_trial(name: str, result: dict[str, Any]) -> None:
    """One line per capacity trial: its load, send-lag p99 and verdict."""
    lag = result.get("send_lag_p99_ms")
    log(f"{name}: {result['streams']} streams -> p99 {lag if lag is None else round(lag, 2)} ms, "
        f"{'pass' if result['passed'] else 'FAIL'} {result.get('error', '')}")  # fmt: skip


def search(
    name: str, settings: dict[str, Any], trials: int, trial: Callable[[int], dict[str, Any]]
) -> dict[str, Any]:
    """Run a capacity search; each trial result must carry ``passed``."""
    s = CapacitySearch(**settings, max_trials=trials)
    results: list[dict[str, Any]] = []
    guarded = _guarded(trial)
    while (n := s.next_n()) is not None:
        result = guarded(n)
        result["streams"] = n
        results.append(result)
        s.record(n, bool(result["passed"]))
        log_trial(name, result)
    best = next((r for r in results if r["streams"] == s.capacity and r["passed"]), None)
    return {"capacity": s.capacity, "hit_max": s.hit_max, "at_capacity": best, "trials": results}


def runner_trial(
    emu: EmulatorProcess, frame_ms: int, plan: Plan, reports: Path, *, stall_trace: bool = False,
    workload: str = "long",
) -> Callable[[int], dict[str, Any]]:  # fmt: skip
    def trial(n: int) -> dict[str, Any]:
        cpu0, t0 = emu.cpu_seconds(), time.monotonic()
        out = voiceload_run(emu.url, n, frame_ms, plan.capacity_s, reports,
                            fixtures=WORKLOADS[workload], stall_trace=stall_trace)  # fmt: skip
        emu_cpu = 100.0 * (emu.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        metrics = out["summary"].get("metrics", {})
        lag = metrics.get("flux.send_lag", {}).get("p99")
        sessions = out["summary"].get("sessions", {})
        workers = out["run"].get("workers", [])
        cpu = max((w.get("cpu_percent_mean") or 0.0 for w in workers), default=None)
        cpu_max = max((w.get("cpu_percent_max") or 0.0 for w in workers), default=None)
        errors = {k: v["count"] for k, v in out["summary"].get("errors", {}).items()}
        real = {k: n for k, n in errors.items() if not _stopped_at_end(k, out["summary"])}
        # every user's first session starts in the ramp; any further one is a reconnect
        reconnects = max(0, (sessions.get("total") or 0) - n)
        return {
            "passed": lag is not None and lag <= SEND_LAG_BUDGET_MS and not real,
            "errors": errors,
            "send_lag_p99_ms": lag, "send_lag_p50_ms": metrics.get("flux.send_lag", {}).get("p50"),
            "worker_cpu_mean": cpu, "worker_cpu_max": cpu_max, "emulator_cpu_run_avg": emu_cpu,
            "sessions": sessions.get("total"), "failed": sessions.get("failed"),
            "reconnects_per_s": reconnects / plan.capacity_s,
            "valid": out["summary"].get("validity", {}).get("valid"),
            "loop_lag_p99_ms": metrics.get("harness.loop_lag", {}).get("p99"),
            "stall_trace": stall_trace, "stalls": out.get("stalls"),
        }  # fmt: skip

    return trial


def _stopped_at_end(category: str, summary: dict[str, Any]) -> bool:
    """Sessions Locust cut short when the run ended (harness_error "stopped by Locust"): a
    teardown artefact of a fixed-length run, not a failure of the load generator."""
    first = summary.get("errors", {}).get(category, {}).get("first_message", "")
    return category == "harness_error" and "stopped by Locust" in first


def load_args(plan: Plan, url: str, n: int, frame_ms: int) -> list[object]:
    return ["--base-url", url, "--streams", n, "--frame-ms", frame_ms, "--ramp-s", plan.ramp_s,
            "--warmup-s", plan.warmup_s, "--measure-s", plan.measure_s]  # fmt: skip


def limit_s(plan: Plan) -> float:
    return plan.ramp_s * 2 + plan.warmup_s + plan.measure_s + 90.0


def baseline_trial(
    emu: EmulatorProcess, frame_ms: int, plan: Plan, cpus: str | None, workload: str = "long"
) -> Callable[[int], dict[str, Any]]:
    """A baseline trial shaped like a ``voiceload run`` of ``plan.capacity_s``: the same ramp
    (:func:`perf.procs.ramp_s`), its window the rest of the run, the same fixture(s), and for
    ``churn`` the same reconnects."""

    def trial(n: int) -> dict[str, Any]:
        ramp = ramp_s(n)
        args = ["--base-url", emu.url, "--streams", n, "--frame-ms", frame_ms,
                "--fixture", WORKLOADS[workload], "--ramp-s", ramp, "--warmup-s", 0,
                "--measure-s", plan.capacity_s - ramp]  # fmt: skip
        if workload == "churn":
            args.append("--churn")
        cpu0, t0 = emu.cpu_seconds(), time.monotonic()
        out = run_json(script("baseline", *args), cpus, plan.capacity_s + 90.0)
        emu_cpu = 100.0 * (emu.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        lag = out["send_lag_ms"]
        return {
            "passed": lag is not None and lag["p99"] <= SEND_LAG_BUDGET_MS and not out["errors"],
            "send_lag_p99_ms": lag and lag["p99"], "send_lag_p50_ms": lag and lag["p50"],
            "loop_lag_p99_ms": (out.get("loop_lag_ms") or {}).get("p99"),
            "cpu_percent": out["cpu_percent"], "rss_bytes": out["rss_bytes"],
            "sessions": out["sessions"],
            "reconnects_per_s": max(0, out["sessions"] - n) / plan.capacity_s,
            "errors": out["errors"], "emulator_cpu_run_avg": emu_cpu,
        }  # fmt: skip

    return trial


def capacity_pairs(
    emu: EmulatorProcess, frame_ms: int, plan: Plan, cpus: str | None, reports: Path, *,
    workload: str = "long", count: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``count`` (default ``plan.pairs``) alternating voiceload/baseline capacity pairs of
    ``workload`` (:data:`WORKLOADS`, :mod:`perf.pairs`)."""
    trials = {VOICELOAD: runner_trial(emu, frame_ms, plan, reports, workload=workload),
              BASELINE: baseline_trial(emu, frame_ms, plan, cpus, workload)}  # fmt: skip
    pairs = []
    for index in range(plan.pairs if count is None else count):

        def show(side: str, result: dict[str, Any], index: int = index) -> None:
            log_trial(f"{workload} {frame_ms} ms pair {index + 1} {side}", result)

        searches = {side: CapacitySearch(**SEARCH_START[frame_ms], max_trials=plan.pair_trials)
                    for side in (VOICELOAD, BASELINE)}  # fmt: skip
        pairs.append(run_pair(index, searches, {s: _guarded(t) for s, t in trials.items()}, show))
        log(f"{frame_ms} ms pair {index + 1}: voiceload {pairs[-1][VOICELOAD]['capacity']}, "
            f"baseline {pairs[-1][BASELINE]['capacity']}")  # fmt: skip
    return {"frame_ms": frame_ms, "workload": workload, "pairs": pairs,
            "summary": summarise(pairs)}  # fmt: skip


def _guarded(trial: Callable[[int], dict[str, Any]]) -> Callable[[int], dict[str, Any]]:
    """``trial`` with a :class:`PerfError` turned into a failed trial (the search goes on)."""

    def run(n: int) -> dict[str, Any]:
        try:
            return trial(n)
        except PerfError as exc:
            return {"streams": n, "passed": False, "error": str(exc)}

    return run


def stall_diagnostic(
    emu: EmulatorProcess, frame_ms: int, streams: int, plan: Plan, reports: Path
) -> dict[str, Any]:
    """One voiceload trial at ``streams`` with the stall tracer on (not a capacity trial)."""
    result = _guarded(runner_trial(emu, frame_ms, plan, reports, stall_trace=True))(streams)
    result["streams"] = streams
    log(f"stall trace at {streams} streams ({frame_ms} ms): send-lag p99 "
        f"{result.get('send_lag_p99_ms')} ms")  # fmt: skip
    return result


def accuracy(
    config: Path, capacity: int, plan: Plan, cpus: tuple[str | None, str | None], tmp: Path
) -> list[dict[str, Any]]:
    """Harness vs emulator trace at 25/50/100 % of ``capacity`` (80 ms frames), plus one Aura
    session per 25 streams (at least 4)."""
    rows = []
    for fraction in (0.25, 0.5, 1.0):
        n = max(1, round(capacity * fraction))
        aura = max(4, n // 25)
        trace = tmp / f"trace-{n}.jsonl"
        samples_path = tmp / f"samples-{n}.jsonl"
        with EmulatorProcess(config, cpus[1], trace=trace) as emu:
            cpu0, t0 = emu.cpu_seconds(), time.monotonic()
            args = [*load_args(plan, emu.url, n, 80), "--aura-sessions", aura,
                    "--aura-interval-s", AURA_INTERVAL_S, "--samples-out", samples_path]
            out = run_json(script("harness_load", *args), cpus[0], limit_s(plan))
            emu_cpu = 100.0 * (emu.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        truth = read_trace(trace.read_text(encoding="utf-8").splitlines())
        samples = [HarnessSample(**json.loads(line))
                   for line in samples_path.read_text(encoding="utf-8").splitlines()]  # fmt: skip
        row: dict[str, Any] = {"fraction": fraction, "streams": n, "aura_sessions": aura,
                               "harness": out, "emulator_cpu_run_avg": emu_cpu}  # fmt: skip
        for metric in (FLUX_EOT, AURA_TTFB):
            try:
                row[metric] = error_summary_ms(match(samples, truth, metric))
            except PerfError as exc:
                row[metric] = {"error": str(exc)}
        values = [s.value_us / 1000 for s in samples if s.metric == FLUX_EOT]
        row["flux.eot_measured"] = summary(values) if values else None
        rows.append(row)
        log(f"accuracy at {n} streams: eot {row[FLUX_EOT]}, ttfb {row[AURA_TTFB]}")
    return rows


def emulator_point_passed(point: dict[str, Any]) -> bool:
    """An emulator trial holds when its own processing p99 is within budget, its event loop is
    not queueing frames (loop-lag p99, all its processes), and the client kept up (else the load
    offered was not the load asked for)."""
    loop_lag = point.get("loop_lag_p99_ms")
    return (
        point["proc_p99_ms"] <= EMULATOR_PROC_BUDGET_MS
        and loop_lag is not None and loop_lag <= EMULATOR_LOOP_LAG_BUDGET_MS
        and not point["client_errors"]
        and point["send_lag_p99_ms"] <= SEND_LAG_BUDGET_MS
    )  # fmt: skip


def emulator_capacity(processes: int, plan: Plan, cpus: tuple[str | None, str | None],
                      tmp: Path) -> dict[str, Any]:  # fmt: skip
    """Streams (80 ms frames) the emulator sustains: :func:`emulator_point_passed`.

    Each trial is one point of engineer D's scripts/bench_emulator.py (fresh emulator with
    ``--trace``, its raw client of pre-masked frames, steady-window ``proc_us`` percentiles).
    1 process: emulator on the last core, client on core 0; 2 processes: the emulator may use
    both cores.
    """
    client = cpus[0] or "0"
    server = (cpus[1] or "0") if processes == 1 else f"{client},{cpus[1] or client}"

    def trial(n: int) -> dict[str, Any]:
        out = tmp / f"bench-emulator-{processes}-{n}.json"
        command = [sys.executable, str(REPO / "scripts" / "bench_emulator.py"),
                   "--points", f"{n}x{processes}", "--duration-s", str(plan.measure_s + 2),
                   "--ramp-s", str(plan.ramp_s), "--client-cpus", client,
                   "--server-cpus", server, "--json", str(out)]  # fmt: skip
        try:
            subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                           timeout=limit_s(plan) + 60, check=True)  # fmt: skip
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise PerfError(f"bench_emulator.py {n}x{processes} failed: {exc}") from None
        point = json.loads(out.read_text(encoding="utf-8"))[0]
        p99 = point["proc_p99_ms"]
        return {
            "passed": emulator_point_passed(point),
            "processing_ms": {"p50": point["proc_p50_ms"], "p99": p99, "max": point["proc_max_ms"]},
            "emulator_cpu_run_avg": point["emulator_cpu_pct"],
            "client_send_lag_p99_ms": point["send_lag_p99_ms"], "send_lag_p99_ms": p99,
            "emulator_cpu_us_per_frame": point.get("emulator_cpu_us_per_frame"),
            "emulator_loop_lag_p99_ms": point.get("loop_lag_p99_ms"),
            "client_cpu_pct": point.get("client_cpu_pct"),
        }  # fmt: skip

    settings = dict(start=300 if plan.quick else 400, max_n=3000, granularity=50)
    return search(f"emulator x{processes} (proc p99)", settings, plan.emulator_trials, trial)


def report_rendering() -> dict[str, Any]:
    from make_golden_run import generate_run  # bench_report.py's synthetic one-hour run
    from voiceload.cli import report as report_cli

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        generate_run(run_dir, seed=1, duration_s=3600.0, interval_s=3.0, sessions_per_s=1.0,
                     ramp_s=60.0, teardown_s=60.0, send_lag_every=25)  # fmt: skip
        hlog_bytes = sum(p.stat().st_size for p in run_dir.glob("*.hlog"))
        t0 = time.perf_counter()
        _, paths = report_cli.render_run(run_dir)
        render_s = time.perf_counter() - t0
        return {"render_s": render_s, "html_bytes": paths["report"].stat().st_size,
                "hlog_bytes": hlog_bytes}  # fmt: skip


def machine() -> dict[str, Any]:
    cpu_model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=REPO).stdout.strip()  # fmt: skip
    return {"cpu_model": cpu_model, "cores": os.cpu_count(), "python": platform.python_version(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "os": platform.platform(), "commit": commit}  # fmt: skip


def fit(points: list[tuple[int, int]]) -> SlopeFit | None:
    try:
        return rss_slope(points)
    except PerfError:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m perf.run_perf", description=__doc__.splitlines()[0]
        + " Full run about 30 min; PERF_QUICK=1 about 5 min."
    )  # fmt: skip
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite the page from docs/perf-results.json (after editing "
                        "scripts/perf/notes.md); measures nothing")  # fmt: skip
    if parser.parse_args().render_only:  # after editing notes.md: page from the last results
        from perf.page import render_page

        results = json.loads(RESULTS.read_text(encoding="utf-8"))
        PAGE.write_text(render_page(results, NOTES), encoding="utf-8")
        return 0
    plan = Plan.from_env()
    started = time.monotonic()
    load_before = os.getloadavg()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "quick": plan.quick,
        "machine": machine(), "load_before": load_before,
        "capacity_method": {"fixture": LONG_FIXTURE, "trial_s": plan.capacity_s,
                            "pairs": plan.pairs, "pair_trials": plan.pair_trials,
                            "churn_pairs": plan.churn_pairs},
    }  # fmt: skip
    cpus = cores()
    with tempfile.TemporaryDirectory(prefix="voiceload-perf-") as tmp_name:
        tmp = Path(tmp_name)
        config = tmp / "emulator.toml"
        config.write_text(EMULATOR_CONFIG, encoding="utf-8")
        with EmulatorProcess(config, cpus[1]) as emu:
            log(f"emulator {emu.url} on cpus {cpus[1]}; load on cpus {cpus[0]}")
            for frame_ms in plan.frames_ms:
                section = capacity_pairs(emu, frame_ms, plan, cpus[0], tmp / "reports")
                results[f"capacity_{frame_ms}"] = section
                found = _found_capacity(section)
                results[f"stalls_{frame_ms}"] = stall_diagnostic(
                    emu, frame_ms, found, plan, tmp / "reports"
                )
            if plan.churn_pairs:
                results["churn_80"] = capacity_pairs(
                    emu, 80, plan, cpus[0], tmp / "reports", workload="churn",
                    count=plan.churn_pairs,
                )  # fmt: skip
        results["verdicts"] = verdicts(
            {f: results[f"capacity_{f}"]["summary"] for f in plan.frames_ms}
        )
        # 100 % = the measured 80 ms capacity (median); when nothing passed, the smallest load
        reference = _found_capacity(results["capacity_80"])
        results["accuracy_reference"] = reference
        results["accuracy"] = accuracy(config, reference, plan, cpus, tmp)
        for processes in plan.emulator_processes:
            results[f"emulator_x{processes}"] = emulator_capacity(processes, plan, cpus, tmp)
    log("report rendering (synthetic one-hour run)")
    results["report"] = report_rendering()
    harness_points = [(r["streams"], r["harness"]["rss_bytes"]) for r in results["accuracy"]
                      if r["harness"].get("rss_bytes")]  # fmt: skip
    baseline_points = [(t["streams"], t["rss_bytes"])
                       for p in results["capacity_80"]["pairs"] for t in p[BASELINE]["trials"]
                       if t.get("rss_bytes")]  # fmt: skip
    results["memory"] = {
        "harness": _fit_dict(fit(harness_points)), "harness_points": harness_points,
        "baseline": _fit_dict(fit(baseline_points)), "baseline_points": baseline_points,
    }  # fmt: skip
    results["load_after"] = os.getloadavg()
    results["elapsed_s"] = time.monotonic() - started
    from perf.page import render_page

    PAGE.write_text(render_page(results, NOTES), encoding="utf-8")
    RESULTS.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    log(f"wrote {PAGE.relative_to(REPO)} in {results['elapsed_s']:.0f} s")
    return 0


def _found_capacity(section: dict[str, Any]) -> int:
    """voiceload's median capacity over the pairs (rounded down to a load that was tried, so
    a diagnostic or accuracy run repeats a measured load); the smallest load tried if none
    passed."""
    caps = sorted(c for c in section["summary"][VOICELOAD]["capacities"] if c)
    if caps:
        return caps[(len(caps) - 1) // 2]
    return min(t["streams"] for p in section["pairs"] for t in p[VOICELOAD]["trials"])


def _fit_dict(f: SlopeFit | None) -> dict[str, float] | None:
    if f is None:
        return None
    return {"slope_bytes_per_stream": f.slope_bytes_per_stream,
            "intercept_bytes": f.intercept_bytes, "r2": f.r2, "points": f.points}  # fmt: skip


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PerfError as exc:
        print(f"make perf: error: {exc}", file=sys.stderr)
        sys.exit(2)
