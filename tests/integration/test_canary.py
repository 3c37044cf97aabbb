"""Canary: a distinctive token goes in; not one byte of what voiceload produces may contain it.

The emulator is started with the canary as its token (in-process, or as ``voiceload emulate
--token <canary>`` for the full run) and reached through the ``gateway`` target with
``--base-url``, so the token really travels in every upgrade. Then every
byte produced — stdout, stderr, DEBUG logs (websockets logs request headers at DEBUG), session
rows and error messages, and for a full ``voiceload run`` every file of the run directory — is
searched for the token, its URL-encoded and base64 forms, and its first 12 characters (a
redacted secret keeps at most its last 4).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from voiceload import credentials
from voiceload.audio import frame_pcm, load_linear16
from voiceload.cli import COMMANDS
from voiceload.client.aura_session import AuraSession
from voiceload.client.flux_session import FluxSession
from voiceload.client.results import ListSink
from voiceload.credentials import encoded_forms, install_log_redaction, load_credentials
from voiceload.emulator.behaviour import parse_config
from voiceload.emulator.server import BackgroundEmulator, ServerOptions
from voiceload.targets import ModelParams, resolve_target

# '!' makes the URL-encoded form differ; every character is allowed in a subprotocol.
CANARY = "vlCANARY-5f1e2d3c4b5a69788796a5b4!"
ACCOUNT = "0123456789abcdef0123456789abcdef"
GATEWAY = "canary-gw"
FAST = {"latency": {"flux": {"eot_delay": {"kind": "fixed", "ms": 50}},
                    "aura": {"first_byte": {"kind": "fixed", "ms": 20}}}}
REPO = Path(__file__).resolve().parents[2]


def needles() -> list[bytes]:
    forms = [*encoded_forms(CANARY), CANARY[:12]]
    return [form.encode() for form in forms]


def leaks(data: bytes) -> list[str]:
    """Which canary forms occur in ``data`` (empty: clean)."""
    return [n.decode() for n in needles() if n in data]


@contextmanager
def running_emulator(config: Mapping[str, Any]) -> Iterator[int]:
    """The emulator (token = the canary) in-process; yields its port."""
    options = ServerOptions(config=parse_config(dict(config)), token=CANARY, account=ACCOUNT,
                            gateway=GATEWAY)
    with BackgroundEmulator(options) as emulator:
        yield int(emulator.url.rsplit(":", 1)[1])


def canary_env(gateway: str = GATEWAY) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CLOUDFLARE_ACCOUNT_ID=ACCOUNT, CLOUDFLARE_GATEWAY_ID=gateway,
               CLOUDFLARE_API_TOKEN=CANARY, DEEPGRAM_API_KEY=CANARY)
    return env


def test_the_canary_forms_are_distinct_and_detectable() -> None:
    assert len(set(needles())) >= 4  # raw, URL-encoded, base64, prefix
    assert leaks(f"xx {CANARY} yy".encode()) != []
    assert leaks(b"nothing here") == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("auth_form", "gateway"),
    [("aig-header", GATEWAY), ("aig-bearer", GATEWAY), ("aig-subprotocol", GATEWAY),
     ("aig-header", "wrong-gateway")],  # the failure path prints more
)
def test_check_command_output_carries_no_canary(
    tmp_path: Path, utterance: Path, auth_form: str, gateway: str
) -> None:
    with running_emulator(FAST) as port:
        done = subprocess.run(
            [sys.executable, "-m", "voiceload.cli", "check", "--target", "gateway",
             "--auth-form", auth_form, "--base-url", f"ws://127.0.0.1:{port}",
             "--env-file", str(tmp_path / "absent.env"), "--fixture", str(utterance)],
            env=canary_env(gateway), capture_output=True, timeout=120, cwd=REPO,
        )
    output = done.stdout + done.stderr
    assert done.returncode == (0 if gateway == GATEWAY else 1), output.decode()
    assert leaks(output) == []


@dataclasses.dataclass(frozen=True)
class _Turn:
    onset_s: float
    offset_s: float
    transcript: str


@pytest.mark.slow
def test_sessions_logs_rows_and_errors_carry_no_canary(
    tmp_path: Path, utterance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Client sessions with DEBUG logging on (websockets logs every request header there)."""
    for key, value in canary_env().items():
        monkeypatch.setenv(key, value)
    credentials.forget_secrets()
    install_log_redaction()
    log_file = tmp_path / "debug.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    rows: list[dict[str, Any]] = []
    try:
        creds = load_credentials(None)
        frames = frame_pcm(load_linear16(utterance, 16_000), 16_000, 80)
        turns = [_Turn(0.3, 1.2, "")]
        with running_emulator(FAST) as port:
            base = f"ws://127.0.0.1:{port}"
            for gateway_ok in (True, False):
                if not gateway_ok:  # a failing session: its error text must be clean too
                    creds = dataclasses.replace(creds, gateway_id="wrong-gateway")
                target = resolve_target("gateway", credentials=creds, base_url=base,
                                        params=ModelParams())
                flux = FluxSession(
                    target.flux.url, dict(target.flux.wire_headers()),
                    target.flux.wire_subprotocols(), frames, turns, 80, ListSink(),
                    random.Random(1), fixture="utterance",
                ).run()
                aura = AuraSession(
                    target.aura.url, dict(target.aura.wire_headers()),
                    target.aura.wire_subprotocols(), ["Hello there."], ListSink(),
                ).run()
                for result in (flux, aura):
                    rows.append(result.to_row())
                    assert (result.error is None) == gateway_ok, result.error
                    if result.error is not None:
                        logging.getLogger("voiceload.test").error(
                            "session failed: %s", result.error.message())
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
        credentials.forget_secrets()
    with (tmp_path / "sessions.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    log_bytes = log_file.read_bytes()
    assert b"cf-aig-authorization" in log_bytes  # the headers really were logged ...
    assert leaks(log_bytes) == []  # ... redacted
    assert leaks((tmp_path / "sessions.csv").read_bytes()) == []


@contextmanager
def emulator_process(tmp_path: Path) -> Iterator[str]:
    """``voiceload emulate --port 0 --token <canary>`` as a child process; yields its URL."""
    config = tmp_path / "emulator.toml"
    config.write_text(
        '[latency.flux]\neot_delay = {kind = "fixed", ms = 50}\n'
        '[latency.aura]\nfirst_byte = {kind = "fixed", ms = 20}\n', encoding="utf-8")
    log = tmp_path / "emulator.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "voiceload.cli", "emulate", "--port", "0", "--token", CANARY,
             "--account", ACCOUNT, "--gateway", GATEWAY, "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
        )
    try:
        url = None
        for _ in range(300):  # at most 30 s
            match = re.search(rb"listening on (ws://[\w.]+:\d+)", log.read_bytes())
            if match:
                url = match.group(1).decode()
                break
            if process.poll() is not None:
                break
            time.sleep(0.1)
        assert url, log.read_text(errors="replace")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _full_run_ready() -> str | None:
    """Why the full-run canary cannot run yet (None: it can)."""
    if "run" not in COMMANDS or "emulate" not in COMMANDS:
        return "`voiceload run` or `voiceload emulate` is not in voiceload.cli.COMMANDS yet"
    from voiceload.runner.options import RunSettings

    if "base_url" not in {f.name for f in dataclasses.fields(RunSettings)}:
        return "the runner has no --base-url option yet (RunSettings.base_url)"
    if not (REPO / "fixtures" / "audio" / "manifest.toml").is_file():
        return "fixtures/audio/manifest.toml does not exist yet"
    return None


