"""RPC replies: one reply queue per process and broker, replies routed by ``_msg_id``.

Every RPC client of a process that calls through the same broker shares one
reply queue (``reply_<uuid hex>``), consumed on the shared connection. Each
reply is handed to the thread waiting for its ``_msg_id``
(:class:`~messaging.drivers.replies.ReplyWaiters`); a reply nobody waits for
any more (its caller timed out) is logged and dropped. The reply queue is
deleted when its router closes (the last transport of the process on that
broker cleaned up), rather than left on the broker until it expires.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from messaging import wire
from messaging.drivers.rabbit.consumer import Delivery, Subscription
from messaging.drivers.replies import ReplyWaiters

if TYPE_CHECKING:
    from messaging.drivers.rabbit.connection import AmqpConnection
    from messaging.drivers.rabbit.topology import QueueSpec

__all__ = ["ReplyRouter"]


class ReplyRouter(ReplyWaiters):
    """Consumes the reply queue and routes replies to their callers.

    Args:
        connection: the shared consuming connection.
        spec: the reply queue.
        limits: the bounds on the replies it decodes.
    """

    def __init__(
        self, connection: AmqpConnection, spec: QueueSpec, limits: wire.Limits = wire.DEFAULT_LIMITS
    ) -> None:
        super().__init__(spec.name, limits)
        self.subscription = Subscription(
            connection,
            [],
            [spec],
            [],
            no_ack=True,
            on_delivery=self._on_delivery,
            delete_on_close=[spec.name],
        )

    def _on_delivery(self, delivery: Delivery) -> None:
        self.deliver(delivery.body)

    def close(self) -> None:
        """Stop consuming the reply queue and delete it."""
        self.subscription.close()
