"""Listeners of the sqlite driver and the messages they hand out.

A notification listener *claims* up to ``prefetch`` messages at a time and
acknowledges or requeues each (at-least-once: a claim left unsettled by a dead
process comes back after the visibility timeout). An RPC listener *takes* one
request at a time, which removes it (at-most-once, as RabbitMQ's RPC).

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
import time
import uuid
from typing import TYPE_CHECKING, Any

from messaging import wire
from messaging.drivers import base
from messaging.exceptions import MessageSerializationError, TransportDriverError

if TYPE_CHECKING:
    from messaging.drivers.sqlite.driver import SqliteDriver
    from messaging.drivers.sqlite.store import Declaration, StoredMessage

__all__ = ["SqliteListener"]

LOG = logging.getLogger(__name__)

#: Pause after the database failed, in seconds.
ERROR_PAUSE = 0.5


def consumer_id() -> str:
    """A name for a listener's claims: ``<host>:<pid>:<random>``, readable in the file."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class SqliteListener(base.Listener):
    """Takes messages from the queues of one subscription.

    Args:
        driver: the driver that created it.
        queues: the queues to consume.
        batch_size: see :class:`~messaging.drivers.base.Listener`.
        batch_timeout: see :class:`~messaging.drivers.base.Listener`.
        rpc: take requests (at most once) instead of claiming notifications.
        own_queue: a transient queue of this listener (an RPC server's fanout
            queue), renewed while it lives and deleted at cleanup.
    """

    def __init__(
        self,
        driver: SqliteDriver,
        queues: list[str],
        batch_size: int,
        batch_timeout: float | None,
        *,
        rpc: bool,
        own_queue: Declaration | None = None,
    ) -> None:
        super().__init__(batch_size, batch_timeout)
        self.driver = driver
        self.bus = driver.bus
        self.queues = queues
        self.rpc = rpc
        self.consumer = consumer_id()
        self.duplicates = base.DuplicateFilter()
        self._visible_for = driver.settings.visibility_timeout
        self._prefetch = driver.settings.prefetch
        self._buffer: collections.deque[StoredMessage] = collections.deque()
        self._stopped = False
        self._own_queue = own_queue
        if own_queue is not None:
            self.bus.keeper.lease(own_queue, driver.settings.transient_queue_ttl)
        if not rpc:
            self.bus.keeper.hold_claims(self.consumer, self._visible_for)

    def _fetch(self) -> list[StoredMessage]:
        if self.rpc:
            return self.bus.store.take(self.queues, 1)
        return self.bus.store.claim(self.queues, self.consumer, self._visible_for, self._prefetch)

    def poll_one(self, timeout: float | None) -> base.IncomingMessage | None:
        """Return the next message, or None after ``timeout`` or once stopped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        watcher = self.bus.watcher
        while not self._stopped:
            if watcher.closed:
                LOG.warning(
                    "The bus %s was closed under a listener of %s", self.bus.path, self.queues
                )
                return None
            if self._buffer:
                message = self._incoming(self._buffer.popleft())
                if message is not None:
                    return message
                continue
            seen = watcher.generation
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                self._buffer.extend(self._fetch())
                if self._buffer:
                    continue
                wait = remaining
                if not self.rpc:
                    # A claim of a dead process ends without anything being written.
                    returns = self.bus.store.next_visible(self.queues)
                    if returns is not None:
                        until_return = max(0.0, returns - time.time())
                        wait = until_return if wait is None else min(wait, until_return)
            except TransportDriverError as exc:
                LOG.warning("Cannot take messages from %s: %s", ", ".join(self.queues), exc)
                wait = ERROR_PAUSE if remaining is None else min(remaining, ERROR_PAUSE)
            if remaining is not None and remaining <= 0:
                return None
            watcher.wait(seen, wait, lambda: self._stopped)
        return None

    def _incoming(self, stored: StoredMessage) -> base.IncomingMessage | None:
        try:
            decoded = wire.decode(stored.body)
        except (ValueError, TypeError) as exc:
            LOG.error(
                "Cannot decode a message from queue %s; parked in the dead letters of %s: %s",
                stored.queue,
                self.bus.path,
                exc,
            )
            self._settle("park", stored, f"{type(exc).__name__}: {exc}")
            return None
        if self.rpc:
            if self.duplicates.seen(decoded.unique_id):
                LOG.warning(
                    "Skipping duplicate request %s from %s", decoded.unique_id, stored.queue
                )
                return None
            return _RpcMessage(self.driver, decoded)
        # As on RabbitMQ: a notification counts as seen once acknowledged, so a
        # requeued one comes back while a copy of an acknowledged one is dropped.
        if decoded.unique_id in self.duplicates:
            LOG.warning("Skipping duplicate message %s from %s", decoded.unique_id, stored.queue)
            self._settle("ack", stored)
            return None
        return _NotificationMessage(self, stored, decoded)

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
        """Make a blocked :meth:`poll_one` return None; later polls return None at once."""
        self._stopped = True
        self.bus.watcher.wake()

    def cleanup(self) -> None:
        """Stop, put claimed messages back, delete this listener's own queue."""
        self.stop()
        self._buffer.clear()
        keeper, store = self.bus.keeper, self.bus.store
        keeper.forget(self.consumer)
        try:
            if not self.rpc:
                returned = store.release(self.consumer)
                if returned:
                    LOG.debug("Returned %d unacknowledged message(s) to their queues", returned)
            if self._own_queue is not None:
                keeper.forget(self._own_queue.queue)
                store.delete_queue(self._own_queue.queue)
        except TransportDriverError as exc:
            LOG.warning("Cleaning up the listener of %s: %s", ", ".join(self.queues), exc)
        self.driver._forget(self)


