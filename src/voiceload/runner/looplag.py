"""The load generator's own event-loop lag (``harness.loop_lag``; issue 16).

A process running users is only as punctual as its gevent hub: while one greenlet runs (a
session setting up, a Flux message being checked, Locust's stats, a histogram being encoded,
the garbage collector), no due audio frame goes out. :class:`LoopLagMonitor` measures that
directly, the way the emulator measures its own loop: it sleeps a fixed interval
(:data:`LOOP_LAG_INTERVAL_S`, 10 ms) and records how late it woke up (µs), so a stall of
``d`` ms shows as one sample of about ``d`` ms. The sample goes through the same recorder as
every other harness metric, is merged across workers, and its steady-phase p99 is judged
against ``Budgets.loop_lag_p99_ms`` (runner/validity.py).

The clock and the sleeper are injected, so the recorder is tested with fakes; :meth:`run`
stops when ``should_stop()`` says so or when the greenlet running it is killed (the plugin
kills it at the end of the run, with its other greenlets).
"""

from __future__ import annotations

import time
from collections.abc import Callable

LOOP_LAG_INTERVAL_S = 0.010  # how long the monitor sleeps between samples


class LoopLagMonitor:
    """Records how late a fixed sleep wakes up: ``actual wake-up - (start + interval)``.

    ``record(value_us)`` receives each lateness in µs (never negative: waking early counts as
    0). ``clock_ns`` is a monotonic clock, ``sleep`` sleeps seconds (``gevent.sleep`` in a run).
    """

    def __init__(
        self,
        record: Callable[[int], object],
        *,
        interval_s: float = LOOP_LAG_INTERVAL_S,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"loop-lag interval of {interval_s} s must be positive")
        if sleep is None:
            import gevent

            sleep = gevent.sleep
        self.record = record
        self.interval_s = interval_s
        self.interval_ns = round(interval_s * 1e9)
        self.clock_ns = clock_ns
        self.sleep = sleep
        self.samples = 0

    def step(self) -> int:
        """Sleep one interval; record and return the lateness in µs."""
        due_ns = self.clock_ns() + self.interval_ns
        self.sleep(self.interval_s)
        late_us = max(0, (self.clock_ns() - due_ns) // 1000)
        self.record(late_us)
        self.samples += 1
        return late_us

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Sample until ``should_stop()`` is true (or the greenlet is killed)."""
        while not should_stop():
            self.step()
