"""What a process holds per sqlite bus file: the store, the change watcher, the keeper.

Every sqlite transport of a process that names the same file shares one
:class:`Bus` (reference-counted in :data:`REGISTRY`, dropped unclosed in a
forked child, which opens its own): one connection, one watcher thread, one
keeper thread, and, once a call is made, one reply queue with its thread.
Settings that belong to the connection (busy timeout, synchronous mode, wake-up
mode, disk reserve, bound of parked messages) are those of the first transport
that opened the file in the process.

The keeper (:class:`~messaging.drivers.sqlite.keeper.Keeper`) makes a dead
process's claims and queues go away while a living one keeps them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from messaging.drivers.pool import ConnectionRegistry
from messaging.drivers.sqlite.keeper import Keeper
from messaging.drivers.sqlite.reply import ReplyQueue
from messaging.drivers.sqlite.store import Limits as StoreLimits
from messaging.drivers.sqlite.store import Store
from messaging.drivers.sqlite.wakeup import ChangeWatcher
from messaging.wire import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from messaging.drivers.sqlite.options import SqliteSettings

__all__ = ["REGISTRY", "Bus", "close_bus", "open_bus", "open_buses"]


class Bus:
    """The shared per-process handle on one bus file.

    Args:
        path: the database file.
        settings: the settings of the first transport that opens it.
        limits: the bounds replies are decoded with (that transport's).

    Raises:
        TransportDriverError: the file cannot be opened or is not a bus.
    """

    def __init__(
        self, path: str, settings: SqliteSettings, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self.path = path
        self.limits = limits
        self.store = Store(
            path,
            settings.busy_timeout,
            settings.synchronous,
            on_visible=self._changed,
            disk_reserve=settings.disk_reserve,
            parked=StoreLimits(settings.max_parked_bytes, settings.max_parked),
        )
        try:
            self.watcher = ChangeWatcher(path, settings.wakeup, settings.poll_interval)
        except BaseException:
            self.store.close()
            raise
        self.keeper = Keeper(self.store)
        self._reply_ttl = settings.transient_queue_ttl
        self._reply_lock = threading.Lock()
        self._replies: ReplyQueue | None = None

    def __repr__(self) -> str:
        return f"<Bus {self.path} wakeup={self.watcher.mode}>"

    def _changed(self) -> None:
        self.watcher.changed()

    def replies(self, busy: float | None = None) -> ReplyQueue:
        """The process's reply queue on this bus, created on first use.

        Args:
            busy: bounds the wait for another process's write when creating it.

        Raises:
            TransportDriverError: it cannot be created (the file is locked...).
        """
        with self._reply_lock:
            if self._replies is None:
                self._replies = ReplyQueue(
                    self.store, self.watcher, self.keeper, self._reply_ttl, self.limits, busy
                )
            return self._replies

    def close(self) -> None:
        """Delete the reply queue, stop the threads, close the file."""
        with self._reply_lock:
            replies, self._replies = self._replies, None
        if replies is not None:
            replies.close()
        self.keeper.close()
        self.watcher.close()
        self.store.close()


REGISTRY: ConnectionRegistry[Bus] = ConnectionRegistry("sqlite")


def open_bus(path: str, settings: SqliteSettings, limits: Limits = DEFAULT_LIMITS) -> Bus:
    """The process's :class:`Bus` for ``path``; release it with :func:`close_bus`."""
    return REGISTRY.acquire(path, lambda: Bus(path, settings, limits))


def close_bus(path: str) -> None:
    """Drop one user of the bus of ``path``; the last one closes it."""
    REGISTRY.release(path)


def open_buses() -> Sequence[Bus]:
    """The buses this process has open (for tests and diagnostics)."""
    return REGISTRY.objects()
