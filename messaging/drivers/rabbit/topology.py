"""The exchanges, queues and bindings oslo.messaging 18.x declares on RabbitMQ.

RabbitMQ refuses to redeclare an exchange or queue with other flags or arguments
(``PRECONDITION_FAILED - inequivalent arg ...``), so a service on ``messaging``
that shares a broker with oslo.messaging services must declare every entity
exactly as they do. This module says what to declare, as plain data, for given
:class:`~messaging.drivers.rabbit.options.RabbitSettings`; it talks to no broker.

Patterns (``<ex>`` is the target's exchange, else ``control_exchange``):

============  ====================================  =======================  ==================
pattern       exchange (type)                       queue                    routing key
============  ====================================  =======================  ==================
RPC, any      ``<ex>`` (topic)                      ``<topic>``              ``<topic>``
RPC, server   ``<ex>`` (topic)                      ``<topic>.<server>``     ``<topic>.<server>``
fanout cast   ``<topic>_fanout`` (fanout)           ``<topic>_fanout_<id>``  ``<topic>``
reply         default exchange ``""``               ``reply_<id>``           the queue name
notification  ``<ex>`` (topic)                      ``<topic>.<priority>``   ``<topic>.<priority>``
pool          ``<ex>`` (topic)                      ``<pool>``               ``<topic>.<priority>``
============  ====================================  =======================  ==================

Durability: topic exchanges and the RPC and notification queues follow
``amqp_durable_queues`` (forced on by ``rabbit_quorum_queue``) and
``amqp_auto_delete``; fanout exchanges are always auto-delete; fanout and reply
queues are durable exactly when ``rabbit_transient_quorum_queue`` is set, and
never auto-delete. Queue arguments: :func:`queue_arguments`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

from messaging.drivers import names
from messaging.drivers.entities import Binding, ExchangeSpec, QueueKind, QueueSpec, Subscription

if TYPE_CHECKING:
    from messaging.drivers.rabbit.options import RabbitSettings

__all__ = [
    "DEFAULT_EXCHANGE",
    "Binding",
    "ExchangeSpec",
    "PublishKind",
    "PublishSpec",
    "QueueKind",
    "QueueSpec",
    "Subscription",
    "call_expiration",
    "consumer_arguments",
    "fanout_exchange",
    "fanout_queue",
    "notification_binding",
    "notification_exchange",
    "notification_publish",
    "notification_queue",
    "notification_routing_key",
    "notification_subscriptions",
    "pool_queue",
    "publish_mandatory",
    "publish_properties",
    "queue_arguments",
    "queue_manager_unique",
    "reply_exchange",
    "reply_publish",
    "reply_queue",
    "reply_subscription",
    "rpc_publish",
    "rpc_server_queue",
    "rpc_server_subscriptions",
    "rpc_topic_exchange",
    "rpc_topic_queue",
]

DEFAULT_EXCHANGE = names.DEFAULT_EXCHANGE
"""RabbitMQ's default exchange: it routes to the queue named by the routing key."""

PublishKind = Literal["call", "cast", "fanout", "reply", "notification"]
"""What a message is: an RPC call or cast to a topic, a fanout cast, a reply to a
call, or a notification."""

_DURABLE_TOPIC_KINDS = ("topic", "notification")


@dataclass(frozen=True)
class PublishSpec:
    """Where a message is published.

    Attributes:
        exchange: the exchange; declared by the publisher unless ``passive``.
        routing_key: the routing key.
        declare_queue: a queue the publisher declares (and binds) before
            publishing, as oslo does for notifications; None for other messages.
    """

    exchange: ExchangeSpec
    routing_key: str
    declare_queue: QueueSpec | None = None


def _durable_topics(settings: RabbitSettings) -> bool:
    # Quorum queues are durable whatever amqp_durable_queues says, and oslo
    # makes their topic exchange durable with them.
    return settings.amqp_durable_queues or settings.rabbit_quorum_queue


def _check_kind(kind: str, allowed: tuple[str, ...]) -> None:
    if kind not in allowed:
        raise ValueError(f"Unknown kind {kind!r}; expected one of {', '.join(allowed)}")


