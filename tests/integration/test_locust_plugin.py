"""The plugin inside a real in-process Locust runner, with stand-in sessions (no emulator).

These check the plumbing the real users rely on: phases, payload draining, artifacts that agree
with each other, Ctrl-C while running, the early stop when every session fails the same way.
"""

from __future__ import annotations

import csv
import gc
import json
import random
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import numpy as np
import pytest
from locust import User, constant, task
from locust.env import Environment

from voiceload.audio import detect_speech, frame_pcm
from voiceload.client.agent_session import AgentSession
from voiceload.client.aura_session import AuraOptions
from voiceload.client.flux_session import FluxSession
from voiceload.client.results import ErrorCategory, SessionError, SessionResult, TurnRecord
from voiceload.emulator.behaviour import parse_config
from voiceload.emulator.flux_stream import ReferenceTurn
from voiceload.emulator.server import BackgroundEmulator, ServerOptions
from voiceload.fixtures import Turn
from voiceload.metrics import read_hlog
from voiceload.protocol import gateway
from voiceload.runner import plugin as vl_plugin

EOT_US = 250_000


def _ok_session(sink: Any) -> SessionResult:
    sink.record("flux.send_lag", 400)
    sink.record("flux.eot", EOT_US)
    turn = TurnRecord(index=0, onset_s=0.1, offset_s=0.5, reference="hi", transcript="hi")
    turn.eot_us = EOT_US
    return SessionResult(user_type="flux", fixture="f", model="m", start_s=time.time(),
                         turns=[turn])  # fmt: skip


def _refused_session(sink: Any) -> SessionResult:
    return SessionResult(
        user_type="flux", fixture="f", model="m", start_s=time.time(),
        error=SessionError(ErrorCategory.HANDSHAKE_REFUSED, "upgrade refused", http_status=503),
    )  # fmt: skip


class StandInUser(User):
    wait_time = constant(0.02)
    session = staticmethod(_ok_session)

    @task
    def one_session(self) -> None:
        vl_plugin.plugin_of(self.environment).run_session(self.session, "flux")


class RefusedUser(StandInUser):
    session = staticmethod(_refused_session)


