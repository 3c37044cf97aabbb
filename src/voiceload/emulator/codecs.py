"""Raw audio encodings the emulator reads (Flux input) and writes (Aura output), sans-I/O.

Deepgram's ``/v2/listen`` takes raw ``linear16``, ``linear32``, ``mulaw`` and ``alaw`` (besides
Opus, which the emulator does not decode) and ``/v1/speak`` streams ``linear16``, ``mulaw`` and
``alaw`` (https://developers.deepgram.com/docs/encoding,
https://developers.deepgram.com/docs/tts-media-output-settings). The emulator works in linear16
inside (its VAD, its synthesiser) and converts at the edge with the ITU-T G.711 companding laws
(segment tables, as in the reference implementation), vectorised with numpy lookup tables.
(The standard library's ``audioop`` would do it, but it is deprecated and gone in Python 3.13.)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Bytes per sample of each raw encoding the emulator converts.
SAMPLE_BYTES = {"linear16": 2, "linear32": 4, "mulaw": 1, "alaw": 1}


class AudioEncodingError(ValueError):
    """A payload whose length is not a whole number of samples of its encoding."""


def _mulaw_decode_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


def _segment(magnitude: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """0..7: the G.711 segment of a biased magnitude (the position of its top bit above 7)."""
    top = np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32)
    return np.clip(top - 7, 0, 7)


def _mulaw_encode_table() -> npt.NDArray[np.uint8]:
    # the 14-bit form of the reference code: magnitude of (s >> 2), clipped, biased by 0x21
    s = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(s < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(s), 8159) + 0x21
    segment = np.maximum(np.floor(np.log2(magnitude)).astype(np.int32) - 5, 0)
    mantissa = (magnitude >> (np.minimum(segment, 7) + 1)) & 0x0F
    code = np.where(segment > 7, 0x7F, (np.minimum(segment, 7) << 4) | mantissa)
    return (code ^ mask).astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    s = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(s >= 0, 0x80, 0)
    magnitude = np.minimum(np.where(s >= 0, s, -s - 1), 32767)
    exponent = np.where(magnitude >= 256, _segment(magnitude), 0)
    shifted: npt.NDArray[np.int32] = np.where(
        exponent == 0, magnitude >> 4, magnitude >> (np.maximum(exponent, 1) + 3)
    )
    code: npt.NDArray[np.int32] = (sign | (exponent << 4) | (shifted & 0x0F)) ^ 0x55
    return code.astype(np.uint8)


_DECODE = {"mulaw": _mulaw_decode_table(), "alaw": _alaw_decode_table()}
_ENCODE = {"mulaw": _mulaw_encode_table(), "alaw": _alaw_encode_table()}


def to_linear16(data: bytes, encoding: str) -> bytes:
    """``data`` in ``encoding`` as linear16 (signed 16-bit little-endian) bytes.

    Raises :class:`AudioEncodingError` when ``data`` is not a whole number of samples, and
    :class:`KeyError` for an encoding not in :data:`SAMPLE_BYTES`.
    """
    width = SAMPLE_BYTES[encoding]
    if len(data) % width:
        raise AudioEncodingError(f"{len(data)} bytes is not a whole number of {encoding} samples")
    if encoding == "linear16":
        return data
    if encoding == "linear32":
        wide = np.frombuffer(data, dtype="<i4")
        return (wide >> 16).astype("<i2").tobytes()
    return _DECODE[encoding][np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def from_linear16(data: bytes, encoding: str) -> bytes:
    """linear16 ``data`` re-encoded as ``mulaw`` or ``alaw`` (``linear16``: unchanged)."""
    if encoding == "linear16":
        return data
    samples = np.frombuffer(data, dtype="<i2").astype(np.int32) + 32768
    return _ENCODE[encoding][samples].tobytes()
