"""SessionResult counts, WER and the sessions.csv row; ListSink; SessionError messages."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from voiceload.client import (
    agent_session,
    aura_request,
    aura_session,
    flux_session,
    flux_turns,
)
from voiceload.client.results import (
    SESSIONS_CSV_COLUMNS,
    AuraRequestRecord,
    ErrorCategory,
    ListSink,
    SessionError,
    SessionResult,
    TurnRecord,
)
from voiceload.metrics import METRICS
from voiceload.protocol.flux import Finding
from voiceload.wer import normalise, word_error_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi, I need to cancel my subscription!", "hi i need to cancel my subscription"),
        ("  Don’t   STOP -- now. ", "don't stop now"),
        ("end-of-turn", "end of turn"),
        ("'quoted'", "quoted"),
        ("...", ""),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


@pytest.mark.parametrize(
    ("refs", "hyps", "expected"),
    [
        (["Hello there."], ["hello there"], 0.0),
        (["a b c d"], ["a x c d"], 0.25),  # one substitution
        (["a b c d"], ["a b c d e"], 0.25),  # one insertion
        (["a b c d"], [""], 1.0),  # missed turn: all deletions
        (["a b", "c d e f"], ["a b", "c d"], 2 / 6),  # corpus, not mean of 0 and 0.5
        ([""], ["anything"], None),  # no reference words: undefined
        (["a b", ""], ["a b", "extra"], 0.5),  # words on an empty reference are insertions
    ],
)
def test_word_error_rate(refs: list[str], hyps: list[str], expected: float | None) -> None:
    got = word_error_rate(refs, hyps)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_word_error_rate_needs_pairs() -> None:
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        word_error_rate(["a", "b"], ["a"])


def test_list_sink_keeps_order_per_metric() -> None:
    sink = ListSink()
    sink.record("flux.eot", 5)
    sink.record("flux.ttft", 7)
    sink.record("flux.eot", 3)
    assert sink.values("flux.eot") == [5, 3]
    assert sink.samples == [("flux.eot", 5), ("flux.ttft", 7), ("flux.eot", 3)]


def test_session_error_message_names_every_fact() -> None:
    err = SessionError(ErrorCategory.UNAUTHORIZED, "check the token", 401, 2009)
    assert err.message() == "unauthorized: check the token (HTTP 401, code 2009)"
    closed = SessionError(ErrorCategory.CLOSED_BY_SERVER, "mid-stream", close_code=1011)
    assert closed.message() == "closed_by_server: mid-stream (close code 1011)"


def _flux_result() -> SessionResult:
    turns = [
        TurnRecord(0, 0.5, 2.0, "Hello there.", "hello there", 300_000, 412_345, None),
        TurnRecord(1, 3.0, 4.0, "a b c d", "a x c d", 200_000, 0, None, premature=True,
                   resumed=2),
        TurnRecord(2, 5.0, 6.0, "e f", None),
    ]  # fmt: skip
    return SessionResult(
        user_type="flux", fixture="greeting", model="@cf/deepgram/flux", start_s=1.5e9,
        duration_s=7.25, turns=turns, flux_audio_s=9.04, connections=1,
        findings=[Finding("r", "one", 1), Finding("r", "two", 2)],
    )  # fmt: skip


def test_flux_result_counts_and_row() -> None:
    result = _flux_result()
    assert (result.turns_expected, result.turns_ended, result.turns_missed) == (3, 2, 1)
    assert (result.turns_premature, result.turns_resumed) == (1, 2)
    assert result.wer == pytest.approx(3 / 8)  # 1 substitution + 2 deletions over 8 words
    row = result.to_row(session_id="s1", worker="w0", phase="steady")
    assert tuple(row) == SESSIONS_CSV_COLUMNS
    assert row["outcome"] == "ok" and row["error_category"] == ""
    assert row["ttft_ms"] == 300.0 and row["eot_ms"] == 412.345
    assert row["ttfb_ms"] == "" and row["voice_to_voice_ms"] == ""
    assert row["findings"] == 2 and row["phase"] == "steady"


def test_a_stopped_result_scores_wer_over_the_turns_that_ended() -> None:
    """The harness cut the session short: turns never heard are not the service's deletions."""
    result = _flux_result()
    result.stopped = True
    ended = [t for t in result.turns if t.ended]
    assert result.wer == pytest.approx(
        word_error_rate([t.reference for t in ended], [t.transcript or "" for t in ended])
    )
    assert result.wer != _flux_result().wer
    for turn in result.turns:
        turn.transcript = None
    assert result.wer is None and result.to_row()["wer"] == ""


