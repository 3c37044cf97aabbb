"""A Locust process voiceload did not start itself (``locust -f loadtests/locustfile.py
--worker``, a ``--processes N`` child) still keeps registered secrets out of its output: the
plugin's ``init`` listener installs the redaction ``voiceload run`` would have."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from locust import User, task

from voiceload import credentials

SECRET = "cf-test-token-0123456789abcdef"


class IdleUser(User):
    @task
    def nothing(self) -> None:
        pass


def test_init_redacts_print_and_log_output_of_a_process_holding_a_secret(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    listening_port: int,
    plugin_environment: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env.local: the token comes from the environment only
    monkeypatch.setenv(credentials.API_TOKEN_VAR, SECRET)
    stdout, stderr = sys.stdout, sys.stderr
    try:
        env, _ = plugin_environment(IdleUser, listening_port, tmp_path / "run")
        runner = env.runner
        env.events.init.fire(environment=env, runner=runner, web_ui=None)  # idempotent
        print(f"Authorization: Bearer {SECRET}")
        print(f"token={SECRET}", file=sys.stderr)
        with caplog.at_level(logging.DEBUG, logger="websockets.client"):
            logging.getLogger("websockets.client").debug("> Authorization: Bearer %s", SECRET)
        sys.stdout.flush()
        sys.stderr.flush()
        wrapped = sys.stdout
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        credentials.forget_secrets()
    out, err = capsys.readouterr()
    assert SECRET not in out and SECRET not in err
    assert isinstance(wrapped, credentials.RedactingWriter)
    assert not isinstance(wrapped.stream, credentials.RedactingWriter)  # wrapped once
    assert credentials.mask(SECRET) in out and credentials.mask(SECRET) in err
    messages = [r.getMessage() for r in caplog.records if r.name == "websockets.client"]
    assert messages and all(SECRET not in m for m in messages)
