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

The audio's format is read from its bytes (:class:`~voiceload.client.aura_format.AuraAudio`):
raw samples in the encoding and rate the URL asked for, or a WAV header (stripped; its
encoding and rate win). The player starts with the first frame that carries samples (a
header-only first frame counts for ``ttfb``, not as playable audio). Compressed audio raises
:class:`~voiceload.client.aura_format.UnmeasurableAudio` rather than giving wrong numbers.
"""

from __future__ import annotations

from voiceload.client.aura_format import AuraAudio
from voiceload.client.playback import OnsetDetector, PlaybackSimulator
from voiceload.client.results import AuraRequestRecord
from voiceload.pacing import ns_to_us

AURA_TTFB = "aura.ttfb"
AURA_TTFA = "aura.ttfa"
AURA_FLUSHED = "aura.flushed"
AURA_STALL = "aura.stall"


class AuraRequest:
    """Measures one request; each ``on_*`` returns the ``(metric, value_us)`` samples it
    completes, for the driver to record at once. ``sample_rate_hz`` and ``encoding`` are what
    the socket was opened with (Aura's defaults: 24 kHz linear16); a WAV header overrides
    them."""

    def __init__(
        self, text: str, scheduled_ns: int, sample_rate_hz: int, encoding: str = "linear16"
    ) -> None:
        self.scheduled_ns = scheduled_ns
        self.sample_rate_hz = sample_rate_hz
        self.record = AuraRequestRecord(chars=len(text))
        self.first_audio_ns: int | None = None  # first binary frame
        self.first_samples_ns: int | None = None  # first frame carrying samples (playback)
        self.flushed_ns: int | None = None
        self.audio = AuraAudio(encoding, sample_rate_hz)
        self._player = PlaybackSimulator()
        self._onset: OnsetDetector | None = None  # once the format (and its rate) is known

    @property
    def done(self) -> bool:
        return self.flushed_ns is not None

    @property
    def audible_ns(self) -> int | None:
        """Monotonic time at which speech first becomes audible (first samples + leading
        silence)."""
        if self.first_samples_ns is None or self._onset is None or self._onset.onset_ns is None:
            return None
        return self.first_samples_ns + self._onset.onset_ns

    def on_audio(self, data: bytes, arrival_ns: int) -> list[tuple[str, int]]:
        """A binary frame of audio arrived. Raises
        :class:`~voiceload.client.aura_format.UnmeasurableAudio` on compressed audio."""
        samples: list[tuple[str, int]] = []
        if self.first_audio_ns is None:
            self.first_audio_ns = arrival_ns
            self.record.ttfb_us = max(0, ns_to_us(arrival_ns - self.scheduled_ns))
            samples.append((AURA_TTFB, self.record.ttfb_us))
        count, pcm16 = self.audio.feed(data)
        fmt = self.audio.format
        if fmt is None or (count == 0 and self.first_samples_ns is None):
            return samples  # a header (or the start of one): nothing to play yet
        if self.first_samples_ns is None:
            self.first_samples_ns = arrival_ns
        self._player.add(arrival_ns, count * 1_000_000_000 // fmt.sample_rate_hz)
        self.record.audio_s = self._player.audio_ns / 1e9
        if self._onset is None:
            self._onset = OnsetDetector(fmt.sample_rate_hz)
        if self.record.ttfa_us is None and self._onset.feed(pcm16) is not None:
            samples += self._ttfa()
        return samples

    def on_flushed(self, arrival_ns: int) -> list[tuple[str, int]]:
        """``Flushed`` arrived: the whole utterance has been synthesised."""
        samples: list[tuple[str, int]] = []
        if self.flushed_ns is not None:
            return samples
        self.flushed_ns = arrival_ns
        pending_onset = self.record.ttfa_us is None and self._onset is not None
        if pending_onset and self._onset is not None and self._onset.finish() is not None:
            samples += self._ttfa()
        self.record.flushed_us = max(0, ns_to_us(arrival_ns - self.scheduled_ns))
        samples.append((AURA_FLUSHED, self.record.flushed_us))
        if self.first_samples_ns is not None:
            self.record.stall_us = ns_to_us(self._player.stall_ns)
            samples.append((AURA_STALL, self.record.stall_us))
            self.record.realtime_factor = self._player.realtime_factor()
        return samples

    def _ttfa(self) -> list[tuple[str, int]]:
        assert self._onset is not None and self._onset.onset_ns is not None
        assert self.record.ttfb_us is not None and self.first_samples_ns is not None
        self.record.leading_silence_us = ns_to_us(self._onset.onset_ns)
        # = ttfb + leading silence when the first frame carries samples (raw audio)
        until_samples_us = max(0, ns_to_us(self.first_samples_ns - self.scheduled_ns))
        self.record.ttfa_us = until_samples_us + self.record.leading_silence_us
        return [(AURA_TTFA, self.record.ttfa_us)]
