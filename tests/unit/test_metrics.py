"""voiceload.metrics: recording, out-of-range accounting, drain/merge, .hlog/.hgrm files."""

from __future__ import annotations

import json
import random
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hdrh.log import HistogramLogReader

from voiceload.metrics import (
    MAX_VALUE_US,
    METRICS,
    Aggregator,
    HistogramLogError,
    MetricsError,
    Phase,
    Recorder,
    UnknownMetricError,
    mean_us,
    merged_histogram,
    metric_name,
    new_histogram,
    read_hlog,
    split_metric_name,
    stats_ms,
)

RUN_START_S = 1_764_199_000.0  # 2025-11-26T23:16:40Z


def lognormal_us(rng: random.Random, n: int) -> list[int]:
    return [max(1, int(rng.lognormvariate(11.0, 0.6))) for _ in range(n)]  # ~60 ms median


def test_registry_names_and_descriptions() -> None:
    expected = {
        "flux.connect",
        "flux.first_response",
        "flux.ttft",
        "flux.eot",
        "flux.eager_eot",
        "flux.transcript_lag",
        "flux.send_lag",
        "aura.connect",
        "aura.ttfb",
        "aura.ttfa",
        "aura.flushed",
        "aura.stall",
        "agent.voice_to_voice",
    }
    assert expected <= set(METRICS)
    assert all(spec.description for spec in METRICS.values())
    assert METRICS["flux.send_lag"].harness and not METRICS["flux.ttft"].harness


def test_label_suffix() -> None:
    assert metric_name("aura.ttfb", "aura-2-en") == "aura.ttfb[aura-2-en]"
    assert split_metric_name("aura.ttfb[aura-2-en]") == ("aura.ttfb", "aura-2-en")
    assert split_metric_name("flux.eot") == ("flux.eot", None)
    for bad in ("flux.nope", "aura.ttfb[]", "aura.ttfb[@cf/deepgram/aura-1]", "aura.ttfb[x"):
        with pytest.raises(UnknownMetricError, match="unknown metric"):
            split_metric_name(bad)
    with pytest.raises(UnknownMetricError):
        Recorder(0.0).record("flux.typo", 5, Phase.STEADY)


def test_record_range_and_out_of_range_counting() -> None:
    rec = Recorder(now_wall_s=RUN_START_S)
    assert rec.record("flux.eot", 0, Phase.STEADY)  # premature EndOfTurn is recorded as 0
    assert rec.record("flux.eot", 1, Phase.STEADY)
    assert rec.record("flux.eot", MAX_VALUE_US, Phase.STEADY)
    assert not rec.record("flux.eot", MAX_VALUE_US + 1, Phase.STEADY)
    assert not rec.record("flux.eot", -1, Phase.STEADY)
    assert not rec.record("flux.eot", -5, Phase.RAMP_UP)
    assert rec.record_ns("flux.send_lag", 1_999, Phase.STEADY)  # floored to 1 µs
    assert not rec.record_ns("flux.send_lag", -1, Phase.STEADY)  # -1 ns stays negative

    payload = rec.drain(RUN_START_S + 3.0)
    assert payload["samples"] == {"flux.eot": {"steady": 3}, "flux.send_lag": {"steady": 1}}
    assert payload["out_of_range"] == {
        "flux.eot": {"steady": 2, "ramp_up": 1},
        "flux.send_lag": {"steady": 1},
    }

    agg = Aggregator(run_dir=None, start_time_s=RUN_START_S)
    agg.add(payload, source="w1")
    summary = agg.summary()
    assert summary["flux.eot"]["out_of_range"] == 3
    assert summary["flux.eot"]["out_of_range_by_phase"] == {"steady": 2, "ramp_up": 1}
    assert summary["flux.eot"]["count"] == 3
    assert summary["flux.send_lag"]["out_of_range"] == 1
    assert agg.total_out_of_range() == 4
    assert agg.total_out_of_range(Phase.RAMP_UP) == 1
    assert agg.sources["w1"].total_out_of_range("flux.eot") == 3


