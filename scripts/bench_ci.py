"""The CI gate (``make bench-ci``): a short headless run, its SLO and validity verdict, and an
optional comparison with a committed baseline. Exit 0 only when every gate passed.

Steps, each a ``voiceload`` sub-command in its own process so one failing still leaves the
others' artifacts:

1. ``voiceload run --scenario smoke --duration 40s --no-report`` against the bundled emulator
   (or ``--target``), with the CI emulator profile ``scripts/bench_ci_emulator.toml``;
2. ``voiceload report RUN --check --slo FILE``: report.html, junit.xml, summary.json with
   ``slo``/``cost``; fails when an SLO fails or the run is invalid. The SLO file is ``--slo``
   (``make bench-ci SLO=FILE``), checked before the run and passed to it as ``--slo-file`` so
   that run.json records it; without ``--slo``, the one the run recorded (the scenario's
   ``slo-file`` or ``VOICELOAD_SLO_FILE``), else the one shipped with voiceload;
3. with ``--baseline NAME``: ``voiceload compare NAME RUN --fail-on-regression`` (compare.html,
   compare.md for a pull-request comment, compare.json); fails on a regression.

    .venv/bin/python scripts/bench_ci.py [--baseline NAME] [--slo FILE] [--duration 40s]
        [--users 6] [--reports-dir reports] [-- extra `voiceload run` options]

Exit codes: 0 all gates passed; 1 a gate failed (SLO, validity, regression); 2 the run could not
be made (bad options, nothing written). The last lines printed say which gate failed and where
the artifacts are.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from voiceload import slo
from voiceload.errors import ConfigError

HERE = Path(__file__).resolve().parent
CI_EMULATOR_CONFIG = HERE / "bench_ci_emulator.toml"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, metavar="NAME_OR_DIR",
                        help="compare with reports/baselines/NAME (or a run directory)")
    parser.add_argument("--slo", default=None, metavar="FILE",
                        help="SLO TOML (default: the one shipped with voiceload)")
    parser.add_argument("--duration", default="40s", help="run time (default: %(default)s)")
    parser.add_argument("--users", type=int, default=6, help="users (default: %(default)s)")
    parser.add_argument("--scenario", default="smoke", help="scenario (default: %(default)s)")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"),
                        help="where the run directory goes (default: %(default)s)")
    parser.add_argument("--emulator-config", type=Path, default=CI_EMULATOR_CONFIG,
                        help="emulator profile (default: scripts/bench_ci_emulator.toml)")
    parser.add_argument("run_args", nargs=argparse.REMAINDER,
                        help="after --: more `voiceload run` options (e.g. --target gateway)")
    return parser.parse_args(argv)


def voiceload(*args: str) -> int:
    """Run one ``voiceload`` sub-command in a child process; its exit code."""
    print(f"\n$ voiceload {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "voiceload.cli", *args]).returncode


def latest_run(reports_dir: Path) -> Path | None:
    latest = reports_dir / "latest"
    return latest.resolve() if latest.exists() else None


def recorded_slo_file(run_dir: Path) -> str | None:
    """The SLO file the run recorded in run.json (``config.slo_file``), if any."""
    config = json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("config") or {}
    value = config.get("slo_file")
    return str(value) if value else None


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    extra = [a for a in args.run_args if a != "--"]
    slo_args: list[str] = []
    if args.slo:
        try:  # a bad SLO file fails now, not after the run
            slo.load_slos(args.slo)
        except ConfigError as exc:
            print(f"bench-ci: FAIL: {exc}", file=sys.stderr)
            return 2
        slo_args = ["--slo-file", str(Path(args.slo).resolve())]
    before = latest_run(args.reports_dir)
    run_code = voiceload(
        "run", "--scenario", args.scenario, "--users", str(args.users),
        "--spawn-rate", str(args.users), "--duration", args.duration,
        "--reports-dir", str(args.reports_dir), "--emulator-config", str(args.emulator_config),
        "--no-report", *slo_args, *extra)
    run_dir = latest_run(args.reports_dir)
    if run_dir is None or run_dir == before or not (run_dir / "summary.json").is_file():
        print(f"bench-ci: FAIL: the run wrote no summary.json (voiceload run exited {run_code})",
              file=sys.stderr)
        return 2
    gates = {"run": run_code}
    report = ["report", str(run_dir), "--check"]
    slo_file = args.slo or recorded_slo_file(run_dir)
    gates["slo+validity"] = voiceload(*report, *(["--slo", slo_file] if slo_file else []))
    if args.baseline:
        gates["compare"] = voiceload("compare", args.baseline, str(run_dir),
                                     "--fail-on-regression")
        markdown = run_dir / "compare" / "compare.md"
        if markdown.is_file():
            print("\n" + markdown.read_text(encoding="utf-8"))
    failed = [name for name, code in gates.items() if code != 0]
    print(f"\nbench-ci: {'FAIL (' + ', '.join(failed) + ')' if failed else 'PASS'}")
    print(f"artifacts: {run_dir} (report.html, junit.xml, summary.json, run.json, *.hlog, "
          f"sessions.csv{', compare/' if args.baseline else ''})")
    if 2 in gates.values():  # a sub-command refused its input (e.g. a bad SLO file)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
