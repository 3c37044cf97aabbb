from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from voiceload.cli import run as run_cli
from voiceload.emulator.behaviour import load_config
from voiceload.errors import ConfigError
from voiceload.fixtures import load_manifest
from voiceload.protocol.gateway import AuthForm
from voiceload.runner.sessions import build_pools


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("2m", 120), ("1h30m", 5400), ("1m5s", 65), (" 3s ", 3)],
)
def test_durations_in_locust_syntax(text: str, seconds: int) -> None:
    assert run_cli.parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "abc", "5x", "-3s", "1.5m"])
def test_bad_durations_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="duration"):
        run_cli.parse_duration_s(text)


def test_scenarios_by_name_or_path(tmp_path: Path) -> None:
    (tmp_path / "fast.conf").write_text("users = 3  # three\n# comment\nrun-time=10s\n")
    assert run_cli.find_scenario("fast", tmp_path) == tmp_path / "fast.conf"
    assert run_cli.find_scenario(str(tmp_path / "fast.conf"), tmp_path / "x").name == "fast.conf"
    assert run_cli.read_scenario(tmp_path / "fast.conf") == {"users": "3", "run-time": "10s"}
    with pytest.raises(ConfigError, match="unknown scenario 'slow': choose one of fast"):
        run_cli.find_scenario("slow", tmp_path)


def test_shipped_scenarios_are_locust_config_files(repo_root: Path) -> None:
    scenarios = sorted((repo_root / run_cli.SCENARIO_DIR).glob("*.conf"))
    assert {p.stem for p in scenarios} >= {"default", "smoke", "flux-capacity"}
    for path in scenarios:
        values = run_cli.read_scenario(path)
        assert int(values["users"]) > 0
        run_cli.parse_duration_s(values["run-time"])


def test_user_classes_match_the_locustfile(repo_root: Path) -> None:
    tree = ast.parse((repo_root / run_cli.LOCUSTFILE).read_text())
    concrete = {
        node.name for node in tree.body
        if isinstance(node, ast.ClassDef) and any(
            isinstance(b, ast.Name) and b.id == "VoiceUser" for b in node.bases)
    }  # fmt: skip
    assert concrete == set(run_cli.USER_CLASSES)
    assert run_cli.check_user_classes(["FluxUser"]) == ["FluxUser"]
    with pytest.raises(ConfigError, match="unknown user type TtsUser: choose from FluxUser"):
        run_cli.check_user_classes(["FluxUser", "TtsUser"])


@pytest.mark.parametrize(
    ("cores", "taskset", "expected"),
    [
        (2, "/usr/bin/taskset", run_cli.Pinning(1, 0)),
        (8, "/usr/bin/taskset", run_cli.Pinning(7, 0)),
        (1, "/usr/bin/taskset", run_cli.Pinning(None, None)),
        (2, None, run_cli.Pinning(None, None)),
        (None, "/usr/bin/taskset", run_cli.Pinning(None, None)),
    ],
)
def test_pinning_uses_different_cores_when_there_are_two(
    cores: int | None, taskset: str | None, expected: run_cli.Pinning
) -> None:
    assert run_cli.Pinning.for_machine(cores, taskset) == expected


def test_pinned_prefixes_taskset_only_with_a_core() -> None:
    assert run_cli.pinned(["x"], None) == ["x"]
    assert run_cli.pinned(["x", "y"], 1) == ["taskset", "-c", "1", "x", "y"]


@pytest.mark.parametrize(
    ("argv", "paid"),
    [
        ([], False),
        (["--target", "gateway"], True),
        (["--target", "gateway", "--base-url", "ws://127.0.0.1:9000"], False),
        (["--target", "ws://127.0.0.1:9000/x"], False),
        (["--target", "wss://example.com/x"], True),
    ],
)
def test_paid_targets_are_the_resolved_targets_real_ones(
    argv: list[str], paid: bool, gateway_credentials: None, repo_root: Path
) -> None:
    _, is_paid = run_cli.check_run_input(_locust_options(repo_root, *argv))
    assert is_paid is paid


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run_cli.configure_parser(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def gateway_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("CLOUDFLARE_GATEWAY_ID", "gw")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "tok-run-cli-123")