class _HangingDriver:
    """Records a sample, then waits far longer than any test: Locust must kill it."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.result = SessionResult(user_type="flux", fixture="slow", model="m",
                                    start_s=time.time())  # fmt: skip

    def run(self) -> SessionResult:
        self.sink.record("flux.eot", EOT_US)
        self.result.connections = 1
        gevent.sleep(60)
        return self.result


class HangingUser(User):
    wait_time = constant(0.02)

    @task
    def one_session(self) -> None:
        drivers: list[_HangingDriver] = []

        def run(sink: Any) -> SessionResult:
            drivers.append(_HangingDriver(sink))
            return drivers[0].run()

        vl_plugin.plugin_of(self.environment).run_session(
            run, "flux", partial=lambda: drivers[0].result if drivers else None
        )


MakeEnvironment = Callable[..., tuple[Environment, vl_plugin.RunPlugin]]


@pytest.fixture
def environment(plugin_environment: MakeEnvironment) -> MakeEnvironment:
    """(user class, port, run dir, *extra Locust args) -> (environment, plugin) after init."""

    def make(user: type[User], port: int, run_dir: Path, *extra: str) -> Any:
        return plugin_environment(user, port, run_dir, "--report-interval-s", "0.2", *extra)

    return make


def _wait_until(condition: Any, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition() and time.monotonic() < deadline:
        gevent.sleep(0.05)


def test_artifacts_agree_after_a_normal_stop(
    tmp_path: Path, listening_port: int, environment: MakeEnvironment
) -> None:
    run_dir = tmp_path / "reports" / "run-1"
    env, plugin = environment(StandInUser, listening_port, run_dir)
    assert env.runner is not None
    env.runner.start(4, spawn_rate=100)
    _wait_until(lambda: plugin.phases.phase.value == "steady")
    gevent.sleep(0.6)  # several reporting intervals of steady load
    env.runner.quit()
    env.events.quitting.fire(environment=env)

    summary = json.loads((run_dir / "summary.json").read_text())
    run = json.loads((run_dir / "run.json").read_text())
    with (run_dir / "sessions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    eot = summary["metrics"]["flux.eot"]
    assert rows and eot["count_all_phases"] == len(rows) == summary["sessions"]["total"]
    assert eot["count"] == sum(1 for r in rows if r["phase"] == "steady")
    assert eot["p50"] == pytest.approx(EOT_US / 1000, rel=1e-3)
    intervals = read_hlog(run_dir / "flux.eot.hlog")
    assert len(intervals) > 2  # drained every reporting interval, not only at the end
    assert sum(i.histogram.get_total_count() for i in intervals) == len(rows)
    assert {i.tag for i in intervals} <= {"ramp_up", "steady", "teardown"}
    assert (run_dir / "flux.eot.hgrm").stat().st_size > 0
    assert summary["validity"]["valid"] is True
    assert plugin.exit_code is None and env.process_exit_code is None
    phases = run["phases"]
    assert phases["ramp_up"][0] <= phases["ramp_up"][1] <= phases["steady"][0]
    assert phases["steady"][0] < phases["steady"][1] <= phases["teardown"][0]
    assert run["interrupted"] is False
    assert run["workers"][0]["id"] == "local" and run["workers"][0]["final_report"] is True
    assert run["workers"][0]["sessions"] == len(rows)
    assert run["config"]["target"]["name"] == "emulator"
    assert (tmp_path / "reports" / "latest").resolve() == run_dir.resolve()


def test_quitting_while_running_is_an_interrupted_run(
    tmp_path: Path, listening_port: int, environment: MakeEnvironment
) -> None:
    run_dir = tmp_path / "reports" / "run-2"
    env, plugin = environment(StandInUser, listening_port, run_dir)
    assert env.runner is not None
    env.runner.start(2, spawn_rate=100)
    _wait_until(lambda: bool(plugin.rows) or bool(plugin.outbox.rows))
    env.events.quitting.fire(environment=env)  # what Locust does first on Ctrl-C / SIGTERM

    run = json.loads((run_dir / "run.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert run["interrupted"] is True
    assert env.process_exit_code == vl_plugin.EXIT_INVALID
    with (run_dir / "sessions.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == summary["sessions"]["total"] > 0
    assert summary["metrics"]["flux.eot"]["count_all_phases"] == summary["sessions"]["total"]


def test_every_session_failing_the_same_way_stops_the_run(
    tmp_path: Path, listening_port: int, environment: MakeEnvironment
) -> None:
    run_dir = tmp_path / "reports" / "run-3"
    env, plugin = environment(RefusedUser, listening_port, run_dir, "--fail-fast-sessions", "5")
    assert env.runner is not None
    env.runner.start(2, spawn_rate=100)
    _wait_until(lambda: plugin.finalised)
    env.events.quitting.fire(environment=env)

    summary = json.loads((run_dir / "summary.json").read_text())
    reasons = summary["validity"]["reasons"]
    assert summary["validity"]["valid"] is False
    assert any("first 5 sessions all failed with handshake_refused" in r for r in reasons)
    assert summary["errors"]["handshake_refused"]["count"] == summary["sessions"]["total"]
    assert env.process_exit_code == vl_plugin.EXIT_INVALID
    failures = env.runner.stats.errors
    assert {str(e.error) for e in failures.values()} == {"handshake_refused"}
    # what Locust shows (console, web UI, *_failures.csv): the plain category, no class name
    assert {e.to_name() for e in failures.values()} == {"flux session: handshake_refused"}
    assert {e.serialize()["error"] for e in failures.values()} == {"handshake_refused"}


def test_a_refusing_target_stops_before_load(tmp_path: Path, environment: MakeEnvironment) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(SystemExit) as exc:
            environment(StandInUser, port, tmp_path / "run")
    assert exc.value.code == vl_plugin.EXIT_BAD_INPUT
    assert not (tmp_path / "run").exists()


class FluxTypedUser(StandInUser):
    user_type = "flux"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fixtures", "no_such_fixture"], "no fixture named 'no_such_fixture'"),
        (["--frame-ms", "25"], "--frame-ms 25 is not a positive multiple of 10 ms"),
    ],
)
def test_bad_input_stops_before_load_with_one_line(
    tmp_path: Path,
    listening_port: int,
    caplog: pytest.LogCaptureFixture,
    argv: list[str],
    message: str,
    environment: MakeEnvironment,
) -> None:
    with pytest.raises(SystemExit) as exc:
        environment(FluxTypedUser, listening_port, tmp_path / "run", *argv)
    assert exc.value.code == vl_plugin.EXIT_BAD_INPUT
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and message in errors[0]


@pytest.mark.parametrize("damage", ["edited", "corrupt"])
def test_a_bad_fixture_stops_before_load_with_one_line(
    tmp_path: Path,
    repo_root: Path,
    listening_port: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    damage: str,
    environment: MakeEnvironment,
) -> None:
    fixtures = tmp_path / "fixtures"
    shutil.copytree(repo_root / "fixtures", fixtures)
    monkeypatch.setenv("VOICELOAD_FIXTURES_DIR", str(fixtures))
    wav = fixtures / "audio" / "arctic_a0009.wav"
    data = bytearray(wav.read_bytes())
    if damage == "edited":
        data[-2] ^= 1  # one bit of the last sample: same length, other audio
    else:
        data[:64] = bytes(64)  # the header is gone
    wav.write_bytes(bytes(data))
    with pytest.raises(SystemExit) as exc:
        environment(FluxTypedUser, listening_port, tmp_path / "run")
    assert exc.value.code == vl_plugin.EXIT_BAD_INPUT
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "fixture 'arctic_a0009'" in errors[0]
    assert "\n" not in errors[0]
    assert not (tmp_path / "run").exists()  # no run was opened, no user started


def test_options_changed_in_the_web_ui_apply_at_test_start(
    tmp_path: Path, listening_port: int, environment: MakeEnvironment
) -> None:
    run_dir = tmp_path / "reports" / "run-ui"
    env, plugin = environment(StandInUser, listening_port, run_dir)
    assert env.runner is not None and env.parsed_options is not None
    env.parsed_options.frame_ms = 40  # what the web UI's form does before starting a test
    env.runner.start(1, spawn_rate=10)
    _wait_until(lambda: plugin.phases.phase.value == "steady")
    env.runner.quit()
    env.events.quitting.fire(environment=env)
    assert plugin.settings.frame_ms == 40
    assert json.loads((run_dir / "run.json").read_text())["config"]["frame_ms"] == 40


def test_a_bad_option_from_the_web_ui_does_not_start_a_run(
    tmp_path: Path,
    listening_port: int,
    caplog: pytest.LogCaptureFixture,
    environment: MakeEnvironment,
) -> None:
    run_dir = tmp_path / "reports" / "run-bad"
    env, plugin = environment(StandInUser, listening_port, run_dir)
    assert env.runner is not None and env.parsed_options is not None
    env.parsed_options.frame_ms = 25
    env.runner.start(1, spawn_rate=10)
    _wait_until(lambda: env.runner is not None and env.runner.state == "stopped")
    env.runner.quit()
    assert not plugin.running and not (run_dir / "run.json").exists()
    assert any("--frame-ms 25" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("stop_timeout_s", [0.0, 0.2])
def test_a_session_killed_at_stop_still_gets_its_row(
    tmp_path: Path, listening_port: int, stop_timeout_s: float, environment: MakeEnvironment
) -> None:
    run_dir = tmp_path / "reports" / "run-kill"
    env, plugin = environment(HangingUser, listening_port, run_dir)
    assert env.runner is not None
    env.stop_timeout = stop_timeout_s  # what --stop-timeout sets
    env.runner.start(3, spawn_rate=100)
    _wait_until(lambda: plugin.phases.phase.value == "steady")
    gevent.sleep(0.3)  # every user is inside its session, its sample recorded
    env.runner.quit()
    env.events.quitting.fire(environment=env)

    summary = json.loads((run_dir / "summary.json").read_text())
    with (run_dir / "sessions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 == summary["metrics"]["flux.eot"]["count_all_phases"]
    for row in rows:
        assert (row["fixture"], row["connections"], row["outcome"]) == ("slow", "1", "error")
        assert row["error_category"] == "harness_error"
        assert vl_plugin.STOPPED_DETAIL in row["error_detail"]
        assert float(row["duration_s"]) > 0.2
    assert summary["validity"]["valid"] is True  # a stopped session is not an early stop


# -- real sessions against the emulator, killed by Locust mid-conversation ----------------------

RATE = 16_000
FRAME_MS = 20
KILL_TAG = "kill-two-turns"
KILL_REFERENCES = ("Hello there how are you", "Goodbye now")


def _two_turns_far_apart() -> tuple[tuple[bytes, ...], list[Turn]]:
    """Turn 0 ends ~1.1 s in; turn 1 starts ~7 s in: a kill between them is easy to aim."""
    t = np.arange(round(0.8 * RATE)) / RATE
    tone = 6000 * (1 + 0.3 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 300 * t)
    tone = tone.astype(np.int16)

    def silence(seconds: float) -> Any:
        return np.zeros(round(seconds * RATE), dtype=np.int16)

    pcm = np.concatenate([silence(0.3), tone, silence(6.0), tone, silence(0.3)])
    segments = detect_speech(pcm, RATE)
    assert len(segments) == 2
    turns = [Turn(seg.onset_s, seg.offset_s, ref, "Sure, one moment.")
             for seg, ref in zip(segments, KILL_REFERENCES, strict=True)]  # fmt: skip
    return frame_pcm(pcm, RATE, FRAME_MS), turns


class _CountingSink:
    """The plugin's sink, with a count of each metric for the test to wait on."""

    def __init__(self, inner: Any, counts: dict[str, int]) -> None:
        self.inner, self.counts = inner, counts

    def record(self, metric: str, value_us: int) -> None:
        self.counts[metric] = self.counts.get(metric, 0) + 1
        self.inner.record(metric, value_us)


