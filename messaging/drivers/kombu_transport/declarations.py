"""What the kombu driver declares: oslo's names (:mod:`messaging.drivers.names`), oslo's defaults.

``[oslo_messaging_rabbit]`` is not read by this driver, so every entity has the
flags and arguments oslo.messaging gives it with its default options: topic
exchanges and queues neither durable nor auto-delete, fanout exchanges
auto-delete, fanout and reply queues expiring after 30 minutes unused
(``x-expires``, which Redis honours too).
"""

from __future__ import annotations

from messaging.drivers import names
from messaging.drivers.entities import Binding, ExchangeSpec, QueueKind, QueueSpec, Subscription

__all__ = [
    "REPLY_EXCHANGE",
    "notification_queue",
    "reply_queue",
    "reply_subscription",
    "subscriptions",
    "topic_exchange",
]

#: oslo's ``rabbit_transient_queues_ttl`` default, as ``x-expires`` (milliseconds).
TRANSIENT_EXPIRES_MS = 1800 * 1000

#: The default exchange, which replies are published through (passively, as oslo does).
REPLY_EXCHANGE = ExchangeSpec(names.DEFAULT_EXCHANGE, "direct", False, True, passive=True)


def topic_exchange(name: str, fanout: bool = False) -> ExchangeSpec:
    """The topic exchange ``name``, or with ``fanout`` the fanout exchange ``name``."""
    if fanout:
        return ExchangeSpec(name, "fanout", durable=False, auto_delete=True)
    return ExchangeSpec(name, "topic", durable=False, auto_delete=False)


def notification_queue(name: str) -> QueueSpec:
    """A notification, pool or RPC topic queue."""
    return QueueSpec(name, durable=False, auto_delete=False)


def reply_queue(name: str) -> QueueSpec:
    """A reply (or fanout) queue: it expires once unused."""
    return QueueSpec(
        name, durable=False, auto_delete=False, arguments={"x-expires": TRANSIENT_EXPIRES_MS}
    )


def _kind(binding: names.QueueBinding, rpc: bool) -> QueueKind:
    if binding.fanout:
        return "fanout"
    return "topic" if rpc else "notification"


def subscriptions(queues: names.ListenerQueues) -> list[Subscription]:
    """What a consumer of ``queues`` declares, in order."""
    return [
        Subscription(
            topic_exchange(b.exchange, b.fanout),
            # A listener's own queue expires like a reply queue if it is left behind.
            reply_queue(b.queue)
            if b.fanout or b.queue == queues.own_queue
            else notification_queue(b.queue),
            Binding(b.exchange, b.queue, b.routing_key),
            _kind(b, queues.rpc),
        )
        for b in queues.bindings
    ]


def reply_subscription(name: str) -> Subscription:
    """What the consumer of the reply queue ``name`` declares: the queue, unbound."""
    exchange = ExchangeSpec(names.DEFAULT_EXCHANGE, "direct", durable=False, auto_delete=False)
    return Subscription(exchange, reply_queue(name), None, "reply")