#: Fixed user counts (Locust's --config-users), so every user type surely runs: 3 Flux streams,
#: 3 Aura speakers and 2 voice agents (an agent conversation lasts about 24 s; the default
#: scenario's stop-timeout lets it finish after the 12 s of load).
FULL_RUN_USERS = {"FluxUser": 3, "AuraUser": 3, "VoiceAgentUser": 2}


@pytest.mark.slow
@pytest.mark.parametrize("gateway", [GATEWAY, "wrong-gateway"])  # sessions ok / all failing
def test_a_full_small_run_produces_no_canary_anywhere(tmp_path: Path, gateway: str) -> None:
    why = _full_run_ready()
    if why is not None:
        pytest.skip(why)
    reports = tmp_path / "reports"
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps([
        {"user_class_name": name, "fixed_count": count}
        for name, count in FULL_RUN_USERS.items()
    ]), encoding="utf-8")  # fmt: skip
    with emulator_process(tmp_path) as emulator_url:
        done = subprocess.run(
            [sys.executable, "-m", "voiceload.cli", "run", "--target", "gateway",
             "--users", str(sum(FULL_RUN_USERS.values())), "--spawn-rate", "8",
             "--duration", "12s", "--yes", "--reports-dir", str(reports), "--",
             "--base-url", emulator_url, "--config-users", str(users_file),
             "--loglevel", "DEBUG"],  # websockets logs every request header at DEBUG
            env=canary_env(gateway), capture_output=True, timeout=300, cwd=REPO,
        )
    output = done.stdout + done.stderr
    assert leaks(output) == [], "stdout/stderr"
    files = [p for p in reports.rglob("*") if p.is_file() and not p.is_symlink()]
    names = {p.name for p in files}
    # the report step ran, so its pages are among the files searched below
    assert {"summary.json", "sessions.csv", "run.json", "report.html", "junit.xml"} <= names, (
        sorted(names), output.decode(errors="replace")[-2000:])
    summary = next(p for p in files if p.name == "summary.json")
    sessions = json.loads(summary.read_text(encoding="utf-8"))["sessions"]
    with next(p for p in files if p.name == "sessions.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_type = {t: [r for r in rows if r["user_type"] == t] for t in ("flux", "aura", "agent")}
    assert all(by_type.values()), {t: len(r) for t, r in by_type.items()}  # all three ran
    if gateway == GATEWAY:  # the emulator accepts only the canary: it really was sent
        for user_type, typed in by_type.items():
            assert any(r["outcome"] == "ok" for r in typed), (user_type, sessions)
    else:
        assert sessions["ok"] == 0 and sessions["failed"] == len(rows), sessions
    for path in files:
        assert leaks(path.read_bytes()) == [], str(path)
