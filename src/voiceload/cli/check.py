"""``voiceload check``: the preflight check (config, DNS, TCP, TLS, upgrade, Flux, Aura).

The checks and their diagnoses are library code in :mod:`voiceload.preflight`; this module is
the sub-command's entry in the ``voiceload.cli`` package (``configure_parser`` / ``main``).
"""

from __future__ import annotations

from voiceload.preflight import configure_parser, main

__all__ = ["configure_parser", "main"]