class _EmulatorFactory:
    """Stands in for :class:`voiceload.runner.sessions.SessionFactory`: real drivers, one
    test fixture, the in-process emulator."""

    pools = type("Pools", (), {"flux": (), "agent": ()})()

    def __init__(self, port: int, think_time_ms: int) -> None:
        self.port, self.think_time_ms = port, think_time_ms
        self.frames, self.turns = _two_turns_far_apart()
        self.counts: dict[str, int] = {}

    def _url(self, model: str, pairs: list[tuple[str, str]]) -> str:
        return gateway.gateway_url(f"ws://127.0.0.1:{self.port}", "acct", "gw", model, pairs)

    def flux(self, sink: Any, rng: random.Random) -> FluxSession:
        url = self._url("@cf/deepgram/flux", [("encoding", "linear16"), ("sample_rate", "16000")])
        return FluxSession(url, {}, [], self.frames, self.turns, FRAME_MS,
                           _CountingSink(sink, self.counts), rng, fixture=KILL_TAG)  # fmt: skip

    def aura(self, sink: Any, rng: random.Random) -> Any:
        raise AssertionError("no Aura users here")

    def agent(self, sink: Any, rng: random.Random) -> AgentSession:
        flux_url = self._url(
            "@cf/deepgram/flux", [("encoding", "linear16"), ("sample_rate", "16000")]
        )
        aura_url = self._url(
            "@cf/deepgram/aura-1", [("encoding", "linear16"), ("sample_rate", "24000")]
        )
        return AgentSession(
            flux_url, {}, [], aura_url, {}, [], self.frames, self.turns, FRAME_MS,
            _CountingSink(sink, self.counts), rng, fixture=KILL_TAG,
            think_time_ms=self.think_time_ms, aura_options=AuraOptions(sample_rate_hz=24_000),
        )  # fmt: skip