def _locust_options(repo_root: Path, *argv: str) -> argparse.Namespace:
    """What Locust will parse for ``voiceload run <argv>`` with the shipped smoke scenario."""
    return run_cli.locust_options(run_cli.locust_command(
        scenario=repo_root / run_cli.SCENARIO_DIR / "smoke.conf", run_dir=Path("r"),
        emulator_url=None, args=_args(*argv), user_classes=[],
    ))  # fmt: skip


def test_locust_command_carries_overrides_and_passthrough(tmp_path: Path) -> None:
    args = _args("--users", "200", "--duration", "2m", "--frame-ms", "40", "--yes",
                 "--", "--stop-timeout", "5")  # fmt: skip
    command = run_cli.locust_command(
        scenario=Path("s.conf"), run_dir=tmp_path, emulator_url="ws://127.0.0.1:5",
        args=args, user_classes=["FluxUser"],
    )  # fmt: skip
    joined = " ".join(command)
    assert "-m locust -f loadtests/locustfile.py --config s.conf --headless" in joined
    assert f"--csv {tmp_path}/locust --run-dir {tmp_path}" in joined
    for fragment in ("--users 200", "--run-time 120s", "--frame-ms 40", "--yes",
                     "--emulator-url ws://127.0.0.1:5", "--stop-timeout 5"):  # fmt: skip
        assert fragment in joined
    assert command[-1] == "FluxUser"
    assert "--spawn-rate" not in command  # the scenario's value stands


def test_summary_table_names_metrics_errors_and_verdict() -> None:
    table = run_cli.format_summary({
        "metrics": {"flux.eot": {"count": 3, "p50": 250.0, "p90": 300.0, "p99": 310.0,
                                 "p99_9": 310.0, "max": 311.0},
                    "aura.ttfb": {"count": 0, "p50": None}},
        "sessions": {"total": 4, "ok": 3, "failed": 1},
        "errors": {"timeout": {"count": 1, "first_message": "no EndOfTurn"}},
        "validity": {"valid": False, "reasons": ["send lag too high"]},
    })  # fmt: skip
    lines = table.splitlines()
    assert lines[1].split() == ["flux.eot", "3", "250.0", "300.0", "310.0", "310.0", "311.0"]
    assert lines[2].split() == ["aura.ttfb", "0", "-", "-", "-", "-", "-"]
    assert "sessions: 4 total, 3 ok, 1 failed" in table
    assert "timeout: 1 (first: no EndOfTurn)" in table
    assert "validity: INVALID" in table and "- send lag too high" in table


def test_route_and_model_options_pass_through_to_locust(
    repo_root: Path, gateway_credentials: None
) -> None:
    slo_file = repo_root / "src" / "voiceload" / "data" / "slo.toml"  # checked: it must exist
    options = _locust_options(
        repo_root, "--target", "wss://voice.example.com/flux", "--aura-url",
        "wss://voice.example.com/aura", "--auth-form", "bearer", "--header", "X-Key: k1",
        "--header", "X-Team: qa", "--keyterm", "Acme", "--keyterm", "Zed", "--sample-rate",
        "8000", "--eot-threshold", "0.8", "--aura-encoding", "linear16", "--slo-file",
        str(slo_file),
    )  # fmt: skip
    settings, paid = run_cli.check_run_input(options)
    assert paid
    assert settings.aura_url == "wss://voice.example.com/aura"
    assert settings.auth_form == AuthForm.BEARER
    assert settings.headers == ("X-Key: k1", "X-Team: qa")
    assert settings.keyterms == ("Acme", "Zed")
    assert (settings.sample_rate, settings.eot_threshold) == (8000, 0.8)
    assert settings.aura_encoding == "linear16"
    assert settings.slo_file == slo_file
    assert options.stop_timeout == 30  # the scenario's


