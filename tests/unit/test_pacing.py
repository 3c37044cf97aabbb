"""voiceload.pacing: exact nanosecond tables, no sleeps, no clock."""

from __future__ import annotations

import random

import pytest

from voiceload.errors import ConfigError
from voiceload.pacing import (
    FrameSchedule,
    frame_due_ns,
    frames_due_by,
    ns_to_us,
    speaker_time_ns,
    start_time_ns,
    trailing_silence_deadline_ns,
)


@pytest.mark.parametrize(
    ("t0_ns", "k", "frame_ms", "due_ns"),
    [
        (0, 0, 80, 80_000_000),
        (0, 1, 80, 160_000_000),
        (1_000, 0, 20, 20_001_000),
        (5_000_000_000, 9, 100, 6_000_000_000),
        (7, 124, 80, 10_000_000_007),
    ],
)
def test_frame_due_is_end_of_its_audio(t0_ns: int, k: int, frame_ms: int, due_ns: int) -> None:
    assert frame_due_ns(t0_ns, k, frame_ms) == due_ns


@pytest.mark.parametrize(
    ("t0_ns", "offset_s", "spoken_ns"),
    [
        (0, 0.0, 0),
        (100, 1.5, 1_500_000_100),
        (2_000_000_000, 0.123456789, 2_123_456_789),
        (0, 0.08, 80_000_000),  # 0.08 is not exact in binary: rounded, not truncated
    ],
)
def test_speaker_time(t0_ns: int, offset_s: float, spoken_ns: int) -> None:
    assert speaker_time_ns(t0_ns, offset_s) == spoken_ns


def test_frame_k_is_due_when_speaker_time_reaches_its_end() -> None:
    t0_ns = 123_456_789
    for k in range(50):
        assert frame_due_ns(t0_ns, k, 80) == speaker_time_ns(t0_ns, (k + 1) * 0.08)


def test_schedule_wait_and_lag_table() -> None:
    sched = FrameSchedule(t0_ns=1_000_000_000, frame_ms=80, n_frames=3)
    # (now_ns, k, wait_ns)
    table = [
        (1_000_000_000, 0, 80_000_000),  # at t0 frame 0 is one frame away
        (1_079_999_999, 0, 1),
        (1_080_000_000, 0, 0),  # exactly due
        (1_085_000_000, 0, 0),  # late: never a negative wait
        (1_085_000_000, 1, 75_000_000),
        (1_300_000_000, 2, 0),
        (1_300_000_000, 3, 20_000_000),  # first trailing-silence frame keeps the cadence
    ]
    for now_ns, k, wait_ns in table:
        assert sched.wait_ns(now_ns, k) == wait_ns, (now_ns, k)
    # (sent_ns, k, lag_ns)
    for sent_ns, k, lag_ns in [
        (1_080_000_000, 0, 0),
        (1_080_550_000, 0, 550_000),
        (1_170_000_001, 1, 10_000_001),
        (1_159_000_000, 1, -1_000_000),  # early send shows as a negative lag
    ]:
        assert sched.send_lag_ns(sent_ns, k) == lag_ns, (sent_ns, k)
    assert sched.next_due(2) == 1_240_000_000
    assert sched.end_ns == 1_240_000_000
    assert sched.frame_ns == 80_000_000
    assert sched.audio_s(5) == pytest.approx(0.4)


def test_schedule_is_absolute_not_cumulative() -> None:
    """A late frame does not push later frames back: due times depend only on k."""
    sched = FrameSchedule(t0_ns=0, frame_ms=20, n_frames=10)
    late_send_ns = sched.next_due(0) + 55_000_000  # frame 0 sent 55 ms late
    # frames 1 and 2 are already overdue then; frame 3 is due 5 ms later
    assert [sched.wait_ns(late_send_ns, k) for k in range(1, 5)] == [0, 0, 5_000_000, 25_000_000]


def test_schedule_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="frame size 0 ms"):
        FrameSchedule(t0_ns=0, frame_ms=0, n_frames=1)
    with pytest.raises(ConfigError, match="-1 frames"):
        FrameSchedule(t0_ns=0, frame_ms=80, n_frames=-1)
    with pytest.raises(ValueError, match="negative"):
        FrameSchedule(t0_ns=0, frame_ms=80, n_frames=1).next_due(-1)


def test_start_time_phase_is_within_one_frame_and_seeded() -> None:
    now_ns = 10_000_000_000
    starts = [start_time_ns(now_ns, 80, random.Random(seed)) for seed in range(200)]
    assert all(now_ns <= s < now_ns + 80_000_000 for s in starts)
    assert len(set(starts)) > 150  # phases spread out rather than aligning
    assert start_time_ns(now_ns, 80, random.Random(7)) == start_time_ns(
        now_ns, 80, random.Random(7)
    )
    with pytest.raises(ConfigError):
        start_time_ns(now_ns, -20, random.Random(0))


def test_trailing_silence_deadline_and_frame_bound() -> None:
    t0_ns = 1_000
    deadline_ns = trailing_silence_deadline_ns(t0_ns, last_offset_s=2.5)
    assert deadline_ns == 1_000 + 2_500_000_000 + 10_000_000_000
    assert (
        trailing_silence_deadline_ns(t0_ns, 2.5, eot_timeout_ms=1_000, margin_ms=500)
        == 1_000 + 4_000_000_000
    )
    with pytest.raises(ConfigError):
        trailing_silence_deadline_ns(t0_ns, 2.5, eot_timeout_ms=-1)
    # frames due by the deadline: 12.5 s / 80 ms = 156.25 -> 156 frames (k = 0..155)
    assert frames_due_by(t0_ns, deadline_ns, 80) == 156
    assert frame_due_ns(t0_ns, 155, 80) <= deadline_ns < frame_due_ns(t0_ns, 156, 80)
    assert frames_due_by(t0_ns, t0_ns + 79_999_999, 80) == 0
    assert frames_due_by(t0_ns, t0_ns + 80_000_000, 80) == 1
    assert frames_due_by(t0_ns, t0_ns - 1, 80) == 0


def test_ns_to_us_rounds_to_nearest_microsecond_with_halves_up() -> None:
    assert [ns_to_us(v) for v in (0, 499, 500, 1_499, 1_500, -499, -500, -501, -1_500)] == [
        0, 0, 1, 1, 2, 0, 0, -1, -1,
    ]  # fmt: skip


def test_frame_schedule_next_due_agrees_with_frame_due_ns() -> None:
    schedule = FrameSchedule(t0_ns=123_456_789, frame_ms=20, n_frames=3)
    assert [schedule.next_due(k) for k in range(6)] == [
        frame_due_ns(123_456_789, k, 20) for k in range(6)
    ]
