"""Pure helpers for received TTS audio: playback-stall simulation and leading silence.

No sockets, no clocks: arrival times are passed in as monotonic nanoseconds. Definitions are
those of ``../shared/design/metrics.md`` (``aura.stall``, ``aura.ttfa``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BYTES_PER_SAMPLE = 2  # linear16


def pcm_duration_ns(n_bytes: int, sample_rate_hz: int) -> int:
    """Duration of ``n_bytes`` of mono linear16 at ``sample_rate_hz`` (floor, in ns)."""
    return (n_bytes // BYTES_PER_SAMPLE) * 1_000_000_000 // sample_rate_hz


@dataclass
class PlaybackSimulator:
    """A real-time player that starts at the first chunk's arrival and plays without pause.

    Feed chunks in arrival order with :meth:`add`. Whenever a chunk arrives after everything
    received so far has been played, the player has run dry for ``arrival - play_end``; the sum
    of those gaps is :attr:`stall_ns` (``aura.stall``; 0 when delivery stays ahead).

    >>> p = PlaybackSimulator()
    >>> p.add(arrival_ns=100, duration_ns=50)  # plays 100..150
    >>> p.add(arrival_ns=170, duration_ns=50)  # ran dry 150..170, plays 170..220
    >>> p.stall_ns
    20
    """

    stall_ns: int = 0
    first_arrival_ns: int | None = None
    last_arrival_ns: int | None = None
    play_end_ns: int | None = None  # when the player will have played everything received
    audio_ns: int = 0

    def add(self, arrival_ns: int, duration_ns: int) -> None:
        """Account one chunk of ``duration_ns`` of audio that arrived at ``arrival_ns``."""
        if self.play_end_ns is None or self.first_arrival_ns is None:
            self.first_arrival_ns = arrival_ns
            self.play_end_ns = arrival_ns
        elif arrival_ns > self.play_end_ns:
            self.stall_ns += arrival_ns - self.play_end_ns
            self.play_end_ns = arrival_ns
        self.play_end_ns += duration_ns
        self.last_arrival_ns = arrival_ns
        self.audio_ns += duration_ns

    def realtime_factor(self) -> float | None:
        """Audio seconds ÷ (last arrival − first arrival); ``None`` until two chunks differ."""
        if self.first_arrival_ns is None or self.last_arrival_ns is None:
            return None
        span_ns = self.last_arrival_ns - self.first_arrival_ns
        return None if span_ns <= 0 else self.audio_ns / span_ns


# Energy onset: the first 10 ms window whose RMS reaches -40 dBFS counts as audible speech.
ONSET_WINDOW_MS = 10
ONSET_THRESHOLD_DBFS = -40.0


@dataclass
class OnsetDetector:
    """Finds the leading silence of a linear16 stream fed chunk by chunk.

    The onset is the start of the first window of ``window_ms`` whose RMS level reaches
    ``threshold_dbfs`` (full scale = 32768). Feeding the same bytes in any chunking gives the
    same answer. :attr:`onset_ns` is ``None`` until found, then the audio time of the onset
    (= the leading silence).
    """

    sample_rate_hz: int
    window_ms: int = ONSET_WINDOW_MS
    threshold_dbfs: float = ONSET_THRESHOLD_DBFS
    onset_ns: int | None = None
    _pending: bytes = b""
    _windows_done: int = 0

    def feed(self, chunk: bytes) -> int | None:
        """Consume ``chunk``; return the onset (ns of audio) once known, else ``None``."""
        if self.onset_ns is not None:
            return self.onset_ns
        window_bytes = self.sample_rate_hz * self.window_ms // 1000 * BYTES_PER_SAMPLE
        data = self._pending + chunk
        n_windows = len(data) // window_bytes
        self._pending = data[n_windows * window_bytes :]
        if n_windows == 0:
            return None
        samples = np.frombuffer(data[: n_windows * window_bytes], dtype="<i2")
        windows = samples.astype(np.float64).reshape(n_windows, -1) / 32768.0
        rms = np.sqrt(np.mean(windows * windows, axis=1))
        limit = 10.0 ** (self.threshold_dbfs / 20.0)
        loud = np.flatnonzero(rms >= limit)
        if loud.size:
            window_index = self._windows_done + int(loud[0])
            self.onset_ns = window_index * self.window_ms * 1_000_000
            self._pending = b""
        else:
            self._windows_done += n_windows
        return self.onset_ns


def leading_silence_ns(pcm: bytes, sample_rate_hz: int) -> int | None:
    """Leading silence of a whole linear16 buffer (``None`` if it never becomes audible)."""
    return OnsetDetector(sample_rate_hz).feed(pcm)
