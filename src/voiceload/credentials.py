"""Credentials: loaded from ``.env.local`` and the environment, and never printed.

The names are exactly the setup guide's (docs/PROTOCOLS.md §9), so a user who
followed it needs no new configuration:

==========================  ==========================================================
``CLOUDFLARE_ACCOUNT_ID``   32 hex characters (an identifier, not a secret)
``CLOUDFLARE_GATEWAY_ID``   the AI Gateway's id, e.g. ``my-ai-gateway`` (not a secret)
``CLOUDFLARE_API_TOKEN``    secret: AI Gateway Run + Workers AI Read permissions
``DEEPGRAM_API_KEY``        secret: only for the ``deepgram`` target
==========================  ==========================================================

Contracts:

- :func:`load_credentials` reads the file (if it exists) and then the environment; a non-empty
  environment variable **overrides** the file.
- Every secret it loads is wrapped in :class:`Secret` (whose ``str``/``repr``/``format`` are
  redacted; :meth:`Secret.reveal` is the one way to the value) and registered, so that
  :func:`redact` removes it — and its base64 and URL-encoded forms — from any text.
- :class:`RedactingFilter` applies :func:`redact` to log records; :func:`install_log_redaction`
  puts it on every record this process creates, and :func:`load_credentials` turns it on as
  soon as it loads a secret.
- :func:`redact_stdio` routes ``print`` output and tracebacks through :func:`redact`; the
  ``voiceload`` command (:func:`voiceload.cli.main`) installs it before any sub-command runs.

A redacted secret becomes :data:`REDACTED` followed, for secrets of 16 characters or more, by
``…`` and its last 4 characters (enough to tell two tokens apart, never enough to use one).
"""

from __future__ import annotations

import base64
import io
import logging
import os
import sys
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from dotenv import dotenv_values

from voiceload.errors import ConfigError

REDACTED: Final = "[REDACTED]"
"""The fixed marker that replaces a secret in any text."""

ACCOUNT_ID_VAR: Final = "CLOUDFLARE_ACCOUNT_ID"
GATEWAY_ID_VAR: Final = "CLOUDFLARE_GATEWAY_ID"
API_TOKEN_VAR: Final = "CLOUDFLARE_API_TOKEN"
DEEPGRAM_KEY_VAR: Final = "DEEPGRAM_API_KEY"

SECRET_VARS: Final = (API_TOKEN_VAR, DEEPGRAM_KEY_VAR)
ALL_VARS: Final = (ACCOUNT_ID_VAR, GATEWAY_ID_VAR, API_TOKEN_VAR, DEEPGRAM_KEY_VAR)

DEFAULT_ENV_FILE: Final = Path(".env.local")

MIN_SECRET_CHARS: Final = 8
"""Shorter values are not registered for redaction: replacing e.g. ``"a"`` everywhere would
mangle all output. Real Cloudflare tokens and Deepgram keys are 32-40 characters."""

_SHOW_TAIL_FROM_CHARS: Final = 16
_TAIL_CHARS: Final = 4


def mask(value: str) -> str:
    """The redacted form of ``value``: the marker, plus ``…`` and the last 4 characters when
    ``value`` has at least 16 characters."""
    if len(value) >= _SHOW_TAIL_FROM_CHARS:
        return f"{REDACTED}…{value[-_TAIL_CHARS:]}"
    return REDACTED


class Secret:
    """A secret string that will not print itself.

    ``str()``, ``repr()``, f-strings and ``%`` formatting all give :func:`mask` of the value;
    ``json.dumps`` refuses it (it is not a ``str``). Call :meth:`reveal` at the one place the
    value goes on the wire (a header or subprotocol), and nowhere else.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """The secret value itself: only for building a request header or subprotocol."""
        return self._value

    @property
    def masked(self) -> str:
        return mask(self._value)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"Secret({self.masked!r})"

    def __format__(self, format_spec: str) -> str:
        return format(self.masked, format_spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled (it would leave this process unredacted)")


# --- the redaction registry --------------------------------------------------------------

_lock = threading.Lock()
# encoded form -> its replacement; longest first when applied (see _patterns_longest_first)
_replacements: dict[str, str] = {}


def encoded_forms(value: str) -> list[str]:
    """The forms in which ``value`` may show up in text: itself, percent-encoded (``quote`` and
    ``quote_plus``), and standard/URL-safe base64 with and without ``=`` padding."""
    raw = value.encode()
    forms = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
    }
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode("ascii")
        forms.add(text)
        forms.add(text.rstrip("="))
    return sorted(forms, key=len, reverse=True)


def register_secret(value: str | Secret) -> None:
    """Make :func:`redact` remove ``value`` (and its encoded forms) from now on.

    Values shorter than :data:`MIN_SECRET_CHARS` are ignored (see there)."""
    raw = value.reveal() if isinstance(value, Secret) else value
    if len(raw) < MIN_SECRET_CHARS:
        return
    replacement = mask(raw)
    with _lock:
        for form in encoded_forms(raw):
            _replacements.setdefault(form, replacement)


def forget_secrets() -> None:
    """Empty the registry (for tests)."""
    with _lock:
        _replacements.clear()


def redact(text: str) -> str:
    """``text`` with every registered secret, in any of its :func:`encoded_forms`, replaced by
    its :func:`mask`. Text without secrets comes back unchanged."""
    with _lock:
        items = sorted(_replacements.items(), key=lambda kv: len(kv[0]), reverse=True)
    for form, replacement in items:
        if form in text:
            text = text.replace(form, replacement)
    return text


def redact_bytes(data: bytes) -> bytes:
    """:func:`redact` for bytes: decoded as UTF-8 (undecodable bytes kept as escapes)."""
    return redact(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's message, arguments, exception and stack text.

    It never drops a record. The message is formatted once (``record.getMessage()``) and the
    result stored, so handlers see only the redacted text."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact ``record`` in place (see :class:`RedactingFilter`) and return it.

    A record whose text holds no registered secret is left exactly as it was (``msg`` and
    ``args`` untouched); one that does gets its formatted, redacted message as ``msg`` and no
    ``args``."""
    if getattr(record, "_voiceload_redacted", False) or not _replacements:
        return record
    try:
        message = record.getMessage()
    except Exception:  # a malformed %-format: keep what there is, redacted
        message = f"{record.msg!s} {record.args!r}"
    redacted = redact(message)
    if redacted != message:
        record.msg, record.args = redacted, None
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        if redact(text) != text:
            record.exc_text = text
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._voiceload_redacted = True
    return record


