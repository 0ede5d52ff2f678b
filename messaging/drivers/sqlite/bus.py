"""What a process holds per sqlite bus file: the store, the change watcher, the keeper.

Every sqlite transport of a process that names the same file shares one
:class:`Bus` (reference-counted in :data:`REGISTRY`, dropped unclosed in a
forked child, which opens its own): one connection, one watcher thread, one
keeper thread, and, once a call is made, one reply queue with its thread.
Settings that belong to the connection (busy timeout, synchronous mode, wake-up
mode, disk reserve, bound of parked messages) are those of the first transport
that opened the file in the process.

The keeper (:class:`Keeper`) is what makes a dead process's claims and queues
go away while a living one keeps them: every third of the shortest visibility
timeout or queue TTL it extends the claims of this process's listeners, renews
the leases of its transient queues (re-creating any that were collected while
the process was stalled), and drops expired messages and the queues of
processes that stopped renewing them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from messaging.drivers.pool import ConnectionRegistry
from messaging.drivers.sqlite.store import Declaration, Store
from messaging.drivers.sqlite.store import Limits as StoreLimits
from messaging.drivers.sqlite.wakeup import ChangeWatcher
from messaging.exceptions import TransportDriverError
from messaging.wire import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from messaging.drivers.sqlite.options import SqliteSettings
    from messaging.drivers.sqlite.reply import ReplyQueue

__all__ = ["REGISTRY", "Bus", "Keeper", "close_bus", "open_bus", "open_buses"]

LOG = logging.getLogger(__name__)

#: Bounds of the keeper's period, in seconds.
_MIN_PERIOD = 0.05
_MAX_PERIOD = 10.0


class Keeper:
    """Extends live claims, renews transient queues, collects expired ones; see the module.

    Args:
        store: the bus's store.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._round = threading.Lock()  # held for a round of run_once
        self._claims: dict[str, float] = {}
        self._leases: dict[str, tuple[Declaration, float]] = {}
        self._stop = threading.Event()
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None

    def hold_claims(self, consumer: str, visible_for: float) -> None:
        """Keep extending the claims of ``consumer`` by ``visible_for`` seconds."""
        with self._lock:
            self._claims[consumer] = visible_for
        self._started()

    def lease(self, declaration: Declaration, ttl: float, busy: float | None = None) -> None:
        """Declare a transient queue now and keep renewing it for ``ttl`` seconds at a time.

        ``busy`` bounds the wait for another process's write (the store's busy timeout).
        """
        self._store.declare([declaration], time.time() + ttl, busy)
        with self._lock:
            self._leases[declaration.queue] = (declaration, ttl)
        self._started()

    def forget(self, name: str) -> None:
        """Stop extending the claims of consumer ``name`` or renewing queue ``name``.

        Waits for a round in progress, so that a queue deleted next is not renewed
        (re-created) behind its owner's back.
        """
        with self._round, self._lock:
            self._claims.pop(name, None)
            self._leases.pop(name, None)

    def _started(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="messaging-sqlite-keeper", daemon=True
                )
                self._thread.start()
        self._changed.set()  # a shorter period may be due

    def _period(self) -> float:
        with self._lock:
            spans = [*self._claims.values(), *(ttl for _, ttl in self._leases.values())]
        return min(_MAX_PERIOD, max(_MIN_PERIOD, min(spans, default=_MAX_PERIOD) / 3))

    def run_once(self) -> None:
        """Do one round of the keeper's work now."""
        with self._round:
            with self._lock:
                by_span: dict[float, list[str]] = {}
                for consumer, span in self._claims.items():
                    by_span.setdefault(span, []).append(consumer)
                leases = list(self._leases.values())
            for span, consumers in by_span.items():
                self._store.extend_claims(consumers, span)
            now = time.time()
            for declaration, ttl in leases:
                self._store.declare([declaration], now + ttl)
            self._store.collect()
            self._store.reserve.ensure()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._changed.wait(self._period())
            self._changed.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
            except TransportDriverError as exc:
                LOG.warning("Could not renew claims and queues of %s: %s", self._store.path, exc)

    def close(self) -> None:
        """Stop the thread (the claims and queues are then left to expire)."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        self._changed.set()
        if thread is not None:
            thread.join(5.0)


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
        from messaging.drivers.sqlite.reply import ReplyQueue

        with self._reply_lock:
            if self._replies is None:
                self._replies = ReplyQueue(self, self._reply_ttl, self.limits, busy)
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
