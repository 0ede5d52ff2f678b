"""The in-memory transport driver: ``fake://``, ``memory://``, ``memory:///<vhost>``.

A faithful stand-in for RabbitMQ inside one process, so that a test that passes
on it means something on a real broker:

- Every message goes through :mod:`messaging.wire` as it would on RabbitMQ: the
  queues hold the JSON text that would be published, a payload that is not
  JSON-serialisable fails with ``MessageSerializationError`` before anything is
  queued, and RPC failures travel serialised and are rebuilt with the client's
  ``allowed_remote_exmods`` (builtins keep their class, allowed modules give a
  ``<Class>_Remote`` subclass, anything else a ``RemoteError``).
- oslo.messaging's topology on RabbitMQ: notifications go to ``<topic>.<priority>``
  in the target's exchange (or ``control_exchange``), and the publisher declares
  that queue, so notifications sent before anyone listens are kept; a listener
  pool gets its own queue named after the pool; RPC uses ``<topic>``,
  ``<topic>.<server>``, a ``<topic>_fanout`` exchange with one queue per server,
  and one ``reply_<hex>`` queue per driver instance.
- Notification requeue, acknowledgement, batches, de-duplication by
  ``_unique_id``; unacknowledged notifications go back to their queue when a
  listener is cleaned up or the connections drop (at-least-once). RPC requests
  are acknowledged when taken (at-most-once), call requests expire after the
  call's timeout, replies are routed to the calling thread by ``_msg_id``, and
  call-monitor heartbeats keep long calls alive.
- Transports of the process on the same virtual host share one broker
  (:func:`get_broker`); different virtual hosts are isolated.
- A body that cannot be decoded (or is past ``[DEFAULT] max_message_size`` or
  ``max_message_depth``) is logged and parked in ``Broker.dead_letters``; a
  message past ``max_message_size`` is refused to its sender (``MessageTooLarge``).

Failure injection, for tests (``broker = get_broker()`` or ``driver.broker``):

- ``broker.fail_next_sends(count=1, error=None)``: the next ``count`` publish
  attempts fail as if the connection broke; senders retry as ``retry`` allows
  and raise ``MessageDeliveryFailure`` once out of attempts.
- ``broker.drop_connections()``: every connection drops; unacknowledged messages
  are redelivered and acknowledging the old deliveries does nothing.
- ``broker.queues()``, ``broker.queue_depth(name)``, ``broker.messages(name)``,
  ``broker.publish(exchange, routing_key, body)`` (a raw body) and
  :func:`reset_brokers` (a fresh broker for every virtual host).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from messaging.drivers import base, names
from messaging.drivers.core import Outgoing, TransportCore
from messaging.drivers.memory_broker import (
    FANOUT,
    TOPIC,
    Broker,
    Consumer,
    Delivery,
    PublishFailed,
    get_broker,
    reset_brokers,
)
from messaging.drivers.replies import ReplyWaiters
from messaging.exceptions import MessageDeliveryFailure

if TYPE_CHECKING:
    from messaging.poison import HandlingFailure

__all__ = ["Broker", "MemoryDriver", "get_broker", "reset_brokers"]

LOG = logging.getLogger(__name__)


class MemoryDriver(TransportCore):
    """The in-memory driver (see the module documentation).

    Args:
        conf: the caller's configuration.
        url: the transport URL; its virtual host selects the broker.
        default_exchange: the exchange of targets without one.
        allowed_remote_exmods: modules whose exceptions RPC calls may rebuild.

    Attributes:
        broker: the process-wide broker of the URL's virtual host.
    """

    capabilities = base.Capabilities(requeue=True, pools=True, fanout=True, rpc=True)
    reply_retry = None

    def open(self) -> None:
        """Find the broker of the URL's virtual host."""
        self.broker = get_broker(self.url.virtual_host)
        self._lock = threading.Lock()
        self._replies: ReplyWaiters | None = None

    def publish(self, out: Outgoing) -> int:
        """Publish an encoded body, retrying injected connection failures as ``retry`` allows.

        A call's request expires when the call ends.

        Returns:
            The number of queues the body was put in.

        Raises:
            MessageDeliveryFailure: every allowed attempt failed.
        """
        route, declare, call = out.route, out.declare, out.call
        exchange, routing_key = route.exchange, route.routing_key
        allowed = base.attempts(out.retry)
        tries = 0
        while True:
            tries += 1
            try:
                return self.broker.publish(
                    exchange,
                    routing_key,
                    out.body,
                    kind=FANOUT if route.fanout else TOPIC,
                    declare_queue=None if declare is None else declare.queue,
                    expires_in=None if call is None else call.deadline.remaining(),
                )
            except PublishFailed as failed:
                if tries >= allowed:
                    raise MessageDeliveryFailure(
                        f"Unable to publish to exchange {exchange!r} with routing key "
                        f"{routing_key!r} after {tries} attempt(s): {failed.error}"
                    ) from failed.error
                LOG.warning(
                    "Publishing to exchange %r with routing key %r failed (attempt %d): %s; "
                    "trying again",
                    exchange,
                    routing_key,
                    tries,
                    failed.error,
                )

    def consume(self, queues: names.ListenerQueues, batch_size: int) -> _MemorySource:
        """Declare and bind the queues; RPC requests are acknowledged when taken."""
        for bound in queues.bindings:
            kind = FANOUT if bound.fanout else TOPIC
            self.broker.declare_queue(bound.queue, bound.exchange, bound.routing_key, kind=kind)
        consumer = self.broker.consumer(queues.queues, auto_ack=queues.rpc)
        return _MemorySource(self.broker, consumer, own_queue=queues.own_queue)

    def queue_stats(self, names: Sequence[str]) -> list[base.QueueStats]:
        """Count each queue's messages and the consumers taking from it."""
        found = []
        for name in names:
            try:
                depth = self.broker.queue_depth(name)
            except KeyError:
                found.append(base.QueueStats(name, exists=False))
                continue
            found.append(base.QueueStats(name, True, depth, self.broker.consumer_count(name)))
        return found

    def reply_source(self, deadline: base.Deadline) -> ReplyWaiters:
        """This driver's reply queue; the broker hands its replies over as they are published."""
        with self._lock:
            if self._replies is None:
                replies = ReplyWaiters(names.reply_queue(names.new_id()), self.limits)
                self.broker.declare_queue(replies.queue_name)
                self.broker.deliver_to(replies.queue_name, replies.deliver)
                self._replies = replies
            return self._replies

    def release(self) -> None:
        """End the calls in progress and delete the reply queue."""
        with self._lock:
            replies, self._replies = self._replies, None
        if replies is not None:
            replies.close()
            self.broker.delete_queue(replies.queue_name)