def test_only_out_of_range_values_still_surface() -> None:
    rec = Recorder(RUN_START_S)
    rec.record("aura.stall", -3, Phase.STEADY)
    agg = Aggregator(None, RUN_START_S)
    agg.add(rec.drain(RUN_START_S + 1), "w1")
    assert agg.summary()["aura.stall"]["count"] == 0
    assert agg.summary()["aura.stall"]["out_of_range"] == 1


def test_phase_tagging_and_steady_headline() -> None:
    rec = Recorder(RUN_START_S)
    for v in (100, 200):
        rec.record("aura.ttfb", v, Phase.RAMP_UP)
    for v in (1_000, 2_000, 3_000):
        rec.record("aura.ttfb", v, Phase.STEADY)
    rec.record("aura.ttfb", 9_000_000, Phase.TEARDOWN)
    agg = Aggregator(None, RUN_START_S)
    agg.add(rec.drain(RUN_START_S + 3), "w1")
    s = agg.summary()["aura.ttfb"]
    assert s["count"] == 3
    assert s["count_all_phases"] == 6
    assert s["max"] == pytest.approx(3.0, rel=1e-3)  # teardown's 9 s is not in the headline
    assert agg.histogram("aura.ttfb", Phase.RAMP_UP).get_total_count() == 2
    assert agg.histogram("aura.ttfb", None).get_total_count() == 6


def test_drain_resets_interval_and_sets_wall_clock_bounds() -> None:
    rec = Recorder(now_wall_s=RUN_START_S)
    rec.record("flux.ttft", 500, Phase.STEADY)
    first = rec.drain(RUN_START_S + 3.0)
    second = rec.drain(RUN_START_S + 6.0, final=True)
    assert (first["start_s"], first["end_s"], first["final"]) == (
        RUN_START_S,
        RUN_START_S + 3,
        False,
    )
    assert (second["start_s"], second["end_s"], second["final"]) == (
        RUN_START_S + 3,
        RUN_START_S + 6,
        True,
    )
    assert first["samples"] == {"flux.ttft": {"steady": 1}}
    assert second["histograms"] == {} and second["samples"] == {} and second["out_of_range"] == {}


def _two_recorders_alike() -> tuple[Recorder, Recorder]:
    """Two recorders fed the same samples (several metrics and phases, one refused value)."""
    recorders = (Recorder(RUN_START_S), Recorder(RUN_START_S))
    rng = random.Random(5)
    feed = [(m, v, p) for m in ("flux.eot", "flux.send_lag", "aura.ttfb")
            for p in (Phase.RAMP_UP, Phase.STEADY) for v in lognormal_us(rng, 40)]  # fmt: skip
    feed.append(("agent.voice_to_voice", -5, Phase.STEADY))  # out of range only
    for rec in recorders:
        for metric, value, phase in feed:
            rec.record(metric, value, phase)
    return recorders


def test_taking_an_interval_then_encoding_it_piece_by_piece_equals_a_drain(
    tmp_path: Path,
) -> None:
    whole_rec, piece_rec = _two_recorders_alike()
    whole = whole_rec.drain(RUN_START_S + 3, final=True)
    taken = piece_rec.take(RUN_START_S + 3, final=True)
    assert taken.payload() == whole
    pieces = list(taken.pieces())
    names = ["agent.voice_to_voice", "aura.ttfb", "flux.eot", "flux.send_lag"]
    assert [next(iter({**p["samples"], **p["out_of_range"]})) for p in pieces] == names
    assert [p["final"] for p in pieces] == [False, False, False, True]
    assert all((p["start_s"], p["end_s"]) == (RUN_START_S, RUN_START_S + 3) for p in pieces)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    by_whole = Aggregator(tmp_path / "a", RUN_START_S)
    by_pieces = Aggregator(tmp_path / "b", RUN_START_S)
    by_whole.add(whole, "w1")
    for piece in pieces:
        by_pieces.add(piece, "w1")
    assert by_pieces.close() == by_whole.close()
    assert by_pieces.sources["w1"].final_received
    for name in names:
        hlog = f"{name}.hlog"
        assert (tmp_path / "b" / hlog).read_text() == (tmp_path / "a" / hlog).read_text()


