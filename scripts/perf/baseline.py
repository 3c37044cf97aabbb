"""The "no framework" reference: N paced Flux streams from plain asyncio ``websockets``.

No Locust, no gevent, no histograms, no protocol parsing: each stream connects to the same
emulator route, sends the same fixture frames on the same absolute schedule
(:class:`voiceload.pacing.FrameSchedule`, random phase), and drains what comes back; send lag
(actual send − due) goes into a plain list, summarised by sorting. ``make perf`` reports
voiceload's capacity as a ratio of this client's.

    cd scripts && python -m perf.baseline --base-url ws://127.0.0.1:PORT --streams 500 --frame-ms 80

Timeline and output as :mod:`perf.harness_load` (``send_lag_ms`` with count/p50/p99/max).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from typing import Any

import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from perf.fixture import flux_url, speech_fixture
from perf.sorted_stats import summary
from voiceload.pacing import FrameSchedule, start_time_ns

NS_PER_S = 1_000_000_000
JOIN_MARGIN_S = 30.0


async def stream(
    url: str, frames: tuple[bytes, ...], frame_ms: int, delay_s: float, rng: random.Random,
    window: tuple[int, int], lags_us: list[int], errors: list[str],
) -> None:  # fmt: skip
    """One stream: connect after ``delay_s``, send every frame when due, record steady lag."""
    await asyncio.sleep(delay_s)
    try:
        async with connect(url, compression=None, ping_interval=None, max_size=None) as ws:

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


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stream_s = args.ramp_s + args.warmup_s + args.measure_s + 1.0
    fixture = speech_fixture(round(stream_s + 2.5, 1), args.frame_ms)
    start_ns = time.monotonic_ns()
    steady_ns = start_ns + round((args.ramp_s + args.warmup_s) * NS_PER_S)
    end_ns = steady_ns + round(args.measure_s * NS_PER_S)
    lags_us: list[int] = []
    errors: list[str] = []
    rng = random.Random(args.seed)
    url = flux_url(args.base_url)
    tasks = [
        asyncio.create_task(
            stream(
                url, fixture.frames, args.frame_ms, i * args.ramp_s / max(1, args.streams),
                random.Random(rng.random()), (steady_ns, end_ns), lags_us, errors,
            )
        )
        for i in range(args.streams)
    ]
    proc = psutil.Process()
    await asyncio.sleep(max(0.0, (steady_ns - time.monotonic_ns()) / NS_PER_S))
    cpu0, t0 = proc.cpu_times(), time.monotonic()
    await asyncio.sleep(max(0.0, (end_ns - time.monotonic_ns()) / NS_PER_S))
    cpu1, t1 = proc.cpu_times(), time.monotonic()
    rss_bytes = proc.memory_info().rss
    _, pending = await asyncio.wait(tasks, timeout=stream_s + JOIN_MARGIN_S)
    for task in pending:
        task.cancel()
    busy_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    lag = summary([v / 1000 for v in lags_us]) if lags_us else None
    error_counts = {name: errors.count(name) for name in sorted(set(errors))}
    if pending:
        error_counts["unfinished"] = len(pending)
    return {
        "streams": args.streams, "frame_ms": args.frame_ms, "send_lag_ms": lag,
        "cpu_percent": 100.0 * busy_s / (t1 - t0), "rss_bytes": rss_bytes,
        "sessions": args.streams, "errors": error_counts,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--streams", type=int, required=True)
    p.add_argument("--frame-ms", type=int, default=80)
    p.add_argument("--ramp-s", type=float, default=3.0)
    p.add_argument("--warmup-s", type=float, default=3.0)
    p.add_argument("--measure-s", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
