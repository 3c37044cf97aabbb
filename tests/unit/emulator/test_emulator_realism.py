"""The emulator's [realism] profile: each variation happens, deterministically from the seed."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable

import numpy as np
import pytest

from voiceload.emulator.aura_stream import AuraStream
from voiceload.emulator.behaviour import AuraSettings, Behaviour, parse_config
from voiceload.emulator.flux_stream import (
    Close,
    FluxStream,
    Outgoing,
    RawText,
    ReferenceTurn,
    StreamParams,
)
from voiceload.emulator.realism import (
    EXTRA_FIELD,
    Realism,
    RealismSettings,
    parse_realism,
)
from voiceload.errors import ConfigError
from voiceload.protocol import aura
from voiceload.protocol.flux import (
    TurnChecker,
    TurnEvent,
    TurnInfo,
    parse_server_message,
    serialize_server_message,
)

SR = 16000
FRAME = 1280
MS = 1_000_000
FRAME_NS = 80 * MS
WORDS = ("he", "turned", "sharply", "and", "faced", "gregson", "across", "the", "table.")
SECOND = ("i", "need", "a", "table", "for", "two")


def burst_audio(total_s: float, bursts: Iterable[tuple[float, float]]) -> list[bytes]:
    """Silence with white-noise bursts (start_s, end_s), in 80 ms frames."""
    rng = np.random.default_rng(0)
    x = np.zeros(int(total_s * SR))
    for start, end in bursts:
        a, b = int(start * SR), min(int(end * SR), x.size)
        x[a:b] = 0.1 * rng.standard_normal(max(0, b - a))
    raw = (x * 32767).astype("<i2").tobytes()
    return [raw[i : i + 2 * FRAME] for i in range(0, len(raw), 2 * FRAME)]


def run(stream: FluxStream, frames: list[bytes], until_ns: int) -> list[tuple[int, Outgoing]]:
    """Feed frame k at (k+1)*80 ms, firing timers in between; (time, message) pairs."""
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
    timers_until(until_ns)
    return out


def realism(seed: str = "1:1", **probabilities: float) -> Realism:
    return Realism(RealismSettings(**probabilities), seed)


def flux(reference: tuple[ReferenceTurn, ...], variation: Realism | None) -> FluxStream:
    params = StreamParams(vad_turn_gap_s=0.5)
    return FluxStream("req-1", params, itertools.repeat(260.0), reference, now_ns=0,
                      realism=variation)  # fmt: skip


def turns(out: list[tuple[int, Outgoing]]) -> list[tuple[str, str]]:
    """(event, transcript) of every state change."""
    return [(str(m.event), m.transcript) for _, m in out
            if isinstance(m, TurnInfo) and m.event is not TurnEvent.UPDATE]  # fmt: skip


def checked(out: list[tuple[int, Outgoing]]) -> None:
    """The client's checker finds no broken Flux rule (Warnings parsed as raw JSON: the
    checker's protocol module has no type for them, so their sequence ids are checked here)."""
    checker = TurnChecker(eager_enabled=False)
    last_seq = -1
    for _, m in out:
        if isinstance(m, Close):
            continue
        if isinstance(m, RawText):
            seq = json.loads(m.text)["sequence_id"]
        else:
            seq = m.sequence_id
            findings = [f for f in checker.feed(m) if "sequence_id" not in f.message]
            assert findings == []
        assert seq == last_seq + 1
        last_seq = seq


# ---- config ---------------------------------------------------------------------------------


def test_realism_is_off_by_default_and_parsed_strictly() -> None:
    assert not parse_config({}).realism.enabled
    assert Behaviour(parse_config({})).realism(1) is None
    on = parse_config({"realism": {"split_turn": 0.25, "extra_fields": 1}})
    assert on.realism == RealismSettings(split_turn=0.25, extra_fields=1.0)
    assert Behaviour(on).realism(1) is not None
    with pytest.raises(ConfigError, match=r"unknown key realism.splits \(allowed: split_turn"):
        parse_realism({"splits": 0.5})
    with pytest.raises(ConfigError, match=r"realism\.merge_turns must be a probability"):
        parse_realism({"merge_turns": 1.5})
    with pytest.raises(ConfigError, match=r"realism\.flux_warning must be a probability"):
        parse_realism({"flux_warning": True})


def test_turning_realism_on_changes_no_latency_draw() -> None:
    off = Behaviour(parse_config({}))
    on = Behaviour(parse_config({"realism": {"split_turn": 1.0, "merge_turns": 1.0}}))
    for connection in (1, 2, 7):
        a, b = off.plan(connection, "flux", "flux").rng, on.plan(connection, "flux", "flux").rng
        assert [a.random() for _ in range(5)] == [b.random() for _ in range(5)]


# ---- Flux: split, merge, Warning ---------------------------------------------------------------


def test_split_turn_ends_the_turn_at_a_pause_inside_it_and_the_rest_is_a_new_turn() -> None:
    ref = (ReferenceTurn(WORDS, 2.1),)  # one spoken turn with a 0.3 s pause inside
    frames = burst_audio(4.0, ((0.4, 1.4), (1.7, 2.5)))
    plain = run(flux(ref, None), frames, 6000 * MS)
    assert [e for e, _ in turns(plain)] == ["StartOfTurn", "EndOfTurn"]
    variation = realism(split_turn=1.0)
    out = run(flux(ref, variation), frames, 6000 * MS)
    checked(out)
    events = turns(out)
    assert [e for e, _ in events] == ["StartOfTurn", "EndOfTurn", "StartOfTurn", "EndOfTurn"]
    first, second = events[1][1].split(), events[3][1].split()
    assert first and second and tuple(first + second) == WORDS  # every word, once, in order
    assert variation.log == [{"kind": "split_turn", "index": 0}]
    eot_times = [t for t, m in out if isinstance(m, TurnInfo) and m.event == "EndOfTurn"]
    assert eot_times[0] < 1700 * MS  # at the pause, before the speech resumes


