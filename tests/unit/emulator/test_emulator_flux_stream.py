"""voiceload.emulator.flux_stream: the emulated Flux conversation, driven with exact times.

Audio: 16 kHz linear16 in 80 ms frames (1280 samples); frame k arrives at (k + 1) * 80 ms.
The synthetic "speech" is a white-noise burst from 0.4 s to 1.4 s, which the VAD (turn gap
0.5 s) reports as onset sample 6400 (in frame 5) and last speech sample 22399 (in frame 17,
which arrives at 1.44 s): the pause is known with frame 18 (after the 0.1 s hang-over), the
VAD turn's offset only with frame 23 (after the 0.5 s turn gap).
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
        StreamParams(**{"vad_turn_gap_s": 0.5, **params}),  # type: ignore[arg-type]
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


def test_connected_first_then_start_updates_and_end_of_turn_after_the_delay() -> None:
    out = run(make(), burst_audio())
    checked(out)
    assert isinstance(out[0][1], Connected)
    assert out[0] == (0, Connected("req-1", 0))
    assert [m.sequence_id for _, m in out if not isinstance(m, Close)] == list(range(len(out)))
    # StartOfTurn with the frame that confirms the onset (frame 5); EndOfTurn 260 ms after
    # the frame holding the last speech sample (frame 17, 1.44 s), not at the VAD's turn gap
    assert turn_events(out) == [
        (6 * FRAME_NS, "StartOfTurn"),
        (18 * FRAME_NS + 260 * MS, "EndOfTurn"),
    ]
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
        (18 * FRAME_NS + 400 * MS, "EagerEndOfTurn"),
        (18 * FRAME_NS + 800 * MS, "EndOfTurn"),
    ]


def test_speech_after_the_turn_gap_is_the_next_turn_even_before_the_delay_ran_out() -> None:
    # the second burst starts 0.6 s after the first ends (more than the 0.5 s VAD turn gap),
    # before the 2 s delay ran out: EndOfTurn goes out with the frame that confirms the new
    # speech (frame 25, at 2.08 s), just before the new turn's StartOfTurn
    out = run(
        make(eot_ms=2000.0, eager_eot_threshold=0.5, eager_fraction=0.3),
        burst_audio(total_s=6.0, bursts=((0.4, 1.4), (2.0, 2.5))),
    )
    checked(out, eager=True)
    assert turn_events(out)[:4] == [
        (6 * FRAME_NS, "StartOfTurn"),
        (18 * FRAME_NS + 600 * MS, "EagerEndOfTurn"),
        (26 * FRAME_NS, "EndOfTurn"),
        (26 * FRAME_NS, "StartOfTurn"),
    ]
    assert [e for _, e in turn_events(out)[4:]] == ["EagerEndOfTurn", "EndOfTurn"]


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


def test_configure_follows_the_routes_eot_threshold_range() -> None:
    workers_ai, deepgram = make(eot_threshold_max=0.9), make()  # the server sets it per route
    for stream in (workers_ai, deepgram):
        stream.poll(0)
        stream.control(Configure(thresholds={"eot_threshold": 1.0}), 5)
    assert workers_ai.poll(5) == [ConfigureFailure("req-1", 1)]
    assert isinstance(deepgram.poll(5)[0], ConfigureSuccess)


# --- end of turn counts from when speech stops ----------------------------------------------


def test_end_of_turn_150_ms_after_the_frame_holding_the_last_speech_sample() -> None:
    # speech ends at 1.4 s (sample 22399, frame 17 arriving at 1.44 s); the VAD knows it is a
    # pause with frame 18 (1.52 s): EndOfTurn at 1.44 s + 150 ms = 1.59 s, far earlier than the
    # 0.5 s turn gap (frame 23 at 1.92 s) that used to be its floor
    out = run(make(eot_ms=150.0), burst_audio(), until_ns=4_000 * MS)
    checked(out)
    assert turn_events(out) == [(6 * FRAME_NS, "StartOfTurn"), (1590 * MS, "EndOfTurn")]
    assert 1590 * MS < 1400 * MS + 500 * MS


def test_end_of_turn_at_the_pause_detection_when_the_delay_is_shorter_than_the_hangover() -> None:
    out = run(make(eot_ms=20.0), burst_audio())
    assert turn_events(out)[-1] == (19 * FRAME_NS, "EndOfTurn")  # frame 18 told of the pause


def test_a_pause_shorter_than_the_delay_gives_no_end_of_turn() -> None:
    # 0.3 s pause (1.4 .. 1.7 s) inside the turn, delay 600 ms: one turn, ended after 2.5 s
    out = run(make(eot_ms=600.0), burst_audio(bursts=((0.4, 1.4), (1.7, 2.5))))
    checked(out)
    events = turn_events(out)
    assert [e for _, e in events] == ["StartOfTurn", "EndOfTurn"]
    # the second burst's last sample 39999 is in frame 31, which arrives at 2.56 s
    assert events[-1][0] == 32 * FRAME_NS + 600 * MS


def test_speech_after_end_of_turn_starts_a_new_turn() -> None:
    # the same 0.3 s pause with a 150 ms delay: EndOfTurn at 1.59 s, then the resumed speech
    # (confirmed by frame 21 at 1.76 s) opens turn 1, as the real service would
    out = run(make(eot_ms=150.0), burst_audio(bursts=((0.4, 1.4), (1.7, 2.5))))
    checked(out)
    assert turn_events(out) == [
        (6 * FRAME_NS, "StartOfTurn"),
        (1590 * MS, "EndOfTurn"),
        (22 * FRAME_NS, "StartOfTurn"),
        (32 * FRAME_NS + 150 * MS, "EndOfTurn"),
    ]
    eots = [m for _, m in out if isinstance(m, TurnInfo) and m.event == "EndOfTurn"]
    assert [m.turn_index for m in eots] == [0, 1]
    assert eots[1].audio_window_start == eots[0].audio_window_end


def test_eager_end_of_turn_at_a_pause_then_resumed_speech_gives_turn_resumed() -> None:
    # eager at 1.44 s + 200 ms; speech again at 1.7 s (confirmed at 1.76 s) before EndOfTurn
    out = run(
        make(eot_ms=1000.0, eager_eot_threshold=0.5, eager_fraction=0.2),
        burst_audio(bursts=((0.4, 1.4), (1.7, 2.5))),
    )
    checked(out, eager=True)
    assert turn_events(out) == [
        (6 * FRAME_NS, "StartOfTurn"),
        (1640 * MS, "EagerEndOfTurn"),
        (22 * FRAME_NS, "TurnResumed"),
        (32 * FRAME_NS + 200 * MS, "EagerEndOfTurn"),
        (32 * FRAME_NS + 1000 * MS, "EndOfTurn"),
    ]


WORDS = ("he", "turned", "sharply", "and", "faced", "gregson", "across", "the", "table.")


def test_a_pause_before_the_reference_turn_is_said_does_not_end_it() -> None:
    # the reference turn spans the whole 0.4 .. 2.5 s: the 0.3 s pause is mid-sentence, so even
    # a 150 ms delay ends the turn only after the last burst, with every word
    ref = (ReferenceTurn(WORDS, 2.1),)
    out = run(
        make(eot_ms=150.0, eager_eot_threshold=0.5, reference=ref),
        burst_audio(bursts=((0.4, 1.4), (1.7, 2.5))),
    )
    checked(out, eager=True)
    assert turn_events(out) == [
        (6 * FRAME_NS, "StartOfTurn"),
        (33 * FRAME_NS, "EagerEndOfTurn"),  # 2.56 s + 75 ms: the pause is known at 2.64 s
        (32 * FRAME_NS + 150 * MS, "EndOfTurn"),
    ]
    eot = [m for _, m in out if isinstance(m, TurnInfo) and m.event == "EndOfTurn"][-1]
    assert eot.transcript == " ".join(WORDS)


def test_a_reference_turn_is_complete_within_the_tolerance() -> None:
    # measured speech 1.05 s, received 1.0 s: complete at the pause (0.05 s < 0.1 s tolerance)
    out = run(make(eot_ms=150.0, reference=(ReferenceTurn(WORDS, 1.05),)), burst_audio())
    assert turn_events(out)[-1] == (1590 * MS, "EndOfTurn")
    # 0.2 s short: not complete at the pause; the VAD's turn gap (frame 23) completes it
    out = run(make(eot_ms=150.0, reference=(ReferenceTurn(WORDS, 1.2),)), burst_audio())
    assert turn_events(out)[-1] == (24 * FRAME_NS, "EndOfTurn")
    eot = [m for _, m in out if isinstance(m, TurnInfo) and m.event == "EndOfTurn"][-1]
    assert eot.transcript == " ".join(WORDS)


def test_forced_end_mid_sentence_leaves_the_rest_of_the_words_to_the_next_turn() -> None:
    # a long VAD turn gap (2 s) and eot_timeout_ms 500: the 0.8 s mid-sentence pause is cut
    # by the forced end; the resumed speech is a new turn with the words not yet sent
    ref = (ReferenceTurn(WORDS, 2.6),)
    out = run(
        make(eot_ms=150.0, eot_timeout_ms=500, vad_turn_gap_s=2.0, reference=ref),
        burst_audio(bursts=((0.4, 1.4), (2.2, 3.0))),
    )
    checked(out)
    infos = [m for _, m in out if isinstance(m, TurnInfo) and m.event != "Update"]
    assert [(m.event, m.turn_index) for m in infos] == [
        ("StartOfTurn", 0),
        ("EndOfTurn", 0),
        ("StartOfTurn", 1),
        ("EndOfTurn", 1),
    ]
    assert turn_events(out)[1] == (18 * FRAME_NS + 500 * MS, "EndOfTurn")
    first, second = infos[1].transcript.split(), infos[3].transcript.split()
    assert 0 < len(first) < len(WORDS)
    assert first + second == list(WORDS)


def test_speech_past_the_reference_after_end_of_turn_gets_placeholder_words() -> None:
    # every reference word went out with turn 0; 0.5 s more speech is turn 1, in placeholders
    ref = (ReferenceTurn(WORDS, 1.0),)
    out = run(
        make(eot_ms=150.0, reference=ref, placeholder_words_per_s=4.0),
        burst_audio(bursts=((0.4, 1.4), (1.7, 2.2))),
    )
    checked(out)
    eots = [m for _, m in out if isinstance(m, TurnInfo) and m.event == "EndOfTurn"]
    assert [(m.turn_index, m.transcript) for m in eots] == [
        (0, " ".join(WORDS)),
        (1, "lorem ipsum"),
    ]


def test_a_turn_still_open_when_the_next_reference_turn_starts_ends_first() -> None:
    # 0.7 s of silence ends the VAD turn, the 2 s delay has not run out: turn 0 ends when the
    # next turn's speech is confirmed, so each turn keeps its own reference words
    ref = (ReferenceTurn(("one",), 0.5), ReferenceTurn(("two", "three"), 0.5))
    out = run(
        make(eot_ms=2000.0, reference=ref),
        burst_audio(bursts=((0.4, 0.9), (1.6, 2.1))),
        until_ns=6000 * MS,
    )
    checked(out)
    eots = [m for _, m in out if isinstance(m, TurnInfo) and m.event == "EndOfTurn"]
    assert [(m.turn_index, m.transcript) for m in eots] == [(0, "one"), (1, "two three")]
