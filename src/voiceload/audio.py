"""Audio pipeline and voice-activity detector (VAD), shared by the load client, emulator and tools.

Pipeline: any file soundfile reads (WAV, FLAC, OGG, ...; any channel count and sample format)
-> mono (mean of channels) -> resampled with soxr (anti-aliased, "HQ") -> linear16 (signed
16-bit, little-endian) -> frames of ``frame_ms`` milliseconds, the last one zero-padded.

:func:`prepare` caches the framed audio per process, keyed by the file's resolved path, mtime,
size, target rate and frame size, so every simulated user streaming the same fixture shares one
tuple of ``bytes`` frames: memory does not grow with the number of users.

The VAD is energy based, with hysteresis and hang-over (see :class:`VadParams` for every
threshold). :func:`detect_speech` is the one pure definition of where speech turns are;
:class:`SpeechDetector` is the incremental form the emulator feeds frame by frame. Both run the
same per-window state machine, so any chunking of the input gives exactly the batch result.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from voiceload.errors import ConfigError, FixtureError

__all__ = [
    "AudioInfo",
    "PreparedAudio",
    "SpeechDetector",
    "SpeechSegment",
    "VadEvent",
    "VadParams",
    "detect_speech",
    "frame_pcm",
    "load_linear16",
    "prepare",
    "read_audio",
    "read_info",
]

DEFAULT_SAMPLE_RATE = 16000
DEFAULT_FRAME_MS = 80  # Deepgram's recommendation for Flux
_CONVERT_HINT = "convert it to 16-bit WAV or FLAC (e.g. `sox in.ext -b 16 out.wav`)"

Int16Array = npt.NDArray[np.int16]
FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# Reading and conversion
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, as soundfile reports it (native rate and channels, before conversion)."""

    path: Path
    sample_rate: int
    channels: int
    n_frames: int  # samples per channel
    format: str  # e.g. "WAV", "FLAC", "OGG"
    subtype: str  # e.g. "PCM_16", "PCM_24", "FLOAT"

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.sample_rate


def read_info(path: Path | str) -> AudioInfo:
    """Describe an audio file without decoding it.

    Raises :class:`FixtureError` (one line, naming the file) when the file is missing or a
    directory, is not audio soundfile can read, or holds no samples.
    """
    p = Path(path)
    if p.is_dir():
        raise FixtureError(f"audio file {p} is a directory: pass the path of one recording")
    if not p.is_file():
        raise FixtureError(f"audio file {p} does not exist: check the path")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise FixtureError(
            f"cannot read audio file {p} (unsupported format or corrupt: {_first_line(exc)}); "
            f"{_CONVERT_HINT}"
        ) from exc
    if info.frames <= 0:
        raise FixtureError(f"audio file {p} holds no samples (zero-length audio); re-record it")
    return AudioInfo(
        path=p,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        n_frames=int(info.frames),
        format=str(info.format),
        subtype=str(info.subtype),
    )


