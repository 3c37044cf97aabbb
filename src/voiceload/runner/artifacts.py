"""The files one run leaves in ``reports/<run-id>/`` (schemas: docs/ARCHITECTURE.md).

This module writes what the load run owns: the run directory and the ``reports/latest`` link,
``run.json``, ``sessions.csv`` (row by row, so an interrupted run keeps what it measured) and
``summary.json``. Histogram files (``.hlog``/``.hgrm``) are written by :mod:`voiceload.metrics`.
The report step reads only these files.

Pure helpers (:func:`new_run_id`, :func:`summarise_sessions`, :func:`build_summary`) take their
inputs as arguments; the rest are small I/O wrappers.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import psutil

from voiceload.client.results import SESSIONS_CSV_COLUMNS
from voiceload.runner.validity import Validity

Row = Mapping[str, str | int | float]

#: Packages whose versions go into run.json (what shapes the numbers).
RECORDED_PACKAGES = (
    "voiceload", "locust", "gevent", "greenlet", "websockets", "hdrhistogram", "numpy",
    "soundfile", "soxr", "psutil",
)  # fmt: skip


def new_run_id(now_wall_s: float, suffix: str = "") -> str:
    """A sortable run id from a wall-clock time: ``20261126T231800Z`` (plus ``-suffix``)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_wall_s))
    return f"{stamp}-{suffix}" if suffix else stamp


def iso_utc(wall_s: float) -> str:
    """ISO 8601 UTC with milliseconds, as run.json spells times."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall_s))
    return f"{whole}.{int(wall_s * 1000) % 1000:03d}Z"


def create_run_dir(reports_dir: Path, run_id: str) -> Path:
    """Make ``reports_dir/run_id`` (must not exist yet) and point ``reports_dir/latest`` at it."""
    run_dir = reports_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    point_latest(reports_dir, run_dir)
    return run_dir


def point_latest(reports_dir: Path, run_dir: Path) -> None:
    """Atomically (re)point the relative symlink ``reports_dir/latest`` at ``run_dir``.

    Does nothing when ``run_dir`` is not directly inside ``reports_dir`` (a custom --run-dir).
    """
    if run_dir.resolve().parent != reports_dir.resolve():
        return
    tmp = reports_dir / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, reports_dir / "latest")


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` as indented JSON, atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class SessionsCsv:
    """``sessions.csv``, appended one row per finished session and flushed each time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows_written = 0
        self._file: IO[str] = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=SESSIONS_CSV_COLUMNS)
        self._writer.writeheader()
        self._file.flush()

    def append(self, rows: Iterable[Row]) -> None:
        """Write rows (keys: :data:`SESSIONS_CSV_COLUMNS`) and flush them to disk."""
        for row in rows:
            self._writer.writerow(row)
            self.rows_written += 1
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def git_info(repo: Path) -> dict[str, object]:
    """``{commit, dirty}`` of the checkout at ``repo``; ``commit`` is ``None`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def package_versions(names: Sequence[str] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution, ``None`` when it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, object]:
    """``{hostname, cpu_model, cores, memory_gib, os, python}`` of this host."""
    return {
        "hostname": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
    }


def _number(value: str | int | float) -> float | None:
    if value == "" or value is None:
        return None
    return float(value)


#: The sessions.csv ``turns_<name>`` columns summed into summary.json ``turns``.
TURN_COUNTS = ("expected", "ended", "missed", "premature", "resumed", "split", "merged", "extra")
#: summary.json ``findings`` severity -> the sessions.csv column counting it.
FINDING_COLUMNS = {"violation": "findings", "warning": "findings_warning", "info": "findings_info"}


def summarise_sessions(rows: Iterable[Row]) -> dict[str, Any]:
    """The ``errors``, ``sessions``, ``turns``, ``findings`` and ``wer`` parts of summary.json,
    from sessions.csv rows.

    ``errors`` maps each category to its count and the first message seen. ``turns`` sums the
    sessions' turn columns (``expected``, ``ended``, ``missed``, ``premature``, ``resumed``,
    ``split``, ``merged``, ``extra``); ``findings`` counts findings by severity
    (``violation``, ``warning``, ``info``). ``wer.overall`` is the mean of the sessions' WER
    (sessions without a reference are left out); ``per_fixture`` the same per fixture. All
    sessions count, whatever their phase.
    """
    errors: dict[str, dict[str, Any]] = {}
    by_type: dict[str, dict[str, int]] = {}
    wer_by_fixture: dict[str, list[float]] = {}
    turns = dict.fromkeys(TURN_COUNTS, 0)
    findings = dict.fromkeys(("violation", "warning", "info"), 0)
    total = ok = 0
    for row in rows:
        total += 1
        for name in TURN_COUNTS:
            turns[name] += int(_number(row.get(f"turns_{name}", "")) or 0)
        for severity, column in FINDING_COLUMNS.items():
            findings[severity] += int(_number(row.get(column, "")) or 0)
        user_type = str(row["user_type"])
        counts = by_type.setdefault(user_type, {"total": 0, "ok": 0, "failed": 0})
        counts["total"] += 1
        if row["outcome"] == "ok":
            ok += 1
            counts["ok"] += 1
        else:
            counts["failed"] += 1
            category = str(row["error_category"]) or "unknown"
            entry = errors.setdefault(
                category, {"count": 0, "first_message": str(row["error_detail"])}
            )
            entry["count"] += 1
        wer = _number(row["wer"])
        if wer is not None:
            wer_by_fixture.setdefault(str(row["fixture"]), []).append(wer)
    all_wer = [w for ws in wer_by_fixture.values() for w in ws]
    return {
        "errors": errors,
        "sessions": {"total": total, "ok": ok, "failed": total - ok, "by_user_type": by_type},
        "turns": turns,
        "findings": findings,
        "wer": {
            "overall": sum(all_wer) / len(all_wer) if all_wer else None,
            "per_fixture": {f: sum(ws) / len(ws) for f, ws in sorted(wer_by_fixture.items())},
        },
    }


def build_summary(
    run_id: str,
    metrics: Mapping[str, Mapping[str, Any]],
    rows: Iterable[Row],
    validity: Validity,
) -> dict[str, Any]:
    """summary.json: ``metrics`` is the aggregator's per-metric steady-phase summary (ms)."""
    return {
        "run_id": run_id,
        "metrics": {name: dict(stats) for name, stats in sorted(metrics.items())},
        **summarise_sessions(rows),
        "validity": validity.to_json(),
    }
