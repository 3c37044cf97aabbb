"""Benchmark: render the report of a synthetic one-hour run (~1,200 intervals, every metric).

Target (issue 6): rendering takes under 10 s on the 2-core reference machine and report.html stays
under 5 MB. Generation of the synthetic run is not timed.

    .venv/bin/python scripts/bench_report.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_golden_run import generate_run
from voiceload.cli import report as report_cli

RENDER_BUDGET_S = 10.0
HTML_BUDGET_BYTES = 5 * 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="write the run here and keep it")
    parser.add_argument("--sessions-per-s", type=float, default=1.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.keep or Path(tmp) / "run"
        t0 = time.perf_counter()
        generate_run(run_dir, seed=1, duration_s=3600.0, interval_s=3.0,
                     sessions_per_s=args.sessions_per_s, ramp_s=60.0, teardown_s=60.0,
                     send_lag_every=25)
        generated_s = time.perf_counter() - t0
        hlog_bytes = sum(p.stat().st_size for p in run_dir.glob("*.hlog"))
        t0 = time.perf_counter()
        _, paths = report_cli.render_run(run_dir)
        render_s = time.perf_counter() - t0
        size = paths["report"].stat().st_size
    print(f"synthetic run: 3600 s, 1200 intervals, {hlog_bytes / 1e6:.1f} MB of .hlog "
          f"(generated in {generated_s:.1f} s)")
    print(f"render: {render_s:.2f} s (budget {RENDER_BUDGET_S:g} s); report.html "
          f"{size / 1e6:.2f} MB (budget {HTML_BUDGET_BYTES / 1e6:.1f} MB)")
    ok = render_s < RENDER_BUDGET_S and size < HTML_BUDGET_BYTES
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
