"""The pure core of one Aura request: arrivals of audio and ``Flushed`` -> Aura metrics.

A request is ``Speak{text}`` + ``Flush`` scheduled at ``r`` (``scheduled_ns``); the driver
stamps every frame on arrival and calls :meth:`AuraRequest.on_audio` / :meth:`on_flushed`.
Definitions (docs/METRICS.md):

* ``aura.ttfb`` = first binary frame − ``r``;
* ``aura.ttfa`` = ``ttfb`` + leading silence of the returned audio (energy onset,
  :class:`~voiceload.client.playback.OnsetDetector`): when a listener whose playback starts at
  the first byte first hears speech;
* ``aura.flushed`` = ``Flushed`` − ``r``;
* ``aura.stall`` = total time a real-time player starting at the first byte runs dry
  (:class:`~voiceload.client.playback.PlaybackSimulator`), recorded at ``Flushed``.

Also kept: characters sent, audio seconds received, real-time factor.
"""

from __future__ import annotations

from voiceload.client.playback import OnsetDetector, PlaybackSimulator, pcm_duration_ns
from voiceload.client.results import AuraRequestRecord
from voiceload.pacing import ns_to_us

AURA_TTFB = "aura.ttfb"
AURA_TTFA = "aura.ttfa"
AURA_FLUSHED = "aura.flushed"
AURA_STALL = "aura.stall"


class AuraRequest:
    """Measures one request; each ``on_*`` returns the ``(metric, value_us)`` samples it
    completes, for the driver to record at once. ``sample_rate_hz`` is the linear16 rate the
    socket was opened with (Aura's default is 24 kHz)."""

    def __init__(self, text: str, scheduled_ns: int, sample_rate_hz: int) -> None:
        self.scheduled_ns = scheduled_ns
        self.sample_rate_hz = sample_rate_hz
        self.record = AuraRequestRecord(chars=len(text))
        self.first_audio_ns: int | None = None
        self.flushed_ns: int | None = None
        self._player = PlaybackSimulator()
        self._onset = OnsetDetector(sample_rate_hz)
        self._pending_bytes = 0  # an odd byte split across frames still counts once whole

    @property
    def done(self) -> bool:
        return self.flushed_ns is not None

    @property
    def audible_ns(self) -> int | None:
        """Monotonic time at which speech first becomes audible (first byte + leading silence)."""
        if self.first_audio_ns is None or self._onset.onset_ns is None:
            return None
        return self.first_audio_ns + self._onset.onset_ns

    def on_audio(self, data: bytes, arrival_ns: int) -> list[tuple[str, int]]:
        """A binary frame of linear16 audio arrived."""
        samples: list[tuple[str, int]] = []
        if self.first_audio_ns is None:
            self.first_audio_ns = arrival_ns
            self.record.ttfb_us = max(0, ns_to_us(arrival_ns - self.scheduled_ns))
            samples.append((AURA_TTFB, self.record.ttfb_us))
        total = self._pending_bytes + len(data)
        whole = total - total % 2
        self._pending_bytes = total - whole
        self._player.add(arrival_ns, pcm_duration_ns(whole, self.sample_rate_hz))
        self.record.audio_s = self._player.audio_ns / 1e9
        if self.record.ttfa_us is None and self._onset.feed(data) is not None:
            samples += self._ttfa()
        return samples

    def on_flushed(self, arrival_ns: int) -> list[tuple[str, int]]:
        """``Flushed`` arrived: the whole utterance has been synthesised."""
        samples: list[tuple[str, int]] = []
        if self.flushed_ns is not None:
            return samples
        self.flushed_ns = arrival_ns
        pending_onset = self.record.ttfa_us is None and self.first_audio_ns is not None
        if pending_onset and self._onset.finish() is not None:
            samples += self._ttfa()
        self.record.flushed_us = max(0, ns_to_us(arrival_ns - self.scheduled_ns))
        samples.append((AURA_FLUSHED, self.record.flushed_us))
        if self.first_audio_ns is not None:
            self.record.stall_us = ns_to_us(self._player.stall_ns)
            samples.append((AURA_STALL, self.record.stall_us))
            self.record.realtime_factor = self._player.realtime_factor()
        return samples

    def _ttfa(self) -> list[tuple[str, int]]:
        assert self.record.ttfb_us is not None and self._onset.onset_ns is not None
        self.record.leading_silence_us = ns_to_us(self._onset.onset_ns)
        self.record.ttfa_us = self.record.ttfb_us + self.record.leading_silence_us
        return [(AURA_TTFA, self.record.ttfa_us)]
