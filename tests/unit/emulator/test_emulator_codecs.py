"""G.711 and linear32 conversions of the emulator (Deepgram's raw encodings)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from voiceload.emulator import codecs
from voiceload.emulator.aura_stream import AuraStream
from voiceload.emulator.behaviour import AuraSettings
from voiceload.emulator.flux_stream import AudioDecodeError, FluxStream, StreamParams
from voiceload.protocol import aura
from voiceload.protocol.flux import TurnEvent, TurnInfo

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


def test_known_g711_code_points() -> None:
    def decode(code: int, encoding: str) -> int:
        return int(np.frombuffer(codecs.to_linear16(bytes([code]), encoding), "<i2")[0])

    # mu-law: 0xFF and 0x7F are the two zeros, 0x00 / 0x80 the extremes; A-law: 0xD5 / 0x55
    # the smallest positive / negative steps
    assert [decode(c, "mulaw") for c in (0xFF, 0x7F, 0x00, 0x80)] == [0, 0, -32124, 32124]
    assert [decode(c, "alaw") for c in (0xD5, 0x55, 0x2A, 0xAA)] == [8, -8, -32256, 32256]
    assert codecs.from_linear16(np.int16(0).tobytes(), "mulaw") == b"\xff"
    assert codecs.from_linear16(np.int16(0).tobytes(), "alaw") == b"\xd5"


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_companding_round_trips_within_its_quantisation(encoding: str) -> None:
    back = np.frombuffer(
        codecs.to_linear16(codecs.from_linear16(ALL_INT16.tobytes(), encoding), encoding), "<i2"
    ).astype(np.int32)
    error = np.abs(back - ALL_INT16.astype(np.int32))
    # G.711 keeps 4 mantissa bits: the error stays within 1/16 of the value (+ the lowest step)
    assert np.all(error <= np.abs(ALL_INT16.astype(np.int32)) / 16 + 16)
    codes = np.arange(256, dtype=np.uint8).tobytes()
    decoded = codecs.to_linear16(codes, encoding)
    assert codecs.to_linear16(codecs.from_linear16(decoded, encoding), encoding) == decoded


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_bit_exact_with_the_reference_implementation_where_it_exists(encoding: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # gone in Python 3.13
    encode = audioop.lin2ulaw if encoding == "mulaw" else audioop.lin2alaw
    decode = audioop.ulaw2lin if encoding == "mulaw" else audioop.alaw2lin
    assert codecs.from_linear16(ALL_INT16.tobytes(), encoding) == encode(ALL_INT16.tobytes(), 2)
    codes = bytes(range(256))
    assert codecs.to_linear16(codes, encoding) == decode(codes, 2)


def test_linear32_keeps_the_top_16_bits_and_partial_samples_are_refused() -> None:
    wide = (ALL_INT16[::257].astype(np.int32) << 16).astype("<i4").tobytes()
    assert codecs.to_linear16(wide, "linear32") == ALL_INT16[::257].astype("<i2").tobytes()
    with pytest.raises(codecs.AudioEncodingError, match="6 bytes is not a whole number"):
        codecs.to_linear16(bytes(6), "linear32")


def _bursts(encoding: str) -> list[bytes]:
    """0.4 .. 1.4 s of noise in 3 s of silence at 8 kHz, 80 ms frames, in ``encoding``."""
    rng = np.random.default_rng(0)
    x = np.zeros(3 * 8000)
    x[3200:11200] = 0.1 * rng.standard_normal(8000)
    pcm = codecs.from_linear16((x * 32767).astype("<i2").tobytes(), encoding)
    width = codecs.SAMPLE_BYTES[encoding]
    return [pcm[i : i + 640 * width] for i in range(0, len(pcm), 640 * width)]


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_a_flux_stream_in_g711_turns_like_linear16(encoding: str) -> None:
    def events(enc: str) -> list[tuple[int, str]]:
        stream = FluxStream("r", StreamParams(sample_rate=8000, encoding=enc),
                            itertools.repeat(200.0), now_ns=0)  # fmt: skip
        out: list[tuple[int, str]] = []
        for k, frame in enumerate(_bursts(enc)):
            t = (k + 1) * 80_000_000
            stream.feed_audio(frame, t)
            out += [(t, str(m.event)) for m in stream.poll(t) if isinstance(m, TurnInfo)]
        return [e for e in out if e[1] != TurnEvent.UPDATE]

    assert events(encoding) == events("linear16")
    assert [e for _, e in events(encoding)] == ["StartOfTurn", "EndOfTurn"]
    with pytest.raises(AudioDecodeError):
        FluxStream("r", StreamParams(encoding="linear32"), iter(()), now_ns=0).feed_audio(
            bytes(6), 1
        )


def test_aura_synthesises_g711_at_one_byte_per_sample() -> None:
    def audio(encoding: str) -> bytes:
        stream = AuraStream("r", "aura-1", AuraSettings(), 8000, itertools.repeat(1.0),
                            encoding=encoding)  # fmt: skip
        stream.receive(aura.serialize_client_message(aura.Speak("Hello there.")), 0)
        stream.receive(aura.serialize_client_message(aura.Flush()), 0)
        chunks = [m for m in stream.poll(10**12) if isinstance(m, bytes)]
        assert len(chunks[0]) == 800 * codecs.SAMPLE_BYTES[encoding]  # 100 ms at 8 kHz
        return b"".join(chunks)

    linear = audio("linear16")
    mulaw = audio("mulaw")
    assert len(mulaw) * 2 == len(linear)
    assert mulaw == codecs.from_linear16(linear, "mulaw")
