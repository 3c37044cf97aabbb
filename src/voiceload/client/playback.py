"""Pure helpers for received TTS audio: playback-stall simulation and leading silence.

No sockets, no clocks: arrival times are passed in as monotonic nanoseconds. Definitions are
those of docs/METRICS.md (``aura.stall``, ``aura.ttfa``).
"""

from __future__ import annotations

from dataclasses import dataclass

from voiceload.audio import SpeechDetector, VadEvent, VadParams

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


# Synthetic TTS audio is clean: the VAD's adaptive noise floor (meant for recorded fixtures)
# would treat audio that is loud from its first sample as "noise", so the floor is fixed.
TTS_VAD_PARAMS = VadParams.fixed_floor()


@dataclass
class OnsetDetector:
    """Finds the leading silence of a linear16 stream fed chunk by chunk.

    The onset is the first speech sample found by the project's one energy VAD
    (:class:`voiceload.audio.SpeechDetector`, the detector that measured the fixtures' onsets)
    with :data:`TTS_VAD_PARAMS`, so ``aura.ttfa`` and the manifest share one energy rule. Any
    chunking gives the same answer. :attr:`onset_ns` is ``None`` until found, then the audio
    time of the onset (= the leading silence). Call :meth:`finish` at the end of the audio: a
    burst shorter than the VAD's confirmation span is only reported then.
    """

    sample_rate_hz: int
    onset_ns: int | None = None
    _detector: SpeechDetector | None = None
    _odd_byte: bytes = b""  # a chunk may split a sample; carry its first byte

    def feed(self, chunk: bytes) -> int | None:
        """Consume ``chunk``; return the onset (ns of audio) once known, else ``None``."""
        if self.onset_ns is None:
            data = self._odd_byte + chunk
            whole = len(data) - len(data) % BYTES_PER_SAMPLE
            self._odd_byte = data[whole:]
            self._take(self._vad().feed(data[:whole]))
        return self.onset_ns

    def finish(self) -> int | None:
        """End of the audio: report an onset still pending; ``None`` if it never was audible."""
        if self.onset_ns is None:
            self._take(self._vad().flush())
        return self.onset_ns

    def _vad(self) -> SpeechDetector:
        if self._detector is None:
            self._detector = SpeechDetector(self.sample_rate_hz, TTS_VAD_PARAMS)
        return self._detector

    def _take(self, events: list[VadEvent]) -> None:
        for event in events:
            if event.kind == "onset":
                self.onset_ns = event.sample_index * 1_000_000_000 // self.sample_rate_hz
                return


def leading_silence_ns(pcm: bytes, sample_rate_hz: int) -> int | None:
    """Leading silence of a whole linear16 buffer (``None`` if it never becomes audible)."""
    detector = OnsetDetector(sample_rate_hz)
    detector.feed(pcm)
    return detector.finish()
