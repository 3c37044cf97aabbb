"""JSON helpers shared by the Flux and Aura message codecs (private to ``voiceload.protocol``).

Every reader takes the decoded object, the field name and the message name, and raises
:class:`~voiceload.errors.RemoteProtocolError` with one plain line naming the field when the
field is missing or has the wrong JSON type. Numbers accept JSON integers and floats, never
booleans (``True`` is an ``int`` in Python, not a number on the wire).

Encoding and decoding use ``orjson`` (C, several times faster than the standard library's
``json``): the emulator encodes a Flux ``TurnInfo`` per 250 ms per stream and the load client
decodes every one, so this is on both hot paths. Its output is compact UTF-8 JSON like
``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)``; numbers print in the shortest
form that reads back to the same value (exponents as ``1e-5``, not ``1e-05``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from voiceload.errors import RemoteProtocolError


def dumps(obj: Mapping[str, Any]) -> str:
    """Compact JSON (no spaces), as the services send it."""
    return orjson.dumps(obj).decode()


def loads_object(data: str | bytes, what: str) -> dict[str, Any]:
    """Decode one JSON text frame that must hold an object; ``what`` names the sender."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:  # a ValueError; also raised for invalid UTF-8
        raise RemoteProtocolError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"{what} is a JSON {type(obj).__name__}, not an object")
    return obj


def _missing(msg: str, name: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"{msg} message lacks required field {name!r}")


def _mistyped(msg: str, name: str, expected: str, value: object) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"{msg} message field {name!r} must be {expected}, got {json.dumps(value)}"
    )


def req_str(obj: Mapping[str, Any], name: str, msg: str) -> str:
    if name not in obj:
        raise _missing(msg, name)
    value = obj[name]
    if not isinstance(value, str):
        raise _mistyped(msg, name, "a string", value)
    return value


def req_int(obj: Mapping[str, Any], name: str, msg: str) -> int:
    if name not in obj:
        raise _missing(msg, name)
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _mistyped(msg, name, "an integer", value)
    return value


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def req_float(obj: Mapping[str, Any], name: str, msg: str) -> float:
    if name not in obj:
        raise _missing(msg, name)
    value = obj[name]
    if not is_number(value):
        raise _mistyped(msg, name, "a number", value)
    return float(value)


def opt_float(obj: Mapping[str, Any], name: str, msg: str) -> float | None:
    if obj.get(name) is None:
        return None
    return req_float(obj, name, msg)


def req_list(obj: Mapping[str, Any], name: str, msg: str) -> list[Any]:
    if name not in obj:
        raise _missing(msg, name)
    value = obj[name]
    if not isinstance(value, list):
        raise _mistyped(msg, name, "a list", value)
    return value


def req_object(obj: Mapping[str, Any], name: str, msg: str) -> dict[str, Any]:
    if name not in obj:
        raise _missing(msg, name)
    value = obj[name]
    if not isinstance(value, dict):
        raise _mistyped(msg, name, "an object", value)
    return value


def str_tuple(values: list[Any], name: str, msg: str) -> tuple[str, ...]:
    """The items of a JSON list field that must all be strings."""
    for item in values:
        if not isinstance(item, str):
            raise _mistyped(msg, name, "a list of strings", values)
    return tuple(values)


def number_map(values: Mapping[str, Any], name: str, msg: str) -> dict[str, float]:
    """A JSON object field whose values must all be numbers (ints stay ints: 5000, not 5000.0)."""
    for value in values.values():
        if not is_number(value):
            raise _mistyped(msg, name, "an object of numbers", dict(values))
    return dict(values)
