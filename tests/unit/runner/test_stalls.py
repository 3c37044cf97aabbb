"""The stall tracer of make perf (runner/stalls.py): fake clock, fake greenlets, real gevent."""

from __future__ import annotations

import time
from pathlib import Path

import gevent
import pytest

from voiceload.runner import stalls


class Clock:
    def __init__(self) -> None:
        self.now_ns = 1_000

    def __call__(self) -> int:
        return self.now_ns

    def advance_ms(self, ms: float) -> None:
        self.now_ns += round(ms * 1e6)


def test_runs_of_2_ms_or_more_are_kept_with_their_cause() -> None:
    clock = Clock()
    tracer = stalls.StallTracer(clock_ns=clock, name_of=lambda g: str(g))
    tracer.on_switch("switch", ("hub", "a"))  # starts the clock: nothing ran before
    clock.advance_ms(3.5)
    tracer.on_switch("switch", ("voiceload.client.flux_session.FluxSession._read", "hub"))
    clock.advance_ms(1.9)  # below the threshold: not a stall
    tracer.on_switch("switch", ("gevent.hub.Hub", "b"))
    clock.advance_ms(9)
    tracer.on_switch("switch", ("gevent.hub.Hub", "b"))  # the hub: idle or not, unknown
    clock.advance_ms(6)
    tracer.on_switch("throw", ("locust.runners.WorkerRunner.stats_reporter", "hub"))
    assert tracer.stalls == [
        ("Flux message handling", 3_500_000),
        ("Locust stats/reporting", 6_000_000),
    ]


def test_gc_passes_are_timed() -> None:
    clock = Clock()
    tracer = stalls.StallTracer(clock_ns=clock)
    tracer.on_gc("start", {"generation": 0})
    clock.advance_ms(0.5)
    tracer.on_gc("stop", {"generation": 0})
    tracer.on_gc("start", {"generation": 2})
    clock.advance_ms(12)
    tracer.on_gc("stop", {"generation": 2})
    assert tracer.stalls == [("garbage collection (gen 2)", 12_000_000)]


def test_table_counts_totals_and_p99() -> None:
    tracer = stalls.StallTracer()
    tracer.stalls = [("x", ms * 1_000_000) for ms in range(2, 102)] + [("y", 4_000_000)]
    table = tracer.table()
    assert table["x"] == {"count": 100, "total_ms": 5150.0, "p99_ms": 100.0, "max_ms": 101.0}
    assert table["y"]["count"] == 1 and table["y"]["p99_ms"] == 4.0
    merged = stalls.merge_tables([table, {"y": {"count": 2, "total_ms": 9.0, "p99_ms": 5.0,
                                                "max_ms": 5.0}}])  # fmt: skip
    assert merged["y"] == {"count": 3, "total_ms": 13.0, "p99_ms": 5.0, "max_ms": 5.0}


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("voiceload.client.flux_session.FluxSession._read", "Flux message handling"),
        ("voiceload.runner.plugin.RunPlugin._drain_locally",
         "histogram encoding (voiceload report)"),
        ("locust.user.users.User.run", "session (setup, connect, send loop)"),
        ("gevent.hub.Hub", stalls.HUB_CAUSE),
        ("mystery.thing", "other: mystery.thing"),
    ],
)
def test_causes(name: str, cause: str) -> None:
    assert stalls.cause_of(name) == cause


def test_a_real_blocking_greenlet_is_caught_and_named(tmp_path: Path) -> None:
    def blocks() -> None:
        until = time.perf_counter() + 0.004
        while time.perf_counter() < until:  # holds the loop (even if time.sleep is patched)
            pass

    tracer = stalls.StallTracer()
    tracer.install()
    try:
        gevent.spawn(blocks).join()
        gevent.sleep(0)
    finally:
        tracer.uninstall()
    causes = [cause for cause, _ in tracer.stalls]
    assert any("blocks" in cause for cause in causes), causes
    tracer.write(tmp_path / "s.json")
    assert "blocks" in (tmp_path / "s.json").read_text()
