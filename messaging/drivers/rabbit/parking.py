"""Counted requeues and parking of notifications on RabbitMQ (see :mod:`messaging.poison`).

Classic queues do not count deliveries (they only set ``redelivered``), quorum
queues count them in ``x-delivery-count`` but RabbitMQ 4 drops a message past
their delivery limit (20 by default), and RabbitMQ 4.3 counts ``basic.reject``
towards it but not ``basic.nack``. So a notification is not given back with
``basic.reject``: a copy is published to the same queue (through the default
exchange, so that it reaches that queue only) with the attempt count in the
header ``x-messaging-attempts``, and the delivery is acknowledged once the
broker confirmed the copy. The count then holds on every queue type and
version, across processes, and the broker's own count starts again at 0 with
each copy. A notification whose count reaches the limit is published, with its
failure in ``x-messaging-*`` headers, to the durable queue ``messaging.parked``
of the virtual host, then acknowledged; ``messaging parked`` lists and replays
what is there.

Should the copy not be confirmed (the broker unreachable for a while), the
delivery is given back with ``basic.reject`` instead: nothing is lost, at the
price of an attempt not counted. A crash between the confirm and the
acknowledgement leaves both the copy and the original: delivered twice, never
lost.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from messaging.drivers.rabbit import topology
from messaging.drivers.rabbit.publisher import Outcome, Publication
from messaging.poison import PARKING_QUEUE

if TYPE_CHECKING:
    from messaging.drivers.rabbit.consumer import Delivery, Subscription
    from messaging.drivers.rabbit.options import RabbitSettings
    from messaging.drivers.rabbit.publisher import Publisher
    from messaging.poison import HandlingFailure

__all__ = [
    "ATTEMPTS_HEADER",
    "ORIGINAL_EXCHANGE_HEADER",
    "ORIGINAL_QUEUE_HEADER",
    "ORIGINAL_ROUTING_KEY_HEADER",
    "ParkingSubscription",
    "parking_queue",
]

LOG = logging.getLogger(__name__)

ATTEMPTS_HEADER = "x-messaging-attempts"
ORIGINAL_EXCHANGE_HEADER = "x-messaging-original-exchange"
ORIGINAL_ROUTING_KEY_HEADER = "x-messaging-original-routing-key"
ORIGINAL_QUEUE_HEADER = "x-messaging-original-queue"
#: Connection attempts a copy may take before the delivery is given back uncounted.
COPY_RETRY = 2


def parking_queue(settings: RabbitSettings) -> topology.QueueSpec:
    """The durable classic queue ``messaging.parked``, whatever the other queues are.

    Not a quorum queue: RabbitMQ 4 would drop a parked message once it had been
    looked at (fetched and given back) 20 times, its delivery limit.
    """
    return topology.QueueSpec(PARKING_QUEUE, durable=True, auto_delete=False)


def _headers(delivery: Delivery) -> dict[str, Any]:
    return dict(delivery.properties.get("application_headers") or {})


def attempts_of(delivery: Delivery) -> int:
    """How many times ``delivery`` was delivered before and not handled.

    Our own count of the copies (``x-messaging-attempts``) plus the broker's for
    this copy: ``x-delivery-count`` on quorum queues, else 1 if ``redelivered``.
    """
    headers = delivery.properties.get("application_headers")
    if not headers:  # the common case: a first delivery from a classic queue
        return 1 if delivery.redelivered else 0
    ours = _int(headers.get(ATTEMPTS_HEADER))
    theirs = _int(headers.get("x-delivery-count")) or (1 if delivery.redelivered else 0)
    return ours + theirs


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


class ParkingSubscription:
    """A notification :class:`Subscription` whose requeues are counted and which can park.

    Args:
        subscription: the consuming subscription.
        publisher: the publisher of the process's publishing connection.
        settings: the driver settings (for the parking queue's form).
    """

    def __init__(
        self, subscription: Subscription, publisher: Publisher, settings: RabbitSettings
    ) -> None:
        self.subscription = subscription
        self.publisher = publisher
        self.parking = parking_queue(settings)
        self._wait_on_close = settings.publish_confirm_timeout
        self._forwarding = 0  # copies published, not yet confirmed
        self._forwarded = threading.Condition()

    # -- DeliverySource, passed through -------------------------------------------------------

    def take(self, timeout: float | None) -> Delivery | None:
        """The next delivery; None after ``timeout`` or once stopped."""
        return self.subscription.take(timeout)

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery."""
        self.subscription.ack(delivery)

    def discard(self, delivery: Delivery, reason: str) -> None:
        """Acknowledge an undecodable delivery (already logged whole)."""
        self.subscription.discard(delivery, reason)

    def consuming(self) -> bool:
        """Whether the subscription is consuming now."""
        return self.subscription.consuming()

    def stop(self) -> None:
        """Wake a blocked :meth:`take`."""
        self.subscription.stop()

    def close(self) -> None:
        """Stop consuming; unacknowledged deliveries go back to the broker.

        Copies still being published (requeues, parkings) are waited for first,
        up to ``publish_confirm_timeout``, so that their originals are acknowledged
        rather than delivered again.
        """
        with self._forwarded:
            self._forwarded.wait_for(lambda: self._forwarding == 0, self._wait_on_close)
        self.subscription.close()

    # -- counting and parking -------------------------------------------------------------------

    def attempts(self, delivery: Delivery) -> int:
        """See :func:`attempts_of`."""
        return attempts_of(delivery)

    def requeue(self, delivery: Delivery) -> None:
        """Give a delivery back counted: a copy with one attempt more, then the ack."""
        headers = _headers(delivery)
        headers[ATTEMPTS_HEADER] = attempts_of(delivery) + 1
        headers.setdefault(ORIGINAL_EXCHANGE_HEADER, delivery.exchange)
        headers.setdefault(ORIGINAL_ROUTING_KEY_HEADER, delivery.routing_key)
        headers.setdefault(ORIGINAL_QUEUE_HEADER, delivery.queue)
        self._forward(delivery, delivery.queue, None, headers, "requeue")

    def park(self, delivery: Delivery, failure: HandlingFailure) -> bool:
        """Publish the delivery with ``failure`` to ``messaging.parked``, then acknowledge it."""
        headers = _headers(delivery)
        headers.setdefault(ORIGINAL_EXCHANGE_HEADER, delivery.exchange)
        headers.setdefault(ORIGINAL_ROUTING_KEY_HEADER, delivery.routing_key)
        headers.setdefault(ORIGINAL_QUEUE_HEADER, delivery.queue)
        headers.update(failure.as_headers())
        self._forward(delivery, PARKING_QUEUE, self.parking, headers, "park")
        return True

    def _forward(
        self,
        delivery: Delivery,
        queue: str,
        declare: topology.QueueSpec | None,
        headers: dict[str, Any],
        what: str,
    ) -> None:
        properties = {k: v for k, v in delivery.properties.items() if k != "application_headers"}
        properties["application_headers"] = headers
        publication = Publication(
            None, queue, delivery.body, properties, True, queue=declare, retry=COPY_RETRY
        )

        def settled(outcome: Outcome) -> None:
            if outcome.error is None:
                self.subscription.ack(delivery)
            else:
                LOG.error(
                    "Could not %s a message of queue %s (%s); it goes back to the queue uncounted",
                    what,
                    delivery.queue,
                    outcome.error,
                )
                self.subscription.requeue(delivery)
            with self._forwarded:
                self._forwarding -= 1
                self._forwarded.notify_all()

        publication.outcome.callback = settled
        with self._forwarded:
            self._forwarding += 1
        try:
            self.publisher.publish_nowait(publication)
        except Exception as exc:
            LOG.error("Could not %s a message of queue %s: %s", what, delivery.queue, exc)
            publication.outcome.settle(exc)
