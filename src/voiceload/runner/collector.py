"""The collecting side of a run: the run directory, merged histograms, sessions.csv, run.json.

One :class:`Collector` lives in a local runner or a master (the process that owns the run's
artifacts). It opens ``reports/<run-id>/`` when a test starts, absorbs every generator payload
(:meth:`Collector.absorb`: histograms into the :class:`voiceload.metrics.Aggregator`, which
writes the ``.hlog`` files; rows into sessions.csv; steady-phase CPU samples per worker), and at
the end closes the aggregator (``.hgrm`` files) and writes summary.json and the final run.json
(:func:`run_json`, schema in docs/ARCHITECTURE.md). When to do what (Locust's events, the
final-flush handshake, validity) is :class:`voiceload.runner.plugin.RunPlugin`'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gevent
import gevent.lock

from voiceload.metrics import Aggregator, MetricSummary, Phase
from voiceload.runner import artifacts
from voiceload.runner.options import RunSettings
from voiceload.runner.sink import split_by_metric
from voiceload.runner.validity import Budgets, WorkerHealth
from voiceload.targets import Target

logger = logging.getLogger("voiceload")


class Collector:
    """The artifacts of one test. ``merge_lock`` is shared with the plugin, so the end of the
    run waits for a merge in progress, and a merge never starts while the end is written."""

    def __init__(self, merge_lock: gevent.lock.RLock) -> None:
        self._merge_lock = merge_lock
        self.run_dir: Path | None = None
        self.run_id = ""
        self.aggregator: Aggregator | None = None
        self.sessions_csv: artifacts.SessionsCsv | None = None
        self.accepting = False  # takes payloads: the run is open and its final not merged
        self.facts: dict[str, Any] = {}  # git, packages, machine: read once per run
        self.rows: list[dict[str, Any]] = []
        self.worker_cpu: dict[str, list[float]] = {}
        self.worker_sessions: dict[str, int] = {}

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` has created this test's run directory."""
        return self.aggregator is not None and self.run_dir is not None

    def open(self, settings: RunSettings, now_wall_s: float) -> None:
        """Create the run directory, the aggregator and sessions.csv; read the machine facts."""
        if settings.run_dir is not None:
            self.run_dir = settings.run_dir
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.run_id = self.run_dir.name
            artifacts.point_latest(settings.reports_dir, self.run_dir)
        else:
            self.run_id = artifacts.new_run_id(now_wall_s)
            self.run_dir = artifacts.create_run_dir(settings.reports_dir, self.run_id)
        self.aggregator = Aggregator(self.run_dir, start_time_s=now_wall_s)
        self.accepting = True
        self.facts = {
            "git": artifacts.git_info(Path.cwd()),
            "packages": artifacts.package_versions(),
            "machine": artifacts.machine_info(),
        }
        self.sessions_csv = artifacts.SessionsCsv(self.run_dir / "sessions.csv")

    def absorb(self, payload: dict[str, Any]) -> None:
        """Merge one generator payload: histograms, session rows, CPU samples."""
        source = str(payload.get("worker", "?"))
        with self._merge_lock:  # finalise waits for a merge in progress, and vice versa
            if self.aggregator is None or not self.accepting:
                hdr = payload.get("hdr") or {}
                if payload.get("sessions") or hdr.get("histograms") or hdr.get("out_of_range"):
                    logger.warning("voiceload: a report from %s arrived after the run was"
                                   " written; its samples are not in the artifacts", source)
                return  # (an empty report between tests loses nothing)
            rows = payload.get("sessions") or []
            if rows:
                assert self.sessions_csv is not None
                self.sessions_csv.append(rows)
                self.rows.extend(rows)
                self.worker_sessions[source] = self.worker_sessions.get(source, 0) + len(rows)
            cpu = payload.get("cpu") or []
            steady = [pct for phase, pct in cpu if phase == Phase.STEADY.value]
            self.worker_cpu.setdefault(source, []).extend(steady)
            for piece in split_by_metric(payload["hdr"]):
                self.aggregator.add(piece, source)
                gevent.sleep(0)  # let due frames go out between metrics (~1 ms per add)

    def final_received(self, worker_id: str) -> bool:
        """Whether ``worker_id``'s last payload (marked ``final``) has been merged."""
        assert self.aggregator is not None
        source = self.aggregator.sources.get(worker_id)
        return source is not None and source.final_received

    def send_lag_p99_ms(self, worker_id: str) -> float | None:
        assert self.aggregator is not None
        stats = self.aggregator.source_stats_ms(worker_id, "flux.send_lag")
        return None if stats is None else stats["p99"]

    def close(self) -> dict[str, MetricSummary]:
        """Stop accepting payloads and close the aggregator (writes the ``.hgrm`` files);
        returns its per-metric summary (ms). Call with the merge lock held."""
        assert self.aggregator is not None
        self.accepting = False
        return self.aggregator.close()

    def write_json(self, name: str, data: Mapping[str, Any]) -> None:
        assert self.run_dir is not None
        artifacts.write_json(self.run_dir / name, data)

    def close_sessions_csv(self) -> None:
        assert self.sessions_csv is not None
        self.sessions_csv.close()

    def worker_entries(
        self, health: Iterable[WorkerHealth], counted: Mapping[str, int]
    ) -> list[dict[str, Any]]:
        """run.json's ``workers`` list (what each worker sent, said and measured)."""
        entries = []
        for h in health:
            cpu = list(h.cpu_samples_percent)
            entries.append(
                {
                    "id": h.worker_id,
                    "sessions": self.worker_sessions.get(h.worker_id, 0),
                    "sessions_counted": counted.get(h.worker_id),
                    "cpu_percent_mean": sum(cpu) / len(cpu) if cpu else None,
                    "cpu_percent_max": max(cpu) if cpu else None,
                    "send_lag_p99_ms": self.send_lag_p99_ms(h.worker_id),
                    "final_report": h.final_report,
                    "lost": h.lost,
                }
            )
        return entries


