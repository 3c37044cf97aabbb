"""CPU cost of one Flux session's setup and teardown in the load generator, step by step.

Opens and closes ``--sessions`` Flux sessions one after another against a running emulator,
under gevent's monkey patches (as a Locust worker runs them), and prints the CPU time
(``time.process_time``: every thread of this process, so gevent's resolver threads count too)
per session of each step, in µs:

* ``build``    — :class:`voiceload.client.flux_session.FluxSession` construction;
* ``connect``  — :func:`voiceload.client.connect.open_websocket` (name resolution, TCP connect,
  the opening handshake through websockets' Sans-I/O protocol);
* ``close``    — ``CloseStream``, waiting for the server's close, leaving the socket's context;
* ``row``      — the plugin's bookkeeping after the session: ``result.to_row`` (WER included)
  and the Locust request event's arguments;
* ``snapshot`` — :meth:`FluxSession.snapshot` (a killed session's partial result).

No audio is streamed: the steps measured are exactly those that an ending session and the
next one's start add to a worker. The waits in between (the emulator's answers) cost this
process no CPU. Sub-steps of ``connect`` are timed alone as ``resolve`` (``socket.getaddrinfo``
of the URL's host) for reference. Run it pinned, e.g.::

    taskset -c 1 .venv/bin/voiceload emulate --port 8795 --config emu.toml &
    cd scripts && taskset -c 0 ../.venv/bin/python -m perf.session_cost \
        --base-url ws://127.0.0.1:8795 --sessions 500
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

from websockets.sync.client import connect as websockets_connect  # noqa: E402

from perf.fixture import flux_url, speech_fixture  # noqa: E402
from voiceload.client.connect import open_websocket  # noqa: E402
from voiceload.client.flux_session import FluxSession  # noqa: E402
from voiceload.protocol.flux import CloseStream, serialize_client_message  # noqa: E402
from voiceload.targets import ssl_context_for  # noqa: E402

T = TypeVar("T")


class _Sink:
    """No samples reach it here (no audio is streamed); a session needs one."""

    def record(self, metric: str, value_us: int) -> None:
        return None


def measure(
    base_url: str, sessions: int, frame_ms: int, compare: bool = False
) -> dict[str, float]:
    """CPU µs per session of each step (mean over ``sessions``)."""
    fixture = speech_fixture(3.0, frame_ms)
    url = flux_url(base_url)
    sink = _Sink()
    rng = random.Random(1)
    totals: dict[str, float] = defaultdict(float)

    def timed(step: str, fn: Callable[[], T]) -> T:
        start = time.process_time()
        out = fn()
        totals[step] += time.process_time() - start
        return out

    def close(ws: Any) -> None:
        ws.send(serialize_client_message(CloseStream()))
        for _message in ws:  # until the server closes
            pass
        ws.__exit__(None, None, None)

    def connect_old(url: str) -> Any:
        """The opening as it was before issue 16: websockets' sync client resolves and
        connects (``socket.create_connection``), with a TLS context built for the session, and
        starts its reader thread."""
        options: dict[str, Any] = {
            "compression": None, "proxy": None, "ping_interval": None, "open_timeout": 10.0,
            "close_timeout": 2, "max_size": None,
        }  # fmt: skip
        if url.startswith("wss://"):
            options["ssl"] = ssl_context_for(url)
        return websockets_connect(url, **options)

    parts = urllib.parse.urlsplit(url)
    for _ in range(sessions):
        timed("resolve", lambda: socket.getaddrinfo(parts.hostname, parts.port, type=1))
    for _ in range(sessions):
        session = timed(
            "build",
            lambda: FluxSession(
                url, {}, [], fixture.frames, fixture.turns, frame_ms, sink, rng,
                fixture="perf", model="flux",
            ),
        )  # fmt: skip
        result, target = session.result, session.url
        ws = timed(  # a session's `with open_websocket(...) as ws`
            "connect",
            lambda s=session: open_websocket(s.url, s.headers, s.subprotocols, 10.0).__enter__(),
        )
        timed("close", lambda ws=ws: close(ws))
        if compare:  # interleaved A/B in the same process: robust to other load
            old = timed("connect_old", lambda u=target: connect_old(u).__enter__())
            timed("close_old", lambda ws=old: close(ws))
        result.connections += 1
        timed("snapshot", session.snapshot)
        timed("row", lambda r=result: r.to_row(session_id="w-1", worker="w", phase="steady"))
    return {step: round(total / sessions * 1e6, 1) for step, total in totals.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--frame-ms", type=int, default=80)
    parser.add_argument("--compare", action="store_true",
                        help="also open each session with websockets' sync client, as "
                        "before issue 16 (connect_old/close_old)")
    args = parser.parse_args(argv)
    measure(args.base_url, 20, args.frame_ms, args.compare)  # warm-up: imports, first lookup
    steps = measure(args.base_url, args.sessions, args.frame_ms, args.compare)
    print(json.dumps({"sessions": args.sessions, **steps}))


if __name__ == "__main__":
    main()
