"""voiceload.emulator.ws_compat: the websockets version bound, and the one place of internals."""

from __future__ import annotations

from pathlib import Path

import pytest
import websockets.version

from voiceload.emulator import ws_compat
from voiceload.errors import ConfigError

SRC = Path(ws_compat.__file__).resolve().parents[1]


def test_the_installed_websockets_is_supported() -> None:
    ws_compat.check_version(websockets.version.version)  # the import itself already checked it


@pytest.mark.parametrize("version", ["14.2", "18.0", "19.1.dev0"])
def test_a_release_outside_the_range_is_refused_in_one_line(version: str) -> None:
    with pytest.raises(ConfigError, match=rf"websockets {version} is not supported") as exc:
        ws_compat.check_version(version)
    assert "\n" not in str(exc.value) and ">=15.0,<18.0" in str(exc.value)


def test_parse_version() -> None:
    assert ws_compat.parse_version("17.4") == (17, 4)
    assert ws_compat.parse_version("16.0rc1") == (16, 0)
    assert ws_compat.parse_version("15") == (15, 0)


def test_no_other_emulator_module_touches_websockets_internals() -> None:
    internals = ("process_event", "recv_messages", "protocol.send_", "protocol.state",
                 "send_data(", "send_context(", "transport.abort", "ws.paused")  # fmt: skip
    offenders = [
        f"{p.relative_to(SRC)}: {name}"
        for p in (SRC / "emulator").glob("*.py")
        if p.name != "ws_compat.py"
        for name in internals
        if name in p.read_text()
    ]
    assert offenders == []
