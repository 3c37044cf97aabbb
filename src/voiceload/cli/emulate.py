"""``voiceload emulate``: run the offline emulator of AI Gateway / Workers AI Flux and Aura.

When ready it prints one line, ``voiceload emulator listening on ws://HOST:PORT`` (the port
actually bound, so ``--port 0`` picks a free one), and serves until SIGINT or SIGTERM, which stop
it cleanly (with ``--processes K``, the parent forwards SIGTERM to its K children and waits).

``--processes K``: the parent binds HOST:PORT once (``SO_REUSEPORT``, without listening) so the
port is fixed, then forks K children that each listen on it with ``SO_REUSEPORT``; the kernel
spreads new connections across them. Child ``i`` (0 .. K-1) seeds its draws by ``(seed, i,
connection number)``, so the processes' delays and ``rate`` faults differ (child 0 draws what
one process would). Connection numbers (for ``every``/``connections`` faults) and the
``--trace`` file's ``conn`` ids count per process (each line carries its ``pid``): with K > 1,
``every = 10`` fires on every 10th connection *of each process* (about 1 in 10 overall, not
on exactly the 10th, 20th, ... connection), and ``connections = [3]`` on up to K connections.

The event loop is ``uvloop`` (libuv, C) unless ``--loop asyncio`` asks for the standard one:
per 80 ms Flux frame the loop's own reading, writing and task switching is a good part of the
emulator's CPU, and uvloop's cost less (scripts/bench_emulator.py). Its timers have millisecond
resolution, so an emulated delay can fire up to 1 ms late; the ``--trace`` timestamps are read
from the clock when each message is sent, so they stay exact.

Fixture transcripts come from the fixtures manifest when it exists (``--manifest``, default as
:func:`voiceload.fixtures.default_manifest_path`): a Flux client passing ``tag=<fixture name>``
gets that fixture's reference words.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import itertools
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from voiceload.emulator.behaviour import load_config
from voiceload.emulator.flux_stream import ReferenceTurn
from voiceload.errors import ConfigError, FixtureError

if TYPE_CHECKING:
    from voiceload.emulator.server import ServerOptions

READY_PREFIX = "voiceload emulator listening on "
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_CHILD_READY_TIMEOUT_S = 30.0
_CHILD_STOP_TIMEOUT_S = 10.0
_LAG_PROBE_S = 0.05
LOOPS = ("uvloop", "asyncio")
_T = TypeVar("_T")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8787, help="port; 0 picks a free one")
    parser.add_argument("--token", help="require this token (all auth forms); default: auth off")
    parser.add_argument("--account", help="accept only this account id (default: any)")
    parser.add_argument("--gateway", help="accept only this gateway id (default: any)")
    parser.add_argument("--config", type=Path, help="emulator TOML (latency, faults, speed)")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help=(
            "serve from K processes on one port (the kernel spreads connections); each process"
            " seeds its own draws (seed, process index) and counts its own connections, so"
            " `every`/`connections` faults apply per process"
        ),
    )
    parser.add_argument("--trace", type=Path, help="append JSON-lines timestamps to this file")
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="uvloop",
        help="event loop: uvloop (default, less CPU per frame) or the standard asyncio loop",
    )
    parser.add_argument("--manifest", type=Path, help="fixtures manifest for tag= transcripts")


def load_references(path: Path | None) -> dict[str, tuple[ReferenceTurn, ...]]:
    """Reference turns per fixture name; empty when the default manifest does not exist.

    An explicit ``path`` that cannot be read is an error.
    """
    from voiceload import fixtures

    try:
        manifest = fixtures.load_manifest(path)
    except FixtureError:
        if path is not None:
            raise
        return {}
    return {
        f.name: tuple(
            ReferenceTurn(tuple(t.transcript.split()), max(0.0, t.offset_s - t.onset_s))
            for t in f.turns
        )
        for f in manifest.fixtures
    }


def main(args: argparse.Namespace) -> int:
    from voiceload.emulator.server import ServerOptions

    if args.processes < 1:
        raise ConfigError(f"--processes must be at least 1, got {args.processes}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    options = ServerOptions(
        config=load_config(args.config),
        token=args.token,
        account=args.account,
        gateway=args.gateway,
        references=load_references(args.manifest),
    )
    if args.trace is not None:  # fail before serving if the trace file cannot be written
        from voiceload.emulator.trace import TraceWriter

        TraceWriter(args.trace).close()
    if args.processes == 1:
        sock = _listening_socket(args.host, args.port, reuse_port=False)
        host, port = sock.getsockname()[:2]

        def announce() -> None:
            print(f"{READY_PREFIX}{_url(host, port)}", flush=True)

        _run(_serve(options, sock, args.trace, announce), args.loop)
        return 0
    return _run_children(options, args)


def _url(host: str, port: int) -> str:
    return f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}"


def _listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot bind {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _quiet_gc() -> None:
    """Fewer, cheaper garbage collections while serving (this process only serves).

    With the default thresholds a 450-stream run had ~9 young collections a second, pausing the
    loop up to 11-17 ms (p99 of pauses 7-12 ms): a frame arriving then waits that long. The
    emulator makes almost no cyclic garbage (under 700 objects collected in a 20 s run of 450
    connections), so collecting young objects every 50,000 allocations instead of 700, after
    moving start-up objects out of the collector's way, costs no memory to speak of. Measured
    (3 alternating pairs, 450 streams): loop-lag p99 1.8-2.6 ms vs 2.0-4.5 ms, CPU per frame
    123-131 vs 133-139 us.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _run(main: Coroutine[Any, Any, _T], loop: str) -> _T:
    """Run ``main`` on a new event loop of kind ``loop`` (one of :data:`LOOPS`)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


async def _serve(
    options: object,
    sock: socket.socket,
    trace_path: Path | None,
    on_ready: Callable[[], None],
) -> None:
    """Serve on ``sock`` until SIGINT/SIGTERM; trace loop lag every 50 ms, flush every 0.5 s."""
    from voiceload.emulator.server import ServerOptions, start
    from voiceload.emulator.trace import TraceWriter

    assert isinstance(options, ServerOptions)
    trace = TraceWriter(trace_path) if trace_path is not None else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    server, _ = await start(options, sock=sock, trace=trace)
    _quiet_gc()
    on_ready()
    try:
        for tick in itertools.count():
            due = time.monotonic() + _LAG_PROBE_S  # the loops' clock (uvloop's in whole ms)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(due):
                    await stop.wait()
            if stop.is_set():
                break
            if trace is not None:  # how late the loop ran this wakeup: queueing of all work
                lag_us = max(0, int((time.monotonic() - due) * 1e6))  # uvloop: may wake early
                trace.write({"ev": "lag", "ns": time.monotonic_ns(), "lag_us": lag_us})
                if tick % 10 == 9:
                    trace.flush()
    finally:
        server.close()  # closes open connections with 1001 going away
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CHILD_STOP_TIMEOUT_S):
                await server.wait_closed()
        if trace is not None:
            trace.close()


def _run_children(options: ServerOptions, args: argparse.Namespace) -> int:
    """Fork ``args.processes`` servers sharing one port; return when they have all stopped."""
    reservation = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        reservation.bind((args.host, args.port))
    except OSError as exc:
        raise ConfigError(f"cannot bind {args.host}:{args.port}: {exc.strerror}") from None
    host, port = reservation.getsockname()[:2]
    # children start with the stop signals blocked until their loop handles them
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {*_STOP_SIGNALS, signal.SIGCHLD})
    ready_r, ready_w = os.pipe()
    children: list[int] = []
    for index in range(args.processes):
        pid = os.fork()
        if pid == 0:  # child
            os.close(ready_r)
            reservation.close()
            code = 1
            try:
                sock = _listening_socket(host, port, reuse_port=True)
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
                own = dataclasses.replace(options, process_index=index)
                _run(_serve(own, sock, args.trace, lambda: _notify(ready_w)), args.loop)
                code = 0
            except BaseException as exc:  # report and exit: never return into the parent's code
                print(f"voiceload emulate: child {os.getpid()}: {exc}", file=sys.stderr)
            finally:
                os._exit(code)
        children.append(pid)
    os.close(ready_w)
    try:
        if not _wait_ready(ready_r, len(children)):
            print("voiceload emulate: error: a server process failed to start", file=sys.stderr)
            _stop_children(children)
            return 1
        print(f"{READY_PREFIX}{_url(host, port)}", flush=True)
        while True:
            sig = signal.sigwait({*_STOP_SIGNALS, signal.SIGCHLD})
            if sig != signal.SIGCHLD:
                _stop_children(children)
                return 0
            pid, _status = os.waitpid(-1, os.WNOHANG)
            if pid in children:  # a child died on its own: stop the others, fail
                children.remove(pid)
                print(f"voiceload emulate: error: server process {pid} exited", file=sys.stderr)
                _stop_children(children)
                return 1
    finally:
        os.close(ready_r)
        reservation.close()
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _notify(fd: int) -> None:
    """Tell the parent this child serves (one byte on the ready pipe)."""
    os.write(fd, b"1")
    os.close(fd)


def _wait_ready(fd: int, n: int) -> bool:
    """Read one byte per child from the pipe, within the start-up bound."""
    deadline = time.monotonic() + _CHILD_READY_TIMEOUT_S
    got = 0
    os.set_blocking(fd, False)
    while got < n and time.monotonic() < deadline:
        try:
            data = os.read(fd, n - got)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        if not data:  # every writer closed: some child died before becoming ready
            return False
        got += len(data)
    return got == n


def _stop_children(children: list[int]) -> None:
    """SIGTERM each child, wait for it (bounded), SIGKILL the ones that do not stop."""
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _CHILD_STOP_TIMEOUT_S
    pending = set(children)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            with contextlib.suppress(ChildProcessError):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done == 0:
                    continue
            pending.discard(pid)
        time.sleep(0.02)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
