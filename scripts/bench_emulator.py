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
import base64
import contextlib
import heapq
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
_WINDOW_END_B = _WINDOW_END.encode()
PATH = "/v2/listen?model=flux-general-en&encoding=linear16&sample_rate=16000"


@dataclass
class ClientStats:
    send_lag_us: list[int] = field(default_factory=list)
    resp_us: list[int] = field(default_factory=list)
    errors: int = 0
    frames: int = 0
    backlogged: int = 0  # raw client: frames written while the socket's send buffer was full
    cpu_pct: float = float("nan")  # the client's own CPU over the run, % of one core


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


# --- the raw client: pre-masked frames written straight to the transport ----------------------

_MASK = b"\x5a\x17\xc3\x3e"  # one fixed key: the emulator only unmasks, and the frames are ours


def masked_frame(payload: bytes, opcode: int) -> bytes:
    """One RFC 6455 client frame (FIN, masked) carrying ``payload``, encoded once."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = np.frombuffer(_MASK * (n // 4 + 1), dtype=np.uint8)[:n]
    body = (np.frombuffer(payload, dtype=np.uint8) ^ key).tobytes()
    return head + _MASK + body


class RawStream(asyncio.Protocol):
    """One Flux stream over a plain TCP connection: HTTP upgrade, then frames out, replies in.

    Replies are parsed just enough to time ``Update`` messages (text frames) and to answer a
    ping or a close; nothing is JSON-decoded.
    """

    def __init__(self, stats: ClientStats, window: tuple[float, float]) -> None:
        self.stats, self.window = stats, window
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buf = b""
        self.sent_ns: dict[int, int] = {}
        self.k = 0  # next frame
        self.t0 = 0.0
        self.offset = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.upgraded.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(
                    OSError(buf[: buf.find(b"\r\n")].decode(errors="replace"))
                )
                return
            self.upgraded.set_result(None)
            buf = buf[end + 4 :]
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, n = buf[pos], buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + n:
                break
            payload = buf[pos + head : pos + head + n]
            pos += head + n
            self._message(b0 & 0x0F, payload)
        self.buf = buf[pos:]

    def _message(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x1:
            if b'"event":"Update"' not in payload:
                return
            now_ns = time.monotonic_ns()
            at = payload.index(_WINDOW_END_B) + len(_WINDOW_END_B)
            end_s = float(payload[at : payload.index(b",", at)])
            t_sent = self.sent_ns.pop(round(end_s / FRAME_S) - 1, None)
            if t_sent is not None and self.window[0] <= t_sent / 1e9 <= self.window[1]:
                self.stats.resp_us.append((now_ns - t_sent) // 1000)
        elif opcode == 0x9 and self.transport is not None:  # ping -> pong
            self.transport.write(masked_frame(payload, 0xA))
        elif opcode == 0x8 and self.transport is not None:  # close: echo it, then hang up
            self.transport.write(masked_frame(payload[:2], 0x8))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed during the upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)


async def raw_connect(host: str, port: int, path: str, proto: RawStream) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: proto, host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    assert proto.transport is not None
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    proto.transport.write(request.encode())
    async with asyncio.timeout(30):
        await proto.upgraded


async def run_raw_client(url: str, n: int, ramp_s: float, duration_s: float) -> ClientStats:
    """``n`` streams from one event loop: one timer heap paces every stream's frames.

    Per frame the client does one ``transport.write`` of bytes masked in advance and one heap
    operation, so one core offers well over 1,000 streams of 80 ms frames.
    """
    audio = prepare(FIXTURE, 16000, 80)
    raw = [*audio.frames, *([bytes(2560)] * 12)]  # speech then ~1 s of silence, looped
    frames = [masked_frame(f, 0x2) for f in raw]
    close_stream = masked_frame(b'{"type":"CloseStream"}', 0x1)
    host_port, path = url.removeprefix("ws://").split("/", 1)
    host, port = host_port.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    begin = loop.time() + 0.2
    steady = (begin + ramp_s + 1.0, begin + ramp_s + duration_s)
    end = begin + ramp_s + duration_s + 0.5
    stats = ClientStats()
    streams: list[RawStream] = []
    heap: list[tuple[float, int]] = []

    async def open_stream(i: int, start: float) -> None:
        proto = RawStream(stats, steady)
        try:
            await raw_connect(host, int(port), "/" + path, proto)
        except (OSError, TimeoutError):
            stats.errors += 1
            return
        proto.offset = random.randrange(len(frames))
        proto.t0 = max(start, loop.time())
        streams.append(proto)
        heapq.heappush(heap, (proto.t0 + FRAME_S, len(streams) - 1))

    async def pump() -> None:
        n_frames = len(frames)
        lo, hi = steady
        lags = stats.send_lag_us
        while loop.time() < end or heap:
            if not heap:
                await asyncio.sleep(0.01)
                continue
            due, i = heap[0]
            now = loop.time()
            if due > now:  # a stream opened meanwhile is first due >= 80 ms after it opened
                await asyncio.sleep(min(due - now, 0.05))
                continue
            s = streams[i]
            transport = s.transport
            if transport is None or transport.is_closing():
                heapq.heappop(heap)
                stats.errors += 1
                continue
            if transport.get_write_buffer_size():
                stats.backlogged += 1  # the socket is full: the emulator is not reading
            transport.write(frames[(s.offset + s.k) % n_frames])
            s.sent_ns[s.k] = time.monotonic_ns()
            if len(s.sent_ns) > 64:  # forget frames that completed no Update window
                s.sent_ns.pop(next(iter(s.sent_ns)))
            stats.frames += 1
            if lo <= now <= hi:
                lags.append(int((now - due) * 1e6))
            s.k += 1
            next_due = s.t0 + (s.k + 1) * FRAME_S
            if next_due > end:
                heapq.heappop(heap)
                transport.write(close_stream)
            else:
                heapq.heapreplace(heap, (next_due, i))

    pump_task = asyncio.create_task(pump())
    openers = []
    cpu0 = time.process_time()
    for i in range(n):
        start = begin + ramp_s * i / n + random.random() * FRAME_S
        await asyncio.sleep(max(0.0, start - loop.time() - 0.05))
        openers.append(asyncio.create_task(open_stream(i, start)))
    await asyncio.gather(*openers)
    await pump_task
    stats.cpu_pct = 100 * (time.process_time() - cpu0) / max(1e-9, loop.time() - begin)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):  # the emulator answers CloseStream and closes
            await asyncio.gather(*(s.closed for s in streams))
    for s in streams:
        if s.transport is not None:
            s.transport.close()
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
            "--loop",
            args.emulator_loop,
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
            client = run_raw_client if args.client == "raw" else run_client
            stats = asyncio.run(client(url, n, args.ramp_s, args.duration_s))
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
        "client": args.client,
        "emulator_loop": args.emulator_loop,
        "client_cpu_pct": stats.cpu_pct,
        "client_backlogged_frames": stats.backlogged,
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
    parser.add_argument(
        "--client",
        choices=("raw", "websockets"),
        default="raw",
        help="raw: pre-masked frames written to the socket (>1,000 streams per core); "
        "websockets: one asyncio websockets connection and task per stream (~400)",
    )
    parser.add_argument(
        "--emulator-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the emulator's event loop (voiceload emulate --loop)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep-trace", help="keep the trace in this directory (last point)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    random.seed(1)
    results = []
    print(
        f"machine: {os.cpu_count()} cpus, {_cpu_model()}, python {sys.version.split()[0]};"
        f" emulator loop: {args.emulator_loop}"
    )
    print(
        "streams procs   msgs  proc p50/p99/max ms  loop-lag p99 ms  resp p99 ms"
        "  send-lag p99 ms  emu CPU %  CPU us/frame  client CPU %"
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
            f"  {r['client_cpu_pct']:12.0f}  errors={r['client_errors']}"
            f" backlogged={r['client_backlogged_frames']}",
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