def read_audio(path: Path | str) -> tuple[FloatArray, AudioInfo]:
    """Decode a file to mono float64 in [-1, 1] at its native rate (channels are averaged).

    Raises :class:`FixtureError` as :func:`read_info` does, and when decoding fails part-way.
    """
    info = read_info(path)
    try:
        data, _ = sf.read(str(info.path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise FixtureError(
            f"cannot decode audio file {info.path} ({_first_line(exc)}); {_CONVERT_HINT}"
        ) from exc
    if data.shape[0] == 0:
        raise FixtureError(f"audio file {info.path} holds no samples (zero-length audio)")
    mono: FloatArray = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0].copy()
    return mono, info


def _first_line(exc: BaseException) -> str:
    """libsndfile's messages can span lines; an error here is one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def to_linear16(samples: FloatArray) -> Int16Array:
    """Float samples in [-1, 1] -> int16 (x * 32768, rounded, clipped). Exact for int16 input."""
    scaled = np.rint(samples * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def resample(samples: FloatArray, from_rate: int, to_rate: int) -> FloatArray:
    """Anti-aliased resampling with soxr ("HQ"); identity when the rates are equal.

    The output has ``round(len(samples) * to_rate / from_rate)`` samples.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ConfigError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate:
        return samples
    out: FloatArray = soxr.resample(samples, from_rate, to_rate, quality="HQ")
    return out


def load_linear16(path: Path | str, sample_rate: int = DEFAULT_SAMPLE_RATE) -> Int16Array:
    """Read any soundfile-readable file as int16 mono at ``sample_rate`` (soxr resampling)."""
    mono, info = read_audio(path)
    return to_linear16(resample(mono, info.sample_rate, sample_rate))


def frame_pcm(pcm: Int16Array, sample_rate: int, frame_ms: int) -> tuple[bytes, ...]:
    """Split int16 mono samples into linear16 frames of ``frame_ms`` each.

    Every frame has exactly ``sample_rate * frame_ms / 1000`` samples (2 bytes each, little
    endian); the last frame is zero-padded. ``frame_ms`` must be a positive multiple of 10 and
    give a whole number of samples, else :class:`ConfigError`.
    """
    if frame_ms <= 0 or frame_ms % 10 != 0:
        raise ConfigError(f"frame_ms must be a positive multiple of 10, got {frame_ms}")
    if sample_rate <= 0 or (sample_rate * frame_ms) % 1000 != 0:
        raise ConfigError(
            f"sample rate {sample_rate} Hz does not give whole-sample {frame_ms} ms frames"
        )
    per_frame = sample_rate * frame_ms // 1000
    samples = np.asarray(pcm, dtype="<i2").ravel()
    n_frames = -(-samples.size // per_frame)
    padded = np.zeros(n_frames * per_frame, dtype="<i2")
    padded[: samples.size] = samples
    raw = padded.tobytes()
    step = per_frame * 2
    return tuple(raw[i : i + step] for i in range(0, len(raw), step))


@dataclass(frozen=True)
class PreparedAudio:
    """A fixture ready to stream: shared, immutable frames (see :func:`prepare`)."""

    frames: tuple[bytes, ...]
    sample_rate: int
    frame_ms: int
    duration_s: float  # of the audio itself, before padding the last frame
    n_samples: int  # at ``sample_rate``, before padding


@functools.lru_cache(maxsize=128)
def _prepare_cached(
    resolved: str, mtime_ns: int, size: int, sample_rate: int, frame_ms: int
) -> PreparedAudio:
    del mtime_ns, size  # part of the cache key only: an edited file is prepared again
    pcm = load_linear16(resolved, sample_rate)
    return PreparedAudio(
        frames=frame_pcm(pcm, sample_rate, frame_ms),
        sample_rate=sample_rate,
        frame_ms=frame_ms,
        duration_s=pcm.size / sample_rate,
        n_samples=int(pcm.size),
    )


def prepare(
    path: Path | str, sample_rate: int = DEFAULT_SAMPLE_RATE, frame_ms: int = DEFAULT_FRAME_MS
) -> PreparedAudio:
    """Load, convert and frame a file once per process; later calls return the same object.

    The cache key is (resolved path, mtime, size, sample_rate, frame_ms), so an edited file is
    re-read. Raises :class:`FixtureError` for unreadable files, :class:`ConfigError` for a bad
    ``frame_ms``.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise FixtureError(f"audio file {p} does not exist: check the path") from exc
    return _prepare_cached(str(p.resolve()), st.st_mtime_ns, st.st_size, sample_rate, frame_ms)


# --------------------------------------------------------------------------------------------
# Voice-activity detection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VadParams:
    """Thresholds of the energy VAD.

    The signal is cut into ``window_ms`` windows; a window's energy is its mean-square power in
    the speech band ``band_low_hz``..``band_high_hz`` in dB relative to full scale (dBFS),
    measured on the DFT of the Hann-tapered window (power normalised by the taper's sum of
    squares, so white noise reads the same as untapered). The taper matters: 50/60 Hz mains
    hum is under one cycle per 10 ms window, and without it the hum leaks into every band bin
    by an amount that swings with its phase (a -40 dBFS hum used to hold a turn open for
    seconds). The noise floor is the minimum, over the last ``floor_window_s`` seconds, of the
    energy averaged over ``floor_smooth_s`` (a minimum of raw 10 ms energies sits several dB
    under the noise's level, by an amount that depends on the noise), clamped to
    [``floor_min_dbfs``, ``floor_max_dbfs``]: the lower clamp keeps digital silence from making
    dither count as speech; the upper one is the loudest background noise tolerated (so audio
    that is loud from its first sample is still speech). Because the thresholds follow the
    measured floor, a recording 20 dB quieter gives the same turns. A window is

    - *loud* when its energy >= floor + ``start_margin_db``;
    - *voiced* when its energy >= floor + ``stop_margin_db`` (hysteresis: start > stop);
    - *weak* when its energy >= floor + ``extend_margin_db`` (weak fricatives and aspiration,
      such as the "h" of "he", barely rise above the floor).

    A burst starts at the first voiced window of a run containing a loud window, moved back over
    up to ``extend_max_s`` of directly preceding weak windows (Rabiner and Sambur's onset
    extension); it ends after ``hangover_s`` of non-voiced windows and counts as speech once it
    spans ``min_speech_s``. Speech separated by pauses shorter than ``turn_gap_s`` is one turn
    (conversation pauses are 1.5-3 s; pauses inside a sentence are shorter).

    How the defaults were chosen (tests/unit/test_audio.py): on CMU ARCTIC a0009 they put
    onset/offset within 30 ms of the phone alignment's as recorded, 20 dB quieter, and with a
    -40 dBFS 60 Hz hum; stationary noise, dither and silence give no turn; speech in noise at
    10 dB SNR keeps its quiet final words. Known limit: hum at -30 dBFS still leaks through the
    taper's main lobe into the 200 Hz bin and delays a soft onset by ~70 ms.
    """

    window_ms: int = 10
    band_low_hz: float = 200.0
    band_high_hz: float = 4000.0
    floor_window_s: float = 2.0
    floor_smooth_s: float = 0.1
    floor_min_dbfs: float = -90.0
    floor_max_dbfs: float = -30.0
    start_margin_db: float = 14.0
    stop_margin_db: float = 11.0
    extend_margin_db: float = 3.0
    extend_max_s: float = 0.05
    min_speech_s: float = 0.06
    hangover_s: float = 0.1
    turn_gap_s: float = 0.9

    @classmethod
    def fixed_floor(cls, floor_dbfs: float = -65.0) -> VadParams:
        """Parameters for clean audio (e.g. synthesised speech): a fixed floor, not adaptive.

        Use it where audio may be loud from its first sample, which the adaptive floor would
        take for background noise.
        """
        return cls(floor_min_dbfs=floor_dbfs, floor_max_dbfs=floor_dbfs)

    def __post_init__(self) -> None:
        if self.window_ms <= 0:
            raise ConfigError(f"VAD window_ms must be positive, got {self.window_ms}")
        if not self.start_margin_db > self.stop_margin_db > self.extend_margin_db:
            raise ConfigError(
                "VAD margins must satisfy start_margin_db > stop_margin_db > extend_margin_db"
            )
        if self.floor_min_dbfs > self.floor_max_dbfs:
            raise ConfigError("VAD floor_min_dbfs must not be above floor_max_dbfs")
        if not 0 <= self.band_low_hz < self.band_high_hz:
            raise ConfigError("VAD band must satisfy 0 <= band_low_hz < band_high_hz")
        if min(self.min_speech_s, self.hangover_s, self.turn_gap_s, self.floor_window_s) <= 0:
            raise ConfigError("VAD durations must be positive")
        if self.extend_max_s < 0:
            raise ConfigError("VAD extend_max_s must not be negative")


@dataclass(frozen=True)
class SpeechSegment:
    """One turn: time of its first and last speech sample, in seconds from the start."""

    onset_s: float
    offset_s: float


@dataclass(frozen=True)
class VadEvent:
    """A turn boundary, or (``SpeechDetector(..., pauses=True)`` only) a pause inside a turn.

    ``sample_index`` is the first speech sample of an ``onset`` (a turn starts) or a ``resume``
    (speech again inside the turn), and the last speech sample of an ``offset`` (the turn ended)
    or a ``pause`` (a burst of speech ended; the turn may go on).
    """

    kind: Literal["onset", "offset", "pause", "resume"]
    sample_index: int


class SpeechDetector:
    """Incremental VAD: ``feed`` audio in any chunking, get turn onsets and offsets.

    An onset is reported once its burst spans ``min_speech_s``; an offset once ``turn_gap_s``
    of non-speech follows it. With ``pauses=True`` it also reports, inside a turn, a ``pause``
    when a burst of speech ends (after ``hangover_s`` of non-voiced windows; so every turn's
    last burst gives a pause before its offset, except at ``flush``) and a ``resume`` when a
    new burst becomes speech before the turn gap (reported, like an onset, once it spans
    ``min_speech_s``). All events carry exact sample indices, so the event stream for the whole
    input (``feed`` ... then ``flush``) is the same whatever the chunk sizes are. Cost: one
    matrix product per chunk (skipped for a linear16 chunk seen before, see :class:`_BandEnergy`)
    plus a short loop over plain floats per ``window_ms`` window; about 38 us per new 80 ms
    frame, 10 us per repeated one (2-core EPYC VM; 58 us before the cache and float loop).
    """

    def __init__(
        self, sample_rate: int, params: VadParams | None = None, *, pauses: bool = False
    ) -> None:
        p = params if params is not None else VadParams()
        if sample_rate < 1000:
            raise ConfigError(f"VAD needs a sample rate of at least 1000 Hz, got {sample_rate}")
        self.sample_rate = sample_rate
        self.params = p
        self._win = round(sample_rate * p.window_ms / 1000)  # e.g. 160 samples at 16 kHz
        window_s = p.window_ms / 1000
        self._floor_n = max(1, round(p.floor_window_s / window_s))
        self._min_speech_n = max(1, round(p.min_speech_s / window_s))
        self._hangover_n = max(1, round(p.hangover_s / window_s))
        self._gap_n = max(1, round(p.turn_gap_s / window_s))
        self._extend_n = round(p.extend_max_s / window_s)
        self._band = _band_energy(self._win, sample_rate, p.band_low_hz, p.band_high_hz)
        # input carry-over
        self._pending = np.zeros(0, dtype=np.float64)  # samples of an incomplete window
        self._smooth_n = max(1, round(p.floor_smooth_s / window_s))
        self._recent_db = [0.0] * (self._smooth_n - 1)  # last smooth_n - 1 energies (0: none)
        # sliding minimum of the last floor_n smoothed energies: (window, value) pairs with
        # increasing values, the oldest first; its head is the noise floor
        self._floor_q: deque[tuple[int, float]] = deque()
        self._n_samples = 0  # samples fed so far
        self._k = 0  # index of the next window
        # state machine
        self._run_start: int | None = None  # first window of the current voiced run
        self._weak_start: int | None = None  # first window of the current weak run
        self._burst_start: int | None = None  # burst being tracked (started by a loud window)
        self._burst_last = 0  # last voiced window of that burst
        self._burst_confirmed = False
        self._in_turn = False
        self._turn_last = 0  # last voiced window of confirmed speech in the current turn
        self._flushed = False
        self._pauses = pauses  # also report pause / resume inside a turn

    # -- input ----------------------------------------------------------------------------

    def feed(self, pcm: bytes | npt.NDArray[np.generic]) -> list[VadEvent]:
        """Process more audio: linear16 ``bytes`` or an int16 / float (-1..1) array."""
        if self._flushed:
            raise ConfigError("SpeechDetector.feed called after flush(); create a new detector")
        if type(pcm) is bytes and not self._pending.size and len(pcm) % (2 * self._win) == 0:
            # whole windows of linear16: the usual streamed frame; byte-identical frames (every
            # user streaming the same fixture) share one energy computation
            if not pcm:
                return []
            self._n_samples += len(pcm) // 2
            return self._windows(self._band.energies(pcm))
        x = _as_float(pcm)
        if x.size == 0:
            return []
        self._n_samples += x.size
        if self._pending.size:
            x = np.concatenate((self._pending, x))
        n_windows = x.size // self._win
        self._pending = x[n_windows * self._win :]
        if n_windows == 0:
            return []
        frames = x[: n_windows * self._win].reshape(n_windows, self._win)
        return self._windows(self._band.energy_dbfs(frames))

    def flush(self) -> list[VadEvent]:
        """End of input: process the last partial window and close an open turn."""
        if self._flushed:
            return []
        events: list[VadEvent] = []
        if self._pending.size:
            last = np.zeros((1, self._win))  # the last partial window, zero-padded
            last[0, : self._pending.size] = self._pending
            events += self._windows(self._band.energy_dbfs(last))
            self._pending = np.zeros(0, dtype=np.float64)
        self._flushed = True
        self._end_burst()  # an unconfirmed burst at the very end is not speech
        if self._in_turn:
            events.append(self._offset())
        return events

    def _smoothed(self, energy_db: list[float]) -> list[float]:
        """Mean energy (dB) of each window and the ``smooth_n - 1`` windows before it.

        The noise floor is a minimum; taken over single 10 ms windows it sits several dB below
        the noise's typical level (a minimum of a fluctuating quantity), by an amount that
        depends on the noise. Averaging first makes the floor track the noise level itself.
        The first ``smooth_n - 1`` windows average over the windows there are. Each mean adds
        the same values in the same order (oldest first, in IEEE doubles) whatever the chunking.
        """
        m = self._smooth_n
        if m == 1:
            return energy_db
        joined = self._recent_db + energy_db  # recent_db starts as zeros
        out: list[float] = []
        k = self._k
        for i in range(len(energy_db)):  # a few windows per frame: plain floats beat numpy
            total = joined[i]
            for value in joined[i + 1 : i + m]:
                total += value
            out.append(total / m if k + i >= m - 1 else total / (k + i + 1))
        self._recent_db = joined[len(energy_db) :]
        return out

    # -- state machine --------------------------------------------------------------------

    def _windows(self, energy_db: list[float]) -> list[VadEvent]:
        p = self.params
        # noise floor of window j = min smoothed energy over windows j-floor_n+1 .. j (early
        # windows use the minimum seen so far), clipped to [floor_min, floor_max]
        lo, hi = p.floor_min_dbfs, p.floor_max_dbfs
        start_db, stop_db, extend_db = p.start_margin_db, p.stop_margin_db, p.extend_margin_db
        queue, span = self._floor_q, self._floor_n
        k0 = self._k
        flags: list[tuple[bool, bool, bool]] = []
        any_weak = False
        smoothed = self._smoothed(energy_db)
        for i, (energy, smooth) in enumerate(zip(energy_db, smoothed, strict=True)):
            j = k0 + i
            while queue and queue[-1][1] >= smooth:
                queue.pop()
            queue.append((j, smooth))
            if queue[0][0] <= j - span:
                queue.popleft()
            floor = queue[0][1]
            above_floor_db = energy - (lo if floor < lo else hi if floor > hi else floor)
            weak = above_floor_db >= extend_db
            any_weak = any_weak or weak
            flags.append((above_floor_db >= start_db, above_floor_db >= stop_db, weak))

        events: list[VadEvent] = []
        if not any_weak and self._burst_start is None and self._weak_start is None:
            # fast path: silence with nothing open; only a turn may time out
            self._k = k0 + len(energy_db)
            if self._in_turn and self._k - 1 - self._turn_last >= self._gap_n:
                events.append(self._offset())
            return events
        for i, (loud, voiced, weak) in enumerate(flags):
            self._step(k0 + i, loud, voiced, weak, events)
        self._k = k0 + len(energy_db)
        return events

    def _step(self, k: int, loud: bool, voiced: bool, weak: bool, events: list[VadEvent]) -> None:
        if not weak:
            self._weak_start = None
        elif self._weak_start is None:
            self._weak_start = k
        if voiced:
            if self._run_start is None:
                self._run_start = k
            if self._burst_start is not None:
                self._burst_last = k
            elif loud:
                assert self._weak_start is not None  # loud implies voiced implies weak
                self._burst_start = max(self._weak_start, self._run_start - self._extend_n)
                self._burst_last = k
                self._burst_confirmed = False
        else:
            self._run_start = None
            if self._burst_start is not None and k - self._burst_last >= self._hangover_n:
                if self._pauses and self._burst_confirmed and self._in_turn:
                    events.append(VadEvent("pause", (self._burst_last + 1) * self._win - 1))
                self._end_burst()
        # a burst becomes speech once it spans min_speech
        if (
            self._burst_start is not None
            and not self._burst_confirmed
            and self._burst_last - self._burst_start + 1 >= self._min_speech_n
        ):
            self._burst_confirmed = True
            if self._in_turn and self._burst_start - self._turn_last - 1 >= self._gap_n:
                events.append(self._offset())  # a new turn after a long enough pause
            if not self._in_turn:
                self._in_turn = True
                events.append(self._onset())
            elif self._pauses:  # speech again within the turn gap
                events.append(VadEvent("resume", self._burst_start * self._win))
        if self._burst_confirmed and self._burst_start is not None:
            self._turn_last = self._burst_last
        # close the turn after turn_gap of non-speech, unless a burst that may still join it
        # (it started within the gap) is being tracked
        if self._in_turn and k - self._turn_last >= self._gap_n:
            open_burst_joins = (
                self._burst_start is not None
                and not self._burst_confirmed
                and self._burst_start - self._turn_last - 1 < self._gap_n
            )
            if not open_burst_joins:
                events.append(self._offset())

    def _end_burst(self) -> None:
        self._burst_start = None
        self._burst_confirmed = False

    def _onset(self) -> VadEvent:
        assert self._burst_start is not None
        return VadEvent("onset", self._burst_start * self._win)

    def _offset(self) -> VadEvent:
        self._in_turn = False
        last_sample = min((self._turn_last + 1) * self._win, self._n_samples) - 1
        return VadEvent("offset", last_sample)


_INT16_SCALE = 1.0 / 32768.0  # a power of two: x * _INT16_SCALE == x / 32768.0, bit for bit


def _as_float(pcm: bytes | npt.NDArray[np.generic]) -> FloatArray:
    if isinstance(pcm, bytes | bytearray | memoryview):
        out: FloatArray = np.multiply(
            np.frombuffer(pcm, dtype="<i2"), _INT16_SCALE, dtype=np.float64
        )
        return out
    arr = np.asarray(pcm).ravel()
    if np.issubdtype(arr.dtype, np.integer):
        out = np.multiply(arr, _INT16_SCALE, dtype=np.float64)
        return out
    return arr.astype(np.float64)


class _BandEnergy:
    """Speech-band energy (dBFS) of VAD windows, shared by every detector with the same setup.

    ``energies`` remembers the result per linear16 chunk (FIFO, at most ``CACHE_BYTES`` of
    keys): load tests stream the same fixture frames on every connection, so most frames an
    emulator receives were computed before. The same bytes in the same shape give the same
    doubles, so the cache changes no result.
    """

    CACHE_BYTES = 8 << 20

    def __init__(self, win: int, sample_rate: int, low_hz: float, high_hz: float) -> None:
        freqs = np.fft.rfftfreq(win, 1.0 / sample_rate)
        band_bins = np.flatnonzero((freqs >= low_hz) & (freqs <= high_hz))
        if band_bins.size == 0:
            raise ConfigError(
                f"VAD band {low_hz}-{high_hz} Hz holds no FFT bin at {sample_rate} Hz"
            )
        self.win = win
        # the band's DFT bins of the Hann-windowed window as one real matrix: windows @ basis
        # gives (Re, Im) of every bin, cheaper than a full FFT for the few windows of one
        # streamed frame. Without the taper, hum below the band (a 50/60 Hz tone is well under
        # one cycle per 10 ms window) leaks into every bin, and by how much depends on its phase.
        taper = np.hanning(win + 2)[1:-1]  # periodic-free Hann with no zero end points
        phase = 2.0 * np.pi * np.outer(np.arange(win), band_bins) / win
        basis = np.concatenate((np.cos(phase), np.sin(phase)), axis=1)
        self.basis = taper[:, np.newaxis] * basis
        # mean-square power of the band: 2 |X_k|^2 summed over one-sided bins, over N * sum(w^2)
        self.power_scale = 2.0 / (win * float(np.sum(taper**2)))
        self._cache: dict[bytes, list[float]] = {}
        self._cache_bytes = 0
        self._lock = threading.Lock()

    def energy_dbfs(self, frames: FloatArray) -> list[float]:
        """Mean-square power of each row in the speech band, in dBFS (Parseval on the DFT)."""
        parts = frames @ self.basis
        power = self.power_scale * np.einsum("ij,ij->i", parts, parts)
        out: list[float] = (10.0 * np.log10(power + 1e-10)).tolist()
        return out

    def energies(self, pcm: bytes) -> list[float]:
        """``energy_dbfs`` of linear16 ``pcm`` holding whole windows, remembered per chunk."""
        found = self._cache.get(pcm)
        if found is None:
            samples = np.multiply(np.frombuffer(pcm, dtype="<i2"), _INT16_SCALE, dtype=np.float64)
            found = self.energy_dbfs(samples.reshape(-1, self.win))
            with self._lock:  # the emulator's threads (BackgroundEmulator) may share this
                if pcm not in self._cache:
                    self._cache[pcm] = found
                    self._cache_bytes += len(pcm)
                while self._cache_bytes > self.CACHE_BYTES:
                    oldest = next(iter(self._cache))
                    del self._cache[oldest]
                    self._cache_bytes -= len(oldest)
        return found


@functools.lru_cache(maxsize=16)
def _band_energy(win: int, sample_rate: int, low_hz: float, high_hz: float) -> _BandEnergy:
    return _BandEnergy(win, sample_rate, low_hz, high_hz)


def detect_speech(
    samples: npt.NDArray[np.generic], sample_rate: int, params: VadParams | None = None
) -> list[SpeechSegment]:
    """The speech turns in mono audio (int16, or float in [-1, 1]), in order.

    Pure: same input, same output. Each segment's ``onset_s``/``offset_s`` is the time of the
    first/last speech sample (sample index / sample_rate). An empty list means no speech.
    """
    det = SpeechDetector(sample_rate, params)
    events = det.feed(np.asarray(samples)) + det.flush()
    segments: list[SpeechSegment] = []
    onset: int | None = None
    for ev in events:
        if ev.kind == "onset":
            onset = ev.sample_index
        elif ev.kind == "offset" and onset is not None:
            segments.append(SpeechSegment(onset / sample_rate, ev.sample_index / sample_rate))
            onset = None
    return segments
