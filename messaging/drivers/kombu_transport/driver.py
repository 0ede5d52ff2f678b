"""``KombuDriver``: notifications and RPC over any kombu transport (``kombu+<transport>://``).

Per broker and process (:mod:`messaging.drivers.pool`) the driver shares one
publishing connection (used under a lock) and, once a call is made, one reply
queue with its consumer; every listener has a connection and a thread of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from messaging import wire
from messaging.drivers import base, names
from messaging.drivers.core import Outgoing, TransportCore
from messaging.drivers.entities import Binding, Subscription
from messaging.drivers.kombu_transport import declarations
from messaging.drivers.kombu_transport.consumer import Consumer
from messaging.drivers.kombu_transport.link import KombuLink
from messaging.drivers.kombu_transport.options import KombuSettings
from messaging.drivers.kombu_transport.publisher import Publication, Publisher
from messaging.drivers.pool import ConnectionRegistry
from messaging.drivers.replies import ReplyWaiters

if TYPE_CHECKING:
    pass

__all__ = ["KombuDriver"]

LOG = logging.getLogger(__name__)

#: How long listen() and the first call wait for consuming to start before going
#: on (it starts later by itself if the broker is down now), in seconds.
SETUP_WAIT = 10.0


class KombuBroker:
    """What a process holds per broker: the publisher and the reply queue.

    Args:
        settings: the settings of the first driver that opened it.
        limits: the bounds replies are decoded with (that driver's).
    """

    def __init__(self, settings: KombuSettings, limits: wire.Limits) -> None:
        self.link = KombuLink(settings)
        self.limits = limits
        self.publisher = Publisher(self.link)
        self._reply_lock = threading.Lock()
        self._replies: tuple[ReplyWaiters, Consumer] | None = None

    def replies(self, setup_wait: float | None = SETUP_WAIT) -> ReplyWaiters:
        """The process's reply queue on this broker, consumed from its first use.

        Args:
            setup_wait: how long the first use waits for consuming to start (it
                starts later by itself if the broker is unreachable now).

        Raises:
            TransportDriverError: the broker refused the credentials or the declarations.
        """
        with self._reply_lock:
            if self._replies is None:
                spec = declarations.reply_subscription(names.reply_queue(names.new_id()))
                waiters = ReplyWaiters(spec.queue.name, self.limits)
                consumer = Consumer(
                    self.link,
                    [spec],
                    "replies",
                    no_ack=True,
                    on_delivery=lambda delivery: waiters.deliver(delivery.body),
                    delete_on_close=[spec.queue.name],
                )
                try:
                    if not consumer.wait_ready(SETUP_WAIT if setup_wait is None else setup_wait):
                        LOG.warning(
                            "The broker at %s is not reachable yet; replies on %s will "
                            "be received when it is",
                            self.link.settings.redacted,
                            spec.queue.name,
                        )
                except Exception:
                    consumer.close()
                    raise
                self._replies = (waiters, consumer)
            return self._replies[0]

    def close(self) -> None:
        """End the waits for replies, stop consuming them, close the publisher."""
        with self._reply_lock:
            replies, self._replies = self._replies, None
        if replies is not None:
            waiters, consumer = replies
            waiters.close()  # a call still waiting would otherwise wait out its timeout
            consumer.close()
        self.publisher.close()


REGISTRY: ConnectionRegistry[KombuBroker] = ConnectionRegistry("kombu")


class KombuDriver(TransportCore):
    """The ``kombu+<transport>://`` driver (see :mod:`messaging.drivers.kombu_transport`).

    Its :attr:`capabilities` depend on the kombu transport of the URL.
    """

    capabilities = base.Capabilities(requeue=True, pools=True, fanout=True, rpc=True)
    reply_retry = 3

    def open(self) -> None:
        """Read the URL's options; the connections open on first use."""
        self.settings = KombuSettings.from_url(self.url)
        self.capabilities = self.settings.capabilities
        self._key = self.settings.broker_key()
        self._broker = self.process_local(
            lambda: REGISTRY.acquire(self._key, lambda: KombuBroker(self.settings, self.limits)),
            lambda _broker: REGISTRY.release(self._key),
        )

    @property
    def broker(self) -> KombuBroker:
        """This process's connections to the broker (opened on first use)."""
        return self._broker.get()

    @property
    def link(self) -> KombuLink:
        """The broker's connection factory."""
        return self.broker.link

    def release(self) -> None:
        """Leave the shared connections (the last driver of the process closes them)."""
        self._broker.release()

    def publish(self, out: Outgoing) -> None:
        """Publish through the process's publisher; kombu does not say what was routed.

        Raises:
            NotImplementedError: a fanout cast on a transport without fanout exchanges.
            MessageDeliveryFailure: see :meth:`Publisher.publish`.
        """
        kind, route, body, retry = out.kind, out.route, out.body, out.retry
        declare, call = out.declare, out.call
        if kind == "reply":
            self._publish_reply(route.routing_key, body, retry)
            return
        if route.fanout and not self.capabilities.fanout:
            raise NotImplementedError(
                f"The kombu transport {self.settings.transport!r} has no fanout exchanges"
            )
        exchange = declarations.topic_exchange(route.exchange, route.fanout)
        # Fanout exchanges ignore the key on AMQP; Redis's PUB/SUB matches it
        # against the key its queues are bound with, which is the topic.
        key = route.topic if route.fanout else route.routing_key
        queue = binding = None
        if declare is not None:
            queue = declarations.notification_queue(declare.queue)
            binding = Binding(exchange.name, declare.queue, declare.routing_key)
        timeout = None if call is None else call.timeout
        publication = Publication(
            exchange, key, body, expiration=timeout, queue=queue, binding=binding, retry=retry
        )
        self.broker.publisher.publish(publication, None if call is None else call.deadline)

    def _publish_reply(self, reply_q: str, body: str, retry: int | None) -> None:
        queue = None
        if self.settings.virtual:
            # Declared so that Redis gives the list the reply queue's expiry: a
            # reply to a caller that is gone then vanishes with its queue.
            queue = declarations.reply_queue(reply_q)
        self.broker.publisher.publish(
            Publication(declarations.REPLY_EXCHANGE, reply_q, body, queue=queue, retry=retry)
        )

    def consume(self, queues: names.ListenerQueues, batch_size: int) -> Consumer:
        """Declare and consume on a connection and thread of the listener's own."""
        subs = declarations.subscriptions(queues)
        delete = [] if queues.own_queue is None else [queues.own_queue]
        if not queues.rpc:
            prefetch = max(self.settings.prefetch_count, batch_size)
            return self._consume(subs, "notifications", prefetch, delete)
        if not self.capabilities.fanout:
            subs = [s for s in subs if s.kind != "fanout"]
            delete = []
        return self._consume(subs, "rpc", self.settings.prefetch_count, delete)

    def reply_source(self, deadline: base.Deadline) -> ReplyWaiters:
        """The process's reply queue on this broker, consumed from its first use."""
        return self.broker.replies(deadline.remaining(SETUP_WAIT))

    def _consume(
        self,
        subs: Sequence[Subscription],
        label: str,
        prefetch: int,
        delete_on_close: Sequence[str] = (),
    ) -> Consumer:
        consumer = Consumer(
            self.link,
            subs,
            label,
            prefetch=prefetch,
            prefetch_bytes=self.settings.prefetch_bytes,
            delete_on_close=delete_on_close,
        )
        try:
            if not consumer.wait_ready(SETUP_WAIT):
                LOG.warning(
                    "The broker at %s is not reachable yet; consuming from %s will start "
                    "when it is",
                    self.settings.redacted,
                    consumer.queue_names,
                )
        except Exception:
            consumer.close()
            raise
        return consumer
