"""One emulated Flux stream, sans-I/O: audio and control messages in, server messages out.

The server feeds what it receives (:meth:`FluxStream.feed_audio`, :meth:`FluxStream.control`)
with the monotonic time it received it, calls :meth:`FluxStream.poll` to collect what is due,
and sleeps until :meth:`FluxStream.next_wakeup_ns`. Nothing here reads a clock.

Timing comes only from the audio actually received:

- the VAD (:class:`voiceload.audio.SpeechDetector` with ``pauses=True``) on the received PCM
  decides where speech starts, pauses (a burst ends, ``hangover_s`` = 0.1 s after its last
  sample), resumes, and where a VAD turn ends (``vad_turn_gap_s`` of silence); sample indices
  are of *received* audio, and ``audio_window_*`` are seconds of received audio;
- ``StartOfTurn`` goes out with the frame that confirms speech when no turn is open; an
  ``Update`` for about every ``update_interval_s`` of received audio (none in a frame that
  carried a state change);
- **end of turn counts from when speech stops**: at a pause, ``EndOfTurn`` is due at (arrival
  of the frame holding the last speech sample) + the end-of-turn delay drawn for that pause
  (capped at ``eot_timeout_ms``), or when the pause is detected if that is later; with
  ``eager_eot_threshold`` set, ``EagerEndOfTurn`` is due at ``eager_fraction`` of that delay.
  Speech resuming before ``EndOfTurn`` cancels both (``TurnResumed`` if ``EagerEndOfTurn`` went
  out); speech resuming *after* ``EndOfTurn`` opens a new turn (``StartOfTurn``), as the real
  service does. Speech after ``vad_turn_gap_s`` of silence is the next turn: if the drawn delay
  has not run out by then, ``EndOfTurn`` goes out with the frame that confirms the new speech,
  just before its ``StartOfTurn`` (so a long draw never merges two of a fixture's turns);
- the emulator plays the model's semantic judgement with the reference: a pause counts as a
  possible end of turn only once the turn is *complete*, i.e. the speech received since the
  VAD turn's onset (to the pause) spans the reference turn's measured speech
  (``offset_s - onset_s`` in the manifest) less :data:`COMPLETE_TOLERANCE_S`, or the VAD has
  seen the turn's offset, or there is no reference (placeholder words: every pause counts).
  At a pause of an incomplete turn only the forced end is armed (``eot_timeout_ms`` after the
  pause) and no ``EagerEndOfTurn``: a mid-sentence pause never splits a fixture's turn,
  whatever the drawn delay;
- ``ForceEndTurn`` ends the open turn at once;
- all messages after ``Connected`` wait until ``first_response_ms`` after the first audio frame.

Transcripts: with a reference (the fixture named by the ``tag`` query parameter), VAD turn ``k``
carries the words of reference turn ``k``, revealed in proportion to the speech received and
all of them once the turn is complete (so ``EagerEndOfTurn`` and ``EndOfTurn`` carry the
reference turn exactly). A turn opened by speech resuming after ``EndOfTurn`` (or after
``ForceEndTurn``) carries the words of the same reference turn that no ``EndOfTurn`` carried yet
(placeholder words if all were sent). Without a reference, placeholder words at a speaking
rate.

Message legality (sequence ids, turn index, the §3.5 rules) is :class:`FluxTurnMachine`'s job.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from voiceload.audio import SpeechDetector, VadParams
from voiceload.emulator import codecs
from voiceload.emulator.realism import Realism, flux_warning_text
from voiceload.protocol.flux import (
    UPDATE_INTERVAL_S,
    Configure,
    ConfigureFailure,
    ConfigureSuccess,
    Connected,
    FluxError,
    FluxTurnMachine,
    ForceEndTurn,
    TurnEvent,
    TurnInfo,
    TurnState,
    Word,
)
from voiceload.protocol.params import first_values

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

#: Words of placeholder transcripts, cycled.
PLACEHOLDER_WORDS = (
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
)

# end_of_turn_confidence values per event (the model's EoT belief, as in Deepgram's example)
_CONF_SPEAKING = 0.05
_CONF_PAUSED = 0.3

#: A VAD turn is complete once its speech spans the reference turn's less this. Measured on the
#: manifest fixtures streamed in 80 ms frames at 8, 16, 24, 44.1 and 48 kHz, the speech up to
#: a turn's last pause differs from the manifest's ``offset_s - onset_s`` by at most 0.01 s;
#: an earlier pause inside the turn leaves at least ``hangover_s + min_speech_s`` = 0.16 s of
#: speech to come (0.58 s on the fixtures), so 0.1 s never takes it for the end.
COMPLETE_TOLERANCE_S = 0.1


#: Flux input the emulator decodes (to linear16, which its VAD reads).
EMULATED_ENCODINGS = tuple(codecs.SAMPLE_BYTES)


def emulation_problem(params: Sequence[tuple[str, str]]) -> str | None:
    """Why the emulator cannot serve Flux parameters its route accepts, or None.

    A route's own rules come first (:mod:`voiceload.protocol.params`); this is only the
    emulator's limit: it decodes ``linear16``, ``linear32``, ``mulaw`` and ``alaw``
    (:mod:`.codecs`), so Deepgram's Opus encodings are refused with a message saying so. With
    no ``encoding`` on
    the Deepgram route (containerized audio) the stream is read as linear16 at ``sample_rate``
    (16000 when absent), which is what a WAV container of linear16 carries after its header.
    """
    encoding = first_values(params).get("encoding")
    if encoding is not None and encoding not in EMULATED_ENCODINGS:
        return (
            f"encoding {encoding!r} is accepted by the service but not emulated: the voiceload"
            f" emulator decodes {', '.join(EMULATED_ENCODINGS)} only"
        )
    return None


@dataclass(frozen=True)
class Close:
    """Close the connection: ``code`` None means a close frame without a status code."""

    code: int | None
    reason: str = ""


@dataclass(frozen=True)
class RawText:
    """A text frame already serialised (a message :mod:`voiceload.protocol.flux` has no type
    for, e.g. the realism profile's ``Warning``), with its trace fields."""

    text: str
    record: dict[str, Any]


Outgoing = (
    Connected | TurnInfo | ConfigureSuccess | ConfigureFailure | FluxError | RawText | Close
)


class AudioDecodeError(Exception):
    """A binary frame that cannot be linear16 audio (odd byte count): close 1008 DATA-0000."""


@dataclass(frozen=True)
class ReferenceTurn:
    """The expected words of one turn and how many seconds of speech carry them."""

    words: tuple[str, ...]
    speech_s: float


@dataclass(frozen=True)
class StreamParams:
    """Per-stream settings: query parameters of the upgrade plus emulator config values."""

    sample_rate: int = 16000
    eot_threshold: float = 0.7
    eager_eot_threshold: float | None = None
    eot_timeout_ms: int = 5000
    keyterms: tuple[str, ...] = ()
    update_interval_s: float = UPDATE_INTERVAL_S
    placeholder_words_per_s: float = 2.5
    vad_turn_gap_s: float = 0.5
    eager_fraction: float = 0.5
    idle_timeout_s: float = 10.0
    first_response_ms: float = 0.0
    eot_threshold_max: float = 1.0  # Configure's upper bound: the route's (protocol.params)
    encoding: str = "linear16"  # of the audio received (one of EMULATED_ENCODINGS)


@dataclass
class _VadTurn:
    """A turn as the VAD sees it (``vad_turn_gap_s``); VAD turn k carries reference turn k."""

    onset_sample: int
    reference: ReferenceTurn | None
    all_words: tuple[Word, ...]
    last_speech: int | None = None  # last speech sample while paused (None: speaking)
    ended: bool = False  # the VAD reported its offset
    sent: int = 0  # words of ``all_words`` already carried by an EndOfTurn


@dataclass
class _Turn:
    """The open emulated turn (StartOfTurn sent, no EndOfTurn yet), inside one VAD turn."""

    vad: _VadTurn
    first_word: int  # index into vad.all_words of the first word this turn carries
    start_sample: int  # its first speech sample
    paused_at: int | None = None  # last speech sample while paused (None: speaking)
    pause_arrival_ns: int = 0  # arrival of the frame holding ``paused_at``
    armed_complete: bool = False  # the timers were set for a complete turn
    eot_due_ns: int | None = None
    eager_due_ns: int | None = None
    placeholders: tuple[Word, ...] = ()  # placeholder words built so far (they never change)
    merge: bool | None = None  # realism: the next VAD turn joins this one (None: not drawn)
    prefix: tuple[Word, ...] = ()  # realism: words of the VAD turns merged into this one


class FluxStream:
    """The emulated server side of one Flux WebSocket.

    ``eot_delays_ms`` yields one end-of-turn delay per turn (drawn by the caller from the
    config's seeded distribution). ``reference`` holds the turns of the fixture named by ``tag``
    (empty: placeholder words). ``realism`` (None: off) splits and merges reference turns and
    adds ``Warning`` messages (:mod:`voiceload.emulator.realism`).
    """

    def __init__(
        self,
        request_id: str,
        params: StreamParams,
        eot_delays_ms: Iterator[float],
        reference: tuple[ReferenceTurn, ...] = (),
        *,
        now_ns: int,
        realism: Realism | None = None,
    ) -> None:
        self.realism = realism
        self._vad = SpeechDetector(
            params.sample_rate, VadParams(turn_gap_s=params.vad_turn_gap_s), pauses=True
        )
        self.params = params
        self.machine = FluxTurnMachine(request_id, params.eager_eot_threshold is not None)
        self._eot_delays = eot_delays_ms
        self._reference = reference
        self._sr = params.sample_rate
        self._update_every = max(1, round(params.update_interval_s * self._sr))
        self._received = 0  # samples received
        self._next_update = self._update_every
        self._reported = 0  # samples covered by the last TurnInfo sent
        self._frames: deque[tuple[int, int]] = deque()  # (end sample, arrival ns), recent only
        self._keep_samples = int((params.vad_turn_gap_s + 1.0) * self._sr)
        self._turn: _Turn | None = None
        self._vad_turn: _VadTurn | None = None  # the VAD turn in progress
        self._vad_turns = 0  # VAD turns started (the next one carries reference turn n)
        self._window_start_s = 0.0
        self._last_audio_ns = now_ns
        self._gate_ns: int | None = None  # first audio + first_response delay
        self._outbox: deque[Outgoing] = deque([self.machine.connected()])
        self._closed = False
        self._thresholds: dict[str, float] = {
            "eot_threshold": params.eot_threshold,
            "eot_timeout_ms": params.eot_timeout_ms,
        }
        if params.eager_eot_threshold is not None:
            self._thresholds["eager_eot_threshold"] = params.eager_eot_threshold
        self._keyterms = params.keyterms

    # -- input ----------------------------------------------------------------------------

    def feed_audio(self, pcm: bytes, now_ns: int) -> None:
        """One binary frame received at ``now_ns``, in the stream's ``encoding``; raises
        :class:`AudioDecodeError` when it is not a whole number of samples."""
        if self._closed:
            return
        encoding = self.params.encoding
        if encoding == "linear16":
            if len(pcm) % 2:
                raise AudioDecodeError(f"binary frame of {len(pcm)} bytes is not linear16 audio")
        else:
            try:
                pcm = codecs.to_linear16(pcm, encoding)
            except codecs.AudioEncodingError as exc:
                raise AudioDecodeError(f"binary frame: {exc}") from None
        if not pcm:
            return
        self._last_audio_ns = now_ns
        if self._gate_ns is None:
            self._gate_ns = now_ns + int(self.params.first_response_ms * NS_PER_MS)
        self._received += len(pcm) // 2
        self._frames.append((self._received, now_ns))
        while self._frames and self._frames[0][0] < self._received - self._keep_samples:
            self._frames.popleft()
        changed = False
        for event in self._vad.feed(pcm):
            if event.kind == "onset":
                changed |= self._on_onset(event.sample_index)
            elif event.kind == "resume":
                changed |= self._on_resume(event.sample_index)
            elif event.kind == "pause":
                self._on_pause(event.sample_index, now_ns)
            else:
                self._on_offset(event.sample_index, now_ns)
        if self._received >= self._next_update:
            self._next_update = (self._received // self._update_every + 1) * self._update_every
            if not changed:
                self._emit(TurnEvent.UPDATE, _CONF_SPEAKING if self._speaking() else _CONF_PAUSED)

    def control(self, msg: Configure | ForceEndTurn | None, now_ns: int) -> None:
        """A control message; ``None`` stands for ``CloseStream``."""
        if self._closed:
            return
        if msg is None:  # CloseStream: decode what was received, then close without status
            if self._received > self._reported:
                self._emit(TurnEvent.UPDATE, _CONF_PAUSED)
            self._close(None)
        elif isinstance(msg, ForceEndTurn):
            if self._turn is not None:
                self._end_turn(forced=True)
        else:
            self._configure(msg)

    def poll(self, now_ns: int) -> list[Outgoing]:
        """Everything due at ``now_ns``, in order; empty while the first-response gate is shut."""
        if not self._closed:
            self._fire_timers(now_ns)
        if self._gate_ns is None or now_ns >= self._gate_ns:
            out = list(self._outbox)
            self._outbox.clear()
            return out
        if self._outbox and isinstance(self._outbox[0], Connected):  # never held back
            return [self._outbox.popleft()]
        return []

    def has_due_output(self, now_ns: int) -> bool:
        """Whether :meth:`poll` at ``now_ns`` would return something without firing a timer."""
        if not self._outbox:
            return False
        gate = self._gate_ns
        return gate is None or now_ns >= gate or isinstance(self._outbox[0], Connected)

    def next_wakeup_ns(self) -> int | None:
        """The earliest time :meth:`poll` may have something new (None: only input will)."""
        if self._closed and not self._outbox:
            return None
        times = []
        if self._outbox and self._gate_ns is not None:
            times.append(self._gate_ns)
        if not self._closed:
            times.append(self._last_audio_ns + int(self.params.idle_timeout_s * NS_PER_S))
            turn = self._turn
            if turn is not None:
                if turn.eager_due_ns is not None and self.machine.state is TurnState.TURN_ONGOING:
                    times.append(turn.eager_due_ns)
                if turn.eot_due_ns is not None:
                    times.append(turn.eot_due_ns)
        return min(times) if times else None

    @property
    def closed(self) -> bool:
        return self._closed

    # -- turns ----------------------------------------------------------------------------

    def _on_onset(self, sample: int) -> bool:
        """A new VAD turn starts; True when a state-changing message was emitted.

        A turn still open (its delay outlasted the turn gap) ends now, before the new one,
        unless the realism profile merges the two: then the open turn goes on with the new VAD
        turn's words after its own.
        """
        turn = self._turn
        merging = turn is not None and turn.merge is True
        if turn is not None and not merging:
            self._end_turn(forced=False)
        ref = self._reference[self._vad_turns] if self._vad_turns < len(self._reference) else None
        self._vad_turns += 1
        vad = _VadTurn(sample, ref, self._words_for(sample, ref))
        self._vad_turn = vad
        if turn is not None and merging:
            old = turn.vad
            if old.all_words:  # the merged turn carries the earlier words first
                turn.prefix += self._turn_words(turn)
                old.sent = len(old.all_words)
            turn.vad, turn.first_word, turn.merge = vad, 0, None
        return self._on_speech(vad, sample)

    def _on_resume(self, sample: int) -> bool:
        """Speech again inside the VAD turn (after a pause shorter than the turn gap)."""
        vad = self._vad_turn
        if vad is None:
            return False
        vad.last_speech = None
        return self._on_speech(vad, sample)

    def _on_speech(self, vad: _VadTurn, sample: int) -> bool:
        """Speech (re)starts at ``sample``: goes on with the open turn or opens one."""
        turn = self._turn
        if turn is not None:  # speech again before EndOfTurn: the turn goes on
            turn.paused_at = None
            turn.eot_due_ns = turn.eager_due_ns = None
            turn.armed_complete = False
            if self.machine.state is TurnState.AWAITING_END:
                self._emit(TurnEvent.TURN_RESUMED, _CONF_SPEAKING)
                return True
            return False
        self._turn = _Turn(vad, vad.sent, sample)
        self._emit(TurnEvent.START_OF_TURN, _CONF_SPEAKING)
        if self.realism is not None and self.realism.flux_warning(self.machine.turn_index):
            seq = self.machine.next_sequence_id()
            text = flux_warning_text(self.machine.request_id, seq)
            self._outbox.append(RawText(text, {"type": "Warning", "seq": seq}))
        return True

    def _on_pause(self, sample: int, now_ns: int) -> None:
        """Speech stopped at ``sample`` (the VAD knows after its hang-over): arm the timers."""
        vad = self._vad_turn
        if vad is None:
            return
        vad.last_speech = sample
        turn = self._turn
        if turn is not None:
            turn.paused_at = sample
            turn.pause_arrival_ns = self._arrival_ns(sample, now_ns)
            if (
                self.realism is not None
                and vad.reference is not None
                and not self._complete(vad)
                and self.realism.split(self.machine.turn_index)
            ):  # realism: the model takes a pause inside the turn for its end
                self._end_turn(forced=False)
                return
            self._arm(turn, now_ns)

    def _on_offset(self, sample: int, now_ns: int) -> None:
        """The VAD turn ended (``vad_turn_gap_s`` of silence): it is complete now."""
        vad = self._vad_turn
        if vad is None:
            return
        vad.ended = True
        if vad.last_speech is None:  # no pause reported first (hangover_s >= the turn gap)
            vad.last_speech = sample
        self._vad_turn = None
        turn = self._turn
        if turn is None or turn.vad is not vad:
            return
        if turn.paused_at is None:
            turn.paused_at = sample
            turn.pause_arrival_ns = self._arrival_ns(sample, now_ns)
        if not turn.armed_complete:
            self._arm(turn, now_ns)

    def _arrival_ns(self, sample: int, now_ns: int) -> int:
        """Arrival of the frame holding ``sample`` (``now_ns`` if no longer remembered)."""
        for end_sample, at_ns in self._frames:
            if end_sample > sample:
                return at_ns
        return now_ns

    def _arm(self, turn: _Turn, now_ns: int) -> None:
        """Set the turn's timers, counted from the arrival of its last speech sample."""
        timeout_ms = float(self._thresholds["eot_timeout_ms"])
        start_ns = turn.pause_arrival_ns
        turn.armed_complete = self._complete(turn.vad)
        if not turn.armed_complete:  # mid-sentence pause: only the forced end of turn
            turn.eot_due_ns = max(start_ns + int(timeout_ms * NS_PER_MS), now_ns)
            turn.eager_due_ns = None
            return
        if turn.merge is None and self.realism is not None:
            next_ref = self._vad_turns < len(self._reference)  # another reference turn follows
            turn.merge = next_ref and self.realism.merge(self.machine.turn_index)
        if turn.merge:  # realism: no EndOfTurn now; the next turn's speech continues this one
            turn.eot_due_ns = max(start_ns + int(timeout_ms * NS_PER_MS), now_ns)
            turn.eager_due_ns = None
            return
        delay_ms = min(next(self._eot_delays), timeout_ms)
        turn.eot_due_ns = max(start_ns + int(delay_ms * NS_PER_MS), now_ns)
        if self.machine.eager_enabled:
            eager_ms = delay_ms * self.params.eager_fraction
            turn.eager_due_ns = max(start_ns + int(eager_ms * NS_PER_MS), now_ns)

    def _complete(self, vad: _VadTurn) -> bool:
        """Whether the VAD turn has said all of its reference turn (see the module docstring)."""
        ref = vad.reference
        if ref is None or vad.ended:
            return True
        return self._speech_s(vad) >= ref.speech_s - COMPLETE_TOLERANCE_S

    def _speech_s(self, vad: _VadTurn) -> float:
        """Seconds from the VAD turn's onset to its last speech sample (or the audio received)."""
        end = vad.last_speech + 1 if vad.last_speech is not None else self._received
        return (end - vad.onset_sample) / self._sr

    def _fire_timers(self, now_ns: int) -> None:
        turn = self._turn
        if turn is not None:
            if (
                turn.eager_due_ns is not None
                and now_ns >= turn.eager_due_ns
                and self.machine.state is TurnState.TURN_ONGOING
            ):
                self._emit(
                    TurnEvent.EAGER_END_OF_TURN, self._thresholds.get("eager_eot_threshold", 0.5)
                )
            if turn.eot_due_ns is not None and now_ns >= turn.eot_due_ns:
                self._end_turn(forced=False)
        idle_ns = int(self.params.idle_timeout_s * NS_PER_S)
        if now_ns - self._last_audio_ns >= idle_ns:
            self._close(1011, "NET-0001")

    def _end_turn(self, *, forced: bool) -> None:
        conf = max(self._thresholds["eot_threshold"], 0.7)
        turn = self._turn
        assert turn is not None
        if turn.first_word < len(turn.vad.all_words):  # a later turn carries only the rest
            turn.vad.sent = turn.first_word + len(self._turn_words(turn))
        if forced or (self.machine.state is TurnState.TURN_ONGOING and self.machine.eager_enabled):
            transcript, words = self._transcript()
            for msg in self.machine.emit_end_of_turn_forced(
                transcript=transcript,
                words=words,
                audio_window_start=self._window_start_s,
                audio_window_end=self._window_end_s(),
                end_of_turn_confidence=conf,
            ):
                self._outbox.append(msg)
        else:
            self._emit(TurnEvent.END_OF_TURN, conf)
        self._window_start_s = self._window_end_s()
        self._turn = None

    def _speaking(self) -> bool:
        return self._turn is not None and self._turn.paused_at is None

    # -- messages -------------------------------------------------------------------------

    def _emit(self, event: TurnEvent, confidence: float) -> None:
        transcript, words = ("", ()) if self._turn is None else self._transcript()
        self._reported = self._received
        self._outbox.append(
            self.machine.emit(
                event,
                transcript=transcript,
                words=words,
                audio_window_start=self._window_start_s,
                audio_window_end=self._window_end_s(),
                end_of_turn_confidence=confidence,
            )
        )

    def _window_end_s(self) -> float:
        return round(self._received / self._sr, 3)

    def _transcript(self) -> tuple[str, tuple[Word, ...]]:
        """Words revealed so far in the open turn (see the module docstring)."""
        turn = self._turn
        assert turn is not None
        words = turn.prefix + self._turn_words(turn)
        return " ".join(w.word for w in words), words

    def _turn_words(self, turn: _Turn) -> tuple[Word, ...]:
        vad = turn.vad
        total = len(vad.all_words)
        if turn.first_word >= total:  # no reference (words left): placeholders at a rate
            end = turn.paused_at + 1 if turn.paused_at is not None else self._received
            speech_s = (end - turn.start_sample) / self._sr
            n = max(1, int(speech_s * self.params.placeholder_words_per_s))
            if len(turn.placeholders) < n:  # extend, do not rebuild, on every Update
                turn.placeholders += self._placeholder(
                    turn.start_sample, len(turn.placeholders), n
                )
            return turn.placeholders[:n]
        if self._complete(vad):
            n = total
        else:
            assert vad.reference is not None  # incomplete: a reference with speech_s > 0
            share = self._speech_s(vad) / vad.reference.speech_s
            n = min(total, int(total * share) + 1)
        n = max(n, turn.first_word + 1)  # a turn shows at least one new word
        return vad.all_words[turn.first_word : n]

    def _words_for(self, onset_sample: int, ref: ReferenceTurn | None) -> tuple[Word, ...]:
        if ref is None or not ref.words:
            return ()
        onset_s = onset_sample / self._sr
        step_s = ref.speech_s / len(ref.words)
        return tuple(
            Word(w, 0.9, round(onset_s + i * step_s, 3), round(onset_s + (i + 1) * step_s, 3))
            for i, w in enumerate(ref.words)
        )

    def _placeholder(self, onset_sample: int, first: int, n: int) -> tuple[Word, ...]:
        """Placeholder words ``first`` .. ``n - 1`` of a turn whose speech starts at
        ``onset_sample``."""
        onset_s = onset_sample / self._sr
        step_s = 1.0 / self.params.placeholder_words_per_s
        return tuple(
            Word(
                PLACEHOLDER_WORDS[i % len(PLACEHOLDER_WORDS)],
                0.9,
                round(onset_s + i * step_s, 3),
                round(onset_s + (i + 1) * step_s, 3),
            )
            for i in range(first, n)
        )

    def _configure(self, msg: Configure) -> None:
        thresholds = dict(msg.thresholds or {})
        ok = set(thresholds) <= {"eot_threshold", "eager_eot_threshold", "eot_timeout_ms"}
        eot = thresholds.get("eot_threshold", self._thresholds["eot_threshold"])
        eager = thresholds.get("eager_eot_threshold")
        timeout = thresholds.get("eot_timeout_ms", self._thresholds["eot_timeout_ms"])
        ok = ok and 0.5 <= eot <= self.params.eot_threshold_max and 500 <= timeout <= 60000
        ok = ok and (eager is None or 0.3 <= eager <= 0.9)
        # eager mode can only be switched on between turns (the machine checks rule 7)
        if eager is not None and not self.machine.eager_enabled:
            ok = ok and self.machine.state is TurnState.INITIAL
        if not ok:
            self._outbox.append(self.machine.configure_failure())
            return
        self._thresholds.update(thresholds)
        if eager is not None:
            self.machine.eager_enabled = True
        if msg.keyterms is not None:
            self._keyterms = msg.keyterms
        self._outbox.append(
            self.machine.configure_success(self._thresholds, self._keyterms, msg.language_hints)
        )

    def _close(self, code: int | None, reason: str = "") -> None:
        self._outbox.append(Close(code, reason))
        self._closed = True
