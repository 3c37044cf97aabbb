"""The one version check behind voiceload's uses of library internals.

:mod:`voiceload.runner.locust_compat` and :mod:`voiceload.emulator.ws_compat` each reach below
a library's public API and say which releases they were checked against; both refuse any other
release with the same one-line
:class:`~voiceload.errors.ConfigError`.
"""

from __future__ import annotations

import re

from voiceload.errors import ConfigError

#: A half-open range of (major, minor) releases: [low, high).
Supported = tuple[tuple[int, int], tuple[int, int]]


def parse_version(text: str) -> tuple[int, int]:
    """``"2.47.0"`` -> ``(2, 47)``; ``"16.0rc1"`` -> ``(16, 0)``; ``"15"`` -> ``(15, 0)`` (major and
    minor only; a suffix such as ``rc1`` is ignored)."""
    numbers = [int(m.group()) if (m := re.match(r"\d+", part)) else 0 for part in text.split(".")]
    return (*numbers, 0)[0], (*numbers, 0, 0)[1]


def check_supported(package: str, version: str, supported: Supported, user: str) -> None:
    """Raise :class:`~voiceload.errors.ConfigError` when ``version`` of ``package`` is outside
    ``supported``; ``user`` names what needs it (``"voiceload"``, ``"voiceload's emulator"``)."""
    low, high = supported
    if not low <= parse_version(version) < high:
        raise ConfigError(
            f"{package} {version} is not supported by {user} (needs >={low[0]}.{low[1]},"
            f"<{high[0]}.{high[1]}): install a supported release"
        )
