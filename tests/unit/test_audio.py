"""voiceload.audio: conversion and framing exactness, the shared frame cache, and the VAD."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voiceload.audio import (
    PreparedAudio,
    SpeechDetector,
    SpeechSegment,
    VadEvent,
    VadParams,
    detect_speech,
    frame_pcm,
    load_linear16,
    prepare,
    read_info,
)
from voiceload.errors import ConfigError, FixtureError

REPO = Path(__file__).resolve().parents[2]
#: The two CMU ARCTIC recordings (committed, unmodified) and a0009's phone alignment.
AUDIO = REPO / "fixtures" / "audio"
A0009_LAB = REPO / "tests" / "data" / "cmu_arctic" / "arctic_a0009_phone.lab"


def _tone(freq_hz: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq_hz * t)


def _peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


# --- framing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_samples", "rate", "frame_ms", "n_frames"),
    [(16000, 16000, 80, 13), (1280, 16000, 80, 1), (1281, 16000, 80, 2), (1, 8000, 20, 1)],
)
def test_frame_pcm_counts_sizes_and_padding(
    n_samples: int, rate: int, frame_ms: int, n_frames: int
) -> None:
    pcm = (np.arange(n_samples) % 30000 + 1).astype(np.int16)  # no zero samples in the input
    frames = frame_pcm(pcm, rate, frame_ms)
    per_frame = rate * frame_ms // 1000
    assert len(frames) == n_frames
    assert all(len(f) == 2 * per_frame for f in frames)
    joined = np.frombuffer(b"".join(frames), dtype="<i2")
    assert np.array_equal(joined[:n_samples], pcm)  # little-endian, order kept
    assert not joined[n_samples:].any()  # the padding is zeros
    assert joined.size - n_samples == n_frames * per_frame - n_samples


@pytest.mark.parametrize("frame_ms", [0, -20, 25, 5])
def test_frame_ms_must_be_positive_multiple_of_10(frame_ms: int) -> None:
    with pytest.raises(ConfigError, match="multiple of 10"):
        frame_pcm(np.zeros(100, dtype=np.int16), 16000, frame_ms)


# --- reading and resampling -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "channels", "fmt", "subtype"),
    [
        (44100, 2, "WAV", "PCM_16"),
        (8000, 1, "WAV", "PCM_16"),
        (48000, 1, "FLAC", "PCM_24"),
        (16000, 1, "WAV", "PCM_24"),
        (22050, 1, "OGG", "VORBIS"),
    ],
)
def test_load_linear16_resamples_any_format_keeping_length_and_tone(
    tmp_path: Path, rate: int, channels: int, fmt: str, subtype: str
) -> None:
    seconds = 1.5
    tone = _tone(1000.0, rate, seconds)
    data = np.column_stack([tone] * channels) if channels > 1 else tone
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, data, rate, format=fmt, subtype=subtype)
    pcm = load_linear16(path, 16000)
    assert pcm.dtype == np.int16
    assert pcm.ndim == 1
    assert abs(pcm.size - round(seconds * 16000)) <= 1
    assert _peak_hz(pcm.astype(np.float64), 16000) == pytest.approx(1000.0, abs=1.0)
    rms = np.sqrt(np.mean((pcm[1600:-1600] / 32768.0) ** 2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.02)  # amplitude survives mixing


def test_resampler_is_anti_aliased(tmp_path: Path) -> None:
    # a 9.5 kHz tone is above the 8 kHz Nyquist limit of 16 kHz audio: it must vanish, not
    # fold back to 6.5 kHz as naive decimation or linear interpolation would let it
    path = tmp_path / "high.wav"
    sf.write(path, _tone(9500.0, 44100, 1.0), 44100)
    pcm = load_linear16(path, 16000).astype(np.float64) / 32768.0
    assert np.sqrt(np.mean(pcm[800:-800] ** 2)) < 0.005  # alias at 6.5 kHz would be ~0.35


def test_int16_16k_input_is_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    pcm = rng.integers(-32768, 32767, 4000, dtype=np.int16)
    path = tmp_path / "exact.wav"
    sf.write(path, pcm, 16000, subtype="PCM_16")
    assert np.array_equal(load_linear16(path, 16000), pcm)


def test_bad_files_raise_one_line_fixture_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    with pytest.raises(FixtureError, match="does not exist") as exc:
        load_linear16(missing)
    assert "\n" not in str(exc.value) and "missing.wav" in str(exc.value)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 3)
    with pytest.raises(FixtureError, match=r"cannot read audio file .*corrupt\.wav") as exc:
        read_info(corrupt)
    assert "\n" not in str(exc.value)
    text = tmp_path / "notes.mp4"
    text.write_text("not audio")
    with pytest.raises(FixtureError, match="unsupported format or corrupt"):
        load_linear16(text)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.int16), 16000)
    with pytest.raises(FixtureError, match="zero-length"):
        prepare(empty)


# --- the shared frame cache -----------------------------------------------------------------


def test_prepare_is_computed_once_and_shared_by_1000_users(tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    sf.write(path, _tone(300.0, 16000, 2.0), 16000)
    first = prepare(path, 16000, 80)
    assert isinstance(first, PreparedAudio)
    assert first.n_samples == 32000 and first.duration_s == 2.0 and len(first.frames) == 25
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        users = [prepare(path, 16000, 80) for _ in range(1000)]
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert all(u is first and u.frames is first.frames for u in users)
    frame_bytes = sum(len(f) for f in first.frames)
    # 1,000 private copies would take 1000 * 64 kB; a list of references takes ~8 kB
    assert after - before < frame_bytes
    # another frame size is another entry; an edited file is read again
    assert prepare(path, 16000, 20) is not first
    sf.write(path, _tone(300.0, 16000, 1.0), 16000)
    assert prepare(path, 16000, 80).n_samples == 16000


# --- the VAD --------------------------------------------------------------------------------


def _lab_speech_span_s(lab: Path) -> tuple[float, float]:
    """First and last non-silence phone of an HTS full-context label file (100 ns units)."""
    spans = []
    for line in lab.read_text().splitlines():
        start, end, label = line.split(maxsplit=2)
        phone = label.split("-", 1)[1].split("+", 1)[0]
        if phone not in ("sil", "pau"):
            spans.append((int(start) * 1e-7, int(end) * 1e-7))
    return spans[0][0], spans[-1][1]


def test_vad_agrees_with_phone_alignment_of_arctic_a0009() -> None:
    onset_s, offset_s = _lab_speech_span_s(A0009_LAB)
    assert (onset_s, offset_s) == pytest.approx((0.13, 2.925))
    pcm = load_linear16(AUDIO / "arctic_a0009.wav")
    turns = detect_speech(pcm, 16000)
    assert len(turns) == 1
    assert turns[0].onset_s == pytest.approx(onset_s, abs=0.030)
    assert turns[0].offset_s == pytest.approx(offset_s, abs=0.030)


def test_vad_ignores_mains_hum_below_the_speech_band() -> None:
    # a 60 Hz tone is 0.6 cycles per 10 ms window: untapered, it leaked into the 200-4000 Hz
    # band and held the turn open through 3 s of trailing "silence" (offset 5.03 s)
    onset_s, offset_s = _lab_speech_span_s(A0009_LAB)
    a9 = load_linear16(AUDIO / "arctic_a0009.wav") / 32768.0
    audio = np.concatenate([a9, np.zeros(3 * 16000)])
    hum = 10 ** (-40 / 20) * np.sin(2 * np.pi * 60.0 * np.arange(audio.size) / 16000)  # -40 dBFS
    (turn,) = detect_speech(audio + hum, 16000)
    assert turn.onset_s == pytest.approx(onset_s, abs=0.030)
    assert turn.offset_s == pytest.approx(offset_s, abs=0.030)


@pytest.mark.parametrize("gain_db", [-20.0, 3.0])
def test_vad_turn_does_not_move_with_recording_level(gain_db: float) -> None:
    # the thresholds follow the measured noise floor, so a quieter (or louder) recording of the
    # same speech gives the same turn; a fixed floor clamp made -20 dB start 60 ms late
    onset_s, offset_s = _lab_speech_span_s(A0009_LAB)
    a9 = load_linear16(AUDIO / "arctic_a0009.wav") / 32768.0
    (turn,) = detect_speech(a9 * 10 ** (gain_db / 20), 16000)
    assert turn.onset_s == pytest.approx(onset_s, abs=0.030)
    assert turn.offset_s == pytest.approx(offset_s, abs=0.030)


def _conversation() -> np.ndarray:
    """a0009, 2 s pause, a0007 then a0009: two turns (the ~0.7 s pause between a0007's last
    speech and a0009's first merges; the 2 s one does not)."""
    a9 = load_linear16(AUDIO / "arctic_a0009.wav")
    a7 = load_linear16(AUDIO / "arctic_a0007.wav")
    gap = np.zeros(32000, dtype=np.int16)
    return np.concatenate([a9, gap, a7, a9])


def test_vad_turns_merge_short_pauses_and_split_long_ones() -> None:
    pcm = _conversation()
    single = detect_speech(load_linear16(AUDIO / "arctic_a0009.wav"), 16000)[0]
    turns = detect_speech(pcm, 16000)
    assert len(turns) == 2
    assert turns[0] == single
    second_start_s = (49520 + 32000) / 16000
    # a0007's room noise is louder than the digital-silence gap, so its onset may be found at
    # the splice (up to extend_max_s early) but never later than its speech in isolation
    assert second_start_s - VadParams().extend_max_s <= turns[1].onset_s <= second_start_s + 0.42
    # the second turn ends where the appended a0009 ends its speech (it starts half-way into a
    # 10 ms VAD window here, so the window grid moves the offset by up to two windows)
    expected_offset_s = pcm.size / 16000 - 3.095 + single.offset_s
    assert turns[1].offset_s == pytest.approx(expected_offset_s, abs=0.02)
    assert turns[1].offset_s > turns[1].onset_s + 3.0


def test_vad_finds_nothing_in_silence_or_stationary_noise() -> None:
    assert detect_speech(np.zeros(48000, dtype=np.int16), 16000) == []
    rng = np.random.default_rng(5)
    assert detect_speech(0.05 * rng.standard_normal(48000), 16000) == []
    dither = rng.integers(-2, 3, 48000).astype(np.int16)
    assert detect_speech(dither, 16000) == []


def test_vad_ignores_a_click_shorter_than_min_speech() -> None:
    pcm = np.zeros(32000)
    pcm[16000 : 16000 + 320] = _tone(1000.0, 16000, 0.02)  # 20 ms < min_speech_s
    assert detect_speech(pcm, 16000) == []
    pcm[16000 : 16000 + 3200] = _tone(1000.0, 16000, 0.2)  # 200 ms tone burst
    (turn,) = detect_speech(pcm, 16000)
    assert turn == SpeechSegment(1.0, (16000 + 3200 - 1) / 16000)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_incremental_detector_matches_batch_for_any_chunking(seed: int) -> None:
    pcm = _conversation()
    batch = detect_speech(pcm, 16000)
    rng = np.random.default_rng(seed)
    det = SpeechDetector(16000)
    events: list[VadEvent] = []
    pos = 0
    while pos < pcm.size:  # bounded: every chunk advances by at least one sample
        n = int(rng.choice([1, 7, 160, 1280, 5000]))
        chunk = pcm[pos : pos + n]
        events += det.feed(chunk.tobytes() if seed % 2 else chunk)
        pos += n
    events += det.flush()
    kinds = [e.kind for e in events]
    assert kinds == ["onset", "offset"] * len(batch)
    rebuilt = [
        SpeechSegment(on.sample_index / 16000, off.sample_index / 16000)
        for on, off in zip(events[::2], events[1::2], strict=True)
    ]
    assert rebuilt == batch


def test_offset_event_comes_after_the_turn_gap_with_last_speech_sample() -> None:
    pcm = np.zeros(48000)
    pcm[8000:16000] = _tone(500.0, 16000, 0.5)
    det = SpeechDetector(16000)
    frames = frame_pcm((pcm * 32767).astype(np.int16), 16000, 80)
    seen: list[tuple[int, VadEvent]] = []
    for i, frame in enumerate(frames):
        seen += [(i, e) for e in det.feed(frame)]
    assert [e for _, e in seen] == [VadEvent("onset", 8000), VadEvent("offset", 15999)]
    onset_frame, offset_frame = seen[0][0], seen[1][0]
    assert onset_frame * 1280 < 8000 + 0.1 * 16000  # reported within min_speech + one frame
    gap_samples = VadParams().turn_gap_s * 16000
    assert (offset_frame + 1) * 1280 >= 16000 + gap_samples  # only after the turn gap


def test_vad_params_are_validated() -> None:
    with pytest.raises(ConfigError, match="start_margin_db > stop_margin_db"):
        VadParams(start_margin_db=10.0, stop_margin_db=12.0)
    with pytest.raises(ConfigError):
        VadParams(turn_gap_s=0.0)
    fixed = VadParams.fixed_floor(-70.0)
    assert fixed.floor_min_dbfs == fixed.floor_max_dbfs == -70.0


def test_decode_error_keeps_only_the_first_line_of_libsndfiles_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ok.wav"
    sf.write(path, np.zeros(1600), 16000)

    def failing_read(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Error decoding file: broken frame\n  at offset 1234\n  (details)")

    monkeypatch.setattr(sf, "read", failing_read)
    with pytest.raises(FixtureError) as exc:
        load_linear16(path)
    message = str(exc.value)
    assert "\n" not in message and "ok.wav" in message
    assert "(Error decoding file: broken frame)" in message and "offset" not in message


# --- the VAD's fast numeric path against the plain numpy reference ---------------------------


class _ReferenceDetector(SpeechDetector):
    """The VAD's numeric path as first written (numpy per chunk, no cache): slow but plain.

    It shares the per-window state machine (``_step``) with :class:`SpeechDetector`, so any
    difference in events comes from the energies, smoothing, floors or thresholds.
    """

    def __init__(
        self, sample_rate: int, params: VadParams | None = None, *, pauses: bool = False
    ) -> None:
        super().__init__(sample_rate, params, pauses=pauses)
        win, p = self._win, self.params
        freqs = np.fft.rfftfreq(win, 1.0 / sample_rate)
        bins = np.flatnonzero((freqs >= p.band_low_hz) & (freqs <= p.band_high_hz))
        taper = np.hanning(win + 2)[1:-1]
        phase = 2.0 * np.pi * np.outer(np.arange(win), bins) / win
        self._ref_basis = taper[:, np.newaxis] * np.concatenate((np.cos(phase), np.sin(phase)), 1)
        self._ref_scale = 2.0 / (win * float(np.sum(taper**2)))
        self._ref_history = np.full(self._floor_n - 1, np.inf)
        self._ref_recent = np.zeros(self._smooth_n - 1)

    def feed(self, pcm: bytes | np.ndarray) -> list[VadEvent]:  # type: ignore[override]
        if isinstance(pcm, bytes):
            x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
        elif np.issubdtype(pcm.dtype, np.integer):
            x = pcm.ravel().astype(np.float64) / 32768.0
        else:
            x = pcm.ravel().astype(np.float64)
        if x.size == 0:
            return []
        self._n_samples += x.size
        y = np.concatenate((self._pending, x))
        n = y.size // self._win
        self._pending = y[n * self._win :]
        if n == 0:
            return []
        return self._ref_windows(self._ref_energy(y[: n * self._win].reshape(n, self._win)))

    def flush(self) -> list[VadEvent]:
        events: list[VadEvent] = []
        if self._pending.size:
            last = np.zeros((1, self._win))
            last[0, : self._pending.size] = self._pending
            events += self._ref_windows(self._ref_energy(last))
            self._pending = np.zeros(0)
        self._flushed = True
        self._end_burst()
        if self._in_turn:
            events.append(self._offset())
        return events

    def _ref_energy(self, frames: np.ndarray) -> np.ndarray:
        parts = frames @ self._ref_basis
        power = self._ref_scale * np.einsum("ij,ij->i", parts, parts)
        return np.asarray(10.0 * np.log10(power + 1e-10))

    def _ref_windows(self, energy_db: np.ndarray) -> list[VadEvent]:
        p, m, n = self.params, self._smooth_n, energy_db.size
        joined = np.concatenate((self._ref_recent, energy_db))
        total = joined[:n].copy()
        for shift in range(1, m):
            total += joined[shift : shift + n]
        self._ref_recent = joined[n:]
        smooth = total / np.minimum(np.arange(self._k + 1, self._k + n + 1), m)
        joined = np.concatenate((self._ref_history, smooth))
        floors = np.lib.stride_tricks.sliding_window_view(joined, self._floor_n).min(axis=1)
        self._ref_history = joined[joined.size - self._ref_history.size :]
        above = energy_db - np.clip(floors, p.floor_min_dbfs, p.floor_max_dbfs)
        events: list[VadEvent] = []
        for i in range(n):
            self._step(
                self._k + i,
                bool(above[i] >= p.start_margin_db),
                bool(above[i] >= p.stop_margin_db),
                bool(above[i] >= p.extend_margin_db),
                events,
            )
        self._k += n
        return events


def _events(det: SpeechDetector, pcm: np.ndarray, chunk: int, as_bytes: bool) -> list[VadEvent]:
    events: list[VadEvent] = []
    for pos in range(0, pcm.size, chunk):
        part = pcm[pos : pos + chunk]
        events += det.feed(part.tobytes() if as_bytes else part)
    return events + det.flush()


def test_vad_fast_path_gives_the_reference_events_on_every_fixture() -> None:
    # every manifest fixture (speech, noise, silence, speech in noise), streamed in frames of
    # 10/20/80 ms, an odd size and one chunk, as bytes and as arrays, twice (the second pass
    # answers whole frames from the shared energy cache): the same events as the reference
    from voiceload.fixtures import load_manifest

    manifest = load_manifest()
    params = [VadParams(), VadParams(turn_gap_s=0.5), VadParams.fixed_floor()]
    compared = 0
    for fixture in manifest.fixtures:
        pcm = load_linear16(fixture.path, 16000)
        for p, pauses in zip(params, (False, True, False), strict=True):
            for chunk in (160, 320, 1280, 1283, pcm.size):
                ref = _ReferenceDetector(16000, p, pauses=pauses)
                expected = _events(ref, pcm, chunk, as_bytes=False)
                for as_bytes in (True, False, True):
                    det = SpeechDetector(16000, p, pauses=pauses)
                    assert _events(det, pcm, chunk, as_bytes) == expected, (fixture.name, p, chunk)
                    compared += 1
    assert compared == len(manifest.fixtures) * len(params) * 5 * 3 and compared > 0


def test_vad_fast_path_matches_reference_on_levels_near_every_threshold() -> None:
    # random speech-like bursts at levels around the floor/margin edges, 8 kHz and 16 kHz
    rng = np.random.default_rng(11)
    for rate in (8000, 16000):
        pieces = []
        for _ in range(60):
            level_db = rng.uniform(-95.0, -10.0)
            length = int(rng.integers(1, 160)) * rate // 100 + int(rng.integers(0, 7))
            pieces.append(10 ** (level_db / 20) * rng.standard_normal(length))
        pcm = (np.clip(np.concatenate(pieces), -1, 1) * 32767).astype(np.int16)
        frame = rate * 80 // 1000
        expected = _events(_ReferenceDetector(rate), pcm, frame, as_bytes=False)
        assert len(expected) >= 4
        assert _events(SpeechDetector(rate), pcm, frame, as_bytes=True) == expected
        assert _events(SpeechDetector(rate), pcm, 777, as_bytes=False) == expected


def test_vad_computes_each_distinct_streamed_frame_once() -> None:
    # a load test streams the same fixture on every connection: the band energy of a frame
    # already seen is not recomputed (here: 2 detectors x 3 frames, 2 distinct)
    from voiceload import audio

    band = audio._BandEnergy(160, 16000, 200.0, 4000.0)
    calls: list[int] = []
    compute = band.energy_dbfs

    def counting(frames: np.ndarray) -> list[float]:
        calls.append(frames.shape[0])
        return compute(frames)

    band.energy_dbfs = counting  # type: ignore[method-assign]
    loud = (_tone(1000.0, 16000, 0.08) * 20000).astype("<i2").tobytes()
    for det in (SpeechDetector(16000), SpeechDetector(16000)):
        det._band = band
        for frame in (bytes(2560), loud, loud):
            det.feed(frame)
    assert calls == [8, 8]


# --- pauses inside a turn (SpeechDetector(..., pauses=True), used by the emulator) ------------


def _two_bursts() -> np.ndarray:
    """0.5 s silence, 0.5 s tone, 0.3 s pause, 0.5 s tone, 1.5 s silence: one turn, one pause."""
    pcm = np.zeros(52800)
    pcm[8000:16000] = _tone(500.0, 16000, 0.5)
    pcm[20800:28800] = _tone(500.0, 16000, 0.5)
    return pcm


def test_vad_reports_pause_and_resume_inside_a_turn_when_asked() -> None:
    pcm = _two_bursts()
    det = SpeechDetector(16000, pauses=True)
    frames = frame_pcm((pcm * 32767).astype(np.int16), 16000, 80)
    seen: list[tuple[int, VadEvent]] = []
    for i, frame in enumerate(frames):
        seen += [(i, e) for e in det.feed(frame)]
    assert [e for _, e in seen] == [
        VadEvent("onset", 8000),
        VadEvent("pause", 15999),  # last speech sample of the first burst
        VadEvent("resume", 20800),  # first speech sample of the second
        VadEvent("pause", 28799),
        VadEvent("offset", 28799),
    ]
    frame_of = {e.kind + str(e.sample_index): i for i, e in seen}
    hangover = VadParams().hangover_s * 16000
    # a pause is known once hangover_s of non-speech followed, long before the turn gap
    assert (frame_of["pause15999"] + 1) * 1280 >= 16000 + hangover
    assert frame_of["pause15999"] * 1280 < 16000 + hangover + 1280
    assert frame_of["pause28799"] < frame_of["offset28799"]
    # without pauses=True the events are the turn boundaries only, as before
    plain = SpeechDetector(16000)
    plain_events = [e for f in frames for e in plain.feed(f)]
    assert plain_events == [VadEvent("onset", 8000), VadEvent("offset", 28799)]
    assert detect_speech(pcm, 16000) == [SpeechSegment(0.5, 28799 / 16000)]


def test_vad_pause_events_do_not_change_turns_and_do_not_depend_on_chunking() -> None:
    # the conversation (two turns, the second holding a ~0.7 s pause) and every fixture: the
    # same events for any chunking; onset/offset exactly those of pauses=False; each turn reads
    # onset (pause resume)* [pause] offset
    from voiceload.fixtures import load_manifest

    signals = [_conversation(), (_two_bursts() * 32767).astype(np.int16)]
    signals += [load_linear16(f.path, 16000) for f in load_manifest().fixtures]
    resumes = 0
    for pcm in signals:
        for params in (VadParams(), VadParams(turn_gap_s=0.5)):
            expected = _events(SpeechDetector(16000, params, pauses=True), pcm, 1280, True)
            for chunk in (1, 160, 1283, pcm.size):
                if chunk == 1 and pcm.size > 100_000:
                    chunk = 7
                got = _events(SpeechDetector(16000, params, pauses=True), pcm, chunk, False)
                assert got == expected, (chunk, params)
            boundaries = [e for e in expected if e.kind in ("onset", "offset")]
            assert boundaries == _events(SpeechDetector(16000, params), pcm, 1280, True)
            text = "".join(e.kind[0] for e in expected)  # o=onset/offset, p=pause, r=resume
            kinds = [e.kind for e in expected]
            for i, kind in enumerate(kinds):
                if kind == "resume":
                    resumes += 1
                    assert kinds[i - 1] == "pause"
                    assert expected[i].sample_index > expected[i - 1].sample_index
                if kind == "pause":
                    assert kinds[i - 1] in ("onset", "resume")
            assert text.count("o") % 2 == 0
    assert resumes > 0  # the conversation's pause inside its second turn, at least