def test_aura_result_row_and_error() -> None:
    result = SessionResult(
        user_type="aura", fixture="", model="@cf/deepgram/aura-1", start_s=0.0,
        aura_requests=[AuraRequestRecord(12, 90_000, 140_500, 50_500, 30_000, 0, 1.5, 10.0),
                       AuraRequestRecord(30, audio_s=2.0)],
        error=SessionError(ErrorCategory.TRANSCRIPT_TIMEOUT, "no Flushed within 10 s"),
    )  # fmt: skip
    row = result.to_row()
    assert row["aura_chars"] == 42 and row["aura_audio_s"] == 3.5
    assert row["ttfb_ms"] == 90.0 and row["ttfa_ms"] == 140.5
    assert row["wer"] == "" and row["turns_expected"] == 0
    assert row["outcome"] == "error" and row["error_category"] == "transcript_timeout"
    assert row["error_detail"] == "transcript_timeout: no Flushed within 10 s"


def test_every_emitted_metric_is_a_defined_metric() -> None:
    emitted = {
        value
        for module in (agent_session, aura_request, aura_session, flux_session, flux_turns)
        for name, value in vars(module).items()
        if name.startswith(("FLUX_", "AURA_", "AGENT_")) and isinstance(value, str)
    }
    assert len(emitted) == 13  # the 13 service metrics of METRICS.md
    assert emitted <= set(METRICS)


def test_copy_equals_a_deep_copy_and_shares_nothing_mutable() -> None:
    """``SessionResult.copy`` (a killed session's snapshot) is exact: equal to ``deepcopy``, and
    changing the original afterwards (the session's reader still running) leaves it alone."""
    result = _flux_result()
    result.aura_requests = [AuraRequestRecord(12, ttfb_us=90_000, audio_s=1.5)]
    result.connect_us = [1_234]
    result.error = SessionError(ErrorCategory.HARNESS_ERROR, "stopped")
    snap = result.copy()
    assert snap == copy.deepcopy(result)
    for f in dataclasses.fields(SessionResult):
        value = getattr(result, f.name)
        # every field is either copied (the lists) or an immutable value shared safely
        frozen = dataclasses.is_dataclass(value) and value.__dataclass_params__.frozen  # type: ignore[union-attr]
        immutable = isinstance(value, int | float | str | bool | type(None))
        assert isinstance(value, list) or frozen or immutable, f.name
        if isinstance(value, list):
            assert getattr(snap, f.name) is not value, f.name
    for record in [*result.turns, *result.aura_requests]:  # records hold immutable values only
        for f in dataclasses.fields(record):
            assert isinstance(getattr(record, f.name), int | float | str | bool | type(None))
    result.turns[2].transcript = "late"
    result.aura_requests[0].ttfa_us = 5
    result.connect_us.append(9)
    result.findings.append(Finding("r", "three", 3))
    assert snap == _copy_of_fixture_with(result)


def _copy_of_fixture_with(result: SessionResult) -> SessionResult:
    """What the snapshot held: the result before the changes of the test above."""
    original = copy.deepcopy(result)
    original.turns[2].transcript = None
    original.aura_requests[0].ttfa_us = None
    original.connect_us.pop()
    original.findings.pop()
    return original
