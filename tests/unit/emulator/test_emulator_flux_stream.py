"""voiceload.emulator.flux_stream: the emulated Flux conversation, driven with exact times.

Audio: 16 kHz linear16 in 80 ms frames (1280 samples); frame k arrives at (k + 1) * 80 ms.
The synthetic "speech" is a white-noise burst from 0.4 s to 1.4 s, which the VAD (turn gap
0.5 s) reports as onset sample 6400 (in frame 5) and offset sample 22399 (in frame 17,
confirmed by frame 23).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
import pytest

from voiceload.emulator.flux_stream import (
    AudioDecodeError,
    Close,
    FluxStream,
    Outgoing,
    ReferenceTurn,
    StreamParams,
)
from voiceload.protocol.flux import (
    Configure,
    ConfigureFailure,
    ConfigureSuccess,
    Connected,
    TurnChecker,
    TurnEvent,
    TurnInfo,
)

SR = 16000
FRAME = 1280
MS = 1_000_000
FRAME_NS = 80 * MS


def burst_audio(
    total_s: float = 4.0, bursts: Iterable[tuple[float, float]] = ((0.4, 1.4),)
) -> list[bytes]:
    """Silence with white-noise bursts (start_s, end_s), cut to ``total_s``, in 80 ms frames."""
    rng = np.random.default_rng(0)
    x = np.zeros(int(total_s * SR))
    for start, end in bursts:
        a, b = int(start * SR), min(int(end * SR), x.size)
        x[a:b] = 0.1 * rng.standard_normal(max(0, b - a))
    raw = (x * 32767).astype("<i2").tobytes()
    return [raw[i : i + 2 * FRAME] for i in range(0, len(raw), 2 * FRAME)]


def run(
    stream: FluxStream, frames: list[bytes], until_ns: int | None = None
) -> list[tuple[int, Outgoing]]:
    """Feed frame k at (k+1)*80 ms, firing timers in between; return (time, message) pairs."""
    out: list[tuple[int, Outgoing]] = [(0, m) for m in stream.poll(0)]

    def timers_until(limit_ns: int) -> None:
        for _ in range(10_000):
            wake = stream.next_wakeup_ns()
            if wake is None or wake > limit_ns:
                return
            out.extend((wake, m) for m in stream.poll(wake))

    for k, frame in enumerate(frames):
        t = (k + 1) * FRAME_NS
        timers_until(t - 1)
        stream.feed_audio(frame, t)
        out.extend((t, m) for m in stream.poll(t))
    if until_ns is not None:
        timers_until(until_ns)
    return out


def make(
    *, eot_ms: float = 260.0, reference: tuple[ReferenceTurn, ...] = (), **params: object
) -> FluxStream:
    return FluxStream(
        "req-1",
        StreamParams(vad_turn_gap_s=0.5, **params),  # type: ignore[arg-type]
        itertools.repeat(eot_ms),
        reference,
        now_ns=0,
    )


def turn_events(out: list[tuple[int, Outgoing]]) -> list[tuple[int, str]]:
    return [(t, str(m.event)) for t, m in out if isinstance(m, TurnInfo) and m.event != "Update"]


def checked(out: list[tuple[int, Outgoing]], eager: bool = False) -> None:
    """The generated sequence breaks no Flux rule (the client's checker finds nothing)."""
    checker = TurnChecker(eager_enabled=eager)
    for _, m in out:
        if not isinstance(m, Close):
            assert checker.feed(m) == []


def test_connected_first_then_start_updates_and_end_of_turn_at_confirmation() -> None:
    out = run(make(), burst_audio())
    checked(out)
    assert isinstance(out[0][1], Connected)
    assert out[0] == (0, Connected("req-1", 0))
    assert [m.sequence_id for _, m in out if not isinstance(m, Close)] == list(range(len(out)))
    # StartOfTurn with the frame that confirms the onset (frame 5); EndOfTurn when frame 23
    # confirms the offset, since offset frame 17 (1.44 s) + 260 ms is earlier
    assert turn_events(out) == [(6 * FRAME_NS, "StartOfTurn"), (24 * FRAME_NS, "EndOfTurn")]
    start = next(m for _, m in out if isinstance(m, TurnInfo) and m.event == "StartOfTurn")
    assert start.transcript  # never empty
    assert start.audio_window_end == 0.48


def test_end_of_turn_delay_counts_from_the_frame_holding_the_offset() -> None:
    out = run(make(eot_ms=800.0), burst_audio())
    # offset sample 22399 is in frame 17, which arrived at 18 * 80 ms = 1.44 s
    assert turn_events(out)[-1] == (18 * FRAME_NS + 800 * MS, "EndOfTurn")


def test_eot_timeout_forces_an_earlier_end_of_turn() -> None:
    out = run(make(eot_ms=800.0, eot_timeout_ms=500), burst_audio())
    assert turn_events(out)[-1] == (18 * FRAME_NS + 500 * MS, "EndOfTurn")


def test_updates_follow_received_audio_not_time() -> None:
    out = run(make(), burst_audio(total_s=2.4))
    updates = [m for _, m in out if isinstance(m, TurnInfo) and m.event == "Update"]
    # one with the first frame that completes each further 0.25 s of received audio
    assert [u.audio_window_end for u in updates] == [
        0.32,
        0.56,
        0.8,
        1.04,
        1.28,
        1.52,
        1.76,
        2.0,
        2.32,
    ]


def test_reference_words_revealed_progressively_and_exact_at_end_of_turn() -> None:
    words = ("he", "turned", "sharply", "and", "faced", "gregson", "across", "the", "table.")
    ref = (ReferenceTurn(words, 1.0),)
    out = run(make(reference=ref), burst_audio())
    infos = [m for _, m in out if isinstance(m, TurnInfo) and m.turn_index == 0]
    infos = infos[[m.event for m in infos].index("StartOfTurn") :]
    shown = [len(m.transcript.split()) for m in infos]
    assert shown == sorted(shown)
    assert 0 < shown[0] < len(words)
    eot = infos[-1]
    assert eot.event == "EndOfTurn"
    assert eot.transcript == " ".join(words)
    assert [w.word for w in eot.words] == list(words)


def test_placeholder_words_without_a_reference() -> None:
    out = run(make(placeholder_words_per_s=4.0), burst_audio())
    eot = next(m for _, m in out if isinstance(m, TurnInfo) and m.event == "EndOfTurn")
    # 1.0 s of speech (6400 .. 22399 inclusive) at 4 words per second
    assert eot.transcript == "lorem ipsum dolor sit"


def test_second_turn_gets_the_second_reference_and_a_new_window() -> None:
    ref = (ReferenceTurn(("one",), 0.5), ReferenceTurn(("two", "three"), 0.5))
    out = run(make(reference=ref), burst_audio(total_s=5.0, bursts=((0.4, 0.9), (2.6, 3.1))))
    checked(out)
    eots = [m for _, m in out if isinstance(m, TurnInfo) and m.event == "EndOfTurn"]
    assert [(m.turn_index, m.transcript) for m in eots] == [(0, "one"), (1, "two three")]
    assert eots[1].audio_window_start == eots[0].audio_window_end


def test_eager_end_of_turn_then_end_of_turn() -> None:
    out = run(make(eot_ms=800.0, eager_eot_threshold=0.5, eager_fraction=0.5), burst_audio())
    checked(out, eager=True)
    assert turn_events(out) == [
        (6 * FRAME_NS, "StartOfTurn"),
        (24 * FRAME_NS, "EagerEndOfTurn"),  # 1.44 s + 400 ms is before the 1.92 s confirmation
        (18 * FRAME_NS + 800 * MS, "EndOfTurn"),
    ]


def test_speech_after_eager_end_of_turn_resumes_the_turn() -> None:
    # the second burst starts 0.6 s after the first ends: a new VAD turn, but before EndOfTurn
    out = run(
        make(eot_ms=2000.0, eager_eot_threshold=0.5, eager_fraction=0.3),
        burst_audio(total_s=6.0, bursts=((0.4, 1.4), (2.0, 2.5))),
    )
    checked(out, eager=True)
    events = [e for _, e in turn_events(out)]
    assert events == ["StartOfTurn", "EagerEndOfTurn", "TurnResumed", "EagerEndOfTurn", "EndOfTurn"]


def test_no_eager_events_without_the_threshold() -> None:
    out = run(make(eot_ms=800.0), burst_audio())
    assert TurnEvent.EAGER_END_OF_TURN not in [e for _, e in turn_events(out)]


def test_first_response_delay_holds_messages_after_connected() -> None:
    out = run(make(first_response_ms=300.0), burst_audio(total_s=1.0))
    first_info_t = next(t for t, m in out if isinstance(m, TurnInfo))
    # first audio frame arrived at 80 ms
    assert first_info_t == 80 * MS + 300 * MS
    assert out[0] == (0, Connected("req-1", 0))


def test_close_stream_emits_pending_update_then_closes_without_status() -> None:
    stream = make()
    frames = burst_audio(total_s=0.4)  # 5 frames: 0.4 s, one cadence point at 0.32 s
    out = run(stream, frames)
    stream.control(None, 450 * MS)
    tail = stream.poll(450 * MS)
    assert isinstance(tail[0], TurnInfo)
    assert tail[0].event == "Update"
    assert tail[0].audio_window_end == 0.4
    assert tail[1] == Close(None)
    assert stream.next_wakeup_ns() is None
    assert all(not (isinstance(m, TurnInfo) and m.event == "EndOfTurn") for _, m in out)


def test_no_audio_for_the_idle_timeout_closes_1011_net_0001() -> None:
    stream = make(idle_timeout_s=10.0)
    run(stream, burst_audio(total_s=0.8))  # last frame at 800 ms
    assert stream.next_wakeup_ns() == 800 * MS + 10_000 * MS
    assert stream.poll(800 * MS + 10_000 * MS - 1) == []
    assert stream.poll(800 * MS + 10_000 * MS) == [Close(1011, "NET-0001")]


def test_odd_byte_count_is_not_audio() -> None:
    stream = make()
    with pytest.raises(AudioDecodeError):
        stream.feed_audio(b"\x00\x01\x02", 1)


def test_configure_answers_success_with_the_settings_in_force() -> None:
    stream = make()
    stream.poll(0)
    stream.control(Configure(thresholds={"eot_threshold": 0.8}, keyterms=("alpha",)), 5)
    (msg,) = stream.poll(5)
    assert isinstance(msg, ConfigureSuccess)
    assert msg.sequence_id == 1
    assert msg.thresholds == {"eot_threshold": 0.8, "eot_timeout_ms": 5000}
    assert msg.keyterms == ("alpha",)


@pytest.mark.parametrize(
    "thresholds",
    [{"eot_threshold": 0.2}, {"eot_timeout_ms": 100}, {"eager_eot_threshold": 0.95}, {"x": 1}],
)
def test_configure_out_of_range_fails(thresholds: dict[str, float]) -> None:
    stream = make()
    stream.poll(0)
    stream.control(Configure(thresholds=thresholds), 5)
    assert stream.poll(5) == [ConfigureFailure("req-1", 1)]
