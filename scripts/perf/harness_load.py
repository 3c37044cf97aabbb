"""One load-generator process of the harness: N voiceload Flux sessions (plus Aura) under gevent.

This is what a Locust worker runs, minus Locust: the real session drivers
(:class:`voiceload.client.flux_session.FluxSession`, :class:`~voiceload.client.aura_session.
AuraSession`) on ``websockets.sync`` under gevent's monkey patches, every sample recorded into a
:class:`voiceload.metrics.Recorder` under its phase, exactly as the runner plugin does.

    cd scripts && python -m perf.harness_load --base-url ws://127.0.0.1:PORT --streams 500 \
        --frame-ms 80 [--aura-sessions 10] [--samples-out samples.jsonl]

Timeline: streams start evenly over ``--ramp-s``; after ``--warmup-s`` more the steady window
of ``--measure-s`` begins; every stream's audio outlasts the window. Prints one JSON object:
``streams, frame_ms, send_lag_ms`` (steady :func:`voiceload.metrics.stats_ms`), ``cpu_percent``
(this process, steady window, % of one core), ``rss_bytes`` (end of window), ``sessions``,
``errors`` (``{category: count}``) and ``samples_out``. ``--samples-out`` writes one JSON line
per ``flux.eot`` / ``aura.ttfb`` sample with its session tag and arrival stamp, for
:mod:`perf.accuracy`.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402

from perf.accuracy import AURA_TTFB, FLUX_EOT  # noqa: E402
from perf.fixture import aura_url, flux_url, speech_fixture  # noqa: E402
from voiceload.client.aura_session import AuraOptions, AuraSession  # noqa: E402
from voiceload.client.flux_session import FLUX_SEND_LAG, FluxSession  # noqa: E402
from voiceload.client.results import SessionResult  # noqa: E402
from voiceload.metrics import Phase, Recorder, decode_histogram, stats_ms  # noqa: E402

NS_PER_S = 1_000_000_000
TRACED = frozenset({FLUX_EOT, AURA_TTFB})
AURA_TEXT = "Thanks for calling. Your table for two is booked for seven tonight."
JOIN_MARGIN_S = 30.0


class Window:
    """Phase of a monotonic instant: ramp-up before ``steady_ns``, teardown from ``end_ns``."""

    def __init__(self, steady_ns: int, end_ns: int) -> None:
        self.steady_ns = steady_ns
        self.end_ns = end_ns

    def phase(self, now_ns: int) -> Phase:
        if now_ns < self.steady_ns:
            return Phase.RAMP_UP
        return Phase.STEADY if now_ns < self.end_ns else Phase.TEARDOWN


class SessionSink:
    """A session's :class:`SampleSink`: the process's Recorder, plus traced samples kept."""

    def __init__(self, tag: str, recorder: Recorder, window: Window, keep: list[str] | None):
        self.tag = tag
        self.recorder = recorder
        self.window = window
        self.keep = keep

    def record(self, metric: str, value_us: int) -> None:
        now_ns = time.monotonic_ns()
        self.recorder.record(metric, value_us, self.window.phase(now_ns))
        if self.keep is not None and metric in TRACED:
            self.keep.append(
                json.dumps({"tag": self.tag, "metric": metric, "value_us": value_us,
                            "arrival_ns": now_ns})
            )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--streams", type=int, required=True)
    p.add_argument("--frame-ms", type=int, default=80)
    p.add_argument("--ramp-s", type=float, default=3.0)
    p.add_argument("--warmup-s", type=float, default=3.0)
    p.add_argument("--measure-s", type=float, default=10.0)
    p.add_argument("--aura-sessions", type=int, default=0)
    p.add_argument("--aura-interval-s", type=float, default=1.0)
    p.add_argument("--samples-out", type=Path)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    stream_s = args.ramp_s + args.warmup_s + args.measure_s + 1.0
    fixture = speech_fixture(round(stream_s + 2.5, 1), args.frame_ms)  # one turn to spare
    start_ns = time.monotonic_ns()
    window = Window(
        start_ns + round((args.ramp_s + args.warmup_s) * NS_PER_S),
        start_ns + round((args.ramp_s + args.warmup_s + args.measure_s) * NS_PER_S),
    )
    recorder = Recorder(time.time())
    kept: list[str] | None = [] if args.samples_out else None
    rng = random.Random(args.seed)
    results: list[SessionResult] = []

    def flux_user(i: int) -> None:
        gevent.sleep(i * args.ramp_s / max(1, args.streams))
        tag = f"perf-flux-{i}"
        session = FluxSession(
            flux_url(args.base_url), {}, [], fixture.frames, fixture.turns, args.frame_ms,
            SessionSink(tag, recorder, window, kept), random.Random(rng.random()), fixture=tag,
        )  # fmt: skip
        results.append(session.run())

    def aura_user(i: int) -> None:
        gevent.sleep(args.ramp_s * (i + 0.5) / max(1, args.aura_sessions))
        tag = f"perf-aura-{i}"
        remaining_s = stream_s - args.ramp_s * (i + 0.5) / max(1, args.aura_sessions)
        count = max(1, int(remaining_s / args.aura_interval_s))
        session = AuraSession(
            aura_url(args.base_url, tag), {}, [], [AURA_TEXT] * count,
            SessionSink(tag, recorder, window, kept), fixture=tag, model="aura-1",
            options=AuraOptions(request_interval_s=args.aura_interval_s),
        )  # fmt: skip
        results.append(session.run())

    proc = psutil.Process()
    usage: dict[str, Any] = {}

    def watch() -> None:
        gevent.sleep(max(0.0, (window.steady_ns - time.monotonic_ns()) / NS_PER_S))
        cpu0, t0 = proc.cpu_times(), time.monotonic()
        gevent.sleep(max(0.0, (window.end_ns - time.monotonic_ns()) / NS_PER_S))
        cpu1, t1 = proc.cpu_times(), time.monotonic()
        busy_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        usage["cpu_percent"] = 100.0 * busy_s / (t1 - t0)
        usage["rss_bytes"] = proc.memory_info().rss

    greenlets = [gevent.spawn(flux_user, i) for i in range(args.streams)]
    greenlets += [gevent.spawn(aura_user, i) for i in range(args.aura_sessions)]
    watcher = gevent.spawn(watch)
    gevent.joinall([*greenlets, watcher], timeout=stream_s + JOIN_MARGIN_S)
    unfinished = sum(1 for g in greenlets if not g.ready())
    gevent.killall(greenlets, timeout=5)

    payload = recorder.drain(time.time(), final=True)
    encoded = payload["histograms"].get(FLUX_SEND_LAG, {}).get(Phase.STEADY.value)
    send_lag = stats_ms(decode_histogram(encoded)) if encoded else None
    errors = Counter(r.error.category.value for r in results if r.error is not None)
    if unfinished:
        errors["unfinished"] = unfinished
    if args.samples_out is not None and kept is not None:
        args.samples_out.write_text("".join(line + "\n" for line in kept))
    out_of_range = sum(sum(v.values()) for v in payload["out_of_range"].values())
    print(json.dumps({
        "streams": args.streams, "frame_ms": args.frame_ms, "aura_sessions": args.aura_sessions,
        "send_lag_ms": send_lag, "cpu_percent": usage.get("cpu_percent"),
        "rss_bytes": usage.get("rss_bytes"), "sessions": len(results), "errors": dict(errors),
        "out_of_range": out_of_range, "samples_out": len(kept) if kept is not None else 0,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
