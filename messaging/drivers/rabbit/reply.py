"""RPC replies: one reply queue per process and broker, replies routed by ``_msg_id``.

Every RPC client of a process that calls through the same broker shares one
reply queue (``reply_<uuid hex>``), consumed on the shared connection. Each
reply is handed to the thread waiting for its ``_msg_id``; a reply nobody
waits for any more (its caller timed out) is logged and dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from messaging import wire
from messaging.drivers.rabbit.consumer import Delivery, Subscription
from messaging.exceptions import MessagingTimeout

if TYPE_CHECKING:
    from messaging.drivers.rabbit.connection import AmqpConnection
    from messaging.drivers.rabbit.topology import QueueSpec

__all__ = ["ReplyRouter"]

LOG = logging.getLogger(__name__)
_WARN_WAITERS = 10


class ReplyRouter:
    """Consumes the reply queue and routes replies to their callers.

    Args:
        connection: the shared consuming connection.
        spec: the reply queue.
    """

    def __init__(self, connection: AmqpConnection, spec: QueueSpec) -> None:
        self.queue_name = spec.name
        self._waiters: dict[str, queue.SimpleQueue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._warn_at = _WARN_WAITERS
        self.subscription = Subscription(
            connection, [], [spec], [], no_ack=True, on_delivery=self._on_delivery
        )

    def register(self, msg_id: str) -> queue.SimpleQueue[dict[str, Any]]:
        """Start waiting for the replies to ``msg_id`` (before the request is sent)."""
        box: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        with self._lock:
            self._waiters[msg_id] = box
            if len(self._waiters) > self._warn_at:
                LOG.warning(
                    "%d calls are waiting for a reply at once on %s",
                    len(self._waiters),
                    self.queue_name,
                )
                self._warn_at *= 2
        return box

    def unregister(self, msg_id: str) -> None:
        """Stop waiting for ``msg_id``."""
        with self._lock:
            self._waiters.pop(msg_id, None)

    def _on_delivery(self, delivery: Delivery) -> None:
        try:
            decoded = wire.decode(delivery.body)
        except ValueError as exc:
            LOG.error(
                "Dropping a malformed reply on %s: %s: %r",
                self.queue_name,
                exc,
                delivery.body[:200],
            )
            return
        msg_id = decoded.msg_id
        with self._lock:
            box = self._waiters.get(msg_id or "")
        if box is None:
            LOG.info("No calling threads waiting for msg_id : %s", msg_id)
            return
        box.put(decoded.message)

    def wait(
        self,
        box: queue.SimpleQueue[dict[str, Any]],
        timeout: float | None,
        call_monitor_timeout: float | None,
        allowed_remote_exmods: Sequence[str],
        describe: str,
    ) -> Any:
        """Wait for the final reply; heartbeats extend the call-monitor deadline.

        Raises:
            MessagingTimeout: no reply within ``timeout``, or no heartbeat within
                ``call_monitor_timeout``; ``describe`` says which call.
            Exception: the remote failure, rebuilt.
        """
        now = time.monotonic()
        deadline = None if timeout is None else now + timeout
        monitor = None if not call_monitor_timeout else now + call_monitor_timeout
        result: Any = None
        while True:
            limits = [t for t in (deadline, monitor) if t is not None]
            remaining = None if not limits else min(limits) - time.monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                reply = box.get(timeout=remaining)
            except queue.Empty:
                if monitor is not None and (deadline is None or monitor < deadline):
                    raise MessagingTimeout(
                        f"{describe}: no heartbeat or reply within call_monitor_timeout "
                        f"{call_monitor_timeout}s; timeout {timeout}s, "
                        f"reply queue {self.queue_name}"
                    ) from None
                raise MessagingTimeout(
                    f"{describe}: no reply within {timeout}s; timeout {timeout}s, "
                    f"reply queue {self.queue_name}"
                ) from None
            if reply.get("failure"):
                raise wire.deserialize_failure(reply["failure"], allowed_remote_exmods)
            if reply.get("result") is not None:
                result = reply["result"]
            if reply.get("ending", True):
                return result
            if call_monitor_timeout:
                monitor = time.monotonic() + call_monitor_timeout

    def close(self) -> None:
        """Stop consuming the reply queue."""
        self.subscription.close()
