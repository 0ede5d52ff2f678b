"""The reply queue of a process on a sqlite bus, and the thread that routes replies.

Every RPC client of a process that calls through the same bus file shares one
transient queue ``reply_<uuid hex>`` (leased: it disappears some time after
the process dies). A thread takes what arrives on it and hands each reply to
the calling thread waiting for its ``_msg_id``
(:class:`~messaging.drivers.replies.ReplyWaiters`).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from messaging.drivers import names
from messaging.drivers.replies import ReplyWaiters
from messaging.drivers.sqlite.store import Declaration
from messaging.exceptions import TransportDriverError

if TYPE_CHECKING:
    from messaging.drivers.sqlite.keeper import Keeper
    from messaging.drivers.sqlite.store import Store
    from messaging.drivers.sqlite.wakeup import ChangeWatcher
    from messaging.wire import Limits

__all__ = ["ReplyQueue"]

LOG = logging.getLogger(__name__)

#: How many replies are taken at once.
_BATCH = 64
#: Pause after the database failed, in seconds.
_ERROR_PAUSE = 0.5


class ReplyQueue(ReplyWaiters):
    """Declares the reply queue and routes what arrives on it to the callers.

    Args:
        store: the bus's store.
        watcher: the bus's change watcher.
        keeper: the bus's keeper, which renews the queue's lease.
        ttl: seconds the queue outlives its process.
        limits: the bounds replies are decoded with.
        busy: bounds the wait for another process's write when declaring the queue.
    """

    def __init__(
        self,
        store: Store,
        watcher: ChangeWatcher,
        keeper: Keeper,
        ttl: float,
        limits: Limits,
        busy: float | None = None,
    ) -> None:
        super().__init__(names.reply_queue(names.new_id()), limits)
        self._store = store
        self._watcher = watcher
        self._keeper = keeper
        self._closed = False
        keeper.lease([Declaration(self.queue_name)], ttl, busy)
        self._thread = threading.Thread(
            target=self._run, name="messaging-sqlite-replies", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        watcher, store = self._watcher, self._store
        while not self._closed:
            seen = watcher.generation
            try:
                replies = store.take([self.queue_name], _BATCH)
            except TransportDriverError as exc:
                LOG.warning("Cannot read the reply queue %s: %s", self.queue_name, exc)
                watcher.wait(seen, _ERROR_PAUSE, lambda: self._closed)
                continue
            for reply in replies:
                self.deliver(reply.body)
            if not replies:
                watcher.wait(seen, None, lambda: self._closed)

    def close(self) -> None:
        """Stop the thread and delete the queue."""
        self._closed = True
        super().close()
        self._watcher.wake()
        self._thread.join(5.0)
        self._keeper.forget(self.queue_name)
        try:
            self._store.delete_queue(self.queue_name)
        except TransportDriverError as exc:
            LOG.warning("Cannot delete the reply queue %s: %s", self.queue_name, exc)
