"""Who stalled the event loop? A greenlet switch tracer for ``make perf`` (issue 16).

``harness.loop_lag`` (runner/looplag.py) says *that* a generator's loop stalled; this module
says *why*. :class:`StallTracer` is a ``greenlet.settrace`` callback: it times each greenlet's
run between two switches and keeps every run of at least ``threshold_ms`` (2 ms) with the
cause its greenlet stands for (:func:`cause_of`); ``gc.callbacks`` time each garbage
collection the same way. While a greenlet runs, nothing else does, so a run of ``d`` ms is a
stall of ``d`` ms for every due frame. The hub's own runs are not counted: from the switches
alone, its I/O callbacks cannot be told apart from idle waiting for I/O.

It costs a Python call per switch, so it is OFF in normal runs: set ``VOICELOAD_STALL_TRACE``
to a file path and each generator writes its stalls there (``<path>.<worker id>.json``) when
its test stops; ``make perf`` does that for its voiceload trials and tabulates the causes.
"""

from __future__ import annotations

import gc
import json
import os
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import greenlet  # type: ignore[import-untyped]

ENV_VAR = "VOICELOAD_STALL_TRACE"
STALL_THRESHOLD_MS = 2.0
GC_CAUSE = "garbage collection"
HUB_CAUSE = "gevent hub (I/O callbacks or idle)"

#: (substring of the greenlet's run function, cause), first match wins.
CAUSES: tuple[tuple[str, str], ...] = (
    ("FluxSession._read", "Flux message handling"),
    ("AuraSession._read", "Aura message handling"),
    ("_drain_locally", "histogram encoding (voiceload report)"),
    ("_measure_loop_lag", "loop-lag timer"),
    ("_sample_cpu", "CPU sampler"),
    ("stats", "Locust stats/reporting"),
    ("heartbeat", "Locust stats/reporting"),
    ("worker", "Locust stats/reporting"),
    ("Runner", "Locust stats/reporting"),
    ("User", "session (setup, connect, send loop)"),
    ("FluxSession", "session (setup, connect, send loop)"),
    ("gevent.hub.Hub", HUB_CAUSE),
)


def run_name(glet: Any) -> str:
    """``module.qualname`` of what ``glet`` runs (its class for the hub)."""
    target = getattr(glet, "_run", None) or getattr(glet, "run", None)
    target = getattr(target, "__func__", target)
    if target is None or type(glet).__name__ == "Hub":
        return f"{type(glet).__module__}.{type(glet).__qualname__}"
    owner = getattr(target, "__self__", None)
    qualname = getattr(target, "__qualname__", type(target).__qualname__)
    if owner is not None and "." not in qualname:
        qualname = f"{type(owner).__qualname__}.{qualname}"
    return f"{getattr(target, '__module__', '')}.{qualname}"


def cause_of(name: str) -> str:
    """The cause a greenlet's run name stands for (:data:`CAUSES`), else ``other: <name>``."""
    for fragment, cause in CAUSES:
        if fragment in name:
            return cause
    return f"other: {name}"


class StallTracer:
    """Collects ``(cause, duration_ns)`` of greenlet runs and gc passes >= ``threshold_ms``."""

    def __init__(
        self,
        threshold_ms: float = STALL_THRESHOLD_MS,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
        name_of: Callable[[Any], str] = run_name,
    ) -> None:
        self.threshold_ns = round(threshold_ms * 1e6)
        self.clock_ns = clock_ns
        self.name_of = name_of
        self.stalls: list[tuple[str, int]] = []
        self._since_ns = 0
        self._gc_start_ns = 0
        self._previous: Any = None
        # a greenlet's name, taken when it is switched to (gevent drops ``_run`` when it ends)
        self._names: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def _name(self, glet: Any) -> str:
        try:
            name = self._names.get(glet)
            if name is None:
                name = self._names[glet] = self.name_of(glet)
            return name
        except TypeError:  # not weak-referenceable (a fake in tests)
            return self.name_of(glet)

    # -- callbacks -------------------------------------------------------------------------

    def on_switch(self, event: str, args: tuple[Any, Any]) -> None:
        """``greenlet.settrace`` callback: ``args`` is ``(origin, target)``."""
        if event not in ("switch", "throw"):
            return
        now_ns = self.clock_ns()
        origin, target = args
        if self._since_ns:
            ran_ns = now_ns - self._since_ns
            if ran_ns >= self.threshold_ns:
                cause = cause_of(self._name(origin))
                if cause != HUB_CAUSE:  # idle waiting for I/O, or callbacks: unknown
                    self.stalls.append((cause, ran_ns))
        self._name(target)
        self._since_ns = self.clock_ns()

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """``gc.callbacks`` entry."""
        if phase == "start":
            self._gc_start_ns = self.clock_ns()
        elif self._gc_start_ns:
            took_ns = self.clock_ns() - self._gc_start_ns
            self._gc_start_ns = 0
            if took_ns >= self.threshold_ns:
                self.stalls.append((f"{GC_CAUSE} (gen {info.get('generation', '?')})", took_ns))

    # -- lifecycle -------------------------------------------------------------------------

    def install(self) -> None:
        self._previous = greenlet.settrace(self.on_switch)
        gc.callbacks.append(self.on_gc)

    def uninstall(self) -> None:
        greenlet.settrace(self._previous)
        if self.on_gc in gc.callbacks:
            gc.callbacks.remove(self.on_gc)

    def table(self) -> dict[str, dict[str, float]]:
        """Per cause: ``count``, ``total_ms``, ``p99_ms`` (nearest rank), ``max_ms``."""
        by_cause: dict[str, list[int]] = {}
        for cause, ns in self.stalls:
            by_cause.setdefault(cause, []).append(ns)
        return {cause: summarise(durations) for cause, durations in sorted(by_cause.items())}

    def write(self, path: Path) -> None:
        path.write_text(json.dumps({"stalls": self.table()}, indent=1), encoding="utf-8")


def summarise(durations_ns: list[int]) -> dict[str, float]:
    """count, total, nearest-rank p99 and max of ``durations_ns`` (ms)."""
    ordered = sorted(durations_ns)
    rank = max(1, -(-99 * len(ordered) // 100))
    return {
        "count": len(ordered),
        "total_ms": sum(ordered) / 1e6,
        "p99_ms": ordered[rank - 1] / 1e6,
        "max_ms": ordered[-1] / 1e6,
    }


def merge_tables(tables: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Several processes' tables as one: counts and totals add, p99 and max take the largest
    (an upper bound for p99; the exact value needs the samples)."""
    merged: dict[str, dict[str, float]] = {}
    for table in tables:
        for cause, row in table.items():
            into = merged.setdefault(cause, {"count": 0, "total_ms": 0.0, "p99_ms": 0.0,
                                             "max_ms": 0.0})  # fmt: skip
            into["count"] += row["count"]
            into["total_ms"] += row["total_ms"]
            into["p99_ms"] = max(into["p99_ms"], row["p99_ms"])
            into["max_ms"] = max(into["max_ms"], row["max_ms"])
    return merged


def from_environment() -> Path | None:
    """The stall-trace path prefix if ``VOICELOAD_STALL_TRACE`` asks for one."""
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value) if value else None
