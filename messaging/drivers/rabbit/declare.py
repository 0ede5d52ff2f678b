"""Declaring exchanges, queues and bindings, tolerant of what already exists.

RabbitMQ refuses to declare an entity that exists with other properties
(``PRECONDITION_FAILED - inequivalent arg 'durable'``...) and closes the
channel. In a fleet where services disagree on ``amqp_durable_queues`` (or
quorum settings), that would stop a service from working at all; oslo.messaging
falls back to a non-durable declaration. Here the entity is used as it exists:
the declaration is repeated passively (which only checks that it exists) on a
new channel, with a warning naming the entity and the broker's complaint.
When there is nothing to fall back on (the declaration itself is invalid), or
the broker refuses for another reason that retrying cannot heal (a denied
feature, a permission), :class:`~messaging.drivers.rabbit.refusals.DeclarationRefused`
is raised.

On RabbitMQ 4 and later (read from the connection's server properties), each
exchange and queue is declared in its RabbitMQ 4 form where it has one
(``spec.rabbit4``): quorum queues instead of the transient queues that
RabbitMQ 4.3 refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import amqp
import amqp.exceptions

from messaging import green
from messaging.drivers.rabbit.broker import BrokerInfo
from messaging.drivers.rabbit.refusals import declaration_refused

if TYPE_CHECKING:
    from messaging.drivers.rabbit.topology import Binding, ExchangeSpec, QueueSpec

__all__ = ["Declarer"]

LOG = green.hand_over_logs(__name__)


class Declarer:
    """Declares on a channel of its own, replacing it when the broker closes it.

    Args:
        conn: the connection (used on its I/O thread only).
    """

    def __init__(self, conn: amqp.Connection) -> None:
        self._conn = conn
        self._channel: amqp.Channel | None = None
        self.broker = BrokerInfo.from_server_properties(getattr(conn, "server_properties", None))

    def _channel_now(self) -> amqp.Channel:
        if self._channel is None or not self._channel.is_open:
            self._channel = self._conn.channel()
        return self._channel

    def _tolerant(
        self,
        what: str,
        declare: Callable[[amqp.Channel], object],
        passive: Callable[[amqp.Channel], object],
    ) -> None:
        try:
            declare(self._channel_now())
        except amqp.exceptions.PreconditionFailed as exc:
            self._channel = None  # the broker closed it
            try:
                passive(self._channel_now())
            except amqp.exceptions.NotFound:
                # Nothing exists to fall back on: the declaration itself is refused.
                self._channel = None
                self._refused(what, exc)
                raise
            LOG.warning(
                "%s exists on the broker with other properties (%s); using it as it is", what, exc
            )
        except amqp.exceptions.AMQPError as exc:
            self._channel = None
            self._refused(what, exc)
            raise

    @staticmethod
    def _refused(what: str, error: BaseException) -> None:
        refused = declaration_refused(what[:1].lower() + what[1:], error)
        if refused is not None:
            raise refused

    def exchange(self, spec: ExchangeSpec) -> None:
        """Declare an exchange (the default exchange ``""`` is never declared)."""
        if not spec.name:
            return
        spec = spec.for_broker(self.broker.rabbitmq4)
        self._tolerant(
            f"Exchange {spec.name!r}",
            lambda ch: ch.exchange_declare(
                spec.name,
                spec.type,
                passive=spec.passive,
                durable=spec.durable,
                auto_delete=spec.auto_delete,
            ),
            lambda ch: ch.exchange_declare(spec.name, spec.type, passive=True),
        )

    def queue(self, spec: QueueSpec) -> None:
        """Declare a queue."""
        spec = spec.for_broker(self.broker.rabbitmq4)
        self._tolerant(
            f"Queue {spec.name!r}",
            lambda ch: ch.queue_declare(
                spec.name,
                durable=spec.durable,
                auto_delete=spec.auto_delete,
                exclusive=spec.exclusive,
                arguments=dict(spec.arguments) or None,
            ),
            lambda ch: ch.queue_declare(spec.name, passive=True),
        )

    def bind(self, binding: Binding) -> None:
        """Bind a queue to an exchange."""
        try:
            self._channel_now().queue_bind(binding.queue, binding.exchange, binding.routing_key)
        except amqp.exceptions.AMQPError as exc:
            self._channel = None
            self._refused(
                f"Binding queue {binding.queue!r} to exchange {binding.exchange!r}"
                f" with routing key {binding.routing_key!r}",
                exc,
            )
            raise

    def all(
        self,
        exchanges: Sequence[ExchangeSpec],
        queues: Sequence[QueueSpec],
        bindings: Sequence[Binding],
    ) -> None:
        """Declare everything, in order: exchanges, queues, bindings."""
        for exchange in exchanges:
            self.exchange(exchange)
        for queue in queues:
            self.queue(queue)
        for binding in bindings:
            self.bind(binding)

    def close(self) -> None:
        """Close the declaring channel."""
        channel, self._channel = self._channel, None
        if channel is not None and channel.is_open:
            try:
                channel.close()
            except amqp.exceptions.ChannelError:
                LOG.debug("Could not close a declaring channel cleanly", exc_info=True)
