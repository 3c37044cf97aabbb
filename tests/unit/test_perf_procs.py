"""perf.procs / perf.baseline: capacity trials run without the stall tracer, on the same fixture
and ramp as the baseline; the baseline refuses a fixture that would end inside its window."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from perf import baseline, procs


def fake_run(tmp_path: Path, seen: dict[str, Any]) -> Any:
    """A ``subprocess.run`` stand-in: records the command and env, writes a run directory."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"metrics": {}}))
    (run_dir / "run.json").write_text(json.dumps({"workers": []}))

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen["command"], seen["env"] = command, kwargs["env"]
        return subprocess.CompletedProcess(command, 0, f"results in {run_dir}\n", "")

    return run


def test_capacity_runs_have_no_stall_tracer_even_if_the_caller_set_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(procs.subprocess, "run", fake_run(tmp_path, seen))
    monkeypatch.setenv("VOICELOAD_STALL_TRACE", str(tmp_path / "inherited"))
    out = procs.voiceload_run("ws://127.0.0.1:1", 600, 80, 17, tmp_path, fixtures="monologue_long")
    assert "VOICELOAD_STALL_TRACE" not in seen["env"]
    assert out["stalls"] is None
    command = seen["command"]
    assert command[command.index("--fixtures") + 1] == "monologue_long"
    assert command[command.index("--spawn-rate") + 1] == "120"
    assert command[command.index("--duration") + 1] == "17s"


def test_the_diagnostic_run_sets_the_stall_tracer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(procs.subprocess, "run", fake_run(tmp_path, seen))
    out = procs.voiceload_run("ws://127.0.0.1:1", 600, 80, 17, tmp_path, stall_trace=True)
    assert seen["env"]["VOICELOAD_STALL_TRACE"].startswith(str(tmp_path / "stalls-600-80-"))
    assert out["stalls"] == {}  # no generator wrote a table in this fake run
    assert "--fixtures" not in seen["command"]


def test_the_baseline_ramps_like_voiceload_run_spawns() -> None:
    assert procs.ramp_s(600) == pytest.approx(5.0)  # 600 users at 120/s
    assert procs.ramp_s(50) == pytest.approx(2.5)  # at least 20/s


def test_baseline_refuses_a_fixture_that_ends_inside_the_window(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # monologue_long lasts 19.7 s: a 5 s ramp + 16 s window would see streams end (and, in
    # voiceload, reconnect) inside the window; refused before any connection is made
    code = baseline.main(["--base-url", "ws://127.0.0.1:9", "--streams", "1", "--ramp-s", "5",
                          "--measure-s", "16"])  # fmt: skip
    assert code == 2
    assert "lasts 19.7 s, less than ramp + warm-up + window (21.0 s)" in capsys.readouterr().err


def test_baseline_streams_the_manifest_fixture_voiceload_sends() -> None:
    frames = baseline.fixture_frames("monologue_long", 80)
    assert len(frames) * 80 / 1000 == pytest.approx(19.7, abs=0.05)
    assert {len(f) for f in frames[:-1]} == {2560}  # 80 ms of 16 kHz linear16


def test_the_churn_pool_is_voiceload_runs_default_flux_pool() -> None:
    from voiceload.fixtures import load_manifest
    from voiceload.runner.sessions import build_pools

    expected = build_pools(load_manifest(), []).flux
    pool = baseline.flux_pool("", 80)
    assert len(pool) == len(expected) > 1
    assert [len(frames) for frames in pool] == [
        len(baseline.fixture_frames(f.name, 80)) for f in expected
    ]
    assert len(baseline.flux_pool("monologue_long", 80)) == 1
