"""Where the STOMP driver's listeners take messages from: subscriptions feeding one inbox.

A listener is the shared :class:`~messaging.drivers.delivered.DecodingListener`
(decoding, de-duplication by ``_unique_id``, replies) over a :class:`StompSource`.
A message that is not a readable body is parked in :data:`PARKING_DESTINATION`
(instead of being dropped), then acknowledged.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence

from messaging.drivers.stomp.connection import Delivery, StompConnection, Subscription

__all__ = ["PARKING_DESTINATION", "StompSource"]

LOG = logging.getLogger(__name__)
#: Where a message that is not a readable body goes (instead of being dropped).
PARKING_DESTINATION = "/queue/messaging.unreadable"


class StompSource:
    """Some subscriptions of the process's shared connection, taken from one inbox.

    Args:
        connection: the shared connection.
        subscriptions: ``(destination, headers)`` pairs to subscribe to.
        ack: the subscriptions' ack mode.

    Raises:
        BrokerRefusal: the broker refused a subscription (none is left subscribed).
    """

    def __init__(
        self,
        connection: StompConnection,
        subscriptions: Sequence[tuple[str, dict[str, str]]],
        ack: str,
    ) -> None:
        self.connection = connection
        self._inbox: queue.Queue[Delivery | None] = queue.Queue()
        self._stopped = threading.Event()
        self._closed = False
        self.subscriptions = [
            Subscription(destination, headers, ack, self._inbox.put, on_refused=self._refused)
            for destination, headers in subscriptions
        ]
        try:
            for sub in self.subscriptions:
                connection.subscribe(sub)
        except BaseException:
            for sub in self.subscriptions:
                connection.unsubscribe(sub)
            raise

    def _refused(self, refusal: Exception) -> None:
        # The broker refused to subscribe again after a reconnection: this
        # listener receives nothing more, and says so (its server stops polling).
        LOG.error("A listener stops: %s", refusal)
        self.stop()

    def take(self, timeout: float | None) -> Delivery | None:
        """The next delivery; None after ``timeout`` or once stopped."""
        if self._stopped.is_set():
            return None
        try:
            return self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery."""
        self.connection.ack(delivery)

    def requeue(self, delivery: Delivery) -> None:
        """Give a delivery back to its queue."""
        self.connection.requeue(delivery)

    def discard(self, delivery: Delivery, reason: str) -> None:
        """Park an unreadable delivery and acknowledge it (unacknowledged if parking fails)."""
        LOG.error("Parking it in %s", PARKING_DESTINATION)
        try:
            self.connection.send(PARKING_DESTINATION, delivery.body, {}, retry=3)
        except Exception:
            LOG.exception("Could not park it; leaving it unacknowledged")
            return
        self.connection.ack(delivery)

    def stop(self) -> None:
        """Wake a blocked :meth:`take`; no more deliveries are returned."""
        self._stopped.set()
        self._inbox.put(None)

    def close(self) -> None:
        """Unsubscribe and give back what was received but not taken."""
        self.stop()
        if self._closed:
            return
        self._closed = True
        # Unsubscribed first: a NACK now would have RabbitMQ deliver the message
        # straight back to this subscription, and strand it there once it closes.
        for sub in self.subscriptions:
            self.connection.unsubscribe(sub)
        while True:
            try:
                delivery = self._inbox.get_nowait()
            except queue.Empty:
                return
            if delivery is not None:
                self.connection.requeue(delivery)