def test_the_report_step_uses_the_runs_slo_file(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"config": {"slo_file": "my/slo.toml"}}))
    assert run_cli.report_command(tmp_path)[-3:] == [str(tmp_path), "--slo", "my/slo.toml"]
    (tmp_path / "run.json").write_text(json.dumps({"config": {"slo_file": None}}))
    assert run_cli.report_command(tmp_path)[-1] == str(tmp_path)


def test_user_types_come_from_the_named_user_classes(repo_root: Path) -> None:
    options = _locust_options(repo_root)
    assert run_cli.user_types_of(options) == ["flux", "aura", "agent"]
    options.user_classes = ["VoiceAgentUser", "FluxUser"]
    assert run_cli.user_types_of(options) == ["agent", "flux"]


def test_user_classes_config_users_never_starts_are_not_checked(repo_root: Path) -> None:
    # the flux-capacity scenario: AuraUser and VoiceAgentUser at weight 0, so
    # `--scenario flux-capacity --fixtures monologue_long` needs no Aura text or conversation
    options = _locust_options(repo_root)
    options.config_users = [[{"user_class_name": "FluxUser", "weight": 1},
                             {"user_class_name": "AuraUser", "weight": 0},
                             {"user_class_name": "VoiceAgentUser", "weight": 0}]]  # fmt: skip
    assert run_cli.user_types_of(options) == ["flux"]
    options.config_users = [[{"user_class_name": "AuraUser", "weight": 0, "fixed_count": 2}]]
    assert run_cli.user_types_of(options) == ["flux", "aura", "agent"]  # pinned: it runs


@pytest.mark.parametrize("damage", ["edited", "corrupt"])
def test_a_bad_fixture_stops_voiceload_run_before_anything_starts(
    tmp_path: Path, repo_root: Path, damage: str
) -> None:
    fixtures = tmp_path / "fixtures"
    shutil.copytree(repo_root / "fixtures", fixtures)
    wav = fixtures / "audio" / "command_lights.wav"
    data = bytearray(wav.read_bytes())
    if damage == "edited":
        data[-2] ^= 1
    else:
        data[:64] = bytes(64)
    wav.write_bytes(bytes(data))
    env = {**os.environ, "VOICELOAD_FIXTURES_DIR": str(fixtures)}
    done = subprocess.run(
        [sys.executable, "-m", "voiceload.cli", "run", "--reports-dir", str(tmp_path / "reports"),
         "--no-report"],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "fixture 'command_lights'" in lines[0]
    assert not (tmp_path / "reports").exists()  # no run directory, no emulator, no Locust


@pytest.mark.parametrize("scenario", ["default", "smoke", "flux-capacity", "realism"])
def test_every_shipped_scenario_lets_its_longest_session_finish(
    repo_root: Path, scenario: str
) -> None:
    # 2026-11-27 CI: smoke's 15 s stop timeout cut a 19.7 s monologue_long session started just
    # before the end; it became harness_error and Locust exited 1 although the run was valid.
    options = run_cli.locust_options(run_cli.locust_command(
        scenario=repo_root / run_cli.SCENARIO_DIR / f"{scenario}.conf", run_dir=Path("r"),
        emulator_url=None, args=_args(), user_classes=[],
    ))  # fmt: skip
    pools = build_pools(load_manifest(), ())
    types = run_cli.user_types_of(options)
    assert run_cli.stop_timeout_warning(pools, types, float(options.stop_timeout)) == ""


def test_a_stop_timeout_shorter_than_the_longest_session_is_named() -> None:
    pools = build_pools(load_manifest(), ())
    warning = run_cli.stop_timeout_warning(pools, ["flux"], 15.0)
    assert "--stop-timeout 15 s is shorter than the longest session" in warning
    assert "harness_error" in warning and "--stop-timeout 29" in warning  # conversation: 23.6 s
    assert run_cli.stop_timeout_warning(pools, ["aura"], 0.0) == ""  # no audio sessions


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--users", "0"], "--users 0 must be at least 1"),
        (["--users", "-1"], "--users -1 must be at least 1"),
        (["--spawn-rate", "0"], "--spawn-rate 0 must be greater than 0"),
        (["--workers", "-1"], "--workers -1 must be 0"),
        (["--slo-file", "{tmp}/missing.toml"], "file not found"),
        (["--slo-file", "{tmp}/bad.toml"], "not valid TOML"),
        (["--slo-file", "{tmp}/typed.toml"], "stat: expected one of"),
        (["--emulator-config", "{tmp}/bad.toml"], "is not valid TOML"),
    ],
)
def test_input_that_cannot_work_is_refused_before_any_load(
    tmp_path: Path, repo_root: Path, argv: list[str], fragment: str
) -> None:
    (tmp_path / "bad.toml").write_text("[[slo]\nmetric =", encoding="utf-8")
    (tmp_path / "typed.toml").write_text(
        '[[slo]]\nmetric = "flux.eot"\nstat = "median"\nlimit_ms = 600\n', encoding="utf-8")
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "voiceload.cli", "run", "--reports-dir", str(reports),
         "--no-report", *(a.format(tmp=tmp_path) for a in argv)],
        cwd=repo_root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not reports.exists()  # no run directory, no emulator, no Locust


