"""``--trace FILE``: the emulator's own timestamps as JSON lines, cheap in the hot path.

Every line is one JSON object with ``"ev"`` and ``"pid"``; times are CLOCK_MONOTONIC
nanoseconds (``time.monotonic_ns()``), the clock the load client uses, so on one host the
harness's measurements can be checked against the emulator's ground truth:

- ``{"ev": "open", "conn", "pid", "ns", "route", "service", "model", "tag"}`` after the upgrade;
- ``{"ev": "send", "conn", "pid", "send_ns", "type", "event", "seq", "turn", "proc_us"}`` per
  message sent (``type`` is ``"audio"`` with ``"bytes"`` for binary frames; ``proc_us`` is the time
  from reading the client frame that caused the message to handing the message to the socket,
  absent for timer-driven messages);
- ``{"ev": "close", "conn", "pid", "ns", "code"}`` (``code`` null: closed without a status code);
- ``{"ev": "reject", "pid", "ns", "path", "status"}`` for a refused upgrade;
- ``{"ev": "lag", "pid", "ns", "lag_us"}`` every 50 ms (``voiceload emulate`` only): how late the
  event loop ran a timer, i.e. the queueing every frame waits before it is read, which
  ``proc_us`` does not include (never negative; with uvloop, whose timers have 1 ms resolution,
  it includes up to 1 ms of timer rounding).

Lines are collected in memory and written with one ``os.write`` of whole lines on a file opened
with ``O_APPEND``, every ``flush_bytes`` or on :meth:`TraceWriter.flush`. With ``--processes K``
every process appends to the same file this way: the kernel appends each write atomically, so
lines never interleave; ``pid`` tells the processes apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from voiceload.errors import ConfigError


class TraceWriter:
    """Buffered JSON-lines writer; call :meth:`close` (or :meth:`flush`) before exit."""

    def __init__(self, path: Path | str, flush_bytes: int = 1 << 16) -> None:
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot open trace file {path}: {exc.strerror}") from None
        self._parts: list[bytes] = []
        self._size = 0
        self._flush_bytes = flush_bytes
        self.pid = os.getpid()

    def write(self, record: Mapping[str, Any]) -> None:
        """Queue one record (``pid`` is added); writes when the buffer is full."""
        line = orjson.dumps({**record, "pid": self.pid}, option=orjson.OPT_APPEND_NEWLINE)
        self._parts.append(line)
        self._size += len(line)
        if self._size >= self._flush_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._parts:
            return
        data = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        view = memoryview(data)
        while view:  # a regular file takes it all at once; loop only for safety
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        if self._fd < 0:
            return
        self.flush()
        os.close(self._fd)
        self._fd = -1
