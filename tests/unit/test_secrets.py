"""Credentials loading (.env.local + environment) and redaction of secrets everywhere."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import pickle
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from voiceload import credentials
from voiceload.credentials import (
    REDACTED,
    Credentials,
    RedactingFilter,
    Secret,
    encoded_forms,
    load_credentials,
    mask,
    redact,
    redact_bytes,
    register_secret,
)
from voiceload.errors import ConfigError

TOKEN = "cftok-Zq8+w/Lm3=Vx9_Pk2&Yr7?Hs4!Tn6"  # has +, /, =, & ... so every encoding differs
KEY = "dgkey0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    credentials.forget_secrets()
    yield
    credentials.forget_secrets()


def write_env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env.local"
    path.write_text(text, encoding="utf-8")
    return path


# --- loading -------------------------------------------------------------------------------


def test_file_values_are_read_with_the_guide_names(tmp_path: Path) -> None:
    env_file = write_env(
        tmp_path,
        "# from the setup guide\n"
        "CLOUDFLARE_ACCOUNT_ID=0123456789abcdef0123456789abcdef\n"
        "export CLOUDFLARE_GATEWAY_ID=my-ai-gateway\n"
        f"CLOUDFLARE_API_TOKEN='{TOKEN}'\n",
    )
    creds = load_credentials(env_file, environ={})
    assert creds.account_id == "0123456789abcdef0123456789abcdef"
    assert creds.gateway_id == "my-ai-gateway"
    assert creds.api_token is not None and creds.api_token.reveal() == TOKEN
    assert creds.deepgram_api_key is None
    assert creds.sources["CLOUDFLARE_GATEWAY_ID"] == str(env_file)


def test_environment_overrides_the_file_and_empty_environment_does_not(tmp_path: Path) -> None:
    env_file = write_env(tmp_path, "CLOUDFLARE_GATEWAY_ID=from-file\nCLOUDFLARE_ACCOUNT_ID=acc\n")
    creds = load_credentials(
        env_file, environ={"CLOUDFLARE_GATEWAY_ID": "from-env", "CLOUDFLARE_ACCOUNT_ID": ""}
    )
    assert creds.gateway_id == "from-env"
    assert creds.sources["CLOUDFLARE_GATEWAY_ID"] == "environment"
    assert creds.account_id == "acc"


def test_missing_file_is_fine_and_values_come_from_environment(tmp_path: Path) -> None:
    creds = load_credentials(tmp_path / "absent.env", environ={"DEEPGRAM_API_KEY": KEY})
    assert creds.deepgram_api_key == Secret(KEY)
    assert creds.missing(["CLOUDFLARE_API_TOKEN", "DEEPGRAM_API_KEY"]) == ["CLOUDFLARE_API_TOKEN"]


def test_require_names_the_missing_variable() -> None:
    creds = Credentials(account_id="a")
    with pytest.raises(ConfigError) as info:
        creds.require(["CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_GATEWAY_ID", "CLOUDFLARE_API_TOKEN"])
    message = str(info.value)
    assert message.startswith("CLOUDFLARE_GATEWAY_ID is not set")
    assert "CLOUDFLARE_API_TOKEN" in message and "\n" not in message


def test_loading_registers_the_secrets_for_redaction(tmp_path: Path) -> None:
    load_credentials(None, environ={"CLOUDFLARE_API_TOKEN": TOKEN, "DEEPGRAM_API_KEY": KEY})
    assert TOKEN not in redact(f"header {TOKEN} and {KEY}")
    assert KEY not in redact(f"header {TOKEN} and {KEY}")


# --- Secret ----------------------------------------------------------------------------------


def test_secret_never_prints_its_value() -> None:
    secret = Secret(TOKEN)
    renderings = [
        str(secret),
        repr(secret),
        f"{secret}",
        f"{secret!r}",
        "%s" % secret,  # noqa: UP031
        "{}".format(secret),  # noqa: UP032
        f"{secret:>60}",
        str([secret]),
        str({"t": secret}),
    ]
    for text in renderings:
        assert TOKEN not in text
        assert REDACTED in text
    assert secret.reveal() == TOKEN


def test_secret_refuses_json_and_pickle() -> None:
    with pytest.raises(TypeError):
        json.dumps({"token": Secret(TOKEN)})
    with pytest.raises(TypeError):
        pickle.dumps(Secret(TOKEN))


def test_mask_keeps_at_most_the_last_four_characters() -> None:
    assert mask(TOKEN) == f"{REDACTED}…{TOKEN[-4:]}"
    assert mask("short-but-8") == REDACTED  # under 16 characters: no tail at all


# --- redact ----------------------------------------------------------------------------------


def test_redact_replaces_every_encoded_form() -> None:
    register_secret(TOKEN)
    raw = TOKEN.encode()
    forms = [
        TOKEN,
        urllib.parse.quote(TOKEN, safe=""),
        urllib.parse.quote_plus(TOKEN),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]
    assert len(set(forms)) >= 4  # raw, percent-encoded, base64 padded and unpadded all differ
    for form in forms:
        out = redact(f"before {form} after")
        assert out == f"before {mask(TOKEN)} after"


def test_redact_leaves_other_text_alone_and_ignores_tiny_values() -> None:
    register_secret("abc")  # shorter than MIN_SECRET_CHARS: never registered
    text = "abc abcdef: nothing secret here"
    assert redact(text) == text


def test_redact_bytes_handles_binary_garbage() -> None:
    register_secret(KEY)
    data = b"\xff\xfe" + KEY.encode() + b"\x00"
    out = redact_bytes(data)
    assert KEY.encode() not in out
    assert out.startswith(b"\xff\xfe") and out.endswith(b"\x00")


# --- logging ---------------------------------------------------------------------------------


def test_filter_redacts_message_args_and_exception_text() -> None:
    register_secret(TOKEN)
    logger = logging.getLogger("voiceload.test.redact")
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Collect()
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("sending %s", f"cf-aig-authorization: Bearer {TOKEN}")
        try:
            raise RuntimeError(f"server said {TOKEN}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert len(records) == 2
    assert all(TOKEN not in text for text in records)
    assert mask(TOKEN) in records[0]
    assert "RuntimeError: server said " + mask(TOKEN) in records[1]


def test_install_log_redaction_covers_handlers_added_later() -> None:
    register_secret(KEY)
    credentials.install_log_redaction()
    logger = logging.getLogger("voiceload.test.install")
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    handler = Collect()  # no filter on it: the record factory did the work
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("key=%s", KEY)
    finally:
        logger.removeHandler(handler)
    assert seen == [f"key={mask(KEY)}"]


# --- stdio ------------------------------------------------------------------------------------


def test_redacting_writer_catches_a_secret_split_across_writes() -> None:
    register_secret(TOKEN)
    sink = io.StringIO()
    writer = credentials.RedactingWriter(sink)
    half = len(TOKEN) // 2
    writer.write(f"token={TOKEN[:half]}")
    writer.write(f"{TOKEN[half:]} end\nnext ")
    assert sink.getvalue() == f"token={mask(TOKEN)} end\n"
    writer.write(TOKEN)
    writer.flush()
    assert sink.getvalue() == f"token={mask(TOKEN)} end\nnext {mask(TOKEN)}"


def test_redact_stdio_wraps_once(monkeypatch: pytest.MonkeyPatch) -> None:
    register_secret(KEY)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    credentials.redact_stdio()
    credentials.redact_stdio()
    assert isinstance(sys.stdout, credentials.RedactingWriter)
    assert sys.stdout.stream is out  # not wrapped twice
    print(f"key {KEY}")
    print(f"key {KEY}", file=sys.stderr)
    assert out.getvalue() == err.getvalue() == f"key {mask(KEY)}\n"


LEAKY_COMMAND = """
import argparse, sys
from voiceload.credentials import load_credentials

