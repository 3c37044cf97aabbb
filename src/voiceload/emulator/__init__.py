"""Offline emulator of AI Gateway / Workers AI Deepgram Flux (STT) and Aura (TTS).

``behaviour`` (seeded latency and fault model, TOML config), ``flux_stream`` / ``aura_stream``
(one conversation each, sans-I/O), ``server`` (asyncio websockets: routes, auth, faults),
``trace`` (JSON-lines timestamps); ``voiceload emulate`` is :mod:`voiceload.cli.emulate`.
"""
