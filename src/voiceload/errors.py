"""One error tree for voiceload.

Every error a user can meet derives from :class:`VoiceloadError`, and its message is one plain
line that names the cause and what to do about it. Protocol errors say *who* broke the protocol
(as h11 does): :class:`LocalProtocolError` when we misused it, :class:`RemoteProtocolError` when
the peer did.
"""

from __future__ import annotations


class VoiceloadError(Exception):
    """Base class of every error voiceload raises on purpose."""


class ConfigError(VoiceloadError):
    """Bad user input (flags, config files, environment): raised before any load starts."""


class FixtureError(ConfigError):
    """A fixture or the fixtures manifest is missing, unreadable or inconsistent."""


class ProtocolError(VoiceloadError):
    """A Flux, Aura or gateway protocol rule was broken."""


class LocalProtocolError(ProtocolError):
    """We (the local side) tried to do something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow (e.g. a missing required field)."""