def queue_arguments(settings: RabbitSettings, kind: QueueKind) -> dict[str, Any]:
    """The declaration arguments of a queue of ``kind``, as oslo.messaging sets them.

    - ``rabbit_ha_queues``: ``x-ha-policy: all``.
    - Quorum (``rabbit_quorum_queue`` for topic and notification queues,
      ``rabbit_transient_quorum_queue`` for reply and fanout queues):
      ``x-queue-type: quorum``, plus ``x-delivery-limit``,
      ``x-max-in-memory-length`` and ``x-max-in-memory-bytes`` for the
      ``rabbit_quorum_*`` options that are not 0.
    - Reply and fanout queues: ``x-expires`` = ``rabbit_transient_queues_ttl``
      in milliseconds, unless 0.
    - Fanout with ``rabbit_stream_fanout``: only ``x-queue-type: stream`` and
      ``x-max-age: "<ttl>s"`` (unless the TTL is 0).

    Args:
        settings: the driver settings.
        kind: the queue kind.

    Returns:
        A new dict, empty with the default settings for topic and notification queues.

    Raises:
        ValueError: ``kind`` is unknown.
    """
    _check_kind(kind, get_args(QueueKind))
    transient = kind not in _DURABLE_TOPIC_KINDS
    if transient:
        quorum = settings.rabbit_transient_quorum_queue
        ttl = settings.rabbit_transient_queues_ttl
    else:
        quorum = settings.rabbit_quorum_queue
        ttl = 0
    if kind == "fanout" and settings.rabbit_stream_fanout:
        stream: dict[str, Any] = {"x-queue-type": "stream"}
        if ttl > 0:
            stream["x-max-age"] = f"{ttl}s"
        return stream
    args: dict[str, Any] = {}
    if settings.rabbit_ha_queues:
        args["x-ha-policy"] = "all"
    if quorum:
        args["x-queue-type"] = "quorum"
        limits = {
            "x-delivery-limit": settings.rabbit_quorum_delivery_limit,
            "x-max-in-memory-length": settings.rabbit_quorum_max_memory_length,
            "x-max-in-memory-bytes": settings.rabbit_quorum_max_memory_bytes,
        }
        args.update((name, limit) for name, limit in limits.items() if limit)  # 0: no limit
    if ttl > 0:
        args["x-expires"] = ttl * 1000
    return args


def consumer_arguments(
    settings: RabbitSettings, kind: QueueKind, stream_offset: int | str = "last"
) -> dict[str, Any]:
    """The ``basic.consume`` arguments of a consumer of a queue of ``kind``.

    A fanout stream consumer gets only ``x-stream-offset``: ``"last"`` at first,
    then the offset after the last message it saw, so that a reconnect resumes
    there. Other consumers get ``x-cancel-on-ha-failover: true`` when
    ``enable_cancel_on_failover`` is set.

    Args:
        settings: the driver settings.
        kind: the queue kind.
        stream_offset: where a fanout stream consumer starts.

    Returns:
        A new dict, empty with the default settings.

    Raises:
        ValueError: ``kind`` is unknown.
    """
    _check_kind(kind, get_args(QueueKind))
    if kind == "fanout" and settings.rabbit_stream_fanout:
        return {"x-stream-offset": stream_offset}
    if settings.enable_cancel_on_failover:
        return {"x-cancel-on-ha-failover": True}
    return {}


S = TypeVar("S", ExchangeSpec, QueueSpec)


def _with_rabbit4(settings: RabbitSettings, build: Callable[[RabbitSettings], S]) -> S:
    # The spec for these settings, carrying the one for RabbitMQ 4 when it differs.
    spec = build(settings)
    modern = settings.on_rabbitmq4()
    if modern is settings:
        return spec
    other = build(modern)
    return spec if other == spec else dataclasses.replace(spec, rabbit4=other)


def rpc_topic_exchange(settings: RabbitSettings, exchange_name: str) -> ExchangeSpec:
    """The topic exchange of RPC requests and notifications (``control_exchange``...)."""
    return _with_rabbit4(
        settings,
        lambda s: ExchangeSpec(exchange_name, "topic", _durable_topics(s), s.amqp_auto_delete),
    )


def notification_exchange(settings: RabbitSettings, exchange_name: str) -> ExchangeSpec:
    """The exchange notifications go to: the same topic exchange as RPC's."""
    return rpc_topic_exchange(settings, exchange_name)


def _topic_queue(settings: RabbitSettings, name: str, kind: QueueKind) -> QueueSpec:
    return _with_rabbit4(
        settings,
        lambda s: QueueSpec(
            name,
            durable=_durable_topics(s),
            auto_delete=s.amqp_auto_delete,
            arguments=queue_arguments(s, kind),
        ),
    )


def rpc_topic_queue(settings: RabbitSettings, topic: str) -> QueueSpec:
    """The queue ``<topic>`` that the servers of a topic share, round-robin."""
    return _topic_queue(settings, topic, "topic")


def rpc_server_queue(settings: RabbitSettings, topic: str, server: str) -> QueueSpec:
    """The queue ``<topic>.<server>`` of one server."""
    return _topic_queue(settings, names.server_queue(topic, server), "topic")


def fanout_exchange(settings: RabbitSettings, topic: str) -> ExchangeSpec:
    """The exchange ``<topic>_fanout`` of fanout casts; it ignores the target's exchange."""
    return _with_rabbit4(
        settings,
        lambda s: ExchangeSpec(
            names.fanout_exchange(topic),
            "fanout",
            durable=s.rabbit_transient_quorum_queue,
            auto_delete=True,
        ),
    )


