from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from voiceload import cli


def test_unknown_command_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_every_command_is_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_module_provides_the_contract(name: str) -> None:
    import importlib

    module = importlib.import_module(cli.COMMANDS[name][0])
    assert callable(module.configure_parser)
    assert callable(module.main)


def test_error_messages_are_redacted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from voiceload.credentials import forget_secrets, register_secret
    from voiceload.errors import ConfigError

    token = "CANARYtoken0123456789abcdefXYZ"
    register_secret(token)

    class Boom:
        @staticmethod
        def configure_parser(parser: argparse.ArgumentParser) -> None:
            pass

        @staticmethod
        def main(args: argparse.Namespace) -> int:
            raise ConfigError(f"bad token {token}")

    monkeypatch.setitem(cli.COMMANDS, "boom", ("boom_module", "raises"))
    monkeypatch.setattr(cli.importlib, "import_module", lambda name: Boom)
    try:
        assert cli.main(["boom"]) == 2
    finally:
        forget_secrets()
    err = capsys.readouterr().err
    assert token not in err
    assert "bad token" in err


def test_emulate_runs_on_uvloop_unless_asked_for_asyncio() -> None:
    import asyncio

    from voiceload.cli import emulate as emulate_cli

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    args = cli.build_parser(["emulate"]).parse_args(["emulate"])
    assert args.loop == "uvloop"
    assert emulate_cli._run(loop_module(), args.loop).startswith("uvloop")
    assert emulate_cli._run(loop_module(), "asyncio").startswith("asyncio")


def test_every_command_is_a_module_of_the_cli_package_named_after_it() -> None:
    # one package, one naming: voiceload/cli/<command>.py, and no CLI module anywhere else
    assert {name: module for name, (module, _) in cli.COMMANDS.items()} == {
        name: f"voiceload.cli.{name}" for name in cli.COMMANDS
    }
    src = Path(cli.__file__).resolve().parents[1]
    strays = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if (p.name == "cli.py" or p.stem.endswith("_cli")) and p.parent.name != "cli"
    ]
    assert strays == []


def test_python_dash_m_runs_the_dispatcher() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "voiceload.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "COMMAND" in out.stdout
