"""Service-level objectives: a TOML file of limits, checked against a run's steady-phase numbers.

Pure: the check takes the ``metrics`` mapping of ``summary.json`` (metric -> stat -> ms) and
returns one :class:`SloResult` per objective. The shipped defaults are
``voiceload/data/slo.toml``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from voiceload.errors import ConfigError

#: Statistics an objective may name (the keys of a metric in summary.json, all in ms).
STATS = ("p50", "p90", "p95", "p99", "p99_9", "max", "mean")


@dataclass(frozen=True)
class Slo:
    """``stat`` of ``metric`` (steady phase) must be <= ``limit_ms``."""

    metric: str
    stat: str
    limit_ms: float
    why: str = ""

    @property
    def name(self) -> str:
        return f"{self.stat} {self.metric} <= {self.limit_ms:g} ms"


@dataclass(frozen=True)
class SloResult:
    """One objective checked; ``passed`` is None when the run did not measure the metric."""

    metric: str
    stat: str
    limit_ms: float
    measured_ms: float | None
    passed: bool | None

    @property
    def name(self) -> str:
        return f"{self.stat} {self.metric} <= {self.limit_ms:g} ms"

    def as_json(self) -> dict[str, Any]:
        """The summary.json form: ``{metric, stat, limit_ms, measured_ms, passed}``."""
        return {"metric": self.metric, "stat": self.stat, "limit_ms": self.limit_ms,
                "measured_ms": self.measured_ms, "passed": self.passed}


def default_slo_path() -> Path:
    """The SLO file shipped with voiceload."""
    return Path(str(resources.files("voiceload") / "data" / "slo.toml"))


def load_slos(path: Path | str | None = None) -> list[Slo]:
    """Read and validate an SLO TOML file (default: the shipped one).

    The file holds one or more ``[[slo]]`` tables with ``metric`` (str), ``stat`` (one of
    :data:`STATS`), ``limit_ms`` (number > 0) and optional ``why`` (str). Raises
    :class:`ConfigError` naming the file, the key and the expected form.
    """
    file = Path(path) if path is not None else default_slo_path()
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{file}: file not found; pass an existing SLO TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read ({exc.strerror}); check permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc})") from None
    entries = data.get("slo")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"{file}: key slo: expected one or more [[slo]] tables with metric, stat, limit_ms, "
            f"got {entries!r}"
        )
    slos: list[Slo] = []
    for i, entry in enumerate(entries):
        key = f"slo[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{file}: key {key}: expected a table, got {entry!r}")
        slos.append(_slo(file, key, entry))
    seen: set[tuple[str, str]] = set()
    for i, s in enumerate(slos):
        if (s.metric, s.stat) in seen:
            raise ConfigError(
                f"{file}: key slo[{i}]: {s.stat} of {s.metric} is limited twice; keep one"
            )
        seen.add((s.metric, s.stat))
    return slos


def _slo(file: Path, key: str, entry: Mapping[str, Any]) -> Slo:
    unknown = sorted(set(entry) - {"metric", "stat", "limit_ms", "why"})
    if unknown:
        raise ConfigError(
            f"{file}: key {key}.{unknown[0]}: unknown key; expected metric, stat, limit_ms, why"
        )
    metric = entry.get("metric")
    if not isinstance(metric, str) or "." not in metric:
        raise ConfigError(
            f"{file}: key {key}.metric: expected a metric name such as \"flux.eot\", "
            f"got {metric!r}"
        )
    stat = entry.get("stat")
    if stat not in STATS:
        raise ConfigError(
            f"{file}: key {key}.stat: expected one of {', '.join(STATS)}, got {stat!r}"
        )
    limit = entry.get("limit_ms")
    if (isinstance(limit, bool) or not isinstance(limit, int | float)
            or not math.isfinite(limit) or limit <= 0):
        raise ConfigError(
            f"{file}: key {key}.limit_ms: expected a number of milliseconds > 0, got {limit!r}"
        )
    why = entry.get("why", "")
    if not isinstance(why, str):
        raise ConfigError(f"{file}: key {key}.why: expected a string, got {why!r}")
    return Slo(metric=metric, stat=str(stat), limit_ms=float(limit), why=why)


def check(slos: Sequence[Slo], metrics: Mapping[str, Mapping[str, Any]]) -> list[SloResult]:
    """Check every objective against ``metrics`` (summary.json form: name -> stat -> ms).

    A metric that is absent, has ``count`` 0 or lacks the stat gives ``passed=None``.
    """
    results = []
    for s in slos:
        m = metrics.get(s.metric)
        value = m.get(s.stat) if m is not None and m.get("count", 1) else None
        measured = float(value) if isinstance(value, int | float) else None
        passed = None if measured is None else measured <= s.limit_ms
        results.append(SloResult(metric=s.metric, stat=s.stat, limit_ms=s.limit_ms,
                                 measured_ms=measured, passed=passed))
    return results


def verdict(results: Sequence[SloResult]) -> str:
    """``"PASS"`` when no objective failed and at least one was measured, else ``"FAIL"``;
    ``"NOT MEASURED"`` when none was measured."""
    if any(r.passed is False for r in results):
        return "FAIL"
    if any(r.passed for r in results):
        return "PASS"
    return "NOT MEASURED"
