"""voiceload.emulator.aura_stream: the emulated Aura conversation, driven with exact times."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from voiceload.emulator.aura_stream import AuraStream, param_problem, synthesize
from voiceload.emulator.behaviour import AuraSettings
from voiceload.emulator.flux_stream import Close
from voiceload.errors import RemoteProtocolError
from voiceload.protocol import aura

MS = 1_000_000
# 24 kHz, 100 ms chunks (4800 bytes) at 4x real time (one every 25 ms), 100 ms leading silence
SETTINGS = AuraSettings(chars_per_s=14.0, leading_silence_ms=100.0, speed=4.0, chunk_ms=100)


def make(first_byte_ms: float = 90.0, settings: AuraSettings = SETTINGS) -> AuraStream:
    return AuraStream("req-9", "aura-1", settings, 24000, itertools.repeat(first_byte_ms))


def speak(text: str) -> str:
    return aura.serialize_client_message(aura.Speak(text))


FLUSH = aura.serialize_client_message(aura.Flush())
CLEAR = aura.serialize_client_message(aura.Clear())
CLOSE = aura.serialize_client_message(aura.Close())


def drain(stream: AuraStream, until_ns: int) -> list[tuple[int, str | bytes | Close]]:
    """Poll at every wakeup up to ``until_ns``."""
    out: list[tuple[int, str | bytes | Close]] = []
    for _ in range(10_000):
        wake = stream.next_wakeup_ns()
        if wake is None or wake > until_ns:
            break
        out.extend((wake, m) for m in stream.poll(wake))
    return out


def test_metadata_first() -> None:
    (first,) = make().poll(0)
    assert isinstance(first, str)
    msg = aura.parse_server_message(first)
    assert isinstance(msg, aura.Metadata)
    assert (msg.request_id, msg.model_name) == ("req-9", "aura-1")


def test_flush_streams_audio_after_first_byte_delay_then_flushed() -> None:
    stream = make(first_byte_ms=90.0)
    stream.poll(0)
    stream.receive(speak("Hello there, friend."), 1000 * MS)  # 20 characters
    stream.receive(FLUSH, 1000 * MS)
    assert stream.poll(1000 * MS) == []
    out = drain(stream, 10_000 * MS)
    chunks = [(t, m) for t, m in out if isinstance(m, bytes)]
    audio = b"".join(m for _, m in chunks)
    # 100 ms silence + 20 / 14 s of tone at 24 kHz, 2 bytes a sample
    assert len(audio) == 2 * (2400 + round(20 / 14 * 24000))
    assert audio[: 2 * 2400] == bytes(2 * 2400)
    # first chunk at flush + 90 ms; then one 100 ms chunk every 25 ms (4x real time)
    assert [t for t, _ in chunks] == [1090 * MS + k * 25 * MS for k in range(len(chunks))]
    assert all(len(m) == 4800 for _, m in chunks[:-1])
    last_t, last = out[-1]
    assert last == '{"type":"Flushed","sequence_id":0}'
    assert last_t == chunks[-1][0]


def test_synthesized_audio_is_audible_after_the_silence() -> None:
    pcm = np.frombuffer(synthesize(28, SETTINGS, 16000), dtype="<i2")
    assert pcm.size == 1600 + 32000
    assert not pcm[:1600].any()
    rms_dbfs = 10 * np.log10(np.mean((pcm[1600:] / 32768.0) ** 2))
    assert rms_dbfs > -25


def test_flushes_queue_one_after_another_with_increasing_sequence_ids() -> None:
    stream = make(first_byte_ms=10.0)
    stream.poll(0)
    for text in ("one two three.", "four five six."):
        stream.receive(speak(text), 0)
        stream.receive(FLUSH, 0)
    out = drain(stream, 60_000 * MS)
    texts = [json.loads(m) for _, m in out if isinstance(m, str)]
    assert texts == [
        {"type": "Flushed", "sequence_id": 0},
        {"type": "Flushed", "sequence_id": 1},
    ]
    # the second job's audio starts only after the first job's last chunk
    kinds = ["audio" if isinstance(m, bytes) else "text" for _, m in out]
    first_flushed = kinds.index("text")
    assert kinds[first_flushed + 1 :].count("audio") > 0


def test_clear_drops_pending_audio_and_answers_cleared() -> None:
    stream = make(first_byte_ms=0.0)
    stream.poll(0)
    stream.receive(speak("a long sentence that takes a while to say out loud."), 0)
    stream.receive(FLUSH, 0)
    sent = [m for m in stream.poll(0) if isinstance(m, bytes)]
    assert len(sent) == 1
    stream.receive(CLEAR, 5 * MS)
    assert stream.poll(5 * MS) == ['{"type":"Cleared","sequence_id":1}']
    assert stream.next_wakeup_ns() is None


def test_close_flushes_then_closes_normally() -> None:
    stream = make(first_byte_ms=0.0)
    stream.poll(0)
    stream.receive(speak("bye now."), 0)
    stream.receive(CLOSE, 0)
    out = [m for _, m in drain(stream, 10_000 * MS)]
    assert out[-2] == '{"type":"Flushed","sequence_id":0}'
    assert out[-1] == Close(1000)


def test_oversized_speak_gets_warning_413_and_close_1009() -> None:
    stream = make()
    stream.poll(0)
    stream.receive(speak("x" * (aura.MAX_SPEAK_CHARS + 1)), 0)
    warning_text, close = stream.poll(0)
    assert isinstance(warning_text, str)
    warning = aura.parse_server_message(warning_text)
    assert isinstance(warning, aura.Warning)
    assert warning.code == "413"
    assert close == Close(1009, "BIG-0000")


def test_speak_at_the_limit_is_accepted() -> None:
    stream = make()
    stream.poll(0)
    stream.receive(speak("x" * aura.MAX_SPEAK_CHARS), 0)
    assert stream.poll(0) == []


def test_more_than_twenty_flushes_a_minute_get_a_warning() -> None:
    stream = make(first_byte_ms=0.0)
    stream.poll(0)
    for k in range(aura.FLUSH_LIMIT):
        stream.receive(FLUSH, k * MS)
    assert all(m.startswith('{"type":"Flushed"') for m in stream.poll(aura.FLUSH_LIMIT * MS))
    stream.receive(FLUSH, 30_000 * MS)
    (warning,) = stream.poll(30_000 * MS)
    assert warning == aura.serialize_server_message(aura.flush_limit_warning())


def test_client_frame_that_is_not_a_message_is_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        make().receive('{"type":"Sing"}', 0)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ((), None),
        ((("encoding", "linear16"), ("sample_rate", "48000")), None),
        (
            (("encoding", "mp3"),),
            "encoding 'mp3' is accepted by the service but not emulated: the voiceload emulator"
            " synthesises linear16, mulaw, alaw only",
        ),
        ((("sample_rate", "22050"),), None),  # the route's rules decide rates (protocol.params)
        ((("encoding", "mulaw"), ("container", "none")), None),
        (
            (("container", "wav"),),
            "container 'wav' is accepted by the service but not emulated: the voiceload"
            " emulator streams raw audio only",
        ),
    ],
)
def test_param_problem(params: tuple[tuple[str, str], ...], problem: str | None) -> None:
    assert param_problem(params) == problem


def _over_the_limit(policy: str) -> tuple[list[str | bytes | Close], AuraStream]:
    """20 allowed Flushes, then Speak + a 21st Flush 30 s later: what that Flush gives."""
    settings = AuraSettings(**{**SETTINGS.__dict__, "over_limit_flush": policy})
    stream = make(first_byte_ms=0.0, settings=settings)
    stream.poll(0)
    for k in range(aura.FLUSH_LIMIT):
        stream.receive(FLUSH, k * MS)
    drain(stream, 1000 * MS)
    stream.receive(speak("Fourteen chars"), 30_000 * MS)  # 14 characters: 1 s of audio
    stream.receive(FLUSH, 30_000 * MS)
    return [m for _, m in drain(stream, 40_000 * MS)] + stream.poll(40_000 * MS), stream


WARNING = aura.serialize_server_message(aura.flush_limit_warning())


def test_over_limit_flush_keep_text_by_default_waits_for_the_next_accepted_flush() -> None:
    assert AuraSettings().over_limit_flush == "keep_text"
    out, stream = _over_the_limit("keep_text")
    assert out == [WARNING]  # no audio, no Flushed
    stream.receive(FLUSH, 61_000 * MS)  # the window has passed: the kept text is spoken now
    later = [m for _, m in drain(stream, 70_000 * MS)]
    audio = b"".join(m for m in later if isinstance(m, bytes))
    assert len(audio) == 2 * (2400 + 24000)  # 100 ms lead + 1 s for 14 characters
    assert later[-1] == aura.serialize_server_message(aura.Flushed(sequence_id=20))


def test_over_limit_flush_drop_text_discards_the_buffer() -> None:
    out, stream = _over_the_limit("drop_text")
    assert out == [WARNING]
    stream.receive(FLUSH, 61_000 * MS)
    later = [m for _, m in drain(stream, 70_000 * MS)]
    audio = b"".join(m for m in later if isinstance(m, bytes))
    assert audio == b""  # nothing left to speak: Flushed alone
    assert later[-1] == aura.serialize_server_message(aura.Flushed(sequence_id=20))


def test_over_limit_flush_synthesize_warns_and_processes_the_flush() -> None:
    out, _ = _over_the_limit("synthesize")
    assert out[0] == WARNING
    audio = b"".join(m for m in out if isinstance(m, bytes))
    assert len(audio) == 2 * (2400 + 24000)
    assert out[-1] == aura.serialize_server_message(aura.Flushed(sequence_id=20))


def test_close_speaks_kept_text_even_over_the_flush_limit() -> None:
    out, stream = _over_the_limit("keep_text")
    assert out == [WARNING]
    stream.receive(CLOSE, 31_000 * MS)  # Close is not a Flush: the limit does not apply
    later = [m for _, m in drain(stream, 40_000 * MS)] + stream.poll(40_000 * MS)
    assert len(b"".join(m for m in later if isinstance(m, bytes))) == 2 * (2400 + 24000)
    assert later[-1] == Close(1000)