def run_json(
    *,
    run_id: str,
    started_wall_s: float,
    ended_wall_s: float | None,
    phases: Mapping[str, Sequence[float]],
    options: Any,
    user_classes: Iterable[type],
    stop_timeout_s: float | None,
    settings: RunSettings,
    target: Target,
    facts: Mapping[str, Any],
    fixtures: Mapping[str, str],
    workers: Sequence[Mapping[str, Any]],
    interrupted: bool,
    budgets: Budgets,
) -> dict[str, Any]:
    """run.json (docs/ARCHITECTURE.md, "Artifact schemas"); ``ended_wall_s`` is None while the
    run is open (the first version, written at the start)."""
    weights = {cls.__name__: getattr(cls, "weight", 1) for cls in user_classes}
    emulator = None
    if settings.target == "emulator":
        config = settings.emulator_config
        emulator = {"url": settings.emulator_url, "config": config and str(config)}
    return {
        "run_id": run_id,
        "started_at": artifacts.iso_utc(started_wall_s),
        "ended_at": None if ended_wall_s is None else artifacts.iso_utc(ended_wall_s),
        "duration_s": None if ended_wall_s is None else ended_wall_s - started_wall_s,
        "phases": {name: list(bounds) for name, bounds in phases.items()},
        "config": {
            "users": getattr(options, "num_users", None),
            "spawn_rate": getattr(options, "spawn_rate", None),
            "run_time_s": getattr(options, "run_time", None),
            "frame_ms": settings.frame_ms,
            "user_classes": weights,
            "fixtures": list(settings.fixtures),
            "target": target.describe(),
            "emulator": emulator,
            "slo_file": None if settings.slo_file is None else str(settings.slo_file),
            "stop_timeout_s": stop_timeout_s,
            "flux_model": settings.flux_model,
            "aura_model": settings.aura_model,
            "aura_voice": settings.aura_voice,
            "aura_encoding": settings.aura_encoding,
            "sample_rate": settings.sample_rate,
            "eot_threshold": settings.eot_threshold,
            "eager_eot_threshold": settings.eager_eot_threshold,
            "eot_timeout_ms": settings.eot_timeout_ms,
            "keyterms": list(settings.keyterms),
            "auth_form": None if settings.auth_form is None else settings.auth_form.value,
            "header_names": [h.partition(":")[0].strip() for h in settings.headers],
            "think_time_ms": settings.think_time_ms,
            "report_interval_s": settings.report_interval_s,
        },
        "git": facts.get("git"),
        "fixtures": dict(fixtures),
        "packages": facts.get("packages"),
        "machine": facts.get("machine"),
        "workers": list(workers),
        "interrupted": interrupted,
        "budgets": {
            "send_lag_p99_ms": budgets.send_lag_p99_ms,
            "loop_lag_p99_ms": budgets.loop_lag_p99_ms,
            "worker_cpu_percent": budgets.worker_cpu_percent,
        },
    }