def configure_parser(parser: argparse.ArgumentParser) -> None:
    pass

def main(args: argparse.Namespace) -> int:
    token = load_credentials(None).api_token.reveal()
    print("printed", token)
    sys.stderr.write("written " + token + "\\n")
    raise RuntimeError("traceback " + token)
"""


def test_the_cli_redacts_print_output_and_tracebacks(tmp_path: Path) -> None:
    """``voiceload <command>`` as a real process: a sub-command that prints its token, writes
    it to stderr and dies with it in an uncaught exception shows only the redacted form."""
    (tmp_path / "leaky_command.py").write_text(LEAKY_COMMAND, encoding="utf-8")
    program = (
        "import sys; from voiceload import cli; "
        "cli.COMMANDS['leak'] = ('leaky_command', 'prints its token'); "
        "sys.exit(cli.main(['leak']))"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "CLOUDFLARE_API_TOKEN": TOKEN}
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1  # the uncaught exception
    assert done.stdout == f"printed {mask(TOKEN)}\n"
    assert f"written {mask(TOKEN)}\n" in done.stderr
    assert f"RuntimeError: traceback {mask(TOKEN)}" in done.stderr
    for form in encoded_forms(TOKEN):
        assert form not in done.stdout + done.stderr


def test_require_names_the_file_that_was_read(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    creds = load_credentials(env_file, environ={})
    with pytest.raises(ConfigError, match=f"add it to {env_file} or the environment"):
        creds.require(["CLOUDFLARE_API_TOKEN"])


def test_records_without_secrets_are_left_untouched() -> None:
    register_secret(TOKEN)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "count %d of %s", (3, "y"), None)
    RedactingFilter().filter(record)
    assert (record.msg, record.args) == ("count %d of %s", (3, "y"))
    assert record.getMessage() == "count 3 of y"
