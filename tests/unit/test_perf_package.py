"""scripts/perf is a package run with ``python -m`` from scripts/: no module edits sys.path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def test_no_perf_module_edits_sys_path() -> None:
    edits = [
        p.name
        for p in (SCRIPTS / "perf").glob("*.py")
        if any(f"sys.path{op}" in p.read_text() for op in (".insert", ".append", "[", " ="))
    ]
    assert edits == []


def test_perf_modules_import_from_scripts_with_python_dash_m() -> None:
    # as `make perf` runs them: cwd scripts/, nothing added to the path by hand
    modules = sorted(f"perf.{p.stem}" for p in (SCRIPTS / "perf").glob("*.py"))
    modules.remove("perf.__init__")
    modules.remove("perf.harness_load")  # monkey-patches the process with gevent on import
    code = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"
    done = subprocess.run(
        [sys.executable, "-c", code, *modules], cwd=SCRIPTS, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    help_run = subprocess.run(
        [sys.executable, "-m", "perf.harness_load", "--help"],
        cwd=SCRIPTS,
        capture_output=True,
        text=True,
    )
    assert help_run.returncode == 0 and "--streams" in help_run.stdout, help_run.stderr


def test_perf_script_commands_run_the_package_module() -> None:
    from perf import procs

    assert procs.script("baseline", "--streams", 5)[1:] == ["-m", "perf.baseline", "--streams", "5"]
    assert procs.perf_env()["PYTHONPATH"].split(":")[0] == str(SCRIPTS)
