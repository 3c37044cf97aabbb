"""voiceload.emulator.trace: buffered JSON lines, appended whole by each writer."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from voiceload.emulator.trace import TraceWriter
from voiceload.errors import ConfigError


def test_records_are_buffered_then_written_as_lines_with_pid(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    w = TraceWriter(path, flush_bytes=1 << 20)
    w.write({"ev": "send", "conn": 1, "send_ns": 5})
    assert path.read_text() == ""  # still buffered
    w.flush()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"ev": "send", "conn": 1, "send_ns": 5, "pid": os.getpid()}
    ]
    w.close()


def test_full_buffer_is_written_without_an_explicit_flush(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    w = TraceWriter(path, flush_bytes=100)
    for k in range(10):
        w.write({"ev": "send", "seq": k})
    lines = path.read_text().splitlines()
    assert 0 < len(lines) < 10
    w.close()
    assert [json.loads(x)["seq"] for x in path.read_text().splitlines()] == list(range(10))


def test_two_writers_append_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    a, b = TraceWriter(path, flush_bytes=64), TraceWriter(path, flush_bytes=64)
    for k in range(200):
        (a if k % 2 else b).write({"ev": "send", "seq": k, "pad": "x" * (k % 13)})
    a.close()
    b.close()
    seqs = sorted(json.loads(line)["seq"] for line in path.read_text().splitlines())
    assert seqs == list(range(200))


def test_unwritable_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot open trace file .*nope/t\.jsonl"):
        TraceWriter(tmp_path / "nope" / "t.jsonl")