def test_merge_turns_gives_one_end_of_turn_carrying_both_turns() -> None:
    ref = (ReferenceTurn(WORDS, 1.0), ReferenceTurn(SECOND, 1.0))
    frames = burst_audio(5.0, ((0.4, 1.4), (2.4, 3.4)))
    plain = run(flux(ref, None), frames, 8000 * MS)
    assert [e for e, _ in turns(plain)] == ["StartOfTurn", "EndOfTurn"] * 2
    variation = realism(merge_turns=1.0)
    out = run(flux(ref, variation), frames, 8000 * MS)
    checked(out)
    events = turns(out)
    assert [e for e, _ in events] == ["StartOfTurn", "EndOfTurn"]
    assert tuple(events[1][1].split()) == WORDS + SECOND
    eot_time = next(t for t, m in out if isinstance(m, TurnInfo) and m.event == "EndOfTurn")
    assert 3400 * MS < eot_time < 3400 * MS + 1000 * MS  # after the second turn, at its delay
    assert variation.log == [{"kind": "merge_turns", "index": 0}]  # the last turn: no draw


def test_flux_warning_follows_start_of_turn_in_the_sequence() -> None:
    ref = (ReferenceTurn(WORDS, 1.0), ReferenceTurn(SECOND, 1.0))
    out = run(flux(ref, realism(flux_warning=1.0)), burst_audio(5.0, ((0.4, 1.4), (2.4, 3.4))),
              8000 * MS)  # fmt: skip
    checked(out)
    kinds = [json.loads(m.text)["type"] if isinstance(m, RawText) else getattr(m, "event", "")
             for _, m in out if isinstance(m, RawText | TurnInfo)]  # fmt: skip
    starts = [i for i, k in enumerate(kinds) if k == "StartOfTurn"]
    assert len(starts) == 2 and all(kinds[i + 1] == "Warning" for i in starts)
    warning = next(json.loads(m.text) for _, m in out if isinstance(m, RawText))
    assert set(warning) == {"type", "request_id", "sequence_id", "code", "description"}
    assert warning["request_id"] == "req-1"


def test_the_same_seed_varies_the_same_way_and_other_seeds_differently() -> None:
    ref = (ReferenceTurn(WORDS, 2.1),)
    frames = burst_audio(4.0, ((0.4, 1.4), (1.7, 2.5)))

    def logs(seed: str) -> list[dict[str, object]]:
        variation = realism(seed, split_turn=0.5, flux_warning=0.5)
        run(flux(ref, variation), frames, 6000 * MS)
        return variation.log

    assert logs("7:3") == logs("7:3")
    outcomes = {json.dumps(logs(f"7:{n}")) for n in range(1, 30)}
    assert len(outcomes) > 1  # the seed decides, and not always the same way


# ---- optional fields left out, unknown fields added ---------------------------------------


def _end_of_turn_text() -> str:
    out = run(flux((ReferenceTurn(WORDS, 1.0),), None), burst_audio(3.0, ((0.4, 1.4),)),
              5000 * MS)  # fmt: skip
    eot = next(m for _, m in out if isinstance(m, TurnInfo) and m.event == "EndOfTurn")
    return serialize_server_message(eot)


def test_omit_optional_drops_word_timings_and_the_message_still_parses() -> None:
    text = realism(omit_optional=1.0).rewrite(_end_of_turn_text())
    obj = json.loads(text)
    assert obj["words"] and all(set(w) == {"word", "confidence"} for w in obj["words"])
    assert parse_server_message(text).transcript == " ".join(WORDS)  # type: ignore[union-attr]


def test_extra_fields_add_an_unknown_field_and_the_trigger() -> None:
    variation = realism(extra_fields=1.0)
    obj = json.loads(variation.rewrite(_end_of_turn_text()))
    assert EXTRA_FIELD in obj and obj["trigger"] == "model"
    assert variation.log == [{"kind": "extra_fields"}]
    assert realism().rewrite("{\"type\":\"Connected\"}") == "{\"type\":\"Connected\"}"


# ---- Aura --------------------------------------------------------------------------------------


def test_aura_warning_comes_before_flushed() -> None:
    stream = AuraStream("req-9", "aura-1", AuraSettings(), 24000, itertools.repeat(10.0),
                        realism=realism(aura_warning=1.0))  # fmt: skip
    stream.receive(aura.serialize_client_message(aura.Speak("Hello there.")), 0)
    stream.receive(aura.serialize_client_message(aura.Flush()), 0)
    texts: list[str] = []
    for _ in range(1000):
        wake = stream.next_wakeup_ns()
        texts += [m for m in stream.poll(wake or 0) if isinstance(m, str)]
        if wake is None:
            break
    types = [json.loads(t)["type"] for t in texts]
    assert types == ["Metadata", "Warning", "Flushed"]
    assert isinstance(aura.parse_server_message(texts[1]), aura.Warning)