class RealSessionUser(User):
    """Runs the real session driver of ``kind`` through ``run_user_session``."""

    abstract = True
    kind = "flux"
    wait_time = constant(0.02)

    @task
    def one_session(self) -> None:
        vl_plugin.plugin_of(self.environment).run_user_session(self.kind, random.Random(5))


class RealFluxUser(RealSessionUser):
    kind = "flux"


class RealAgentUser(RealSessionUser):
    kind = "agent"


@pytest.fixture(scope="module")
def emulator_port() -> Iterator[int]:
    refs = {KILL_TAG: tuple(ReferenceTurn(tuple(r.split()), 1.0) for r in KILL_REFERENCES)}
    config = parse_config({
        "aura": {"leading_silence_ms": 100, "speed": 4.0},
        "latency": {"flux": {"eot_delay": {"kind": "fixed", "ms": 300}},
                    "aura": {"first_byte": {"kind": "fixed", "ms": 50}}},
    })  # fmt: skip
    with BackgroundEmulator(ServerOptions(config=config, references=refs)) as emu:
        yield int(emu.url.rsplit(":", 1)[1])


def _live_helpers(*names: str) -> list[Any]:
    """Greenlets or (patched) threads still running a session driver's method in ``names``."""
    greenlets = [
        g for g in gc.get_objects()
        if issubclass(type(g), gevent.Greenlet) and not g.dead  # (type(): skips weak proxies)
        and getattr(getattr(g, "_run", None), "__name__", "") in names
    ]  # fmt: skip
    threads = [
        t for t in threading.enumerate()
        if getattr(getattr(t, "_target", None), "__name__", "") in names
    ]  # fmt: skip
    return greenlets + threads