def test_samples_recorded_after_take_belong_to_the_next_interval() -> None:
    rec = Recorder(RUN_START_S)
    rec.record("flux.eot", 100, Phase.STEADY)
    taken = rec.take(RUN_START_S + 3)
    rec.record("flux.eot", 200, Phase.STEADY)  # while the taken interval is being encoded
    assert sum(p["samples"]["flux.eot"]["steady"] for p in taken.pieces()) == 1
    following = rec.drain(RUN_START_S + 6)
    assert following["samples"] == {"flux.eot": {"steady": 1}}
    assert following["start_s"] == RUN_START_S + 3


def test_an_empty_interval_is_one_empty_piece_that_keeps_final() -> None:
    pieces = list(Recorder(RUN_START_S).take(RUN_START_S + 3, final=True).pieces())
    assert len(pieces) == 1 and pieces[0]["final"] is True
    assert pieces[0]["histograms"] == {} and pieces[0]["out_of_range"] == {}


def test_stats_match_hdrh_and_are_in_ms() -> None:
    hist = new_histogram()
    for v in [*lognormal_us(random.Random(3), 5_000), 0, MAX_VALUE_US]:
        hist.record_value(v)
    stats = stats_ms(hist)
    assert stats["count"] == 5_002
    assert mean_us(hist) == hist.get_mean_value()
    assert stats["mean"] == hist.get_mean_value() / 1000
    assert stats["p99"] == hist.get_value_at_percentile(99.0) / 1000
    assert stats["p99_9"] == hist.get_value_at_percentile(99.9) / 1000
    assert stats["max"] == hist.get_max_value() / 1000
    assert stats_ms(new_histogram())["p50"] is None
    assert mean_us(new_histogram()) == 0.0


def test_payload_is_plain_data() -> None:
    rec = Recorder(RUN_START_S)
    rec.record("flux.eot", 250_000, Phase.STEADY)
    rec.record("flux.eot", -1, Phase.STEADY)
    payload = rec.drain(RUN_START_S + 3)
    for decoded in (json.loads(json.dumps(payload)), msgpack.unpackb(msgpack.packb(payload))):
        agg = Aggregator(None, RUN_START_S)
        agg.add(decoded, "w1")
        assert agg.summary()["flux.eot"]["count"] == 1
        assert agg.summary()["flux.eot"]["out_of_range"] == 1


def feed_recorders(
    n_recorders: int, n_drains: int, seed: int
) -> tuple[list[list[dict[str, Any]]], dict[tuple[str, Phase], list[int]]]:
    """Payloads per recorder, and every in-range value fed, by (metric, phase)."""
    rng = random.Random(seed)
    fed: dict[tuple[str, Phase], list[int]] = {}
    payloads: list[list[dict[str, Any]]] = []
    for _ in range(n_recorders):
        rec = Recorder(RUN_START_S)
        mine: list[dict[str, Any]] = []
        for d in range(n_drains):
            phase = [Phase.RAMP_UP, Phase.STEADY, Phase.STEADY, Phase.TEARDOWN][d % 4]
            for metric in ("flux.eot", "aura.ttfb[aura-2-en]"):
                values = lognormal_us(rng, rng.randrange(50, 400))
                for v in values:
                    assert rec.record(metric, v, phase)
                fed.setdefault((metric, phase), []).extend(values)
            mine.append(dict(rec.drain(RUN_START_S + 3.0 * (d + 1), final=d == n_drains - 1)))
        payloads.append(mine)
    return payloads, fed


def test_merge_conserves_counts_and_matches_single_histogram() -> None:
    payloads, fed = feed_recorders(n_recorders=3, n_drains=5, seed=11)
    agg = Aggregator(None, RUN_START_S)
    for i in range(5):  # interleave sources as a master would see them
        for source, mine in enumerate(payloads):
            agg.add(mine[i], source=f"w{source}")

    for (metric, phase), values in fed.items():
        merged = agg.histogram(metric, phase)
        assert merged.get_total_count() == len(values)
        single = new_histogram()
        for v in values:
            single.record_value(v)
        assert merged.equals(single)
        if phase is Phase.STEADY:
            got: dict[str, Any] = dict(agg.summary()[metric])
            expected: dict[str, Any] = dict(stats_ms(single))
            for key in ("count", "p50", "p90", "p95", "p99", "p99_9", "max"):
                assert got[key] == expected[key], key

    sent = {
        f"w{i}": sum(n for p in mine for by in p["samples"].values() for n in by.values())
        for i, mine in enumerate(payloads)
    }
    assert {src: t.total_samples() for src, t in agg.sources.items()} == sent
    assert sum(sent.values()) == sum(len(v) for v in fed.values())
    assert all(t.final_received and t.payloads == 5 for t in agg.sources.values())
    steady_send = agg.source_stats_ms("w0", "flux.send_lag")
    assert steady_send is None  # no send-lag recorded


