"""Is this run's measurement trustworthy? (METRICS.md "Validity of a run"; pure).

A latency report is only as good as the load generator. :func:`judge` takes what the run measured
about itself and returns a :class:`Validity` with one plain reason per broken rule. Nothing here
reads a clock or a file; the plugin feeds it numbers.

Rules (steady phase):

- ``flux.send_lag`` p99 above ``Budgets.send_lag_p99_ms`` (default 5 ms);
- ``harness.loop_lag`` p99 above ``Budgets.loop_lag_p99_ms`` (default 5 ms): the generator's
  event loop stalled (runner/looplag.py);
- a worker's CPU *stayed* above ``Budgets.worker_cpu_percent`` (default 75 %) for
  ``Budgets.cpu_window_samples`` consecutive one-second samples (a single busy second is not a
  verdict; see :func:`sustained_cpu_percent`);
- any sample out of histogram range;
- a worker whose final report never reached the master (or that was lost);
- every session failed the same way (the run stopped early; see :class:`AllFailingDetector`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Budgets:
    """The harness's own error budget. Defaults follow METRICS.md and MEASUREMENTS.md §2.3."""

    send_lag_p99_ms: float = 5.0
    loop_lag_p99_ms: float = 5.0
    worker_cpu_percent: float = 75.0
    cpu_window_samples: int = 3


@dataclass(frozen=True)
class WorkerHealth:
    """What one load-generating process said about itself (the local process counts as one)."""

    worker_id: str
    cpu_samples_percent: Sequence[float] = ()
    final_report: bool = True
    lost: bool = False


@dataclass(frozen=True)
class Validity:
    """The verdict; ``reasons`` is empty exactly when ``valid`` is true."""

    valid: bool
    reasons: tuple[str, ...]
    send_lag_p99_ms: float | None
    worker_cpu_max: float | None
    worker_cpu_sustained: float | None
    out_of_range: int
    missing_worker_finals: tuple[str, ...] = field(default=())
    loop_lag_p99_ms: float | None = None

    def to_json(self) -> dict[str, object]:
        """The ``validity`` object of summary.json (docs/ARCHITECTURE.md)."""
        return {
            "valid": self.valid,
            "reasons": list(self.reasons),
            "send_lag_p99_ms": self.send_lag_p99_ms,
            "loop_lag_p99_ms": self.loop_lag_p99_ms,
            "worker_cpu_max": self.worker_cpu_max,
            "worker_cpu_sustained": self.worker_cpu_sustained,
            "out_of_range": self.out_of_range,
            "missing_worker_finals": list(self.missing_worker_finals),
        }


def sustained_cpu_percent(samples_percent: Sequence[float], window: int) -> float | None:
    """The highest level the CPU stayed at for ``window`` consecutive samples.

    That is the maximum, over every run of ``window`` consecutive samples, of the run's minimum.
    With fewer samples than ``window`` the whole series is one run. ``None`` when there are no
    samples. ``window`` must be >= 1.
    """
    if window < 1:
        raise ValueError(f"cpu window of {window} samples must be at least 1")
    if not samples_percent:
        return None
    if len(samples_percent) <= window:
        return min(samples_percent)
    return max(
        min(samples_percent[i : i + window]) for i in range(len(samples_percent) - window + 1)
    )


def judge(
    *,
    send_lag_p99_ms: float | None,
    workers: Sequence[WorkerHealth],
    out_of_range: Mapping[str, int],
    budgets: Budgets = Budgets(),
    early_stop_reason: str | None = None,
    loop_lag_p99_ms: float | None = None,
) -> Validity:
    """Apply the rules above; ``send_lag_p99_ms`` is ``None`` when no Flux frame was sent.

    ``out_of_range`` maps metric name to the number of samples the histograms refused.
    ``early_stop_reason`` is the message of an in-run stop (e.g. every session failing).
    ``loop_lag_p99_ms`` is the steady ``harness.loop_lag`` p99 (``None``: not measured).
    """
    reasons: list[str] = []
    if send_lag_p99_ms is not None and send_lag_p99_ms > budgets.send_lag_p99_ms:
        reasons.append(
            f"steady flux.send_lag p99 {send_lag_p99_ms:.2f} ms exceeds the"
            f" {budgets.send_lag_p99_ms:g} ms budget: the load generator fell behind its"
            " schedule; use fewer users per worker or more workers"
        )
    if loop_lag_p99_ms is not None and loop_lag_p99_ms > budgets.loop_lag_p99_ms:
        reasons.append(
            f"steady harness.loop_lag p99 {loop_lag_p99_ms:.2f} ms exceeds the"
            f" {budgets.loop_lag_p99_ms:g} ms budget: the load generator's event loop stalled"
            " (frames and receive stamps were late); use fewer users per worker or more workers"
        )

    cpu_max: float | None = None
    cpu_sustained: float | None = None
    for worker in workers:
        if worker.cpu_samples_percent:
            peak = max(worker.cpu_samples_percent)
            cpu_max = peak if cpu_max is None else max(cpu_max, peak)
        level = sustained_cpu_percent(worker.cpu_samples_percent, budgets.cpu_window_samples)
        if level is None:
            continue
        cpu_sustained = level if cpu_sustained is None else max(cpu_sustained, level)
        if level > budgets.worker_cpu_percent:
            reasons.append(
                f"worker {worker.worker_id} CPU stayed at {level:.0f} % or more for"
                f" {budgets.cpu_window_samples} s, above the {budgets.worker_cpu_percent:g} %"
                " budget: latency tails include harness queueing; add workers"
            )

    refused = sum(out_of_range.values())
    for metric, count in sorted(out_of_range.items()):
        if count:
            reasons.append(
                f"{count} {metric} sample(s) outside the histogram range 1 µs .. 1 h were"
                " counted but not recorded"
            )

    missing = tuple(sorted(w.worker_id for w in workers if w.lost or not w.final_report))
    for worker_id in missing:
        reasons.append(
            f"worker {worker_id}'s final histograms never reached the master:"
            " its last samples are missing"
        )

    if early_stop_reason:
        reasons.append(early_stop_reason)

    return Validity(
        valid=not reasons,
        reasons=tuple(reasons),
        send_lag_p99_ms=send_lag_p99_ms,
        worker_cpu_max=cpu_max,
        worker_cpu_sustained=cpu_sustained,
        out_of_range=refused,
        missing_worker_finals=missing,
        loop_lag_p99_ms=loop_lag_p99_ms,
    )


class AllFailingDetector:
    """Notices when every session fails the same way, so a run can stop with one message.

    Feed it each finished session's outcome with :meth:`observe`. Once ``threshold`` sessions in a
    row, since the start of the run, have all failed with the same category (and none succeeded),
    :meth:`observe` returns a one-line reason, once; afterwards it returns ``None``. A success, or
    a second category, disarms it for the rest of the run.
    """

    def __init__(self, threshold: int = 20) -> None:
        if threshold < 1:
            raise ValueError(f"threshold of {threshold} sessions must be at least 1")
        self.threshold = threshold
        self._category: str | None = None
        self._first_message = ""
        self._count = 0
        self._disarmed = False

    def observe(self, ok: bool, category: str = "", message: str = "") -> str | None:
        """Record one session; return the stop reason the first time the rule trips."""
        if self._disarmed:
            return None
        if ok or (self._category is not None and category != self._category):
            self._disarmed = True
            return None
        if self._category is None:
            self._category, self._first_message = category, message
        self._count += 1
        if self._count >= self.threshold:
            self._disarmed = True
            return (
                f"stopped early: the first {self._count} sessions all failed with"
                f" {self._category} ({self._first_message})"
            )
        return None
