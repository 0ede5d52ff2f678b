"""Where the sqlite driver's listeners take messages from.

A listener is the shared :class:`~messaging.drivers.delivered.DecodingListener`
(decoding, de-duplication, replies) over a :class:`SqliteSource`. A notification
source *claims* up to ``prefetch`` messages at a time and acknowledges or
requeues each (at-least-once: a claim left unsettled by a dead process comes back
after the visibility timeout). An RPC source *takes* one request at a time, which
removes it (at-most-once, as RabbitMQ's RPC). A message that cannot be decoded is
parked in the file's dead letters.

Waiting is bounded and cheap: a listener that finds nothing notes the change
watcher's generation, then sleeps until the file changes, it is stopped, its
``timeout`` passes, or the next claimed message of its queues becomes visible
again (:mod:`messaging.drivers.sqlite.wakeup`).
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING

from messaging.exceptions import TransportDriverError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from messaging.drivers.sqlite.bus import Bus
    from messaging.drivers.sqlite.options import SqliteSettings
    from messaging.drivers.sqlite.store import Declaration, StoredMessage
    from messaging.poison import HandlingFailure

__all__ = ["SqliteSource", "consumer_id"]

LOG = logging.getLogger(__name__)

#: Pause after the database failed, in seconds.
ERROR_PAUSE = 0.5


def consumer_id() -> str:
    """A name for a listener's claims: ``<host>:<pid>:<random>``, readable in the file."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class SqliteSource:
    """The messages of one subscription's queues, for a decoding listener to take.

    Thread-safe: several threads may take at once.

    Args:
        bus: the process's handle on the file.
        settings: the options of the driver that created it.
        queues: the queues to consume.
        rpc: take requests (at most once) instead of claiming notifications.
        own_queue: a transient queue of this listener (an RPC server's fanout
            queue, a temporary pool's queue), once per binding; renewed while it
            lives and deleted at close.
    """

    def __init__(
        self,
        bus: Bus,
        settings: SqliteSettings,
        queues: list[str],
        *,
        rpc: bool,
        own_queue: Sequence[Declaration] = (),
    ) -> None:
        self.bus = bus
        self.queues = queues
        self.rpc = rpc
        self.consumer = consumer_id()
        self._visible_for = settings.visibility_timeout
        self._prefetch = settings.prefetch
        self._prefetch_bytes = settings.prefetch_bytes
        self._lock = threading.Lock()  # the buffer, and fetching into it
        self._buffer: collections.deque[StoredMessage] = collections.deque()
        self._stopped = False
        self._failing = False
        self._own_queue = own_queue[0].queue if own_queue else None
        if own_queue:
            self.bus.keeper.lease(own_queue, settings.transient_queue_ttl)
        if not rpc:
            self.bus.keeper.hold_claims(self.consumer, self._visible_for)

    def _fetch(self) -> list[StoredMessage]:
        if self.rpc:
            return self.bus.store.take(self.queues, 1)
        return self.bus.store.claim(
            self.queues, self.consumer, self._visible_for, self._prefetch, self._prefetch_bytes
        )

    def take(self, timeout: float | None) -> StoredMessage | None:
        """The next message; None after ``timeout`` or once stopped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        watcher = self.bus.watcher
        while not self._stopped:
            if watcher.closed:
                LOG.warning(
                    "The bus %s was closed under a listener of %s", self.bus.path, self.queues
                )
                return None
            remaining = None if deadline is None else deadline - time.monotonic()
            with self._lock:
                if self._buffer:
                    return self._buffer.popleft()
                seen = watcher.generation
                try:
                    self._buffer.extend(self._fetch())
                    self._recovered()
                    if self._buffer:
                        return self._buffer.popleft()
                    wait = remaining
                    if not self.rpc:
                        # A claim of a dead process ends without anything being written.
                        returns = self.bus.store.next_visible(self.queues)
                        if returns is not None:
                            until_return = max(0.0, returns - time.time())
                            wait = until_return if wait is None else min(wait, until_return)
                except TransportDriverError as exc:
                    self._failed(exc)
                    wait = ERROR_PAUSE if remaining is None else min(remaining, ERROR_PAUSE)
            if remaining is not None and remaining <= 0:
                return None
            watcher.wait(seen, wait, lambda: self._stopped)
        return None

    def _failed(self, error: TransportDriverError) -> None:
        # One ERROR when taking starts failing, not one every ERROR_PAUSE.
        where = ", ".join(self.queues)
        if self._failing:
            LOG.debug("Still cannot take messages from %s: %s", where, error)
            return
        self._failing = True
        LOG.error(
            "Cannot take messages from %s: %s; trying again every %.1f s until it works",
            where,
            error,
            ERROR_PAUSE,
        )

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            LOG.warning("Taking messages from %s again", ", ".join(self.queues))

    def ack(self, stored: StoredMessage) -> None:
        """Delete a claimed message; nothing for a request (removed when taken)."""
        if not self.rpc and not self._settle("ack", stored):
            LOG.debug("Not acknowledging message %d: its claim was lost", stored.id)

    def requeue(self, stored: StoredMessage) -> None:
        """Make a claimed message visible again at once; nothing for a request."""
        if not self.rpc and not self._settle("requeue", stored):
            LOG.debug("Not requeueing message %d: its claim was lost", stored.id)

    def discard(self, stored: StoredMessage, reason: str) -> None:
        """Park a message that cannot be decoded in the file's dead letters."""
        LOG.error(
            "Message %d of queue %s parked in the dead letters of %s",
            stored.id,
            stored.queue,
            self.bus.path,
        )
        self._settle("park", stored, reason)

    def attempts(self, stored: StoredMessage) -> int:
        """How many times the message was taken before (the file counts every take)."""
        return stored.deliveries - 1

    def park(self, stored: StoredMessage, failure: HandlingFailure) -> bool:
        """Park a notification that failed too often in the file's dead letters."""
        reason = failure.summary() + (f"\n{failure.traceback}" if failure.traceback else "")
        return self._settle("park", stored, reason)

    def _settle(self, how: str, stored: StoredMessage, reason: str = "") -> bool:
        """Acknowledge, requeue or park a message; never raises."""
        store = self.bus.store
        try:
            if how == "park":
                store.park(stored, reason, None if self.rpc else self.consumer)
                return True
            if how == "ack":
                return store.ack(stored, self.consumer)
            return store.requeue(stored, self.consumer)
        except TransportDriverError as exc:
            LOG.error(
                "Cannot %s message %d of queue %s (it comes again after the visibility "
                "timeout): %s",
                how,
                stored.id,
                stored.queue,
                exc,
            )
            return False

    def stop(self) -> None:
        """Make a blocked :meth:`take` return None; later takes return None at once."""
        self._stopped = True
        self.bus.watcher.wake()

    def close(self) -> None:
        """Stop, put claimed messages back, delete this listener's own queue."""
        self.stop()
        with self._lock:
            self._buffer.clear()
        keeper, store = self.bus.keeper, self.bus.store
        keeper.forget(self.consumer)
        try:
            if not self.rpc:
                returned = store.release(self.consumer)
                if returned:
                    LOG.debug("Returned %d unacknowledged message(s) to their queues", returned)
            if self._own_queue is not None:
                keeper.forget(self._own_queue)
                store.delete_queue(self._own_queue)
        except TransportDriverError as exc:
            LOG.warning("Cleaning up the listener of %s: %s", ", ".join(self.queues), exc)
