"""oslo.messaging's names of exchanges, queues and routing keys, for every driver.

Whatever the broker, a service finds another by these names, so every driver
takes them from here (``<ex>`` is the target's exchange, else the transport's
``control_exchange``):

============  ===========================  =======================  ======================
pattern       exchange                     queue                    routing key
============  ===========================  =======================  ======================
RPC, any      ``<ex>``                     ``<topic>``              ``<topic>``
RPC, server   ``<ex>``                     ``<topic>.<server>``     ``<topic>.<server>``
fanout cast   ``<topic>_fanout`` (fanout)  ``<topic>_fanout_<id>``  ``<topic>``
reply         the default exchange ``""``  ``reply_<id>``           the queue name
notification  ``<ex>``                     ``<topic>.<priority>``   ``<topic>.<priority>``
pool          ``<ex>``                     ``<pool>``               ``<topic>.<priority>``
============  ===========================  =======================  ======================

A temporary pool (:func:`temporary_pool`) is a pool whose queue belongs to its
listeners: it is removed when they leave (a tap, such as ``messaging listen``
without ``--pool``, gets its own copy of every notification this way).

A fanout cast is published with the routing key ``""`` and ignores the target's
exchange. How each name is declared (flags, arguments) is the driver's business
(RabbitMQ's: :mod:`messaging.drivers.rabbit.topology`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from messaging.target import Target

__all__ = [
    "DEFAULT_EXCHANGE",
    "ListenerQueues",
    "QueueBinding",
    "Route",
    "exchange_of",
    "fanout_exchange",
    "fanout_queue",
    "new_id",
    "notification_key",
    "notification_queues",
    "reply_queue",
    "request_route",
    "server_queue",
    "server_queues",
    "temporary_pool",
]

DEFAULT_EXCHANGE = ""
"""The default exchange: it routes to the queue named by the routing key (replies)."""


def exchange_of(target: Target, default: str) -> str:
    """The exchange of ``target``: its own, else ``default`` (``control_exchange``)."""
    return target.exchange or default


def new_id() -> str:
    """A fresh id for a queue name (``reply_<id>``, ``<topic>_fanout_<id>``): a uuid4 in hex."""
    return uuid.uuid4().hex


def notification_key(topic: str, priority: str) -> str:
    """The routing key and default queue of a notification: ``<topic>.<priority>``."""
    return f"{topic}.{priority.lower()}"


def temporary_pool(purpose: str) -> str:
    """A fresh pool name for a temporary pool: ``<purpose>-<id>``."""
    return f"{purpose}-{new_id()}"


def server_queue(topic: str, server: str) -> str:
    """The queue (and routing key) of one RPC server: ``<topic>.<server>``."""
    return f"{topic}.{server}"


def fanout_exchange(topic: str) -> str:
    """The fanout exchange of a topic: ``<topic>_fanout``."""
    return f"{topic}_fanout"


def fanout_queue(topic: str, unique: str) -> str:
    """One server's queue on the fanout exchange: ``<topic>_fanout_<unique>``."""
    return f"{topic}_fanout_{unique}"


def reply_queue(unique: str) -> str:
    """A client's reply queue: ``reply_<unique>``."""
    return f"reply_{unique}"


@dataclass(frozen=True)
class Route:
    """Where a message is published.

    Attributes:
        exchange: the exchange (``""``: the queue named by the routing key).
        routing_key: the routing key.
        topic: the target's topic (a reply's: the reply queue).
        topic_exchange: the target's exchange, else ``control_exchange``; for a
            fanout route, the exchange oslo would have used without fanout (some
            transports name their fanout destinations after it).
        fanout: the exchange is a fanout exchange (every bound queue gets a copy).
    """

    exchange: str
    routing_key: str
    topic: str
    topic_exchange: str
    fanout: bool = False


@dataclass(frozen=True)
class QueueBinding:
    """A queue bound to an exchange with a routing key.

    Attributes:
        queue: the queue.
        exchange: the exchange.
        routing_key: the key (a fanout exchange ignores it).
        fanout: the exchange is a fanout exchange.
    """

    queue: str
    exchange: str
    routing_key: str
    fanout: bool = False


@dataclass(frozen=True)
class ListenerQueues:
    """What one listener consumes: queues with their bindings, in oslo's order.

    Attributes:
        bindings: the queues and how they are bound (a pool queue once per key).
        rpc: RPC requests (taken at most once) rather than notifications.
        own_queue: a queue of this listener alone (an RPC server's fanout queue,
            a temporary pool's queue), deleted when the listener closes.
        pool: the notification listener pool whose queue this is, if any.
    """

    bindings: tuple[QueueBinding, ...]
    rpc: bool
    own_queue: str | None = None
    pool: str | None = None

    @property
    def queues(self) -> list[str]:
        """The queue names, each once, in order."""
        return list(dict.fromkeys(b.queue for b in self.bindings))


def request_route(target: Target, default_exchange: str) -> Route:
    """Where an RPC request to ``target`` goes: its topic or server queue, or the fanout."""
    topic = str(target.topic)
    exchange = exchange_of(target, default_exchange)
    if target.fanout:
        return Route(fanout_exchange(topic), "", topic, exchange, fanout=True)
    key = server_queue(topic, target.server) if target.server else topic
    return Route(exchange, key, topic, exchange)


def notification_queues(
    targets_and_priorities: Iterable[tuple[Target, str]],
    pool: str | None,
    default_exchange: str,
    temporary: bool = False,
) -> ListenerQueues:
    """What a notification listener consumes: ``<topic>.<priority>`` queues, or ``<pool>``.

    Args:
        targets_and_priorities: the targets, each with a priority.
        pool: the listener pool, if any.
        default_exchange: the exchange of a target without one.
        temporary: the pool's queue is the listener's own (deleted when it closes).

    Raises:
        ValueError: ``temporary`` without a ``pool``.
    """
    if temporary and pool is None:
        raise ValueError("A temporary listener needs a pool name")
    bindings = []
    for target, priority in targets_and_priorities:
        key = notification_key(str(target.topic), priority)
        bindings.append(QueueBinding(pool or key, exchange_of(target, default_exchange), key))
    own = pool if temporary else None
    return ListenerQueues(tuple(dict.fromkeys(bindings)), rpc=False, own_queue=own, pool=pool)


def server_queues(target: Target, default_exchange: str, unique: str) -> ListenerQueues:
    """What an RPC server consumes: ``<topic>``, ``<topic>.<server>`` and its fanout queue.

    Args:
        target: the server's target (``server`` may be None: then no server queue).
        default_exchange: the exchange of a target without one.
        unique: the id in the fanout queue's name (:func:`new_id`).
    """
    topic = str(target.topic)
    exchange = exchange_of(target, default_exchange)
    bindings = [QueueBinding(topic, exchange, topic)]
    if target.server:
        direct = server_queue(topic, target.server)
        bindings.append(QueueBinding(direct, exchange, direct))
    own = fanout_queue(topic, unique)
    bindings.append(QueueBinding(own, fanout_exchange(topic), topic, fanout=True))
    return ListenerQueues(tuple(bindings), rpc=True, own_queue=own)
