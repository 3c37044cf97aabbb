"""The report's pictures: matplotlib figures rendered to inline SVG text (no files, no network).

Each function takes numbers from :mod:`voiceload.report.model` and returns one :class:`Figure`
whose ``svg`` is an ``<svg>`` element ready to paste into HTML. Text stays text (``svg.fonttype``
``none``) so the page stays small and searchable; ids are salted per figure so several SVGs can
share one page.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import FixedLocator, NullLocator

from voiceload.report.model import Curve, OverTime

PHASE_COLOURS = {"ramp_up": "#fde9c9", "steady": "#ffffff", "teardown": "#e4e4e4"}


@dataclass(frozen=True)
class Figure:
    """One figure: an HTML id, a caption and the ``<svg>`` markup."""

    figure_id: str
    caption: str
    svg: str


def _to_svg(fig: MplFigure, figure_id: str) -> str:
    buf = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": figure_id}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    start = text.index("<svg")
    return text[start:].replace("<svg ", f'<svg id="{figure_id}-svg" role="img" ', 1)


def percentile_plot(
    curves: Sequence[Curve], figure_id: str = "fig-percentiles",
    title: str = "Latency by percentile",
) -> Figure:
    """Latency vs percentile on a log "nines" axis (HdrHistogram style), curves overlaid.

    The x position of percentile p is 1 / (1 - p/100), so 90 %, 99 %, 99.9 % ... are evenly
    spaced; the max is drawn one step past the last resolved percentile. ``title`` is drawn
    above the plot (the compare page names each plot's metric there).
    """
    fig, ax = plt.subplots(figsize=(9, 4.2))
    top = 10.0
    for c in curves:
        xs: list[float] = []
        for i, p in enumerate(c.percentiles):
            if p < 100.0:
                xs.append(1.0 / (1.0 - p / 100.0))
            else:  # the max: just past the previous point
                xs.append(xs[-1] * 10 ** 0.1 if xs else 1.0)
            top = max(top, xs[i])
        ax.plot(xs, c.values_ms, label=c.metric, linewidth=1.4)
    ax.set_xscale("log")
    ticks = [10.0**k for k in range(0, 12) if 10.0**k <= top * 1.0001]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    labels = ["0%"] + [f"{100 - 100 / t:.10g}%" for t in ticks[1:]]
    ax.set_xticklabels(labels)
    ax.set_xlabel("percentile (steady phase)")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, which="major", alpha=0.3)
    if curves:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no latency histograms in this run", transform=ax.transAxes,
                ha="center")
    ax.set_title(title)
    return Figure(figure_id, "Latency by percentile, steady phase, merged histograms "
                  "(HdrHistogram style: x axis in 'nines').", _to_svg(fig, figure_id))


def over_time_plot(ot: OverTime, figure_id: str = "fig-over-time") -> Figure:
    """p50 (dashed) / p99 (solid) per window for the main metrics, active sessions,
    sessions/s and errors/s, with the run's phases shaded."""
    fig, (ax_lat, ax_act, ax_rate) = plt.subplots(3, 1, figsize=(9, 7.5), sharex=True)
    mids = [t + ot.window_s / 2 for t in ot.t_s]
    for i, name in enumerate(ot.latency_p99_ms):
        colour = f"C{i}"
        ax_lat.plot(mids, _nan(ot.latency_p99_ms[name]), color=colour, linewidth=1.2,
                    label=f"{name} p99")
        ax_lat.plot(mids, _nan(ot.latency_p50_ms[name]), color=colour, linewidth=1.0,
                    linestyle="--", label=f"{name} p50")
    ax_lat.set_ylabel("latency (ms)")
    if ot.latency_p99_ms:
        ax_lat.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax_act.plot(mids, ot.active_sessions, color="C0", linewidth=1.2)
    ax_act.set_ylabel("active sessions")
    ax_rate.plot(mids, ot.sessions_per_s, color="C2", linewidth=1.2, label="sessions started/s")
    ax_rate.plot(mids, ot.errors_per_s, color="C3", linewidth=1.2, label="failed sessions/s")
    ax_rate.set_ylabel("per second")
    ax_rate.set_xlabel(f"seconds since run start (windows of {ot.window_s:g} s)")
    ax_rate.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for ax in (ax_lat, ax_act, ax_rate):
        ax.set_xlim(0.0, (ot.t_s[-1] + ot.window_s) if ot.t_s else 1.0)
        ax.grid(True, alpha=0.3)
        for phase, (a, b) in ot.phases.items():
            ax.axvspan(a, b, color=PHASE_COLOURS.get(phase, "#f0f0f0"), alpha=0.6, zorder=0)
            ax.axvline(a, color="#888888", linewidth=0.6, linestyle=":")
    for phase, (a, b) in ot.phases.items():
        ax_lat.annotate(phase.replace("_", "-"), xy=((a + b) / 2, 1.0),
                        xycoords=("data", "axes fraction"), ha="center", va="bottom",
                        fontsize=8)
    fig.tight_layout()
    return Figure(figure_id, "Over time: latency p50/p99 per window, active sessions, session "
                  "and failure rates; shaded bands are the run's phases.", _to_svg(fig, figure_id))


def _nan(values: Sequence[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in values]
