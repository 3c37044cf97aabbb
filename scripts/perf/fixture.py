"""The perf streams' audio (synthetic "speech" that outlasts a trial) and emulator URLs (pure).

A turn is a 1.0 s 300 Hz tone with a slow loudness wobble (the project's VAD and the emulator's
hear it as speech), followed by 1.5 s of silence; a stream repeats that for ``duration_s``.
Turn onsets/offsets come from :func:`voiceload.audio.detect_speech`, as a manifest's do, so the
harness measures ``flux.eot`` from the same speaker times the emulator's VAD ends turns at.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from voiceload.audio import detect_speech, frame_pcm
from voiceload.fixtures import Turn
from voiceload.protocol import gateway

RATE_HZ = 16_000
TONE_S = 1.0
GAP_S = 1.5
LEAD_S = 0.4


@dataclass(frozen=True)
class PerfFixture:
    frames: tuple[bytes, ...]
    turns: tuple[Turn, ...]
    frame_ms: int


@functools.cache
def speech_fixture(duration_s: float, frame_ms: int) -> PerfFixture:
    """``duration_s`` seconds of turns (at least one) as ``frame_ms`` linear16 frames."""
    t = np.arange(round(TONE_S * RATE_HZ)) / RATE_HZ
    tone = (6000 * (1 + 0.3 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 300 * t)).astype(
        np.int16
    )
    gap = np.zeros(round(GAP_S * RATE_HZ), dtype=np.int16)
    turns = max(1, int((duration_s - LEAD_S) // (TONE_S + GAP_S)))
    pcm = np.concatenate([np.zeros(round(LEAD_S * RATE_HZ), dtype=np.int16)] + [tone, gap] * turns)
    segments = detect_speech(pcm, RATE_HZ)
    return PerfFixture(
        frames=frame_pcm(pcm, RATE_HZ, frame_ms),
        turns=tuple(Turn(s.onset_s, s.offset_s, "", "") for s in segments),
        frame_ms=frame_ms,
    )


def flux_url(base_url: str) -> str:
    params = [("encoding", "linear16"), ("sample_rate", "16000")]
    return gateway.gateway_url(base_url, "perf", "perf", "@cf/deepgram/flux", params)


def aura_url(base_url: str, tag: str) -> str:
    params = [("encoding", "linear16"), ("sample_rate", "24000"), ("tag", tag)]
    return gateway.gateway_url(base_url, "perf", "perf", "@cf/deepgram/aura-1", params)
