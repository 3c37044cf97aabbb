"""``voiceload report RUN_DIR``: render a run's report.html, junit.xml and summary.json additions.

Reads only the run's files (run.json, summary.json, sessions.csv, *.hlog), so any old run can be
re-rendered; a directory holding none of them is refused (exit 2). Exit code 0 when the page
was written; with ``--check``, 1 when an SLO failed or the
run is invalid (for CI).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from voiceload import cost, slo
from voiceload.credentials import load_credentials
from voiceload.errors import ConfigError
from voiceload.report import figures, html, model


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path,
                        help="a run directory, e.g. reports/latest")
    parser.add_argument("--slo", default=None, metavar="FILE",
                        help="SLO TOML (default: the one shipped with voiceload)")
    parser.add_argument("--pricing", default=None, metavar="FILE",
                        help="pricing TOML (default: the one shipped with voiceload)")
    parser.add_argument("--sessions-per-day", type=float, default=1000.0, metavar="N",
                        help="voice sessions per day for the cost and capacity check "
                             "(default 1000)")
    parser.add_argument("--busy-hour-factor", type=float, default=None, metavar="F",
                        help="peak rate / mean daily rate (default: the pricing file's)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when an SLO failed or the run is invalid")


def render_run(
    run_dir: Path, *, slo_path: str | None = None, pricing_path: str | None = None,
    sessions_per_day: float = 1000.0, busy_hour_factor: float | None = None,
) -> tuple[model.ReportModel, dict[str, Path]]:
    """Build the model of ``run_dir``, draw its figures and write its outputs."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a run directory; pass e.g. reports/latest")
    if sessions_per_day < 0:
        raise ConfigError(f"--sessions-per-day must be >= 0, got {sessions_per_day:g}")
    slos = slo.load_slos(slo_path)
    pricing = cost.load_pricing(pricing_path)
    files = model.load_run(run_dir)
    if files.run is None and files.summary is None and not files.hlogs:
        raise ConfigError(f"{run_dir}: holds no run (no run.json, summary.json or .hlog files);"
                          " pass a run directory such as reports/latest")
    m = model.build_model(files, slos, pricing,
                          sessions_per_day=sessions_per_day, busy_hour_factor=busy_hour_factor)
    figs = []
    if m.curves:
        figs.append(figures.percentile_plot(m.curves))
    if m.over_time is not None:
        figs.append(figures.over_time_plot(m.over_time))
    return m, html.write_outputs(run_dir, m, html.render(m, figs))


def main(args: argparse.Namespace) -> int:
    # Register the user's own secrets (.env.local / environment; none is required) so that
    # credentials.redact removes them wherever an old run's files might still hold them.
    load_credentials()
    m, paths = render_run(args.run_dir, slo_path=args.slo, pricing_path=args.pricing,
                          sessions_per_day=args.sessions_per_day,
                          busy_hour_factor=args.busy_hour_factor)
    validity = {True: "VALID", False: "INVALID"}.get(m.valid, "validity unknown")  # type: ignore[arg-type]
    print(f"SLO {m.slo_verdict}, run {validity}; wrote {paths['report']}, {paths['junit']}, "
          f"{paths['summary']}")
    for line in m.missing:
        print(f"  missing: {line}")
    if args.check and (m.slo_verdict == "FAIL" or m.valid is not True):
        return 1
    return 0
