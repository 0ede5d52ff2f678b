"""How a listener waiting on a sqlite bus learns that another process wrote to it.

One :class:`ChangeWatcher` per process and file runs a thread that bumps a
*generation* counter whenever the file changes, and wakes the listeners of the
process waiting on it (:meth:`ChangeWatcher.wait`). A listener notes the
generation before it looks for messages and, finding none, waits for the
generation to move on, so a message committed in between is never missed.
Commits made by this process bump the generation directly.

How the thread notices commits of other processes:

- ``inotify`` (Linux, through ctypes; the default where it works): a watch on
  the file's directory reports every write to ``<file>-wal``. The thread then
  checks ``PRAGMA data_version`` (which changes when another connection
  commits), so that only commits count; since the write of a commit's last
  frame comes a moment before the commit becomes visible, an event without a
  visible change is checked again after 0.2, 0.5, 1, 2, 5 and 10 ms. Idle, the thread
  sleeps in ``poll(2)`` and wakes once a second for a safety check: the idle
  CPU cost is nil in practice (see ``benchmarks/sqlite_latency.py``).
  Wake-up latency is well under a millisecond plus the listener's read.
- ``poll``: ``PRAGMA data_version`` every ``poll_interval`` (20 ms by default):
  a median latency of about half the interval, and 50 cheap reads a second,
  a fraction of a percent of one core, per process (not per listener).

``auto`` picks inotify and falls back to polling where inotify cannot be set
up (another OS, or the per-user limit of inotify instances reached), with a
log line saying so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import random
import select
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["ChangeWatcher", "InotifyUnavailable"]

LOG = logging.getLogger(__name__)

_IN_MODIFY = 0x00000002
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_DELETE_SELF = 0x00000400
_IN_MOVE_SELF = 0x00000800
_IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = 0o2000000
_WATCH_MASK = _IN_MODIFY | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE_SELF | _IN_MOVE_SELF
_WATCH_LOST = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_IGNORED
_EVENT = struct.Struct("iIII")

#: With inotify, how often the file is checked anyway (seconds).
SAFETY_INTERVAL = 1.0
#: Pauses before checking again an event whose commit is not visible yet.
_SETTLE_PAUSES = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01)


class InotifyUnavailable(OSError):
    """inotify cannot watch the bus's directory here."""


class _Inotify:
    """A non-blocking inotify descriptor watching one directory for writes to some files."""

    def __init__(self, directory: str, names: set[str]) -> None:
        if not sys.platform.startswith("linux"):
            raise InotifyUnavailable(f"inotify exists on Linux only, not on {sys.platform}")
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        try:
            init1 = libc.inotify_init1
            add_watch = libc.inotify_add_watch
        except AttributeError as exc:
            raise InotifyUnavailable("the C library has no inotify functions") from exc
        add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        fd = init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            hint = " (fs.inotify.max_user_instances reached?)" if code == errno.EMFILE else ""
            raise InotifyUnavailable(code, f"inotify_init1: {os.strerror(code)}{hint}")
        if add_watch(fd, os.fsencode(directory), _WATCH_MASK) < 0:
            code = ctypes.get_errno()
            os.close(fd)
            raise InotifyUnavailable(code, f"inotify_add_watch {directory}: {os.strerror(code)}")
        self.fd = fd
        self._names = {os.fsencode(name) for name in names}
        self.lost = False

    def read(self) -> bool:
        """Consume the pending events (call when readable); True if one concerns a watched file.

        One read only: a second one on an empty queue would block under eventlet,
        whose os.read waits instead of raising EAGAIN. Events left over (past
        64 KiB) make the descriptor readable again.
        """
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return False
        relevant = False
        offset = 0
        while offset + _EVENT.size <= len(data):
            _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            if mask & _WATCH_LOST:
                self.lost = True
            if mask & _IN_Q_OVERFLOW or name in self._names:
                relevant = True
        return relevant

    def close(self) -> None:
        os.close(self.fd)


