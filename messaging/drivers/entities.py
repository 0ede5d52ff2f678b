"""Exchanges, queues and bindings as plain data, for drivers of AMQP-model brokers.

The RabbitMQ driver fills them from its options
(:mod:`messaging.drivers.rabbit.topology`), the kombu driver with oslo's
defaults (:mod:`messaging.drivers.kombu_transport.declarations`); the names in
them come from :mod:`messaging.drivers.names`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Binding", "ExchangeSpec", "QueueKind", "QueueSpec", "Subscription"]

QueueKind = Literal["topic", "notification", "reply", "fanout"]
"""``topic``: RPC ``<topic>`` and ``<topic>.<server>`` queues; ``notification``:
notification and pool queues; ``reply``: ``reply_<id>``; ``fanout``: fanout queues."""


@dataclass(frozen=True)
class ExchangeSpec:
    """An exchange to declare (or, with ``passive``, only to check for).

    Attributes:
        name: the exchange name; ``""`` is the default exchange, never declared.
        type: ``topic``, ``fanout`` or ``direct``.
        durable: survives a broker restart.
        auto_delete: removed when its last binding goes.
        passive: only check that it exists.
        rabbit4: the form to declare instead on RabbitMQ 4 and later, when it
            differs (set by the RabbitMQ driver); not compared.
    """

    name: str
    type: str
    durable: bool
    auto_delete: bool
    passive: bool = False
    rabbit4: ExchangeSpec | None = field(default=None, compare=False)

    def for_broker(self, rabbitmq4: bool) -> ExchangeSpec:
        """The form to declare on a broker of RabbitMQ 4 and later or not."""
        return self.rabbit4 if rabbitmq4 and self.rabbit4 is not None else self


@dataclass(frozen=True)
class QueueSpec:
    """A queue to declare.

    Attributes:
        name: the queue name.
        durable: survives a broker restart.
        auto_delete: removed when its last consumer leaves.
        exclusive: usable by the declaring connection only (oslo never sets it).
        arguments: the ``x-*`` declaration arguments (a fresh dict per spec; left
            out of the hash, so that specs can be kept in sets).
        rabbit4: the form to declare instead on RabbitMQ 4 and later, when it
            differs (set by the RabbitMQ driver); not compared.
    """

    name: str
    durable: bool
    auto_delete: bool
    exclusive: bool = False
    arguments: dict[str, Any] = field(default_factory=dict, hash=False)
    rabbit4: QueueSpec | None = field(default=None, compare=False)

    def for_broker(self, rabbitmq4: bool) -> QueueSpec:
        """The form to declare on a broker of RabbitMQ 4 and later or not."""
        return self.rabbit4 if rabbitmq4 and self.rabbit4 is not None else self


@dataclass(frozen=True)
class Binding:
    """A queue bound to an exchange with a routing key."""

    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True)
class Subscription:
    """What one consumer declares before consuming, in this order.

    Attributes:
        exchange: the exchange (not declared when it is the default exchange).
        queue: the queue consumed from.
        binding: the binding, or None for a queue reached through the default exchange.
        kind: the queue kind, for :func:`consumer_arguments`.
    """

    exchange: ExchangeSpec
    queue: QueueSpec
    binding: Binding | None
    kind: QueueKind
