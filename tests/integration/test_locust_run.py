"""Done-when test of a load run: the real users, in-process Locust, the emulator on port 0.

The emulator runs as `voiceload emulate` in a child process with a config that fixes the
end-of-turn delay and injects three faults on chosen connection numbers. The run's artifacts
must exist and agree: sessions.csv against the histograms, EoT never below the configured delay,
WER 0 (the emulator reveals each fixture's reference words), each fault once in its category.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import time
from pathlib import Path
from types import ModuleType

import gevent
import pytest
from locust.env import Environment
from locust.event import Events

from voiceload.cli.run import Emulator
from voiceload.metrics import Phase, merged_histogram, read_hlog
from voiceload.runner import plugin as vl_plugin
from voiceload.runner.options import locust_parser

EOT_DELAY_MS = 200
FAULTS = {2: ("unauthorized", "unauthorized"), 5: ("rate_limited", "rate_limited"),
          8: ("disconnect", "closed_by_server")}  # fmt: skip
EMULATOR_TOML = f"""
seed = 7
[latency.flux]
eot_delay = {{kind = "fixed", ms = {EOT_DELAY_MS}}}
[latency.aura]
first_byte = {{kind = "fixed", ms = 40}}
""" + "".join(
    f'[[faults]]\nkind = "{kind}"\nconnections = [{n}]\nafter_messages = 3\n'
    for n, (kind, _) in FAULTS.items()
)


def _locustfile(repo_root: Path) -> ModuleType:
    path = repo_root / "loadtests" / "locustfile.py"
    spec = importlib.util.spec_from_file_location("vl_locustfile", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_short_run_leaves_consistent_artifacts(tmp_path: Path, repo_root: Path) -> None:
    users = _locustfile(repo_root)
    config = tmp_path / "emulator.toml"
    config.write_text(EMULATOR_TOML)
    run_dir = tmp_path / "reports" / "run"
    with Emulator(tmp_path / "emulator.log", core=None, config=config) as emulator:
        options = locust_parser().parse_args([
            "--headless", "--emulator-url", emulator.url, "--run-dir", str(run_dir),
            "--reports-dir", str(run_dir.parent), "--report-interval-s", "1",
            "--fixtures", "command_lights,command_weather,conversation,sentence",
        ])  # fmt: skip
        events = Events()
        vl_plugin.register(events)
        env = Environment(
            user_classes=[users.FluxUser, users.AuraUser, users.VoiceAgentUser],
            events=events, parsed_options=options, stop_timeout=60,
        )  # fmt: skip
        runner = env.create_local_runner()
        events.init.fire(environment=env, runner=runner, web_ui=None)
        plugin = vl_plugin.plugin_of(env)
        runner.start(6, spawn_rate=6)
        deadline = time.monotonic() + 60
        while len(plugin.rows) < 12 and time.monotonic() < deadline:
            gevent.sleep(0.5)
        runner.quit()
        events.quitting.fire(environment=env)

    summary = json.loads((run_dir / "summary.json").read_text())
    run = json.loads((run_dir / "run.json").read_text())
    with (run_dir / "sessions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))

    # every artifact exists
    for name in summary["metrics"]:
        assert (run_dir / f"{name}.hlog").is_file() and (run_dir / f"{name}.hgrm").is_file()
    assert {"flux.eot", "flux.ttft", "aura.ttfb", "agent.voice_to_voice"} <= set(summary["metrics"])
    assert {r["user_type"] for r in rows} == {"flux", "aura", "agent"}

    # sessions.csv, summary.json, run.json and the histograms agree
    assert len(rows) == summary["sessions"]["total"] == run["workers"][0]["sessions"]
    turns_ended = sum(int(r["turns_ended"]) for r in rows)
    assert summary["metrics"]["flux.eot"]["count_all_phases"] == turns_ended > 0
    intervals = read_hlog(run_dir / "flux.eot.hlog")
    assert merged_histogram(intervals, None).get_total_count() == turns_ended
    assert sum(i.histogram.get_total_count() for i in intervals if i.tag == Phase.STEADY) == (
        summary["metrics"]["flux.eot"]["count"]
    )

    # end of turn is never faster than the emulator's configured delay
    assert merged_histogram(intervals, None).get_min_value() >= EOT_DELAY_MS * 1000
    assert all(float(r["eot_ms"]) >= EOT_DELAY_MS for r in rows if r["eot_ms"])

    # the emulator reveals the reference words: WER 0 on every completed session
    ok_wers = [float(r["wer"]) for r in rows if r["outcome"] == "ok" and r["wer"] != ""]
    assert ok_wers and set(ok_wers) == {0.0}

    # each injected fault once, in its category
    expected = {category: 1 for _, category in FAULTS.values()}
    assert {c: e["count"] for c, e in summary["errors"].items()} == expected
    failed = [r for r in rows if r["outcome"] == "error"]
    assert sorted(r["error_category"] for r in failed) == sorted(expected)

    validity = summary["validity"]
    assert validity["out_of_range"] == 0 and validity["missing_worker_finals"] == []

    # the generator's own event-loop lag (issue 16): sampled every 10 ms, judged, budgeted
    loop_lag = summary["metrics"]["harness.loop_lag"]
    assert loop_lag["count_all_phases"] >= 100
    assert validity["loop_lag_p99_ms"] == loop_lag["p99"]
    assert run["budgets"]["loop_lag_p99_ms"] == 5.0
    assert run["interrupted"] is False
    assert run["phases"]["steady"][0] < run["phases"]["teardown"][0]