def fanout_queue(settings: RabbitSettings, topic: str, unique: str) -> QueueSpec:
    """One server's queue ``<topic>_fanout_<unique>`` on the fanout exchange.

    With ``rabbit_stream_fanout`` every server reads one shared stream named
    ``<topic>_fanout``, and ``unique`` is not used.

    Args:
        settings: the driver settings.
        topic: the RPC topic.
        unique: a hex uuid4, or :func:`queue_manager_unique` with ``use_queue_manager``.
    """
    if settings.rabbit_stream_fanout:
        name = names.fanout_exchange(topic)
    else:
        name = names.fanout_queue(topic, unique)
    # rabbit_stream_fanout requires rabbit_transient_quorum_queue (RabbitSettings
    # checks it), so this is also oslo's "transient quorum or stream".
    return _with_rabbit4(
        settings,
        lambda s: QueueSpec(
            name,
            durable=s.rabbit_transient_quorum_queue,
            auto_delete=False,
            arguments=queue_arguments(s, "fanout"),
        ),
    )


def reply_exchange(settings: RabbitSettings, *, publishing: bool = False) -> ExchangeSpec:
    """The default exchange, which replies go through.

    The publisher of a reply uses it passively (and flags it auto-delete, as oslo
    does); it is never declared, so the flags are only oslo's, for fidelity.
    """
    return ExchangeSpec(
        DEFAULT_EXCHANGE,
        "direct",
        durable=settings.rabbit_transient_quorum_queue,
        auto_delete=publishing,
        passive=publishing,
    )


def reply_queue(settings: RabbitSettings, unique: str) -> QueueSpec:
    """The queue ``reply_<unique>`` a client receives its replies on (one per transport)."""
    return _with_rabbit4(
        settings,
        lambda s: QueueSpec(
            names.reply_queue(unique),
            durable=s.rabbit_transient_quorum_queue,
            auto_delete=False,
            arguments=queue_arguments(s, "reply"),
        ),
    )


def queue_manager_unique(settings: RabbitSettings, counter: int) -> str:
    """The stable ``<hostname>:<processname>:<counter>`` id of ``use_queue_manager``."""
    return f"{settings.hostname}:{settings.processname}:{counter}"


def notification_routing_key(topic: str, priority: str) -> str:
    """The routing key and default queue name of a notification: ``<topic>.<priority>``."""
    return names.notification_key(topic, priority)


def notification_queue(settings: RabbitSettings, topic_priority: str) -> QueueSpec:
    """The default queue ``<topic>.<priority>``, declared by publishers and listeners."""
    return _topic_queue(settings, topic_priority, "notification")


def pool_queue(settings: RabbitSettings, pool: str, temporary: bool = False) -> QueueSpec:
    """The queue of a listener pool, named exactly ``<pool>``.

    A temporary pool's queue is auto-delete and never quorum (quorum queues
    cannot be auto-delete); it is durable on RabbitMQ 4, which deprecates
    transient queues that are not exclusive.
    """
    if not temporary:
        return _topic_queue(settings, pool, "notification")
    return QueueSpec(
        pool,
        durable=False,
        auto_delete=True,
        rabbit4=QueueSpec(pool, durable=True, auto_delete=True),
    )


def notification_binding(
    exchange_name: str, topic_priority: str, pool: str | None = None
) -> Binding:
    """The binding of a notification queue (``pool``'s if given) to ``<topic>.<priority>``."""
    return Binding(exchange_name, pool or topic_priority, topic_priority)


def rpc_server_subscriptions(
    settings: RabbitSettings, exchange_name: str, topic: str, server: str, fanout_unique: str
) -> tuple[Subscription, Subscription, Subscription]:
    """What an RPC server consumes from, in oslo's order: topic, server, fanout.

    Args:
        settings: the driver settings.
        exchange_name: the target's exchange, else ``control_exchange``.
        topic: the target's topic.
        server: the target's server.
        fanout_unique: the id in the fanout queue's name (see :func:`fanout_queue`).
    """
    exchange = rpc_topic_exchange(settings, exchange_name)
    shared = rpc_topic_queue(settings, topic)
    own = rpc_server_queue(settings, topic, server)
    fanout_ex = fanout_exchange(settings, topic)
    fanout_q = fanout_queue(settings, topic, fanout_unique)
    return (
        Subscription(exchange, shared, Binding(exchange.name, shared.name, topic), "topic"),
        Subscription(exchange, own, Binding(exchange.name, own.name, own.name), "topic"),
        Subscription(fanout_ex, fanout_q, Binding(fanout_ex.name, fanout_q.name, topic), "fanout"),
    )


