"""perf.accuracy: harness samples matched to the emulator's trace by session tag and sequence."""

from __future__ import annotations

import json
from typing import Any

import pytest

from perf import PerfError
from perf.accuracy import (
    AURA_TTFB,
    FLUX_EOT,
    HarnessSample,
    error_summary_ms,
    match,
    read_trace,
)
from perf.sorted_stats import percentile

MS = 1_000_000


def line(**fields: Any) -> str:
    return json.dumps(fields)


def trace_lines() -> list[str]:
    """Two processes reuse conn 1; tags tell sessions apart; per pid, file order is send order."""
    return [
        line(ev="open", conn=1, pid=10, ns=0, service="flux", tag="flux-a"),
        line(ev="open", conn=1, pid=11, ns=0, service="flux", tag="flux-b"),
        line(ev="open", conn=2, pid=10, ns=0, service="aura", tag="aura-a"),
        line(ev="open", conn=3, pid=10, ns=0, service="flux", tag=None),  # untagged: ignored
        line(ev="send", conn=1, pid=10, send_ns=100 * MS, type="TurnInfo", event="Update"),
        line(ev="send", conn=1, pid=10, send_ns=500 * MS, type="TurnInfo", event="EndOfTurn"),
        line(ev="send", conn=1, pid=11, send_ns=700 * MS, type="TurnInfo", event="EndOfTurn"),
        line(ev="send", conn=3, pid=10, send_ns=710 * MS, type="TurnInfo", event="EndOfTurn"),
        line(ev="send", conn=2, pid=10, send_ns=800 * MS, type="audio", bytes=4800),
        line(ev="send", conn=2, pid=10, send_ns=810 * MS, type="audio", bytes=4800),
        line(ev="send", conn=2, pid=10, send_ns=820 * MS, type="Flushed", seq=0),
        line(ev="send", conn=1, pid=10, send_ns=2500 * MS, type="TurnInfo", event="EndOfTurn"),
        line(ev="send", conn=2, pid=10, send_ns=1800 * MS, type="audio", bytes=4800),
        line(ev="send", conn=2, pid=10, send_ns=1820 * MS, type="Flushed", seq=1),
        "",
        line(ev="close", conn=1, pid=10, ns=3000 * MS, code=1000),
    ]


def test_trace_is_indexed_by_tag_and_kind() -> None:
    truth = read_trace(trace_lines())
    assert truth.eot_send_ns == {"flux-a": [500 * MS, 2500 * MS], "flux-b": [700 * MS]}
    assert truth.first_audio_send_ns == {"aura-a": [800 * MS, 1800 * MS]}


def test_kth_sample_matches_kth_message_and_error_is_arrival_minus_send() -> None:
    truth = read_trace(trace_lines())
    samples = [
        HarnessSample("flux-a", FLUX_EOT, 301_000, 500 * MS + 1_200_000),  # 1.2 ms late
        HarnessSample("flux-b", FLUX_EOT, 300_000, 700 * MS + 800_000),
        HarnessSample("aura-a", AURA_TTFB, 50_000, 800 * MS + 300_000),
        HarnessSample("flux-a", FLUX_EOT, 305_000, 2500 * MS + 5_000_000),
        HarnessSample("aura-a", AURA_TTFB, 51_000, 1800 * MS + 2_000_000),
    ]
    eot = match(samples, truth, FLUX_EOT)
    assert eot.errors_us == [1200, 800, 5000]
    assert eot.unmatched == 0
    ttfb = match(samples, truth, AURA_TTFB)
    assert ttfb.errors_us == [300, 2000]


def test_missing_or_impossible_samples_are_unmatched_not_guessed() -> None:
    truth = read_trace(trace_lines())
    samples = [
        HarnessSample("flux-b", FLUX_EOT, 1, 700 * MS - 5 * MS - 1),  # far too early
        HarnessSample("flux-b", FLUX_EOT, 1, 9000 * MS),  # no second EndOfTurn traced
        HarnessSample("nobody", FLUX_EOT, 1, 9000 * MS),
    ]
    result = match(samples, truth, FLUX_EOT)
    assert result.errors_us == []
    assert result.unmatched == 3
    with pytest.raises(PerfError, match="no harness sample matched"):
        error_summary_ms(result)


def test_arrival_just_before_the_post_send_stamp_is_a_small_negative_error() -> None:
    truth = read_trace(trace_lines())
    samples = [HarnessSample("flux-b", FLUX_EOT, 1, 700 * MS - 80_000)]
    assert match(samples, truth, FLUX_EOT).errors_us == [-80]
    assert match(samples, truth, FLUX_EOT, early_tolerance_us=50).unmatched == 1


def test_error_summary_in_ms() -> None:
    truth = read_trace(trace_lines())
    samples = [HarnessSample("flux-a", FLUX_EOT, 0, 500 * MS + 2_000_000)]
    stats = error_summary_ms(match(samples, truth, FLUX_EOT))
    assert stats == {"count": 1.0, "p50": 2.0, "p99": 2.0, "max": 2.0, "unmatched": 0.0}


def test_bad_trace_line_is_one_clear_error() -> None:
    with pytest.raises(PerfError, match="trace line 2 is not JSON"):
        read_trace([line(ev="open", conn=1, pid=1, tag="x"), "{oops"])


def test_nearest_rank_percentile() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7], 1) == 7
    with pytest.raises(PerfError):
        percentile([], 50)
