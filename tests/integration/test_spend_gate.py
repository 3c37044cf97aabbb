"""`voiceload run` against a paid target: the estimate first, then nothing without a yes.

No traffic leaves the machine, whether the gate works or not: every run's ``--base-url`` is a
closed port on 127.0.0.2 — inside the loopback network, yet not one of the names
:func:`voiceload.targets.is_loopback` trusts, so the run still counts as paid and meets the
gate. No name is looked up either. The confirmed run fails after the gate (connection refused).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOKEN = "gate-token-0a1b2c3d4e5f6a7b8c9d"


def closed_port_url(scheme: str) -> str:
    """``scheme://127.0.0.2:<port>`` where nothing listens (bind, note the port, close)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    return f"{scheme}://127.0.0.2:{port}"


def run(tmp_path: Path, *extra: str, confirm: str | None = None) -> tuple[int, str]:
    """``voiceload run --target gateway`` in a child process, aimed at ``extra``'s
    ``--base-url`` (callers always pass one on 127.0.0.2)."""
    assert "--base-url" in extra, "a gate test must never aim at the real gateway"
    env = dict(os.environ)
    env.update(CLOUDFLARE_ACCOUNT_ID="0123456789abcdef0123456789abcdef",
               CLOUDFLARE_GATEWAY_ID="gate-gw", CLOUDFLARE_API_TOKEN=TOKEN)
    env.pop("VOICELOAD_CONFIRM", None)
    if confirm is not None:
        env["VOICELOAD_CONFIRM"] = confirm
    done = subprocess.run(
        [sys.executable, "-m", "voiceload.cli", "run", "--target", "gateway", "--no-report",
         "--reports-dir", str(tmp_path / "reports"), *extra],
        env=env, capture_output=True, timeout=180, cwd=REPO,
    )
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


@pytest.mark.slow
def test_an_unconfirmed_paid_run_prints_the_estimate_and_stops(tmp_path: Path) -> None:
    code, text = run(tmp_path, "--base-url", closed_port_url("ws"))
    assert code != 0
    assert "audio minutes" in text and "Neurons" in text and "$" in text
    assert "--yes" in text and "VOICELOAD_CONFIRM=1" in text
    assert "Confirmed" not in text
    assert not list((tmp_path / "reports").rglob("summary.json"))
    assert TOKEN not in text


@pytest.mark.slow
@pytest.mark.parametrize(("flag", "confirm"), [("--yes", None), (None, "1")])
def test_yes_or_voiceload_confirm_passes_the_gate(
    tmp_path: Path, flag: str | None, confirm: str | None
) -> None:
    extra = ["--base-url", closed_port_url("wss"), "--users", "1", "--duration", "5s"]
    code, text = run(tmp_path, *extra, *([flag] if flag else []), confirm=confirm)
    assert "audio minutes" in text and "Confirmed; starting." in text
    assert code != 0  # nothing listens there: the run fails after the gate, as it should
    assert TOKEN not in text
