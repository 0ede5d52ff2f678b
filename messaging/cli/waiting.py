"""A status line on a terminal while a command waits: for what, for how long, and why.

A command that waits (for a reply, for the servers of a topic, for a broker
to come back) wraps the wait in :func:`waiting`. When stderr is a terminal,
one line appears there once the wait lasts longer than a moment, is rewritten
each second with the time waited (and, while the transport's connection is
down, with why), and is cleared when the wait ends. When stderr is not a
terminal (a pipe, a file, a test) nothing is written.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from messaging.transport import Transport

__all__ = ["waiting"]

#: Seconds a wait lasts before the line appears: a quick answer shows nothing.
SHOW_AFTER = 0.5
#: Seconds between two updates of the line.
UPDATE_EVERY = 1.0
#: Seconds the command waits for the line to be cleared when the wait ends.
_CLEAR_TIMEOUT = 2.0
_CLEAR = "\r\x1b[K"  # back to the start of the line, and erase it


@contextlib.contextmanager
def waiting(
    stream: TextIO,
    what: str,
    transport: Transport | None = None,
    show_after: float = SHOW_AFTER,
) -> Iterator[None]:
    """Show on ``stream``, if it is a terminal, that the command waits for ``what``.

    Args:
        stream: the command's stderr.
        what: what it waits for, e.g. ``"the reply of echo from topic 'demo'"``.
        transport: the transport the wait depends on; while its connection is
            down, the line says why (the driver reconnects meanwhile).
        show_after: seconds before the line appears.
    """
    if not _is_terminal(stream):
        yield
        return
    done = threading.Event()
    thread = threading.Thread(
        target=_show,
        args=(stream, what, transport, show_after, done),
        name="messaging-cli-waiting",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(_CLEAR_TIMEOUT)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _show(
    stream: TextIO,
    what: str,
    transport: Transport | None,
    show_after: float,
    done: threading.Event,
) -> None:
    started = time.monotonic()
    if done.wait(show_after):
        return
    try:
        while True:
            # Short, as it must fit a terminal's width: the user just typed the command.
            line = f"waiting {time.monotonic() - started:.0f} s for {what}"
            why = _link_down(transport)
            if why:
                line += f" (reconnecting: {why})"
            stream.write(_CLEAR + line[: _width(stream) - 1])
            stream.flush()
            if done.wait(UPDATE_EVERY):
                break
        stream.write(_CLEAR)
        stream.flush()
    except (OSError, ValueError):
        pass  # the terminal went away: the line does not matter any more


def _width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns or 80  # a pseudo-terminal may say 0


def _link_down(transport: Transport | None) -> str | None:
    if transport is None:
        return None
    link = transport.driver.link_health()
    if link.connected or not link.error:
        return None
    return link.error.splitlines()[0]
