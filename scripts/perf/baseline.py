"""The "no framework" reference: N paced Flux streams from plain asyncio ``websockets``.

No Locust, no gevent, no histograms, no protocol parsing: each stream connects to the same
emulator route, sends the same manifest fixture's frames (``--fixture``, as ``voiceload run
--fixtures NAME`` sends them: 16 kHz linear16, ``--frame-ms``) on the same absolute schedule
(:class:`voiceload.pacing.FrameSchedule`, random phase), and drains what comes back; send lag
(actual send − due) goes into a plain list, summarised by sorting. ``make perf`` reports
voiceload's capacity as a ratio of this client's.

    cd scripts && python -m perf.baseline --base-url ws://127.0.0.1:PORT --streams 500 --frame-ms 80

Timeline: streams start evenly over ``--ramp-s``; the steady window of ``--measure-s`` starts
``--warmup-s`` later; at its end every stream is cancelled (as Locust stops its users). One
session per stream, no reconnect: the fixture must outlast the window (else exit 2), so no stream
ends inside it. ``--churn`` instead reconnects as a Locust user does: after each fixture a
0.5-1.5 s pause, then a new connection streaming a fixture drawn from the pool. Prints one
JSON object: ``send_lag_ms`` (count/p50/p99/max, steady),
``loop_lag_ms`` (a 10 ms asyncio timer's lateness, steady, as ``harness.loop_lag``),
``cpu_percent`` / ``rss_bytes`` (steady window), ``sessions`` (connections opened),
``sessions_steady`` (opened inside the window) and ``errors`` (``{exception: count}``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from perf.fixture import flux_url
from perf.sorted_stats import summary
from voiceload.audio import prepare
from voiceload.errors import VoiceloadError
from voiceload.fixtures import load_manifest
from voiceload.pacing import FrameSchedule, start_time_ns
from voiceload.runner.looplag import LOOP_LAG_INTERVAL_S
from voiceload.runner.options import DEFAULT_SAMPLE_RATE
from voiceload.runner.sessions import build_pools

NS_PER_S = 1_000_000_000
STOP_MARGIN_S = 10.0
CHURN_PAUSE_S = (0.5, 1.5)  # loadtests/locustfile.py VoiceUser.wait_time


def _frames(path: Path, frame_ms: int) -> tuple[bytes, ...]:
    """An audio file's frames as ``voiceload run`` sends them (its default rate, ``frame_ms``)."""
    return prepare(path, sample_rate=DEFAULT_SAMPLE_RATE, frame_ms=frame_ms).frames


def fixture_frames(name: str, frame_ms: int) -> tuple[bytes, ...]:
    """The manifest fixture ``name`` as ``voiceload run`` sends it."""
    return _frames(load_manifest().get(name).path, frame_ms)  # unknown: FixtureError