class _NotificationMessage(base.IncomingMessage):
    """A claimed notification, to be acknowledged or requeued.

    Attributes:
        redelivered: whether it was delivered before.
        queue: the queue it came from.
    """

    def __init__(
        self, listener: SqliteListener, stored: StoredMessage, decoded: wire.Decoded
    ) -> None:
        super().__init__(decoded.ctxt, decoded.message, decoded.unique_id)
        self.redelivered = stored.redelivered
        self.queue = stored.queue
        self._listener = listener
        self._stored = stored
        self._unique_id = decoded.unique_id

    def acknowledge(self) -> None:
        """Delete the message; a no-op if its claim was lost."""
        if self._listener._settle("ack", self._stored):
            self._listener.duplicates.add(self._unique_id)
        else:
            LOG.debug("Not acknowledging message %s: its claim was lost", self._unique_id)

    def requeue(self) -> None:
        """Make the message visible again at once; a no-op if its claim was lost."""
        if not self._listener._settle("requeue", self._stored):
            LOG.debug("Not requeueing message %s: its claim was lost", self._unique_id)


class _RpcMessage(base.RpcIncomingMessage):
    """An RPC request, taken already; calls (with a ``msg_id``) can be replied to.

    Attributes:
        reply_q: the caller's reply queue (None for casts).
    """

    def __init__(self, driver: SqliteDriver, decoded: wire.Decoded) -> None:
        super().__init__(decoded.ctxt, decoded.message, decoded.msg_id, decoded.client_timeout)
        self.reply_q = decoded.reply_q
        self._driver = driver

    def acknowledge(self) -> None:
        """Nothing to do: requests are removed when taken."""

    def requeue(self) -> None:
        """Nothing to do: requests are removed when taken, as on RabbitMQ."""

    def reply(self, reply: Any = None, failure: BaseException | None = None) -> None:
        """Send the result, or the serialised failure, to the caller; never raises."""
        self._send(reply, failure, ending=True)

    def heartbeat(self) -> None:
        """Tell the caller the call is still being worked on; never raises."""
        self._send(None, None, ending=False)

    def _send(self, result: Any, failure: BaseException | None, ending: bool) -> None:
        if not self.msg_id or not self.reply_q:
            return
        try:
            failure_text = None if failure is None else wire.serialize_failure(failure)
            body = wire.encode_reply(self.msg_id, result, failure_text, ending)
        except MessageSerializationError as exc:
            # The caller gets this error instead of waiting for its timeout.
            LOG.error("The reply to message ID %s cannot be encoded: %s", self.msg_id, exc)
            body = wire.encode_reply(self.msg_id, None, wire.serialize_failure(exc), ending=True)
        self._driver.send_reply(self.reply_q, self.msg_id, body)
