"""Worker payloads: the interval is taken at once and encoded one metric at a time, yielding
to the users between metrics; overlapping reports go out in the order they took their interval."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
from locust import User, task

from voiceload.metrics import Phase, Recorder, decode_histogram
from voiceload.runner import plugin as vl_plugin

METRICS = ("flux.connect", "flux.eot", "flux.send_lag", "flux.ttft", "aura.ttfb")


class IdleUser(User):
    @task
    def nothing(self) -> None:
        pass


@pytest.fixture
def plugin(
    tmp_path: Path, listening_port: int, plugin_environment: Callable[..., Any]
) -> Iterator[vl_plugin.RunPlugin]:
    _, p = plugin_environment(IdleUser, listening_port, tmp_path / "run")
    p.state = vl_plugin.RunState.RUNNING  # as after test_start, without a run directory
    yield p


def _record_each(recorder: Recorder, phase: Phase = Phase.STEADY) -> None:
    for i, metric in enumerate(METRICS):
        recorder.record(metric, 1_000 * (i + 1), phase)


@pytest.mark.parametrize("final", [False, True])
def test_joined_pieces_equal_the_whole_payload(final: bool) -> None:
    recorder = Recorder(100.0)
    _record_each(recorder)
    _record_each(recorder, Phase.RAMP_UP)
    recorder.record("flux.eot", -5, Phase.STEADY)  # out of range
    interval = recorder.take(102.0, final=final)
    assert vl_plugin.join_pieces(interval.pieces()) == interval.payload()
    empty = Recorder(1.0).take(2.0, final=final)
    assert vl_plugin.join_pieces(empty.pieces()) == empty.payload()
    assert vl_plugin.join_pieces([]) is None


def test_a_worker_report_yields_to_users_between_metrics(plugin: vl_plugin.RunPlugin) -> None:
    _record_each(plugin.recorder)
    plugin.outbox.rows.append({"session_id": "w-1"})
    ticks = [0]

    def user() -> None:  # stands in for a user waiting to send its next frame
        while True:
            ticks[0] += 1
            gevent.sleep(0)

    ticker = gevent.spawn(user)
    gevent.sleep(0)
    before = ticks[0]
    data: dict[str, Any] = {}
    plugin.on_report_to_master("w", data)
    ticker.kill()
    assert ticks[0] - before >= len(METRICS) - 1  # ran between the metrics' encodings
    payload = data["voiceload"]
    assert payload["sessions"] == [{"session_id": "w-1"}]
    hdr = payload["hdr"]
    assert sorted(hdr["histograms"]) == sorted(METRICS) and hdr["final"] is False
    for metric in METRICS:
        encoded = hdr["histograms"][metric][Phase.STEADY.value]
        assert decode_histogram(encoded).get_total_count() == 1


def test_overlapping_reports_are_sent_in_the_order_they_took_their_interval(
    plugin: vl_plugin.RunPlugin,
) -> None:
    _record_each(plugin.recorder)
    sent: list[dict[str, Any]] = []

    def report() -> None:  # what Locust's worker does: fire the event, then send
        data: dict[str, Any] = {}
        plugin.on_report_to_master("w", data)
        sent.append(data)

    periodic = gevent.spawn(report)
    gevent.sleep(0)  # the periodic report has taken its interval and is encoding it
    plugin.recorder.record("flux.eot", 7_000, Phase.TEARDOWN)
    plugin.outbox.last_due = True  # test_stop: the next report is the final one
    final = gevent.spawn(report)
    gevent.joinall([periodic, final])
    assert [bool(d) for d in sent] == [True, True]
    first, last = sent[0]["voiceload"]["hdr"], sent[1]["voiceload"]["hdr"]
    assert (first["final"], last["final"]) == (False, True)
    assert sorted(first["histograms"]) == sorted(METRICS)
    assert list(last["histograms"]) == ["flux.eot"] and first["end_s"] <= last["start_s"]
    data: dict[str, Any] = {}
    plugin.on_report_to_master("w", data)
    assert data == {}  # nothing after the final report
    assert time.time() >= last["end_s"]
