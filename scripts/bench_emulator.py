#!/usr/bin/env python3
"""Benchmark the emulator: N concurrent Flux streams of 80 ms frames against `voiceload emulate`.

For each point (streams x emulator processes) this starts a fresh emulator with ``--trace``,
pinned to ``--server-cpus``, and an asyncio client in this process, pinned to ``--client-cpus``.
Streams connect over ``--ramp-s``, then send real speech (a fixture looped with silence) on an
absolute 80 ms schedule for ``--duration-s``. Reported, over the steady window only:

- ``proc p50/p99/max``: the emulator's own per-message processing time from its trace
  (``proc_us``: client frame read -> answer handed to the socket);
- ``resp p99``: client-side, Update arrival - send time of the frame that completed its audio
  window (loopback + both event loops: an upper bound on what the emulator adds);
- ``send-lag p99``: how late the client sent frames (if high, the client was the bottleneck);
- emulator CPU % (all its processes, of one core) and CPU microseconds per received frame
  (robust to other load on the machine: CPU time is only charged while running).

Usage: .venv/bin/python scripts/bench_emulator.py --points 250x1,500x1,1000x2 --duration-s 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from voiceload.audio import prepare

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "audio" / "arctic_a0009.wav"
FRAME_S = 0.080
_WINDOW_END = '"audio_window_end":'
PATH = "/v2/listen?model=flux-general-en&encoding=linear16&sample_rate=16000"


@dataclass
class ClientStats:
    send_lag_us: list[int] = field(default_factory=list)
    resp_us: list[int] = field(default_factory=list)
    errors: int = 0
    frames: int = 0


async def one_stream(
    url: str,
    frames: list[bytes],
    start_s: float,
    window: tuple[float, float],
    end_s: float,
    stats: ClientStats,
) -> None:
    loop = asyncio.get_running_loop()
    offset = random.randrange(len(frames))
    sent_ns: dict[int, int] = {}
    try:
        async with connect(url, compression=None, ping_interval=None, open_timeout=30) as ws:

            async def reader() -> None:
                with contextlib.suppress(ConnectionClosed):
                    await read_updates()

            async def read_updates() -> None:
                async for msg in ws:
                    now_ns = time.monotonic_ns()
                    # cheap: no JSON decoding in the client's hot path
                    if not isinstance(msg, str) or '"event":"Update"' not in msg:
                        continue
                    at = msg.index(_WINDOW_END) + len(_WINDOW_END)
                    end_s = float(msg[at : msg.index(",", at)])
                    k = round(end_s / FRAME_S) - 1
                    t_sent = sent_ns.pop(k, None)
                    if t_sent is not None and window[0] <= t_sent / 1e9 <= window[1]:
                        stats.resp_us.append((now_ns - t_sent) // 1000)

            task = asyncio.create_task(reader())
            t0 = max(start_s, loop.time())
            for k in range(10**7):
                due = t0 + (k + 1) * FRAME_S
                if due > end_s:
                    break
                await asyncio.sleep(max(0.0, due - loop.time()))
                now = loop.time()
                await ws.send(frames[(offset + k) % len(frames)])
                sent_ns[k] = time.monotonic_ns()
                stats.frames += 1
                if len(sent_ns) > 64:  # forget frames that completed no Update window
                    sent_ns.pop(min(sent_ns))
                if window[0] <= now <= window[1]:
                    stats.send_lag_us.append(int((now - due) * 1e6))
            await ws.send('{"type":"CloseStream"}')
            try:
                async with asyncio.timeout(5):
                    await task
            except TimeoutError:
                task.cancel()
    except Exception:
        stats.errors += 1


async def run_client(url: str, n: int, ramp_s: float, duration_s: float) -> ClientStats:
    audio = prepare(FIXTURE, 16000, 80)
    frames = [*audio.frames, *([bytes(2560)] * 12)]  # speech then ~1 s of silence, looped
    loop = asyncio.get_running_loop()
    begin = loop.time() + 0.2
    steady = (begin + ramp_s + 1.0, begin + ramp_s + duration_s)
    end = begin + ramp_s + duration_s + 0.5
    stats = ClientStats()
    tasks = []
    for i in range(n):
        start = begin + ramp_s * i / n + random.random() * FRAME_S
        await asyncio.sleep(max(0.0, start - loop.time() - 0.05))
        tasks.append(asyncio.create_task(one_stream(url, frames, start, steady, end, stats)))
    await asyncio.gather(*tasks)
    return stats


def pct(values: list[int] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def run_point(n: int, processes: int, args: argparse.Namespace) -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = args.keep_trace or tmp_dir
        trace = Path(tmp) / "trace.jsonl"
        server_cpus = {int(c) for c in args.server_cpus.split(",")}
        cmd = [
            sys.executable,
            "-m",
            "voiceload.cli",
            "emulate",
            "--port",
            "0",
            "--processes",
            str(processes),
            "--trace",
            str(trace),
        ]
        emu = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, server_cpus),
        )
        try:
            assert emu.stdout is not None
            url = emu.stdout.readline().split(" on ", 1)[1].strip() + PATH
            procs = [psutil.Process(emu.pid), *psutil.Process(emu.pid).children()]
            cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
            wall0 = time.monotonic()
            stats = asyncio.run(run_client(url, n, args.ramp_s, args.duration_s))
            cpu1 = sum(sum(p.cpu_times()[:2]) for p in procs)
            wall1 = time.monotonic()
        finally:
            emu.terminate()
            emu.wait(30)
        # steady window in CLOCK_MONOTONIC ns: skip the ramp and the last second
        records = [json.loads(line) for line in trace.read_text().splitlines()]
        sends = [r for r in records if r["ev"] == "send" and "proc_us" in r]
        t_first = min(r["send_ns"] for r in sends)
        lo = t_first + int((args.ramp_s + 1.2) * 1e9)
        hi = t_first + int((args.ramp_s + args.duration_s - 0.5) * 1e9)
        proc = [r["proc_us"] for r in sends if lo <= r["send_ns"] <= hi]
        lag = [r["lag_us"] for r in records if r["ev"] == "lag" and lo <= r["ns"] <= hi]
    return {
        "streams": n,
        "processes": processes,
        "messages": len(proc),
        "proc_p50_ms": pct(proc, 50) / 1000,
        "proc_p99_ms": pct(proc, 99) / 1000,
        "proc_max_ms": max(proc) / 1000 if proc else float("nan"),
        "loop_lag_p99_ms": pct(lag, 99) / 1000,
        "resp_p99_ms": pct(stats.resp_us, 99) / 1000,
        "send_lag_p99_ms": pct(stats.send_lag_us, 99) / 1000,
        "emulator_cpu_pct": 100 * (cpu1 - cpu0) / (wall1 - wall0),
        "emulator_cpu_us_per_frame": 1e6 * (cpu1 - cpu0) / max(1, stats.frames),
        "client_errors": stats.errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--points", default="250x1,500x1,1000x2", help="comma-separated STREAMSxPROCESSES"
    )
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--ramp-s", type=float, default=5.0)
    parser.add_argument("--client-cpus", default="0")
    parser.add_argument("--server-cpus", default="1")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep-trace", help="keep the trace in this directory (last point)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    random.seed(1)
    results = []
    print(f"machine: {os.cpu_count()} cpus, {_cpu_model()}, python {sys.version.split()[0]}")
    print(
        "streams procs   msgs  proc p50/p99/max ms  loop-lag p99 ms  resp p99 ms"
        "  send-lag p99 ms  emu CPU %  CPU us/frame"
    )
    for point in args.points.split(","):
        n, k = (int(x) for x in point.split("x"))
        r = run_point(n, k, args)
        results.append(r)
        proc = f"{r['proc_p50_ms']:.2f}/{r['proc_p99_ms']:.2f}/{r['proc_max_ms']:.1f}"
        print(
            f"{n:7d} {k:5d} {r['messages']:6d}  {proc:>19}  {r['loop_lag_p99_ms']:15.2f}"
            f"  {r['resp_p99_ms']:11.2f}  {r['send_lag_p99_ms']:15.2f}"
            f"  {r['emulator_cpu_pct']:9.0f}  {r['emulator_cpu_us_per_frame']:12.0f}"
            f"  errors={r['client_errors']}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown cpu"


if __name__ == "__main__":
    sys.exit(main())
