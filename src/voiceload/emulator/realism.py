"""The emulator's variability profile (``[realism]``): harmless variation the real service shows.

A harness must not report the real service as broken on first contact, so the emulator can
vary what it sends the way the real service may, each variation seeded and off by default:

==================  ===========================================================================
``split_turn``      at a pause inside a reference turn, end the turn there (``EndOfTurn`` with
                    the words so far); speech resuming opens a new turn with the rest: two
                    ``EndOfTurn`` for one spoken turn (probability per such pause)
``merge_turns``     when a reference turn is complete and another follows, send no
                    ``EndOfTurn``: the next turn's speech continues the same turn, and one
                    ``EndOfTurn`` carries both (probability per turn; the ``eot_timeout_ms``
                    forced end still applies)
``flux_warning``    a Flux ``Warning`` message (``type``, ``request_id``, ``sequence_id``,
                    ``code``, ``description``: Deepgram's ``ListenV2Warning``) right after a
                    ``StartOfTurn`` (probability per turn)
``aura_warning``    an Aura ``Warning`` (``description``, ``code``) before a ``Flushed``
                    (probability per Flush)
``omit_optional``   leave out the optional fields of Flux words (``start``, ``end``; the
                    AsyncAPI requires only ``word`` and ``confidence``) (probability per
                    connection)
``extra_fields``    add a field no client knows to every JSON message, and the newer
                    ``trigger: "model"`` to every ``EndOfTurn`` (probability per connection)
==================  ===========================================================================

Every draw comes from the connection's own generator, seeded by the emulator's seed and the
connection number (:meth:`voiceload.emulator.behaviour.Behaviour.connection_seed`) and kept
apart from the latency draws, so turning ``[realism]`` on does not change any delay, and the
same seed and audio give the same variations. Each variation that happens is noted in
:attr:`Realism.log` (the server writes it to ``--trace``: the ground truth of what was varied).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from voiceload.errors import ConfigError

#: The unknown field ``extra_fields`` adds (clients must ignore fields they do not know).
EXTRA_FIELD = "voiceload_unknown_field"
#: The Warning codes the profile sends (free strings in Deepgram's schemas).
FLUX_WARNING_CODE = "VOICELOAD_EMULATED_WARNING"
AURA_WARNING_CODE = "VOICELOAD_EMULATED_WARNING"
WARNING_DESCRIPTION = "emulated warning (voiceload realism profile): clients should carry on"


@dataclass(frozen=True)
class RealismSettings:
    """Probabilities of each variation (0: never, the default; 1: always)."""

    split_turn: float = 0.0
    merge_turns: float = 0.0
    flux_warning: float = 0.0
    aura_warning: float = 0.0
    omit_optional: float = 0.0
    extra_fields: float = 0.0

    @property
    def enabled(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in fields(self))


def parse_realism(table: Mapping[str, Any]) -> RealismSettings:
    """Validate the ``[realism]`` table; raises :class:`ConfigError` naming the first bad key."""
    names = tuple(f.name for f in fields(RealismSettings))
    values: dict[str, float] = {}
    for key, value in table.items():
        if key not in names:
            raise ConfigError(
                f"emulator config: unknown key realism.{key} (allowed: {', '.join(names)})"
            )
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not 0.0 <= value <= 1.0:
            raise ConfigError(
                f"emulator config: realism.{key} must be a probability between 0 and 1,"
                f" got {value!r}"
            )
        values[key] = float(value)
    return RealismSettings(**values)


@dataclass
class Realism:
    """One connection's variations: the per-connection choices made at once, the others drawn
    as the stream asks (:meth:`split`, :meth:`merge`, ...)."""

    settings: RealismSettings
    seed: str
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.seed}:realism")
        self.omit_optional = self._draw(self.settings.omit_optional)
        self.extra_fields = self._draw(self.settings.extra_fields)
        if self.omit_optional:
            self.log.append({"kind": "omit_optional"})
        if self.extra_fields:
            self.log.append({"kind": "extra_fields"})

    def _draw(self, probability: float) -> bool:
        """True with ``probability``; draws nothing when it is 0, so knobs left at 0 never
        shift the other draws."""
        return probability > 0 and self._rng.random() < probability

    def split(self, turn_index: int) -> bool:
        """End the turn at this pause inside its reference turn?"""
        return self._note(self._draw(self.settings.split_turn), "split_turn", turn_index)

    def merge(self, turn_index: int) -> bool:
        """Let the next reference turn continue this turn (no EndOfTurn now)?"""
        return self._note(self._draw(self.settings.merge_turns), "merge_turns", turn_index)

    def flux_warning(self, turn_index: int) -> bool:
        """Send a Flux Warning after this StartOfTurn?"""
        return self._note(self._draw(self.settings.flux_warning), "flux_warning", turn_index)

    def aura_warning(self, flush_id: int) -> bool:
        """Send an Aura Warning before this Flushed?"""
        return self._note(self._draw(self.settings.aura_warning), "aura_warning", flush_id)

    def _note(self, happened: bool, kind: str, index: int) -> bool:
        if happened:
            self.log.append({"kind": kind, "index": index})
        return happened

    @property
    def rewrites(self) -> bool:
        """Whether :meth:`rewrite` changes anything (else callers skip it)."""
        return self.omit_optional or self.extra_fields

    def rewrite(self, text: str) -> str:
        """A JSON text frame with optional fields left out and/or unknown ones added."""
        if not self.rewrites:
            return text
        obj = json.loads(text)
        if self.omit_optional:
            for word in obj.get("words", ()):
                if isinstance(word, dict):
                    word.pop("start", None)
                    word.pop("end", None)
        if self.extra_fields:
            obj[EXTRA_FIELD] = {"note": "clients must ignore fields they do not know"}
            if obj.get("event") == "EndOfTurn":
                obj.setdefault("trigger", "model")
        return json.dumps(obj, separators=(",", ":"))


def flux_warning_text(request_id: str, sequence_id: int) -> str:
    """A Flux ``Warning`` (Deepgram's ``ListenV2Warning``: all five fields required)."""
    return json.dumps(
        {
            "type": "Warning",
            "request_id": request_id,
            "sequence_id": sequence_id,
            "code": FLUX_WARNING_CODE,
            "description": WARNING_DESCRIPTION,
        },
        separators=(",", ":"),
    )


def aura_warning_text() -> str:
    """An Aura ``Warning`` (``type``, ``description``, ``code``: Deepgram's ``speak.v1``)."""
    return json.dumps(
        {"type": "Warning", "description": WARNING_DESCRIPTION, "code": AURA_WARNING_CODE},
        separators=(",", ":"),
    )
