"""Absolute schedule maths for paced audio streaming (pure: no clock, no sleep).

A Flux session streams a fixture as if a person were speaking into a microphone right now
(docs/METRICS.md, "Clock and timeline"):

- audio offset ``a`` seconds into the fixture is *spoken* at ``S(a) = t0 + a``;
- with frames of ``f`` ms, frame ``k`` holds audio ``[k·f, (k+1)·f)`` and is **due** at
  ``t0 + (k+1)·f``: it cannot be sent before it has been "recorded".

The schedule is absolute: frame ``k``'s due time never depends on when frame ``k-1`` was
actually sent, so a harness that falls behind catches up instead of drifting, and the lag it
accumulated is measured (``send_lag_ns``) rather than hidden. This is vegeta's ``Pace`` idea:
the session driver asks "how long until frame k?" and sleeps that long; it never decides.

All times are integer nanoseconds on one monotonic clock (``time.monotonic_ns()``); the caller
reads the clock and passes ``now_ns`` in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from voiceload.errors import ConfigError

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

#: Flux's own default for ``eot_timeout_ms`` (PROTOCOLS.md §3.2).
DEFAULT_EOT_TIMEOUT_MS = 5_000
#: How long past ``eot_timeout_ms`` a session keeps streaming silence waiting for ``EndOfTurn``.
DEFAULT_TRAILING_MARGIN_MS = 5_000


def ns_to_us(delta_ns: int) -> int:
    """Signed ns -> signed µs, rounded to the nearest µs (halves round up: -1500 ns -> -1 µs)."""
    return (delta_ns + 500) // 1000


def frame_due_ns(t0_ns: int, k: int, frame_ms: int) -> int:
    """Due time of frame ``k`` (``k >= 0``): ``t0 + (k+1)·frame_ms``, when its audio is recorded."""
    return t0_ns + (k + 1) * frame_ms * NS_PER_MS


def speaker_time_ns(t0_ns: int, audio_offset_s: float) -> int:
    """``S(a) = t0 + a``: when audio offset ``a`` (seconds into the fixture) is spoken.

    The offset is rounded to the nearest nanosecond.
    """
    return t0_ns + round(audio_offset_s * NS_PER_S)


def start_time_ns(now_ns: int, frame_ms: int, rng: random.Random) -> int:
    """A session's ``t0``: ``now_ns`` plus a random phase drawn uniformly from ``[0, frame_ms)``.

    Each user draws its own phase so that many streams started together do not send their
    frames in the same instant. Pass a seeded ``random.Random`` for reproducible runs.
    """
    _check_frame_ms(frame_ms)
    return now_ns + rng.randrange(frame_ms * NS_PER_MS)


def trailing_silence_deadline_ns(
    t0_ns: int,
    last_offset_s: float,
    eot_timeout_ms: int = DEFAULT_EOT_TIMEOUT_MS,
    margin_ms: int = DEFAULT_TRAILING_MARGIN_MS,
) -> int:
    """Latest instant up to which a session streams paced silence after the fixture's audio.

    Flux only ends a turn after hearing silence, and at the latest ``eot_timeout_ms`` after the
    speech stopped; the session therefore keeps streaming silence until ``EndOfTurn`` arrives
    or this bound passes: ``S(last_offset_s) + eot_timeout_ms + margin_ms``, where
    ``last_offset_s`` is the last turn's speech offset (METRICS.md: "default 5 s past
    eot_timeout_ms").
    """
    if eot_timeout_ms < 0 or margin_ms < 0:
        raise ConfigError(
            f"eot_timeout_ms={eot_timeout_ms} and margin_ms={margin_ms} must not be negative"
        )
    return speaker_time_ns(t0_ns, last_offset_s) + (eot_timeout_ms + margin_ms) * NS_PER_MS


def frames_due_by(t0_ns: int, deadline_ns: int, frame_ms: int) -> int:
    """How many frames (``k = 0, 1, …``) are due at or before ``deadline_ns``.

    Use it to bound the trailing silence: frames ``n_frames .. frames_due_by(deadline)-1`` are
    the silence frames a session may still send.
    """
    _check_frame_ms(frame_ms)
    if deadline_ns < t0_ns:
        return 0
    return (deadline_ns - t0_ns) // (frame_ms * NS_PER_MS)


def _check_frame_ms(frame_ms: int) -> None:
    if frame_ms <= 0:
        raise ConfigError(f"frame size {frame_ms} ms is not positive: use e.g. --frame-ms 80")


@dataclass(frozen=True, slots=True)
class FrameSchedule:
    """The absolute send schedule of one stream: ``n_frames`` fixture frames from ``t0_ns``.

    Frame indices ``k >= n_frames`` are allowed: they are the trailing-silence frames that
    follow the fixture on the same cadence. Every method is pure and O(1).
    """

    t0_ns: int
    frame_ms: int
    n_frames: int

    def __post_init__(self) -> None:
        _check_frame_ms(self.frame_ms)
        if self.n_frames < 0:
            raise ConfigError(f"a stream cannot have {self.n_frames} frames (must be >= 0)")

    @property
    def frame_ns(self) -> int:
        """Length of one frame in nanoseconds."""
        return self.frame_ms * NS_PER_MS

    @property
    def end_ns(self) -> int:
        """Due time of the last fixture frame (``t0_ns`` when there are no frames)."""
        return self.t0_ns + self.n_frames * self.frame_ns

    def next_due(self, k: int) -> int:
        """Due time of frame ``k`` (``k >= 0``; fixture or trailing-silence frame)."""
        if k < 0:
            raise ValueError(f"frame index {k} is negative")
        return frame_due_ns(self.t0_ns, k, self.frame_ms)

    def wait_ns(self, now_ns: int, k: int) -> int:
        """How long to sleep before sending frame ``k``; 0 when it is already due (or late)."""
        return max(0, self.next_due(k) - now_ns)

    def send_lag_ns(self, sent_ns: int, k: int) -> int:
        """Actual send time minus due time of frame ``k`` (``flux.send_lag``).

        Negative only if the frame was sent early, which a correct driver never does; the
        metrics layer counts such a value as out of range rather than hiding it.
        """
        return sent_ns - self.next_due(k)

    def audio_s(self, frames_sent: int) -> float:
        """Audio seconds carried by ``frames_sent`` frames (silence included): billed audio."""
        return frames_sent * self.frame_ms / 1000
