"""``voiceload emulate`` as a subprocess: ready line, healthz, signals, --processes, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from voiceload.cli.emulate import READY_PREFIX

pytestmark = pytest.mark.slow

FLUX = "/v2/listen?model=flux-general-en&encoding=linear16&sample_rate=16000"


@contextmanager
def emulate(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start ``voiceload emulate --port 0 ARGS``; yield the process and its printed URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "voiceload.cli", "emulate", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until ready (or EOF if it died)
        assert line.startswith(READY_PREFIX), (line, proc.stderr.read() if proc.stderr else "")
        yield proc, line.removeprefix(READY_PREFIX).strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def healthz(url: str) -> int:
    with urllib.request.urlopen(url.replace("ws://", "http://") + "/healthz", timeout=10) as r:
        status: int = r.status
        return status


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_and_stops_cleanly_on_signal(sig: signal.Signals) -> None:
    with emulate() as (proc, url):
        assert url.startswith("ws://127.0.0.1:")
        assert int(url.rsplit(":", 1)[1]) > 0
        assert healthz(url) == 200
        with connect(url + FLUX, compression=None, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "Connected"
            proc.send_signal(sig)
            # an open connection is closed by the shutdown (1001 going away)
            with pytest.raises(ConnectionClosed) as info:
                for _ in range(1000):
                    ws.recv(timeout=10)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1001
        assert proc.wait(20) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()


def test_processes_share_one_port_and_all_stop(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    with emulate("--processes", "2", "--trace", str(trace)) as (proc, url):
        for _ in range(8):
            with connect(url + FLUX, compression=None, open_timeout=10) as ws:
                assert json.loads(ws.recv(timeout=10))["type"] == "Connected"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    pids = {json.loads(line)["pid"] for line in trace.read_text().splitlines()}
    assert pids  # the children traced what they served ...
    assert proc.pid not in pids  # ... the parent serves nothing itself
    for pid in pids:  # ... and no child outlives the parent
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_invalid_config_is_one_line_error_before_serving(tmp_path: Path) -> None:
    cfg = tmp_path / "emu.toml"
    cfg.write_text("[flux]\nidle_timeout = 3\n")
    done = subprocess.run(
        [sys.executable, "-m", "voiceload.cli", "emulate", "--port", "0", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "voiceload emulate: error: emulator config: unknown key flux.idle_timeout (allowed:"
        " idle_timeout_s, update_interval_s, placeholder_words_per_s, vad_turn_gap_s,"
        " eager_fraction)\n"
    )