@pytest.mark.slow
@pytest.mark.parametrize(
    ("user", "connections", "think_time_ms"),
    [(RealFluxUser, 1, 0), (RealAgentUser, 2, 0), (RealAgentUser, 2, 60_000)],
    ids=["flux", "agent", "agent-thinking"],
)
def test_a_killed_real_session_reports_what_its_histograms_hold(
    tmp_path: Path,
    emulator_port: int,
    capsys: pytest.CaptureFixture[str],
    user: type[User],
    connections: int,
    think_time_ms: int,
    environment: MakeEnvironment,
) -> None:
    """Locust kills a real session after turn 0 ended and before turn 1 was spoken: its
    sessions.csv row carries turn 0's measurements and WER, the audio streamed and every socket
    it opened, agreeing with the histograms; its sockets and helper greenlets are gone when the
    kill returns (an agent thinking about its reply is not waited for), with nothing printed."""
    run_dir = tmp_path / "reports" / "run-real-kill"
    env, plugin = environment(user, emulator_port, run_dir)
    assert env.runner is not None
    factory = _EmulatorFactory(emulator_port, think_time_ms)
    plugin.factory = factory  # type: ignore[assignment]
    env.stop_timeout = 0
    env.runner.start(1, spawn_rate=100)
    wanted = "agent.voice_to_voice" if user is RealAgentUser and not think_time_ms else "flux.eot"
    _wait_until(lambda: factory.counts.get(wanted, 0) >= 1)
    assert factory.counts.get(wanted, 0) == 1, factory.counts
    env.runner.quit()
    assert _live_helpers("_read", "_speak_replies") == []
    env.events.quitting.fire(environment=env)

    summary = json.loads((run_dir / "summary.json").read_text())
    with (run_dir / "sessions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    row = rows[0]
    assert row["error_category"] == "harness_error", row
    assert vl_plugin.STOPPED_DETAIL in row["error_detail"]
    metrics = summary["metrics"]
    assert (row["turns_expected"], row["turns_ended"], row["turns_missed"]) == ("2", "1", "1")
    assert metrics["flux.eot"]["count_all_phases"] == 1 and float(row["eot_ms"]) > 0
    assert metrics["flux.ttft"]["count_all_phases"] == 1 and float(row["ttft_ms"]) > 0
    assert row["wer"] == "0.0"  # turn 0's words, all heard; turn 1 was never spoken
    sent_s = metrics["flux.send_lag"]["count_all_phases"] * FRAME_MS / 1000
    assert float(row["flux_audio_s"]) == pytest.approx(sent_s)
    assert row["connections"] == str(connections)
    assert metrics["flux.connect"]["count_all_phases"] == 1
    if user is RealAgentUser:
        assert metrics["aura.connect"]["count_all_phases"] == 1
        v2v = metrics.get("agent.voice_to_voice", {}).get("count_all_phases", 0)
        assert v2v == (0 if think_time_ms else 1)
        assert (row["voice_to_voice_ms"] != "") == (v2v == 1)
    assert "Traceback" not in capsys.readouterr().err
