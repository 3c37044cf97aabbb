"""voiceload: load and latency benchmarks for Workers AI Deepgram Flux and Aura over WebSockets."""

__version__ = "0.1.0"