def test_per_source_stats() -> None:
    agg = Aggregator(None, RUN_START_S)
    for source, lag_us in (("w1", 1_000), ("w2", 9_000)):
        rec = Recorder(RUN_START_S)
        for _ in range(10):
            rec.record("flux.send_lag", lag_us, Phase.STEADY)
        agg.add(rec.drain(RUN_START_S + 3), source)
    w1, w2 = agg.source_stats_ms("w1", "flux.send_lag"), agg.source_stats_ms("w2", "flux.send_lag")
    assert w1 is not None and w2 is not None
    assert w1["p99"] == pytest.approx(1.0, rel=1e-3)
    assert w2["p99"] == pytest.approx(9.0, rel=1e-3)
    assert agg.summary()["flux.send_lag"]["count"] == 20


def test_bad_payloads_are_refused_without_partial_merge() -> None:
    rec = Recorder(RUN_START_S)
    rec.record("flux.eot", 100, Phase.STEADY)
    good = dict(rec.drain(RUN_START_S + 1))
    agg = Aggregator(None, RUN_START_S)
    with pytest.raises(HistogramLogError, match="version"):
        agg.add({**good, "version": 99}, "w1")
    with pytest.raises(HistogramLogError, match="malformed"):
        agg.add({k: v for k, v in good.items() if k != "samples"}, "w1")
    with pytest.raises(HistogramLogError, match="cannot decode"):
        agg.add({**good, "histograms": {"flux.eot": {"steady": "not-a-histogram"}}}, "w1")
    with pytest.raises(HistogramLogError, match="says 7"):
        agg.add({**good, "samples": {"flux.eot": {"steady": 7}}}, "w1")
    assert agg.metric_names() == [] and agg.sources == {}
    agg.add(good, "w1")
    assert agg.summary()["flux.eot"]["count"] == 1


def run_to_files(run_dir: Path) -> tuple[Aggregator, dict[tuple[str, Phase], list[int]]]:
    payloads, fed = feed_recorders(n_recorders=2, n_drains=4, seed=5)
    agg = Aggregator(run_dir, RUN_START_S)
    for i in range(4):
        for source, mine in enumerate(payloads):
            agg.add(mine[i], source=f"w{source}")
    return agg, fed


def test_hlog_headers_and_round_trip(tmp_path: Path) -> None:
    agg, fed = run_to_files(tmp_path)
    agg.close()
    path = tmp_path / "aura.ttfb[aura-2-en].hlog"
    lines = path.read_text().splitlines()
    start = next(line for line in lines if line.startswith("#[StartTime:"))
    match = re.fullmatch(r"#\[StartTime: ([\d.]+) \(seconds since epoch\), (\S+)\]", start)
    assert match is not None
    assert float(match.group(1)) == RUN_START_S
    assert datetime.fromisoformat(match.group(2)).timestamp() == RUN_START_S
    assert f"#[BaseTime: {RUN_START_S:.3f} (seconds since epoch)]" in lines
    assert "#[Histogram log format version 1.3]" in lines
    legend = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'
    assert legend in lines
    data = [line for line in lines if line.startswith("Tag=")]
    assert len(data) == 2 * 4  # one line per payload interval (2 sources × 4 drains)
    assert data[0].startswith("Tag=ramp_up,0.000,3.000,")

    intervals = read_hlog(path)
    assert [iv.tag for iv in intervals[:2]] == ["ramp_up", "ramp_up"]
    assert intervals[2].start_s == pytest.approx(RUN_START_S + 3.0)
    assert intervals[2].end_s == pytest.approx(RUN_START_S + 6.0)
    for phase in Phase:
        values = fed[("aura.ttfb[aura-2-en]", phase)]
        from_file = merged_histogram(intervals, phase)
        assert from_file.get_total_count() == len(values)
        assert from_file.equals(agg.histogram("aura.ttfb[aura-2-en]", phase))
    assert merged_histogram(intervals, None).get_total_count() == sum(
        len(v) for (m, _), v in fed.items() if m == "aura.ttfb[aura-2-en]"
    )