def flux_pool(names: str, frame_ms: int) -> list[tuple[bytes, ...]]:
    """The frames of every fixture ``voiceload run --fixtures names`` draws Flux sessions from
    (``names`` empty: its default pool, every manifest fixture with a turn)."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    pool = build_pools(load_manifest(), wanted).flux
    return [_frames(f.path, frame_ms) for f in pool]


async def loop_lag(window: tuple[int, int], lags_us: list[int]) -> None:
    """Sleep 10 ms at a time; record how late each wake-up is inside ``window`` (µs)."""
    while True:
        due_ns = time.monotonic_ns() + round(LOOP_LAG_INTERVAL_S * NS_PER_S)
        await asyncio.sleep(LOOP_LAG_INTERVAL_S)
        now_ns = time.monotonic_ns()
        if window[0] <= now_ns < window[1]:
            lags_us.append(max(0, now_ns - due_ns) // 1000)


async def session(
    url: str, frames: tuple[bytes, ...], frame_ms: int, rng: random.Random,
    window: tuple[int, int], lags_us: list[int], errors: list[str], opened_ns: list[int],
) -> None:  # fmt: skip
    """One connection: send every frame of ``frames`` when due, record steady lag, close."""
    try:
        async with connect(url, compression=None, ping_interval=None, max_size=None) as ws:
            opened_ns.append(time.monotonic_ns())

            async def drain() -> None:
                try:
                    async for _ in ws:
                        pass
                except ConnectionClosed:
                    pass

            reader = asyncio.create_task(drain())
            schedule = FrameSchedule(
                start_time_ns(time.monotonic_ns(), frame_ms, rng), frame_ms, len(frames)
            )
            for k, frame in enumerate(frames):
                wait_ns = schedule.wait_ns(time.monotonic_ns(), k)
                if wait_ns > 0:
                    await asyncio.sleep(wait_ns / NS_PER_S)
                await ws.send(frame)
                now_ns = time.monotonic_ns()
                if window[0] <= now_ns < window[1]:
                    lags_us.append(schedule.send_lag_ns(now_ns, k) // 1000)
            reader.cancel()
    except (OSError, ConnectionClosed, TimeoutError) as exc:
        errors.append(type(exc).__name__)


async def stream(
    url: str, pool: Sequence[tuple[bytes, ...]], frame_ms: int, delay_s: float,
    rng: random.Random, churn: bool, window: tuple[int, int], lags_us: list[int],
    errors: list[str], opened_ns: list[int],
) -> None:  # fmt: skip
    """One user: start after ``delay_s``; one session of a fixture drawn from ``pool``; with
    ``churn``, a pause of 0.5-1.5 s (a Locust ``VoiceUser``'s ``wait_time``) and the next
    session, until cancelled."""
    await asyncio.sleep(delay_s)
    while True:
        await session(url, rng.choice(pool), frame_ms, rng, window, lags_us, errors, opened_ns)
        if not churn:
            return
        await asyncio.sleep(rng.uniform(*CHURN_PAUSE_S))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    pool = flux_pool(args.fixture, args.frame_ms)
    needed_s = args.ramp_s + args.warmup_s + args.measure_s
    shortest_s = min(len(frames) for frames in pool) * args.frame_ms / 1000
    if not args.churn and shortest_s < needed_s:
        raise VoiceloadError(
            f"fixture {args.fixture!r} lasts {shortest_s:.1f} s, less than ramp + warm-up + "
            f"window ({needed_s:.1f} s): streams would end in the window (--churn reconnects)"
        )
    start_ns = time.monotonic_ns()
    steady_ns = start_ns + round((args.ramp_s + args.warmup_s) * NS_PER_S)
    end_ns = steady_ns + round(args.measure_s * NS_PER_S)
    window = (steady_ns, end_ns)
    lags_us: list[int] = []
    loop_lags_us: list[int] = []
    errors: list[str] = []
    opened_ns: list[int] = []
    rng = random.Random(args.seed)
    url = flux_url(args.base_url)
    tasks = [
        asyncio.create_task(
            stream(
                url, pool, args.frame_ms, i * args.ramp_s / max(1, args.streams),
                random.Random(rng.random()), args.churn, window, lags_us, errors, opened_ns,
            )
        )
        for i in range(args.streams)
    ]
    monitor = asyncio.create_task(loop_lag(window, loop_lags_us))
    proc = psutil.Process()
    await asyncio.sleep(max(0.0, (steady_ns - time.monotonic_ns()) / NS_PER_S))
    cpu0, t0 = proc.cpu_times(), time.monotonic()
    await asyncio.sleep(max(0.0, (end_ns - time.monotonic_ns()) / NS_PER_S))
    cpu1, t1 = proc.cpu_times(), time.monotonic()
    rss_bytes = proc.memory_info().rss
    errors_in_window = list(errors)  # the stop below cancels streams: not failures
    for task in [*tasks, monitor]:
        task.cancel()
    await asyncio.wait([*tasks, monitor], timeout=STOP_MARGIN_S)
    busy_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    lag = summary([v / 1000 for v in lags_us]) if lags_us else None
    loop = summary([v / 1000 for v in loop_lags_us]) if loop_lags_us else None
    error_counts = {name: errors_in_window.count(name) for name in sorted(set(errors_in_window))}
    return {
        "streams": args.streams, "frame_ms": args.frame_ms, "fixture": args.fixture,
        "churn": args.churn,
        "send_lag_ms": lag, "loop_lag_ms": loop,
        "cpu_percent": 100.0 * busy_s / (t1 - t0), "rss_bytes": rss_bytes,
        "sessions": len(opened_ns),
        "sessions_steady": sum(1 for t in opened_ns if steady_ns <= t < end_ns),
        "measure_s": args.measure_s, "errors": error_counts,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--streams", type=int, required=True)
    p.add_argument("--frame-ms", type=int, default=80)
    p.add_argument("--fixture", default="monologue_long",
                   help="manifest fixture(s) to stream, comma-separated; '' = voiceload run's "
                   "default Flux pool (every fixture with a turn)")  # fmt: skip
    p.add_argument("--churn", action="store_true",
                   help="reconnect as a Locust user does: after each fixture, a 0.5-1.5 s pause "
                   "and a new session (fixture drawn at random from the pool)")  # fmt: skip
    p.add_argument("--ramp-s", type=float, default=5.0)
    p.add_argument("--warmup-s", type=float, default=0.0)
    p.add_argument("--measure-s", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    try:
        print(json.dumps(asyncio.run(run(args))))
    except VoiceloadError as exc:
        print(f"perf.baseline: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
