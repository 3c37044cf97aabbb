"""Sans-I/O protocol core shared by the load client and the emulator.

No sockets, no clocks, no asyncio: only message types, parse/serialise functions, the Flux turn
state machine and the gateway's URL, auth and error-body rules (PROTOCOLS.md §1-§4, §6).

- :mod:`voiceload.protocol.flux`     Deepgram Flux (STT) messages and the turn state machine
- :mod:`voiceload.protocol.aura`     Deepgram Aura (TTS) messages and limits
- :mod:`voiceload.protocol.gateway`  AI Gateway / Workers AI / Deepgram routes, auth, error bodies
"""
