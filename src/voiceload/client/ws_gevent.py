"""websockets' sync client under gevent: the one change it needs, behind a version check.

Each ``websockets.sync`` connection reads in a background thread (a greenlet under gevent)
that waits in ``selectors.DefaultSelector().select()`` on its socket, and the socket may be
closed by *another* greenlet at any time: a send that fails (the peer stopped reading under
load), a close whose handshake timed out, a killed session. The standard selectors then raise
``EBADF`` on the closed descriptor and the reader ends quietly. gevent's selector instead hands
the dead descriptor to libev, which **aborts the whole process** ("libev: I/O watcher with
invalid fd found in epoll_ctl"), losing every sample the Locust worker had not yet handed on.
It happened in 2 of 2 overload runs (800 Flux users with sessions ending, one core) before this
module existed; tests/unit/client/test_ws_gevent.py reproduces it in a few lines.

:func:`install` gives ``websockets.sync.connection`` a selector that looks before it waits: a
registered socket already closed is reported ready at once (so the reader's ``recv`` fails and
the connection ends as websockets intends) instead of being handed to libev. Greenlets of one
thread cannot interleave between that look and libev taking the descriptor, so the check is
exact. It touches one module-level name of websockets, hence the version bound.
"""

from __future__ import annotations

import selectors
import sys
import types
from typing import Any, Final

import websockets.version

from voiceload.versions import Supported, check_supported

#: The websockets releases whose sync connection was checked against this patch: [low, high).
SUPPORTED: Final[Supported] = ((15, 0), (18, 0))


def _gevent_selector_class() -> type[Any]:
    from gevent.selectors import GeventSelector

    class ClosedAwareSelector(GeventSelector):  # type: ignore[misc]  # gevent is untyped
        """gevent's selector, except that a registered file object already closed is reported
        ready instead of being watched (see the module docstring)."""

        def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
            for key in list(self.get_map().values()):
                fileobj = key.fileobj
                if not isinstance(fileobj, int) and fileobj.fileno() == -1:
                    return [(key, key.events)]
            result: list[tuple[Any, int]] = super().select(timeout)
            return result

    return ClosedAwareSelector


def gevent_patched() -> bool:
    """True when gevent has patched ``threading`` (Locust imports do): threads are greenlets."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def install() -> bool:
    """Give ``websockets.sync.connection`` the closed-aware selector when gevent has patched the
    process; returns whether it is in place. Idempotent; a no-op without gevent."""
    if not gevent_patched():
        return False
    import websockets.sync.connection as connection

    if getattr(getattr(connection, "selectors", None), "voiceload_closed_aware", False):
        return True  # every session after the first: nothing more to check
    check_supported(
        "websockets", websockets.version.version, SUPPORTED, "voiceload's client under gevent"
    )
    connection.selectors = types.SimpleNamespace(  # type: ignore[attr-defined,assignment]
        DefaultSelector=_gevent_selector_class(),
        EVENT_READ=selectors.EVENT_READ,
        EVENT_WRITE=selectors.EVENT_WRITE,
        voiceload_closed_aware=True,
    )
    return True
