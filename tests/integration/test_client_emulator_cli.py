"""Session drivers against ``voiceload emulate --port 0`` run as a real subprocess.

Two checks the in-process tests cannot make: the real fixtures of the manifest (WER 0, EoT never
below the configured delay), and the drivers under Locust's gevent monkey-patching (threads
become greenlets; several sessions at once; no traceback spam on close).
"""

from __future__ import annotations

import json
import os
import random
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from voiceload.audio import prepare
from voiceload.client.agent_session import AgentSession
from voiceload.client.flux_session import FluxSession
from voiceload.client.results import ListSink
from voiceload.fixtures import load_manifest
from voiceload.protocol import gateway

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
READY_PREFIX = "voiceload emulator listening on "
EOT_DELAY_MS = 250
FIRST_BYTE_MS = 40
CONFIG = f"""
[latency.flux]
eot_delay = {{kind = "fixed", ms = {EOT_DELAY_MS}}}
[latency.aura]
first_byte = {{kind = "fixed", ms = {FIRST_BYTE_MS}}}
"""


@pytest.fixture
def emulator_url(tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "emulator.toml"
    config.write_text(CONFIG)
    proc = subprocess.Popen(
        [sys.executable, "-m", "voiceload.cli", "emulate", "--port", "0", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout=60)
        line = proc.stdout.readline() if ready else ""
        assert line.startswith(READY_PREFIX), f"emulator did not start: {line!r}"
        yield line[len(READY_PREFIX) :].strip()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _flux_url(base: str) -> str:
    params = [("encoding", "linear16"), ("sample_rate", "16000")]
    return gateway.gateway_url(base, "acct", "gw", "@cf/deepgram/flux", params)


def test_real_fixtures_transcribe_exactly(emulator_url: str) -> None:
    try:
        fixtures = [f for f in load_manifest().fixtures if f.turns]
    except Exception as exc:  # no manifest yet in this checkout
        pytest.skip(f"no fixtures manifest: {exc}")
    if not fixtures:
        pytest.skip("the fixtures manifest lists no fixture with turns")
    # the two shortest single-turn fixtures and every multi-turn one
    singles = sorted((f for f in fixtures if len(f.turns) == 1), key=lambda f: f.duration_s)
    for fixture in [*singles[:2], *(f for f in fixtures if len(f.turns) > 1)]:
        prepared = prepare(fixture.path, 16_000, 80)
        sink = ListSink()
        result = FluxSession(
            _flux_url(emulator_url), {}, [], prepared.frames, fixture.turns, 80, sink,
            random.Random(1), fixture=fixture.name,
        ).run()  # fmt: skip
        assert result.error is None, (fixture.name, result.error)
        assert result.turns_ended == len(fixture.turns), fixture.name
        assert result.wer == 0.0, [(t.reference, t.transcript) for t in result.turns]
        assert min(sink.values("flux.eot")) >= EOT_DELAY_MS * 1000, fixture.name


def test_agent_on_the_conversation_fixture(emulator_url: str) -> None:
    try:
        fixture = next(f for f in load_manifest().fixtures if any(t.reply for t in f.turns))
    except Exception as exc:
        pytest.skip(f"no conversation fixture with replies: {exc}")
    prepared = prepare(fixture.path, 16_000, 80)
    aura_url = gateway.gateway_url(emulator_url, "acct", "gw", "@cf/deepgram/aura-1", [])
    sink = ListSink()
    think_ms = 100
    result = AgentSession(
        _flux_url(emulator_url), {}, [], aura_url, {}, [], prepared.frames, fixture.turns, 80,
        sink, random.Random(2), fixture=fixture.name, think_time_ms=think_ms,
    ).run()  # fmt: skip
    assert result.error is None, result.error
    replies = [t for t in fixture.turns if t.reply]
    assert result.turns_ended == len(fixture.turns) and result.wer == 0.0
    assert len(result.aura_requests) == len(replies)
    assert result.aura_chars == sum(len(t.reply) for t in replies)
    v2v = sink.values("agent.voice_to_voice")
    assert len(v2v) == len(replies)
    assert min(v2v) >= (EOT_DELAY_MS + think_ms + FIRST_BYTE_MS) * 1000


GEVENT_SCRIPT = r"""
from gevent import monkey
monkey.patch_all()

import json, random, sys
import gevent
import numpy as np
from voiceload.audio import detect_speech, frame_pcm
from voiceload.client.aura_session import AuraSession
from voiceload.client.agent_session import AgentSession
from voiceload.client.flux_session import FluxSession
from voiceload.client.results import ListSink
from voiceload.fixtures import Turn
from voiceload.protocol import gateway

base = sys.argv[1]
rate = 16000
t = np.arange(rate) / rate
tone = (6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
pcm = np.concatenate([np.zeros(rate // 2, np.int16), tone, np.zeros(rate // 4, np.int16)])
turns = [Turn(s.onset_s, s.offset_s, "", "") for s in detect_speech(pcm, rate)]
frames = frame_pcm(pcm, rate, 20)
flux_url = gateway.gateway_url(base, "a", "g", "@cf/deepgram/flux",
                               [("encoding", "linear16"), ("sample_rate", "16000")])
aura_url = gateway.gateway_url(base, "a", "g", "@cf/deepgram/aura-1", [])

def flux(seed):
    sink = ListSink()
    r = FluxSession(flux_url, {}, [], frames, turns, 20, sink, random.Random(seed)).run()
    return {"outcome": r.outcome, "error": r.error and r.error.message(),
            "ended": r.turns_ended, "send_lag_max_us": r.send_lag_max_us}

def speak():
    r = AuraSession(aura_url, {}, [], ["Hello from a greenlet."], ListSink()).run()
    return {"outcome": r.outcome, "error": r.error and r.error.message(),
            "ended": len(r.aura_requests), "send_lag_max_us": 0}

jobs = [gevent.spawn(flux, i) for i in range(4)] + [gevent.spawn(speak)]
gevent.joinall(jobs, timeout=60)
print(json.dumps([j.value for j in jobs]))
"""


def test_sessions_run_concurrently_under_gevent(emulator_url: str) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    proc = subprocess.run(
        [sys.executable, "-c", GEVENT_SCRIPT, emulator_url],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 5 and all(r is not None for r in results), results
    for r in results:
        assert r["outcome"] == "ok", r
        assert r["ended"] == 1, r