_installed = False


def install_log_redaction() -> None:
    """Redact every log record this process creates from now on, whatever its logger or
    handler (including handlers Locust adds later). Idempotent.

    It wraps the log-record factory, so a record is redacted as it is created (after the
    level check), before any handler or formatter sees it."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)


class RedactingWriter(io.TextIOBase):
    """A text stream that passes whole lines to ``stream`` through :func:`redact`.

    Text is held until a newline (or :meth:`flush`), so a secret split across two ``write``
    calls is still caught. Used by :func:`redact_stdio` for output that bypasses logging
    (``print``, tracebacks gevent writes to stderr). Safe to write from several threads."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._pending = ""
        self._write_lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._write_lock:
            self._pending += text
            if "\n" in self._pending:
                complete, self._pending = self._pending.rsplit("\n", 1)
                self.stream.write(redact(complete + "\n"))
        return len(text)

    def flush(self) -> None:
        with self._write_lock:
            if self._pending:
                self.stream.write(redact(self._pending))
                self._pending = ""
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


def redact_stdio() -> None:
    """Route ``sys.stdout`` and ``sys.stderr`` through :class:`RedactingWriter`. Idempotent.

    Output written straight to the file descriptors (child processes, C code) is not covered:
    capture it and pass it through :func:`redact_bytes`."""
    if not isinstance(sys.stdout, RedactingWriter):
        sys.stdout = RedactingWriter(sys.stdout)
    if not isinstance(sys.stderr, RedactingWriter):
        sys.stderr = RedactingWriter(sys.stderr)


# --- loading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """What :func:`load_credentials` found. ``sources`` says where each value came from
    (``"environment"`` or the file's path) so a preflight can tell the user."""

    account_id: str | None = None
    gateway_id: str | None = None
    api_token: Secret | None = None
    deepgram_api_key: Secret | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    env_file: Path | None = None  # the file load_credentials was pointed at (may not exist)

    def missing(self, names: Iterable[str]) -> list[str]:
        """Which of ``names`` (the guide's variable names) have no value."""
        values = {
            ACCOUNT_ID_VAR: self.account_id,
            GATEWAY_ID_VAR: self.gateway_id,
            API_TOKEN_VAR: self.api_token,
            DEEPGRAM_KEY_VAR: self.deepgram_api_key,
        }
        return [name for name in names if not values[name]]

    def require(self, names: Iterable[str], *, env_file: Path | None = None) -> None:
        """Raise :class:`~voiceload.errors.ConfigError` naming the first missing variable."""
        missing = self.missing(names)
        if missing:
            where = str(env_file or self.env_file or DEFAULT_ENV_FILE)
            others = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
            raise ConfigError(
                f"{missing[0]} is not set: add it to {where} or the environment "
                f"(names as in the setup guide){others}"
            )


def load_credentials(
    env_file: Path | None = DEFAULT_ENV_FILE,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """Read the guide's four variables from ``env_file`` (skipped when ``None`` or absent) and
    ``environ`` (default ``os.environ``); a non-empty environment value wins over the file.

    Both secrets are registered for :func:`redact`, and when there is one,
    :func:`install_log_redaction` is on, before this returns. A file that exists but cannot be
    read raises :class:`~voiceload.errors.ConfigError`."""
    env = os.environ if environ is None else environ
    from_file: dict[str, str | None] = {}
    if env_file is not None and env_file.exists():
        try:
            from_file = dotenv_values(env_file, interpolate=False)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {env_file}: {exc.__class__.__name__}") from None
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name in ALL_VARS:
        env_value = (env.get(name) or "").strip()
        file_value = (from_file.get(name) or "").strip()
        if env_value:
            values[name], sources[name] = env_value, "environment"
        elif file_value:
            values[name], sources[name] = file_value, str(env_file)
    token = values.get(API_TOKEN_VAR)
    key = values.get(DEEPGRAM_KEY_VAR)
    for secret in (token, key):
        if secret:
            register_secret(secret)
    if token or key:
        # A process that holds a secret redacts its logs: websockets logs every request
        # header at DEBUG, and Locust's --loglevel DEBUG turns that on.
        install_log_redaction()
    return Credentials(
        account_id=values.get(ACCOUNT_ID_VAR),
        gateway_id=values.get(GATEWAY_ID_VAR),
        api_token=Secret(token) if token else None,
        deepgram_api_key=Secret(key) if key else None,
        sources=sources,
        env_file=env_file,
    )
