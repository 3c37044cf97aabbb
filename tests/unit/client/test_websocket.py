"""voiceload.client.websocket.WebSocket: the cases in websocket_cases.py, run in a fresh process.

The cases use websockets' sync server in threads; in a test process that gevent has patched
(any test importing Locust does), that server can abort the process from libev. So they run in
their own interpreter, never patched, and this test fails with their output if any fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("websocket_cases.py")


@pytest.mark.slow
def test_every_websocket_case_passes_in_a_fresh_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=CASES.parents[3],
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout and "skipped" not in done.stdout
