"""``voiceload calibrate RUN_DIR -o emulator.toml``: an emulator config fitted to a measured run.

Reads the run's steady-phase histograms (``*.hlog``), ``run.json`` (frame size, target) and
``sessions.csv`` (Aura audio and characters), fits the emulator's delays with
:func:`voiceload.calibrate.calibrate`, checks the result as ``voiceload emulate --config`` would
and writes it with a header saying where it came from. Then
``voiceload run --emulator-config emulator.toml`` (or ``make bench-ci``'s ``--emulator-config``)
loads the emulator the way the measured target behaved.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w

from voiceload import metrics
from voiceload.calibrate import Calibration, Quantiles, calibrate
from voiceload.emulator.behaviour import parse_config
from voiceload.errors import ConfigError
from voiceload.report import model


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0] if __doc__ else None
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path,
                        help="a measured run, e.g. reports/latest")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                        help="the emulator config to write (TOML)")


def measured_quantiles(files: model.RunFiles) -> dict[str, Quantiles]:
    """Steady p50, p90 and mean (ms) of every unlabelled metric the run recorded."""
    out: dict[str, Quantiles] = {}
    for name, reduced in files.hlogs.items():
        histogram = reduced.steady
        count = int(histogram.get_total_count())
        if count == 0:
            continue
        p = metrics.percentiles_us(histogram, (50.0, 90.0))
        out[name] = Quantiles(count=count, p50_ms=p[50.0] / metrics.US_PER_MS,
                              p90_ms=p[90.0] / metrics.US_PER_MS,
                              mean_ms=metrics.mean_us(histogram) / metrics.US_PER_MS)
    return out


def fit_run(run_dir: Path) -> tuple[Calibration, dict[str, Any]]:
    """The calibration of ``run_dir`` and its run.json; :class:`ConfigError` when the folder
    holds no measured run."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a run directory; pass e.g. reports/latest")
    files = model.load_run(run_dir)
    if not files.hlogs:
        raise ConfigError(f"{run_dir}: holds no .hlog files, so nothing to fit; pass a run"
                          " directory such as reports/latest")
    run = dict(files.run or {})
    config = run.get("config") or {}
    frame_ms = int(config.get("frame_ms") or 80)
    ttfb = files.hlogs.get("aura.ttfb")
    result = calibrate(measured_quantiles(files), files.sessions or [], frame_ms=frame_ms,
                       aura_requests=0 if ttfb is None else ttfb.count_all_phases)
    result.config = {"seed": 1, **result.config}
    parse_config(result.config)  # what `voiceload emulate --config` will accept
    return result, run


def header(run_dir: Path, run: dict[str, Any], result: Calibration) -> str:
    """The comment block saying where the file came from and how each value was fitted."""
    target = ((run.get("config") or {}).get("target") or {}).get("name", "unknown")
    lines = [
        f"# Written by `voiceload calibrate {run_dir}` at "
        f"{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}",
        f"# from run {run.get('run_id', run_dir.name)} (target {target}): the emulator's delays"
        " fitted to that run's",
        "# steady-phase histograms (voiceload/calibrate.py says how). Load it with",
        "# `voiceload run --emulator-config FILE` or `voiceload emulate --config FILE`.",
        "# Settings not written here keep the emulator's defaults.",
        "#",
    ]
    lines += [f"# {note}" for note in result.notes]
    return "\n".join(lines) + "\n\n"


def main(args: argparse.Namespace) -> int:
    result, run = fit_run(args.run_dir)
    text = header(args.run_dir, run, result) + tomli_w.dumps(result.config)
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {args.output}: {exc.strerror}") from None
    for note in result.notes:
        print(f"  {note}")
    print(f"wrote {args.output}: voiceload run --emulator-config {args.output}")
    return 0
