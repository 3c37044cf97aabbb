"""Session drivers: one WebSocket session (Flux, Aura, or an agent conversation) -> one result.

I/O wrappers over ``websockets.sync``: they open the socket, send on the plan's schedule, stamp
every arrival with ``time.monotonic_ns()`` and feed the pure cores (``voiceload.protocol``,
:mod:`voiceload.client.flux_turns`, :mod:`voiceload.client.playback`). Nothing here imports
Locust; the glue passes a :class:`~voiceload.client.results.SampleSink` and stores the
:class:`~voiceload.client.results.SessionResult` each ``run()`` returns.
"""