class _MemorySource:
    """A broker consumer as the :class:`~messaging.drivers.delivered.DecodingListener` takes it."""

    def __init__(self, broker: Broker, consumer: Consumer, own_queue: str | None = None) -> None:
        self.broker = broker
        self.consumer = consumer
        self._own_queue = own_queue

    def take(self, timeout: float | None) -> Delivery | None:
        """The next delivery; None after ``timeout`` or once stopped."""
        return self.broker.get(self.consumer, timeout)

    def ack(self, delivery: Delivery) -> None:
        """Remove a delivery from the broker (RPC requests were when taken)."""
        if not self.consumer.auto_ack and not self.broker.ack(delivery):
            LOG.debug("Not acknowledging delivery %s: already settled or dropped", delivery.tag)

    def requeue(self, delivery: Delivery) -> None:
        """Put a delivery back at the head of its queue (RPC requests cannot go back)."""
        if not self.consumer.auto_ack and not self.broker.requeue(delivery):
            LOG.debug("Not requeueing delivery %s: already settled or dropped", delivery.tag)

    def discard(self, delivery: Delivery, reason: str) -> None:
        """Park an undecodable delivery in the broker's dead letters."""
        self.broker.dead_letter(delivery, reason)

    def attempts(self, delivery: Delivery) -> int:
        """How many times the delivery was requeued before."""
        return delivery.attempts

    def park(self, delivery: Delivery, failure: HandlingFailure) -> bool:
        """Park a delivery that failed too often in the broker's dead letters."""
        self.broker.dead_letter(delivery, failure.summary())
        return True

    def stop(self) -> None:
        """Make a blocked :meth:`take` return None; later takes return None at once."""
        self.broker.stop_consumer(self.consumer)

    def close(self) -> None:
        """Stop, return unacknowledged deliveries to their queues, delete this listener's queue."""
        self.stop()
        returned = self.broker.release(self.consumer)
        if returned:
            LOG.debug("Returned %d unacknowledged message(s) to their queues", returned)
        if self._own_queue is not None:
            self.broker.delete_queue(self._own_queue)
