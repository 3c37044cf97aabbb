"""One emulated Aura (streaming TTS) socket, sans-I/O: client text in, frames out.

The server feeds each client text frame with its arrival time (:meth:`AuraStream.receive`),
collects what is due with :meth:`AuraStream.poll` and sleeps until
:meth:`AuraStream.next_wakeup_ns`. Nothing here reads a clock.

- ``Metadata`` first; ``Speak`` accumulates text (one over ``MAX_SPEAK_CHARS`` gets the answer
  of :func:`voiceload.protocol.aura.oversize_speak_response`); ``Flush`` turns the buffer into a
  job: after the first-byte delay, audio (linear16; ``mulaw``/``alaw`` when the URL asks) of
  ``len(text) / chars_per_s`` seconds (after
  ``leading_silence_ms`` of silence), a tone with a little noise, in ``chunk_ms`` chunks delivered
  at ``speed`` times real time, then ``Flushed``. Jobs run one after another. A Flush over the
  limit (20 per 60 s, ``FlushLimiter``) gets a ``Warning``; then, by ``over_limit_flush``
  (:data:`voiceload.emulator.behaviour.OVER_LIMIT_FLUSH`): ``keep_text`` (default) no audio and
  no ``Flushed``, the text stays buffered; ``drop_text`` the same but the text is discarded;
  ``synthesize`` the Flush is processed as usual.
- ``Clear`` drops the buffer and every pending chunk and answers ``Cleared`` at once.
- ``Close`` flushes (not subject to the Flush limit: it is not a Flush message), then closes
  (1000) once the audio is out.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from voiceload.emulator import codecs
from voiceload.emulator.behaviour import AuraSettings
from voiceload.emulator.flux_stream import Close
from voiceload.emulator.realism import Realism, aura_warning_text
from voiceload.protocol import aura
from voiceload.protocol.params import first_values

NS_PER_MS = 1_000_000

AuraOut = str | bytes | Close

#: Output encodings the emulator synthesises (linear16, re-encoded with :mod:`.codecs`).
EMULATED_ENCODINGS = ("linear16", "mulaw", "alaw")


def param_problem(params: Sequence[tuple[str, str]]) -> str | None:
    """Why the emulator cannot serve Aura parameters its route accepts, or None.

    A route's own rules come first (:mod:`voiceload.protocol.params`); this is only the
    emulator's limit: it synthesises :data:`EMULATED_ENCODINGS` (``linear16``, ``mulaw``,
    ``alaw``) as raw audio, so Workers AI's compressed ones (``mp3``, ``opus``, ``flac``,
    ``aac``) and containers (``wav``, ``ogg``) are refused with a message saying so. Any
    positive sample rate the route accepts is synthesised.
    """
    values = first_values(params)
    encoding = values.get("encoding", "linear16")
    if encoding not in EMULATED_ENCODINGS:
        return (
            f"encoding {encoding!r} is accepted by the service but not emulated: the voiceload"
            f" emulator synthesises {', '.join(EMULATED_ENCODINGS)} only"
        )
    container = values.get("container", "none")
    if container != "none":
        return (
            f"container {container!r} is accepted by the service but not emulated: the"
            " voiceload emulator streams raw audio only"
        )
    return None


def synthesize(n_chars: int, settings: AuraSettings, sample_rate: int) -> bytes:
    """The emulated speech for ``n_chars`` characters: silence, then a noisy 220 Hz tone.

    Length: ``leading_silence_ms`` + ``n_chars / chars_per_s`` seconds (at least one sample).
    """
    lead = int(settings.leading_silence_ms * sample_rate / 1000)
    n = max(1, round(n_chars / settings.chars_per_s * sample_rate))
    tone = _tone(sample_rate)
    if 2 * n > len(tone):
        tone = tone * (2 * n // len(tone) + 1)
    return bytes(2 * lead) + tone[: 2 * n]


_TONES: dict[int, bytes] = {}


def _tone(sample_rate: int) -> bytes:
    """60 s of tone + noise at about -12 dBFS, made once per rate (seeded: always the same)."""
    tone = _TONES.get(sample_rate)
    if tone is None:
        t = np.arange(sample_rate * 60) / sample_rate
        rng = np.random.default_rng(0)
        x = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 660 * t)
        x += 0.02 * rng.standard_normal(t.size)
        tone = (x * 32767).astype("<i2").tobytes()
        _TONES[sample_rate] = tone
    return tone


@dataclass
class _Job:
    audio: bytes
    first_ns: int  # when the first chunk is due
    flush_id: int
    sent_bytes: int = 0


@dataclass
class AuraStream:
    """The emulated server side of one Aura WebSocket."""

    request_id: str
    model_name: str
    settings: AuraSettings
    sample_rate: int
    first_byte_ms: Iterator[float]
    realism: Realism | None = None  # [realism]: a Warning before some Flushed
    encoding: str = "linear16"  # one of EMULATED_ENCODINGS
    _outbox: deque[AuraOut] = field(default_factory=deque)
    _jobs: deque[_Job] = field(default_factory=deque)
    _text: list[str] = field(default_factory=list)
    _next_id: int = 0
    _closing: bool = False
    _closed: bool = False

    def __post_init__(self) -> None:
        self._limiter = aura.FlushLimiter()
        width = codecs.SAMPLE_BYTES[self.encoding]
        self._chunk_bytes = width * max(1, self.sample_rate * self.settings.chunk_ms // 1000)
        self._chunk_ns = int(self.settings.chunk_ms * NS_PER_MS / self.settings.speed)
        self._outbox.append(
            aura.serialize_server_message(
                aura.Metadata(
                    request_id=self.request_id,
                    model_name=self.model_name,
                    model_version="emulated",
                    model_uuid=self.request_id,
                )
            )
        )

    def receive(self, data: str, now_ns: int) -> None:
        """One client text frame; :class:`RemoteProtocolError` if it is not an Aura message."""
        if self._closed or self._closing:
            return
        msg = aura.parse_client_message(data)
        if isinstance(msg, aura.Speak):
            if aura.speak_over_limit(len(msg.text)):
                warning, close = aura.oversize_speak_response(len(msg.text))
                if warning is not None:
                    self._outbox.append(aura.serialize_server_message(warning))
                if close is not None:
                    self._outbox.append(Close(close.code, close.reason))
                    self._closed = True
                return
            self._text.append(msg.text)
        elif isinstance(msg, aura.Flush):
            self._flush(now_ns)
        elif isinstance(msg, aura.Clear):
            self._text.clear()
            self._jobs.clear()
            self._outbox.append(
                aura.serialize_server_message(aura.Cleared(sequence_id=self._take_id()))
            )
        else:  # Close: flush what is buffered, close when the audio is out
            if self._text:
                self._flush(now_ns, limited=False)
            self._closing = True

    def poll(self, now_ns: int) -> list[AuraOut]:
        """Every frame due at ``now_ns``, in order."""
        while self._jobs and self._jobs[0].first_ns <= now_ns:
            job = self._jobs[0]
            due_chunks = (
                (now_ns - job.first_ns) // self._chunk_ns + 1 if self._chunk_ns else 1 << 30
            )
            end = min(len(job.audio), int(due_chunks) * self._chunk_bytes)
            while job.sent_bytes < end:
                stop = min(job.sent_bytes + self._chunk_bytes, len(job.audio))
                self._outbox.append(job.audio[job.sent_bytes : stop])
                job.sent_bytes = stop
            if job.sent_bytes < len(job.audio):
                break
            self._jobs.popleft()
            if self.realism is not None and self.realism.aura_warning(job.flush_id):
                self._outbox.append(aura_warning_text())
            self._outbox.append(
                aura.serialize_server_message(aura.Flushed(sequence_id=job.flush_id))
            )
        if self._closing and not self._jobs and not self._closed:  # Close: audio is out
            self._outbox.append(Close(1000))
            self._closed = True
        out = list(self._outbox)
        self._outbox.clear()
        return out

    def next_wakeup_ns(self) -> int | None:
        """When the next chunk is due (None: only input will bring anything)."""
        if not self._jobs:
            return None
        job = self._jobs[0]
        sent_chunks = -(-job.sent_bytes // self._chunk_bytes)
        return job.first_ns + sent_chunks * self._chunk_ns

    def _flush(self, now_ns: int, *, limited: bool = True) -> None:
        if limited and not self._limiter.allow(now_ns):  # over the limit: a Warning, then ...
            self._outbox.append(aura.serialize_server_message(aura.flush_limit_warning()))
            policy = self.settings.over_limit_flush
            if policy == "drop_text":
                self._text.clear()
            if policy != "synthesize":
                return
        text = "".join(self._text)
        self._text.clear()
        start_ns = now_ns + int(next(self.first_byte_ms) * NS_PER_MS)
        if self._jobs:  # after the previous job's last chunk
            last = self._jobs[-1]
            n_chunks = -(-len(last.audio) // self._chunk_bytes)
            start_ns = max(start_ns, last.first_ns + n_chunks * self._chunk_ns)
        audio = synthesize(len(text), self.settings, self.sample_rate) if text else b""
        audio = codecs.from_linear16(audio, self.encoding)
        self._jobs.append(_Job(audio, start_ns, self._take_id()))

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1


def error_message() -> str:
    """The fatal error frame of the ``error_message`` fault.

    Deepgram documents no fatal Aura message (PROTOCOLS.md §4.1); this mirrors ``Warning``'s
    fields with ``"type": "Error"`` [inf].
    """
    return json.dumps(
        {
            "type": "Error",
            "description": "emulated fault: internal server error",
            "code": "INTERNAL_SERVER_ERROR",
        },
        separators=(",", ":"),
    )
