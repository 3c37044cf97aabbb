"""Pair each Flux ``EndOfTurn`` with the reference turn(s) it covers, by audio time (pure).

A real model does not always end turns where the manifest does: it may end one spoken turn
twice (a *split*) or end two spoken turns with one ``EndOfTurn`` (a *merge*), and it may end a
"turn" over noise or silence (an *extra*). Pairing by ``turn_index`` would then shift every
later turn's ``flux.eot`` and WER onto the wrong reference. Pairing by time does not: each
``EndOfTurn`` carries the audio window it closes (``audio_window_start`` ..
``audio_window_end``, seconds of audio received), and each reference turn has its speech span
(``onset_s`` .. ``offset_s`` in the manifest).

The rules (one ``EndOfTurn`` at a time, in arrival order, so decisions are made live):

* The window is clipped to start no earlier than the previous ``EndOfTurn``'s window end, so
  windows tile the stream even when a service reports ``audio_window_start`` 0 every time.
* An ``EndOfTurn`` **ends** every reference turn not yet ended whose speech overlaps its window
  and whose midpoint ``(onset + offset) / 2`` it has reached (``audio_window_end`` >= midpoint):
  more than half of that turn had been heard when the service said the turn was over. Ending
  two or more reference turns at once is a **merge** (:attr:`Match.turns` lists them, in order).
* Otherwise, an ``EndOfTurn`` whose window overlaps reference speech is a **piece** of the
  reference turn it overlaps most (:attr:`MatchKind.PIECE`): either before that turn's midpoint
  (the turn is ended later by the ``EndOfTurn`` that reaches its midpoint) or inside what was
  left of a turn already ended. A reference turn with two or more ``EndOfTurn`` messages (its
  ending one plus pieces) is **split**.
* An ``EndOfTurn`` whose window overlaps no reference speech is **extra**.
* A reference turn that only ever got pieces (its last piece came before its midpoint and no
  ``EndOfTurn`` reached it) is ended by its last piece; :meth:`TurnAligner.settle` reports it
  at the end of the stream, and :meth:`TurnAligner.on_end_of_turn` as soon as a later turn is
  ended (:attr:`Match.settled`). A reference turn no ``EndOfTurn`` overlapped is **missed**.

:func:`align` runs the same rules over a whole list of windows, for tests and offline checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class MatchKind(StrEnum):
    """What one ``EndOfTurn`` was, relative to the reference turns."""

    END = "end"  # ends the reference turn(s) in Match.turns (two or more: merged)
    PIECE = "piece"  # one more EndOfTurn inside the reference turn Match.turns[0] (a split)
    EXTRA = "extra"  # overlaps no reference speech


@dataclass(frozen=True)
class Match:
    """The verdict on one ``EndOfTurn``.

    ``turns`` are reference turn indices (END: the turns it ends, the last one's offset is the
    one latency is measured from; PIECE: the one turn it is a piece of; EXTRA: empty).
    ``settled`` are earlier turns that only got pieces, now ended by their last piece.
    """

    kind: MatchKind
    turns: tuple[int, ...] = ()
    settled: tuple[int, ...] = ()

    @property
    def merged(self) -> bool:
        return self.kind is MatchKind.END and len(self.turns) > 1


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


class TurnAligner:
    """The live pairing of one stream's ``EndOfTurn`` messages with its reference turns.

    ``spans`` are the reference turns' ``(onset_s, offset_s)`` in manifest order.
    """

    def __init__(self, spans: Sequence[tuple[float, float]]) -> None:
        self.spans = [(float(a), float(b)) for a, b in spans]
        self.ended = [False] * len(self.spans)
        self.end_of_turns = [0] * len(self.spans)  # EndOfTurn messages matched to each turn
        self._pieces_only = [False] * len(self.spans)  # pieces seen, not ended yet
        self._window_end_s = 0.0

    def on_end_of_turn(self, window_start_s: float, window_end_s: float) -> Match:
        """Classify the next ``EndOfTurn`` by its audio window (see the module docstring)."""
        start = max(window_start_s, self._window_end_s)
        end = max(window_end_s, start)
        self._window_end_s = max(self._window_end_s, end)
        overlaps = [_overlap(start, end, a, b) for a, b in self.spans]
        ending = tuple(
            i
            for i, (a, b) in enumerate(self.spans)
            if not self.ended[i] and overlaps[i] > 0 and end >= (a + b) / 2
        )
        if ending:
            settled = tuple(
                i for i in range(ending[0]) if self._pieces_only[i] and not self.ended[i]
            )
            for i in (*settled, *ending):
                self.ended[i] = True
                self._pieces_only[i] = False
            self.end_of_turns[ending[-1]] += 1
            return Match(MatchKind.END, ending, settled)
        best = max(range(len(self.spans)), key=lambda i: (overlaps[i], -i), default=None)
        if best is None or overlaps[best] <= 0:
            return Match(MatchKind.EXTRA)
        self.end_of_turns[best] += 1
        if not self.ended[best]:
            self._pieces_only[best] = True
        return Match(MatchKind.PIECE, (best,))

    def settle(self) -> tuple[int, ...]:
        """End of the stream: turns that only got pieces are ended by their last piece."""
        settled = tuple(i for i, p in enumerate(self._pieces_only) if p and not self.ended[i])
        for i in settled:
            self.ended[i] = True
            self._pieces_only[i] = False
        return settled


@dataclass
class Alignment:
    """Every ``EndOfTurn`` of a stream paired with the reference turns (:func:`align`)."""

    matches: list[Match]
    settled: tuple[int, ...]  # turns ended by their last piece at the end of the stream
    #: for each reference turn: the EndOfTurn (index into the windows) that ends it, or None
    ended_by: list[int | None] = field(default_factory=list)
    split: int = 0  # reference turns with two or more EndOfTurn messages
    merged: int = 0  # reference turns ended together with another by one EndOfTurn
    missed: int = 0  # reference turns no EndOfTurn overlapped
    extra: int = 0  # EndOfTurn messages over no reference speech


def align(
    spans: Sequence[tuple[float, float]], windows: Sequence[tuple[float, float]]
) -> Alignment:
    """Pair ``windows`` (each ``EndOfTurn``'s ``(audio_window_start, audio_window_end)``, in
    arrival order) with the reference ``spans``; the same rules as :class:`TurnAligner`."""
    aligner = TurnAligner(spans)
    matches = [aligner.on_end_of_turn(a, b) for a, b in windows]
    settled = aligner.settle()
    ended_by: list[int | None] = [None] * len(spans)
    last_piece: dict[int, int] = {}
    for k, m in enumerate(matches):
        if m.kind is MatchKind.PIECE:
            last_piece[m.turns[0]] = k
        for i in m.settled:
            ended_by[i] = last_piece[i]
        if m.kind is MatchKind.END:
            for i in m.turns:
                ended_by[i] = k
    for i in settled:
        ended_by[i] = last_piece[i]
    return Alignment(
        matches=matches,
        settled=settled,
        ended_by=ended_by,
        split=sum(1 for n in aligner.end_of_turns if n > 1),
        merged=sum(len(m.turns) for m in matches if m.merged),
        missed=sum(1 for e in ended_by if e is None),
        extra=sum(1 for m in matches if m.kind is MatchKind.EXTRA),
    )