def test_standard_hdrh_reader_reads_our_hlog(tmp_path: Path) -> None:
    agg, fed = run_to_files(tmp_path)
    agg.close()
    reader = HistogramLogReader(str(tmp_path / "flux.eot.hlog"), new_histogram())
    counts: dict[str, int] = {}
    for _ in range(100):  # bounded: the file has 8 intervals
        hist = reader.get_next_interval_histogram()
        if hist is None:
            break
        counts[hist.get_tag()] = counts.get(hist.get_tag(), 0) + hist.get_total_count()
    reader.close()
    assert reader.get_start_time_sec() == RUN_START_S
    assert counts == {p.value: len(fed[("flux.eot", p)]) for p in Phase}


def test_early_intervals_are_stamped_from_start_time(tmp_path: Path) -> None:
    rec = Recorder(now_wall_s=RUN_START_S - 30.0)  # created before the run started
    rec.record("flux.connect", 12_000, Phase.RAMP_UP)
    with Aggregator(tmp_path, RUN_START_S) as agg:
        agg.add(rec.drain(RUN_START_S + 2.0), "w1")
    data = [ln for ln in (tmp_path / "flux.connect.hlog").read_text().splitlines() if ln[:1] == "T"]
    assert data[0].startswith("Tag=ramp_up,0.000,2.000,12.007,")  # Interval_Max in ms
    assert read_hlog(tmp_path / "flux.connect.hlog")[0].start_s == RUN_START_S


def test_out_of_range_is_noted_in_hlog(tmp_path: Path) -> None:
    rec = Recorder(RUN_START_S)
    rec.record("flux.ttft", -10, Phase.STEADY)
    with Aggregator(tmp_path, RUN_START_S) as agg:
        agg.add(rec.drain(RUN_START_S + 3), "w7")
    text = (tmp_path / "flux.ttft.hlog").read_text()
    assert "#[OutOfRange: 1 samples refused, Tag=steady, source=w7" in text
    assert read_hlog(tmp_path / "flux.ttft.hlog") == []


def test_hgrm_written_and_well_formed(tmp_path: Path) -> None:
    agg, fed = run_to_files(tmp_path)
    summary = agg.close()
    path = tmp_path / "flux.eot.hgrm"
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    rows = [line.split() for line in lines[2:] if line and not line.startswith("#")]
    values_ms = [float(r[0]) for r in rows]
    percentiles = [float(r[1]) for r in rows]
    assert values_ms == sorted(values_ms) and percentiles == sorted(percentiles)
    assert percentiles[-1] == 1.0
    steady = fed[("flux.eot", Phase.STEADY)]
    assert int(rows[-1][2]) == len(steady)  # steady phase only
    assert values_ms[-1] == pytest.approx(max(steady) / 1000, rel=1e-3)  # ms, not µs
    footer = next(line for line in lines if line.startswith("#[Max"))
    total = re.search(r"TotalCount\s*=\s*([\d.]+)", footer)
    assert total is not None and float(total.group(1)) == len(steady)
    assert summary["flux.eot"]["count"] == len(steady)
    assert {p.name for p in tmp_path.glob("*.hgrm")} == {
        "flux.eot.hgrm",
        "aura.ttfb[aura-2-en].hgrm",
    }


def test_closed_aggregator_refuses_payloads(tmp_path: Path) -> None:
    agg = Aggregator(tmp_path, RUN_START_S)
    agg.close()
    with pytest.raises(MetricsError, match="after the aggregator was closed"):
        agg.add(Recorder(RUN_START_S).drain(RUN_START_S + 1), "late")


def test_read_hlog_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.hlog"
    path.write_text("#[StartTime: 1.000 (seconds since epoch), x]\n1.0,2.0,HIST\n")
    with pytest.raises(HistogramLogError, match=r"bad\.hlog:2"):
        read_hlog(path)
    with pytest.raises(HistogramLogError, match="cannot read"):
        read_hlog(tmp_path / "missing.hlog")