def test_failed_slos_are_named_one_per_line() -> None:
    summary = {"slo": [
        {"metric": "flux.eot", "stat": "p95", "limit_ms": 600.0, "measured_ms": 926.1,
         "passed": False},
        {"metric": "aura.ttfb", "stat": "p95", "limit_ms": 400.0, "measured_ms": 120.0,
         "passed": True},
        {"metric": "flux.eager_eot", "stat": "p95", "limit_ms": 400.0, "measured_ms": None,
         "passed": None},
    ]}  # fmt: skip
    assert run_cli.failed_slos(summary) == ["p95 flux.eot 926.1 ms > 600 ms"]
    assert run_cli.failed_slos({}) == []


def test_the_realism_scenario_turns_the_emulator_variability_profile_on(repo_root: Path) -> None:
    options = run_cli.locust_options(run_cli.locust_command(
        scenario=repo_root / run_cli.SCENARIO_DIR / "realism.conf", run_dir=Path("r"),
        emulator_url=None, args=_args(), user_classes=[],
    ))  # fmt: skip
    config = load_config(repo_root / options.emulator_config)
    assert config.realism.enabled
    assert config.realism.split_turn > 0 and config.realism.merge_turns > 0
    assert not load_config(repo_root / "src/voiceload/data/emulator.toml").realism.enabled


def test_a_bad_emulator_config_in_a_scenario_stops_voiceload_run_before_anything_starts(
    tmp_path: Path, repo_root: Path
) -> None:
    bad = tmp_path / "bad-emulator.toml"
    bad.write_text("[realism]\nsplit_turn = 2\n")
    scenario = tmp_path / "bad.conf"
    scenario.write_text(f"users = 1\nrun-time = 5s\nstop-timeout = 30\nemulator-config = {bad}\n")
    done = subprocess.run(
        [sys.executable, "-m", "voiceload.cli", "run", "--scenario", str(scenario),
         "--reports-dir", str(tmp_path / "reports"), "--no-report"],
        cwd=repo_root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "realism.split_turn must be a probability" in lines[0]
    assert not (tmp_path / "reports").exists()


def test_an_eot_threshold_the_route_refuses_stops_voiceload_run_in_one_line(
    tmp_path: Path, repo_root: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voiceload.cli", "run", "--eot-threshold", "2",
         "--reports-dir", str(tmp_path / "reports"), "--no-report"],
        cwd=repo_root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--eot-threshold 2 is not accepted on Workers AI" in lines[0]
    assert "expected 0.5 .. 0.9" in lines[0]
    assert not (tmp_path / "reports").exists()  # no run directory, no emulator, no Locust