def reply_subscription(settings: RabbitSettings, unique: str) -> Subscription:
    """What a client consumes its replies from: ``reply_<unique>``, unbound."""
    return Subscription(reply_exchange(settings), reply_queue(settings, unique), None, "reply")


def notification_subscriptions(
    settings: RabbitSettings,
    targets: Iterable[tuple[str, str, str]],
    pool: str | None = None,
    temporary: bool = False,
) -> list[Subscription]:
    """What a notification listener consumes from.

    Without a pool, one queue ``<topic>.<priority>`` per pair; with one, the single
    queue ``<pool>`` bound once per ``<topic>.<priority>`` and exchange.

    Args:
        settings: the driver settings.
        targets: ``(exchange, topic, priority)`` triples, the exchange resolved.
        pool: the listener pool, if any.
        temporary: the pool's queue goes away with its last consumer.
    """
    subscriptions = []
    for exchange_name, topic, priority in targets:
        key = notification_routing_key(topic, priority)
        queue = pool_queue(settings, pool, temporary) if pool else notification_queue(settings, key)
        subscriptions.append(
            Subscription(
                notification_exchange(settings, exchange_name),
                queue,
                notification_binding(exchange_name, key, pool),
                "notification",
            )
        )
    return subscriptions


def rpc_publish(
    settings: RabbitSettings,
    exchange_name: str,
    topic: str,
    server: str | None = None,
    *,
    fanout: bool = False,
) -> PublishSpec:
    """Where an RPC call or cast is published.

    A fanout cast goes to ``<topic>_fanout`` with routing key ``""``; otherwise the
    topic exchange with routing key ``<topic>`` or ``<topic>.<server>``. The
    publisher declares the exchange only, never the queue.
    """
    if fanout:
        return PublishSpec(fanout_exchange(settings, topic), "")
    key = names.server_queue(topic, server) if server else topic
    return PublishSpec(rpc_topic_exchange(settings, exchange_name), key)


def reply_publish(settings: RabbitSettings, reply_q: str) -> PublishSpec:
    """Where a reply is published: the default exchange, passively, keyed by ``_reply_q``."""
    return PublishSpec(reply_exchange(settings, publishing=True), reply_q)


def notification_publish(
    settings: RabbitSettings, exchange_name: str, topic: str, priority: str
) -> PublishSpec:
    """Where a notification is published, with the queue the publisher declares too.

    oslo's publisher declares ``<topic>.<priority>`` (bound to that key) before its
    first publish on a connection, so that notifications are kept while no
    listener runs; that queue never has ``x-expires``.
    """
    key = notification_routing_key(topic, priority)
    return PublishSpec(
        notification_exchange(settings, exchange_name), key, notification_queue(settings, key)
    )


_JSON_PROPERTIES: dict[str, Any] = {
    "content_type": "application/json",
    "content_encoding": "utf-8",
    "delivery_mode": 2,
    "priority": 0,
}


def publish_properties(kind: PublishKind, timeout: float | None = None) -> dict[str, Any]:
    """The AMQP properties of a published message, as oslo.messaging (kombu) sets them.

    Every message is JSON in UTF-8, persistent (delivery mode 2), priority 0, with
    empty headers (kombu adds ``compression`` when ``kombu_compression`` is set).
    Only a call with a timeout has ``expiration`` (see :func:`call_expiration`), so
    that the broker drops a request nobody took in time. ``reply_to``,
    ``correlation_id`` and ``message_id`` are never used: oslo routes on the body.

    Args:
        kind: what the message is.
        timeout: the call's timeout in seconds; ignored for other kinds.

    Returns:
        A new dict of property name (kombu's spelling) to value.

    Raises:
        ValueError: ``kind`` is unknown.
    """
    _check_kind(kind, get_args(PublishKind))
    properties = dict(_JSON_PROPERTIES, headers={})
    if kind == "call" and timeout is not None:
        properties["expiration"] = call_expiration(timeout)
    return properties


def call_expiration(timeout: float) -> str:
    """The ``expiration`` property of a call request: the timeout in whole milliseconds.

    kombu's ``Producer.publish(expiration=seconds)`` computes the same string.
    """
    return str(int(timeout * 1000))


def publish_mandatory(
    settings: RabbitSettings, kind: PublishKind, at_least_once: bool = False
) -> bool:
    """Whether to publish with the ``mandatory`` flag (unroutable → returned to us).

    Replies: ``direct_mandatory_flag``; calls and casts to a topic: the client's
    ``TransportOptions(at_least_once=...)``; fanout casts and notifications: never.

    Raises:
        ValueError: ``kind`` is unknown.
    """
    _check_kind(kind, get_args(PublishKind))
    if kind == "reply":
        return settings.direct_mandatory_flag
    if kind in ("call", "cast"):
        return at_least_once
    return False