class ChangeWatcher:
    """Watches a bus file for commits of other processes; see the module documentation.

    Args:
        path: the database file.
        mode: ``auto``, ``inotify`` or ``poll``.
        poll_interval: seconds between checks when polling.

    Attributes:
        mode: how changes are noticed: ``inotify`` or ``poll``.
    """

    def __init__(self, path: str, mode: str = "auto", poll_interval: float = 0.02) -> None:
        self.path = path
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._waiters: list[threading.Event] = []
        self._generation = 0
        self._closed = False
        self._inotify: _Inotify | None = None
        if mode in ("auto", "inotify"):
            name = os.path.basename(path)
            try:
                self._inotify = _Inotify(os.path.dirname(path), {name, name + "-wal"})
            except InotifyUnavailable as exc:
                log = LOG.warning if mode == "inotify" else LOG.info
                log(
                    "Cannot use inotify for %s (%s); polling it every %.3fs instead",
                    path,
                    exc,
                    poll_interval,
                )
        self.mode = "poll" if self._inotify is None else "inotify"
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(
            target=self._run, name=f"messaging-sqlite-wakeup-{os.path.basename(path)}", daemon=True
        )
        self._thread.start()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (the bus was let go of)."""
        return self._closed

    @property
    def generation(self) -> int:
        """The number of changes noticed so far."""
        with self._lock:
            return self._generation

    def changed(self) -> None:
        """Count a change made by this process and wake its waiting listeners."""
        with self._lock:
            self._generation += 1
            self._wake_all()

    def wake(self) -> None:
        """Wake every waiting listener so that it checks its ``until`` condition."""
        with self._lock:
            self._wake_all()

    def _wake_all(self) -> None:
        # In random order: the first one woken takes the message, and green
        # threads run in the order they are woken, so a fixed order would give
        # every message to the same listener of the process.
        waiters, self._waiters = self._waiters, []
        random.shuffle(waiters)
        for event in waiters:
            event.set()

    def wait(
        self, seen: int, timeout: float | None, until: Callable[[], bool] | None = None
    ) -> bool:
        """Wait until the generation is past ``seen``, ``until()`` holds, or ``timeout`` passes.

        Returns:
            True if the generation moved on.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._generation != seen or self._closed or (until is not None and until()):
                    return self._generation != seen
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                event = threading.Event()
                self._waiters.append(event)
            event.wait(remaining)
            with self._lock:
                if event in self._waiters:
                    self._waiters.remove(event)

    def close(self) -> None:
        """Stop the thread and release the watch; waiting listeners return."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake_all()
        os.write(self._wake_write, b"x")
        self._thread.join(5.0)
        os.close(self._wake_read)
        os.close(self._wake_write)
        if self._inotify is not None:
            self._inotify.close()
        self._conn.close()

    # -- the thread -----------------------------------------------------------------------

    def _data_version(self) -> int | None:
        try:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error as exc:
            LOG.warning("Cannot check %s for changes: %s", self.path, exc)
            return None

    def _readable(self, timeout: float) -> set[int]:
        fds = [self._wake_read] + ([] if self._inotify is None else [self._inotify.fd])
        if hasattr(select, "poll"):
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            return {fd for fd, _ in poller.poll(timeout * 1000)}
        # eventlet's monkey-patching removes poll(); its select() cooperates.
        return set(select.select(fds, [], [], timeout)[0])

    def _run(self) -> None:
        last = self._data_version()
        while not self._closed:
            interval = self.poll_interval if self._inotify is None else SAFETY_INTERVAL
            ready = self._readable(interval)
            if self._closed or self._wake_read in ready:
                break
            event = False
            if self._inotify is not None and self._inotify.fd in ready:
                event = self._inotify.read()
                if self._inotify.lost:
                    LOG.warning("The directory of %s went away; polling it instead", self.path)
                    self._inotify.close()
                    self._inotify = None
                    self.mode = "poll"
                if not event:
                    continue
            version = self._data_version()
            pauses = iter(_SETTLE_PAUSES if event else ())
            while version == last:
                pause = next(pauses, None)
                if pause is None or self._closed:
                    break
                time.sleep(pause)  # the commit's frames are written; its header comes next
                version = self._data_version()
            if version != last:
                last = version
                self.changed()
