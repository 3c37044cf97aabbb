"""What Aura's binary frames actually hold, found from their bytes, not assumed (pure).

Deepgram's streaming ``/v1/speak`` socket sends raw samples: ``encoding`` ``linear16``
(default), ``mulaw`` or ``alaw`` at ``sample_rate`` (default 24000), see the ``SpeakV1Encoding``
values of Deepgram's SDK
(https://github.com/deepgram/deepgram-python-sdk/blob/main/src/deepgram/speak/v1/raw_client.py,
``encoding`` / ``sample_rate`` query parameters). Workers AI's Aura models also list
containers (``wav``, ``ogg``) and compressed encodings (``mp3``, ``opus``, ``flac``, ``aac``) in
their input schema (https://developers.cloudflare.com/workers-ai/models/aura-1/), and how those
map onto the WebSocket is not documented. So the first bytes of each request's audio are
sniffed:

==========================  =================================================================
first bytes                 audio
==========================  =================================================================
``RIFF....WAVE``            a WAV header: its ``fmt`` chunk gives the encoding (PCM 16-bit,
                            mu-law, A-law) and the sample rate; the header is stripped
``ID3`` / MPEG frame sync   MP3: compressed, refused
``OggS``                    Ogg (Vorbis / Opus): compressed, refused
``fLaC``                    FLAC: compressed, refused
anything else               raw samples in the encoding and sample rate the URL asked for
==========================  =================================================================

Compressed audio is refused with :class:`UnmeasurableAudio` (one line saying why and what to
ask for instead) rather than timed wrongly: ``aura.ttfa``, ``aura.stall`` and audio seconds
need the duration of every frame as it arrives, which a compressed stream does not give
exactly without decoding frame by frame. mu-law and A-law samples are decoded to linear16 for
the onset detector with libsndfile (``soundfile``, already a dependency).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import soundfile

#: Encodings of raw samples this client can time: name -> bytes per sample.
RAW_ENCODINGS = {"linear16": 2, "mulaw": 1, "alaw": 1}
_SNDFILE_SUBTYPE = {"mulaw": "ULAW", "alaw": "ALAW"}
#: WAV ``fmt`` audio format codes (with the bits per sample they need) -> encoding.
_WAV_CODES = {(1, 16): "linear16", (7, 8): "mulaw", (6, 8): "alaw"}
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_SNIFF_BYTES = 4  # enough to tell every non-WAV signature apart
_MAX_HEADER_BYTES = 64 * 1024  # a WAV header longer than this is not a header we can read


class UnmeasurableAudio(Exception):
    """The audio cannot be timed exactly (compressed, or a WAV of an unsupported kind)."""


@dataclass(frozen=True)
class AudioFormat:
    """How to read the samples: raw ``encoding`` at ``sample_rate_hz``, mono.

    ``container`` is ``"raw"`` or ``"wav"`` (whose header was stripped)."""

    encoding: str
    sample_rate_hz: int
    container: str = "raw"

    @property
    def bytes_per_sample(self) -> int:
        return RAW_ENCODINGS[self.encoding]


_MP3_KBPS = {  # (MPEG-1?, bitrate index) -> kbit/s, Layer III
    **{(True, i): k for i, k in enumerate(
        (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320))},
    **{(False, i): k for i, k in enumerate(
        (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160))},
}  # fmt: skip
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(head: bytes, pos: int) -> int | None:
    """Length of the MP3 (Layer III) or AAC (ADTS) frame whose header starts at ``pos``;
    None when the 4 bytes there are not a valid header."""
    if len(head) < pos + 7 or head[pos] != 0xFF or head[pos + 1] & 0xE0 != 0xE0:
        return None
    b1, b2 = head[pos + 1], head[pos + 2]
    layer = (b1 >> 1) & 0x03
    if layer == 0 and b1 & 0xF0 == 0xF0:  # ADTS (AAC): 13-bit frame length in bytes 3..5
        length = ((head[pos + 3] & 0x03) << 11) | (head[pos + 4] << 3) | (head[pos + 5] >> 5)
        return length if (b2 >> 2) & 0x0F < 13 and length >= 7 else None
    version = (b1 >> 3) & 0x03
    bitrate_index, rate_index = b2 >> 4, (b2 >> 2) & 0x03
    if layer != 1 or version == 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    rate = _MP3_RATES[version][rate_index]
    kbps = _MP3_KBPS[(version == 3, bitrate_index)]
    return (144 if version == 3 else 72) * kbps * 1000 // rate + ((b2 >> 1) & 1)


def sniff_compressed(head: bytes) -> str | None:
    """The name of the compressed format ``head`` starts with, or None.

    MP3 without an ID3 tag and AAC in ADTS are recognised by two consecutive valid frame
    headers, so raw linear16 that happens to start with bytes ``FF Ex`` is not mistaken for
    them (call again with more bytes while :func:`needs_more` says so)."""
    if head.startswith(b"ID3"):
        return "MP3 (ID3 tag)"
    if head.startswith(b"OggS"):
        return "Ogg"
    if head.startswith(b"fLaC"):
        return "FLAC"
    length = _mpeg_frame_length(head, 0)
    if length is not None and _mpeg_frame_length(head, length) is not None:
        return "AAC (ADTS)" if (head[1] >> 1) & 0x03 == 0 else "MP3 (MPEG frame)"
    return None


def needs_more(head: bytes) -> bool:
    """Whether ``head`` is too short to tell raw samples from a compressed stream."""
    if len(head) < _SNIFF_BYTES and any(
        sig.startswith(head) for sig in (b"ID3", b"OggS", b"fLaC", b"RIFF")
    ):
        return True
    if head[:1] != b"\xff" or len(head) >= _MAX_HEADER_BYTES:
        return False
    if len(head) < 7:
        return True  # a frame header needs 7 bytes
    length = _mpeg_frame_length(head, 0)
    return length is not None and len(head) < length + 7  # wait for the second header


def parse_wav_header(data: bytes) -> tuple[AudioFormat, int] | None:
    """``(format, header length)`` of a WAV header at the start of ``data``; None while the
    ``data`` chunk header has not arrived yet. Raises :class:`UnmeasurableAudio` for a WAV
    whose samples are not mono 16-bit PCM, mu-law or A-law. The ``data`` chunk's size is
    ignored: a streamed WAV often states 0 or 0xFFFFFFFF."""
    if len(data) < 12:
        return None
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise UnmeasurableAudio("Aura sent a RIFF file that is not WAVE")
    pos, fmt = 12, None
    while len(data) >= pos + 8:
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"data":
            if fmt is None:
                raise UnmeasurableAudio("Aura sent a WAV header with no 'fmt ' chunk before 'data'")
            return fmt, body
        if len(data) < body + size:
            return None
        if chunk_id == b"fmt ":
            fmt = _wav_format(data[body : body + size])
        pos = body + size + (size & 1)  # chunks are padded to an even length
    return None


def _wav_format(chunk: bytes) -> AudioFormat:
    if len(chunk) < 16:
        raise UnmeasurableAudio("Aura sent a WAV 'fmt ' chunk shorter than 16 bytes")
    code, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", chunk)
    if code == _WAVE_FORMAT_EXTENSIBLE and len(chunk) >= 26:
        code = struct.unpack_from("<H", chunk, 24)[0]  # the sub-format GUID's first two bytes
    encoding = _WAV_CODES.get((code, bits))
    if encoding is None or channels != 1:
        raise UnmeasurableAudio(
            f"Aura sent WAV audio voiceload cannot time (format code {code}, {bits}-bit,"
            f" {channels} channel(s)); ask for encoding=linear16"
        )
    return AudioFormat(encoding, rate, container="wav")


def to_linear16(samples: bytes, encoding: str) -> bytes:
    """``samples`` (whole samples of ``encoding``) as linear16, for the onset detector."""
    if encoding == "linear16" or not samples:
        return samples
    pcm, _ = soundfile.read(
        io.BytesIO(samples), dtype="int16", format="RAW", subtype=_SNDFILE_SUBTYPE[encoding],
        samplerate=8000, channels=1,  # the rate does not change the decoded values
    )  # fmt: skip
    return bytes(pcm.tobytes())


class AuraAudio:
    """The audio of one Aura request, frame by frame: samples counted, header stripped.

    ``encoding`` / ``sample_rate_hz`` are what the URL asked for (Aura's defaults when it asked
    for nothing); a WAV header overrides both. :meth:`feed` returns ``(samples, linear16)`` for
    each frame: how many whole samples it completed (its duration is ``samples /
    format.sample_rate_hz``) and those samples as linear16. Raises :class:`UnmeasurableAudio`
    on compressed audio.
    """

    def __init__(self, encoding: str = "linear16", sample_rate_hz: int = 24_000) -> None:
        if encoding not in RAW_ENCODINGS:
            raise UnmeasurableAudio(
                f"Aura encoding {encoding!r} cannot be timed; use one of {', '.join(RAW_ENCODINGS)}"
            )
        self.asked = AudioFormat(encoding, sample_rate_hz)
        self.format: AudioFormat | None = None  # known after the first bytes
        self._head = b""  # bytes held until the format is known
        self._carry = b""  # a sample split across frames

    def feed(self, data: bytes) -> tuple[int, bytes]:
        """Account one binary frame; returns ``(whole samples, the samples as linear16)``."""
        if self.format is None:
            self._head += data
            found = self._detect()
            if found is None:
                return 0, b""
            self.format, start = found
            data, self._head = self._head[start:], b""
        width = self.format.bytes_per_sample
        buf = self._carry + data if self._carry else data
        whole = len(buf) - len(buf) % width
        self._carry = buf[whole:]
        return whole // width, to_linear16(buf[:whole], self.format.encoding)

    def _detect(self) -> tuple[AudioFormat, int] | None:
        head = self._head
        if head.startswith(b"RIFF"):
            if len(head) > _MAX_HEADER_BYTES:
                raise UnmeasurableAudio("Aura sent a WAV header longer than 64 KiB")
            return parse_wav_header(head)
        if needs_more(head):
            return None  # too short to tell yet
        compressed = sniff_compressed(head)
        if compressed is not None:
            raise UnmeasurableAudio(
                f"Aura sent {compressed} audio: voiceload cannot time compressed audio exactly"
                " (aura.ttfa, aura.stall and audio seconds would be wrong); ask for"
                " encoding=linear16, mulaw or alaw"
            )
        return self.asked, 0
