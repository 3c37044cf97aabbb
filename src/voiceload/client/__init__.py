"""Session drivers: one WebSocket session (Flux, Aura, or an agent conversation) -> one result.

I/O wrappers over ``websockets.sync``: they open the socket, send on the plan's schedule, stamp
every arrival with ``time.monotonic_ns()`` and feed the pure cores (``voiceload.protocol``,
:mod:`voiceload.client.flux_turns`, :mod:`voiceload.client.aura_request`). Nothing here imports
Locust; the glue passes a :class:`SampleSink` (samples the moment they are known) and stores
the :class:`SessionResult` each ``run()`` returns (one ``sessions.csv`` row via ``to_row``).

Usage::

    result = FluxSession(url, headers, subprotocols, prepared.frames, fixture.turns,
                         frame_ms, sink, rng, fixture=fixture.name, model=model,
                         options=FluxOptions(eager=False)).run()
"""

from voiceload.client.agent_session import AgentSession
from voiceload.client.aura_session import AuraOptions, AuraSession
from voiceload.client.flux_session import FluxOptions, FluxSession
from voiceload.client.results import (
    SESSIONS_CSV_COLUMNS,
    AuraRequestRecord,
    ErrorCategory,
    ListSink,
    SampleSink,
    SessionError,
    SessionResult,
    TurnRecord,
)

__all__ = [
    "SESSIONS_CSV_COLUMNS",
    "AgentSession",
    "AuraOptions",
    "AuraRequestRecord",
    "AuraSession",
    "ErrorCategory",
    "FluxOptions",
    "FluxSession",
    "ListSink",
    "SampleSink",
    "SessionError",
    "SessionResult",
    "TurnRecord",
]
