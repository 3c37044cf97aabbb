"""Every use of ``websockets`` internals by the emulator, in one place, behind a version check.

The emulator's audio short cut (docs/ARCHITECTURE.md) reaches below websockets' public asyncio
API: it takes complete binary frames as the connection parses them (overriding the
undocumented ``Connection.process_event`` and reading ``recv_messages.frames``), writes text
frames from outside the handler task (``protocol.send_text`` + ``send_data``), checks the
sans-I/O protocol's state and the write buffer's ``paused`` flag, and sends a close frame
without a status code (``send_context`` + ``protocol.send_close``; Flux's ``CloseStream``
answer). These names are not a stable API, so they are used only here, and importing this
module with a websockets release outside :data:`SUPPORTED` fails at once with one clear line
instead of misbehaving under load. Moving to a new release: check these few functions against
its source, run tests/integration/test_emulator.py, then widen :data:`SUPPORTED`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

import websockets.version
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from voiceload.versions import Supported, check_supported, parse_version

__all__ = ["SUPPORTED", "check_version", "parse_version"]

#: The websockets releases whose internals this module was checked against: [low, high).
SUPPORTED: Final[Supported] = ((15, 0), (18, 0))


def check_version(version: str) -> None:
    """Raise :class:`~voiceload.errors.ConfigError` when ``version`` is outside
    :data:`SUPPORTED` (:func:`voiceload.versions.check_supported`)."""
    check_supported("websockets", version, SUPPORTED, "voiceload's emulator")


check_version(websockets.version.version)


class AudioTapConnection(ServerConnection):
    """A server connection that can hand whole binary frames to ``audio_sink`` as they are
    parsed (inside ``data_received``), before they would be queued for ``recv``.

    ``audio_sink`` gets the payload of each complete binary frame when no earlier frame is
    still queued for ``recv`` (so the order is kept); it returns False to let the frame take
    the ordinary way. ``sunk`` counts the frames it took.
    """

    audio_sink: Callable[[bytes], bool] | None = None
    sunk = 0

    def process_event(self, event: Any) -> None:
        sink = self.audio_sink
        if (
            sink is not None
            and type(event) is Frame
            and event.opcode is Opcode.BINARY
            and event.fin
            and not self.recv_messages.frames  # nothing earlier waits for recv: order kept
            and sink(bytes(event.data))
        ):
            self.sunk += 1
            return
        super().process_event(event)


def can_write_now(ws: ServerConnection) -> bool:
    """Whether :func:`write_texts_now` may write: the connection is open and its transport
    is not paused by flow control."""
    return ws.protocol.state is State.OPEN and not ws.paused


def write_texts_now(ws: ServerConnection, texts: Iterable[str]) -> None:
    """Queue text frames and flush them to the transport at once, from outside the handler
    task (call only when :func:`can_write_now`). A transport error is recorded on the
    connection, as websockets' own ``data_received`` does."""
    for text in texts:
        ws.protocol.send_text(text.encode())
    try:
        ws.send_data()
    except Exception as exc:
        ws.set_connection_exc(exc)


async def close_without_status(ws: ServerConnection) -> None:
    """Send a close frame with no status code (the client sees 1005), as Flux does after
    ``CloseStream``; raises ``ConnectionClosed`` if the connection is already closed."""
    async with ws.send_context():
        ws.protocol.send_close()


def abort(ws: ServerConnection) -> None:
    """Drop the TCP connection without a closing handshake."""
    ws.transport.abort()
