"""``StompDriver``: notifications and RPC over STOMP (see :mod:`messaging.drivers.stomp`).

The protocol is the driver core's (:mod:`messaging.drivers.core`); this module
maps its primitives to STOMP destinations (:mod:`.destinations`) on the
process's shared connection (:mod:`.connection`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from messaging.drivers import base, names
from messaging.drivers.core import Outgoing, TransportCore
from messaging.drivers.replies import ReplyWaiters
from messaging.drivers.stomp.connection import REGISTRY, StompConnection
from messaging.drivers.stomp.destinations import Destinations
from messaging.drivers.stomp.listener import StompSource
from messaging.drivers.stomp.options import StompSettings

if TYPE_CHECKING:
    pass

__all__ = ["StompDriver"]

LOG = logging.getLogger(__name__)


class StompDriver(TransportCore):
    """The ``stomp://user:pass@host:61613[,host2:61613]/vhost`` driver.

    Attributes:
        settings: the options, read once.
        connection: the process's shared connection to the broker.
        destinations: how targets map to destinations on this broker.
    """

    capabilities = base.Capabilities(requeue=True, pools=True, fanout=True, rpc=True)
    #: One thread polls a listener: the broker's order of deliveries is kept.
    concurrent_poll = False

    def open(self) -> None:
        """Read the options and share the process's connection to the broker."""
        self.settings = StompSettings.from_conf(self.conf, self.url)
        self._key = self.settings.broker_key()
        self._lock = threading.Lock()
        self._released = False
        self.connection: StompConnection = REGISTRY.acquire(
            self._key, lambda: StompConnection(self.settings)
        )
        flavor = self.connection.flavor(self.settings.connect_timeout)
        self.destinations = Destinations(
            flavor, self.settings.prefetch_count, self.settings.reply_queue_expiry
        )
        # Known once connected: with flavor=auto the line above waited for it.
        self.capabilities = base.Capabilities(
            requeue=True,
            pools=self.destinations.rabbit,
            fanout=True,
            rpc=True,
            batches=not self.connection.holds_one_unacked,
        )

    def __repr__(self) -> str:
        return f"<StompDriver {self.settings.redacted}>"

    def publish(self, out: Outgoing) -> None:
        """SEND to the route's destination and wait for the receipt; STOMP does not say who got it.

        On RabbitMQ, a notification's default queue is declared first, and a
        call's request expires after the call's timeout.

        Raises:
            MessageDeliveryFailure: no receipt from the broker within ``retry``.
        """
        kind, route, body, retry = out.kind, out.route, out.body, out.retry
        declare, call = out.declare, out.call
        destinations = self.destinations
        if kind == "reply":
            self.connection.send(route.routing_key, body, {}, retry)
            return
        if kind == "notification":
            before: Callable[[], None] | None = None
            if declare is not None and destinations.rabbit:
                where, headers = destinations.notification_declaration(
                    declare.exchange, declare.routing_key
                )

                def before() -> None:
                    self.connection.declare(where, headers)

            destination = destinations.notification_send(route.exchange, route.routing_key)
            self.connection.send(destination, body, {"persistent": "true"}, retry, before)
            return
        if route.fanout:
            destination = destinations.fanout(route.topic_exchange, route.topic)
        else:
            destination = destinations.rpc_queue(route.exchange, route.routing_key)
        request: dict[str, str] = {}
        if call is None:
            self.connection.send(destination, body, request, retry)
            return
        if call.timeout is not None and destinations.rabbit and not route.fanout:
            request["expiration"] = str(max(1, int(call.timeout * 1000)))
        self.connection.send(destination, body, request, retry, deadline=call.deadline)

    def consume(self, queues: names.ListenerQueues, batch_size: int) -> StompSource:
        """Subscribe to the destinations of the queues (RabbitMQ declares them)."""
        destinations = self.destinations
        subscriptions = []
        for bound in queues.bindings:
            if bound.fanout:
                # The destination is named after the topic's exchange, the first binding's.
                home = queues.bindings[0].exchange
                subscriptions.append(destinations.fanout_subscription(home, bound.routing_key))
            elif queues.rpc:
                subscriptions.append(destinations.rpc_subscription(bound.exchange, bound.queue))
            elif queues.pool is not None:
                subscriptions.append(
                    destinations.notification_pool(
                        bound.exchange,
                        bound.routing_key,
                        queues.pool,
                        temporary=queues.own_queue is not None,
                    )
                )
            else:
                subscriptions.append(
                    destinations.notification_default(bound.exchange, bound.routing_key)
                )
        unique = list({d: (d, h) for d, h in subscriptions}.values())
        return StompSource(self.connection, unique, destinations.ack_mode)

    def reply_source(self, deadline: base.Deadline) -> ReplyWaiters:
        """The process's reply destination on this broker, subscribed on first use."""
        replies, _destination = self.connection.replies(self.destinations.new_reply, self.limits)
        return replies

    def release(self) -> None:
        """Release this driver's share of the connection."""
        with self._lock:
            released, self._released = self._released, True
        if not released:
            REGISTRY.release(self._key)
