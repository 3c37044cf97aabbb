"""The in-process emulator under gevent's monkey-patching (as in any process that imported Locust).

asyncio allows one running loop per OS thread; a patched ``threading.Thread`` is a greenlet of the
caller's thread, so two background emulators used to collide. Run in a subprocess so the patching
does not leak into this test process.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

SCRIPT = r"""
from gevent import monkey
monkey.patch_all()

from voiceload.client.aura_session import AuraSession
from voiceload.client.results import ListSink
from voiceload.emulator.server import BackgroundEmulator
from voiceload.protocol import gateway

with BackgroundEmulator() as first, BackgroundEmulator() as second:
    for emu in (first, second):
        url = gateway.gateway_url(emu.url, "acct", "gw", "@cf/deepgram/aura-1", [])
        result = AuraSession(url, {}, [], ["Two emulators at once."], ListSink()).run()
        print(result.outcome, result.error)
"""


def test_two_background_emulators_serve_at_once_under_gevent() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["ok None", "ok None"], proc.stdout + proc.stderr
