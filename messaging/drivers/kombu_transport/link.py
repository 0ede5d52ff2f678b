"""Opening kombu connections to one broker and declaring the driver's entities on them.

The names and flags of exchanges, queues and bindings come from
:mod:`~messaging.drivers.kombu_transport.declarations` (oslo.messaging's layout); this module
only says them to kombu, in the calls every kombu transport understands
(``exchange_declare``, ``queue_declare``, ``queue_bind`` on a channel).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import kombu as kombu_typed

if TYPE_CHECKING:
    from messaging.drivers.entities import Binding, ExchangeSpec, QueueSpec, Subscription
    from messaging.drivers.kombu_transport.options import KombuSettings

__all__ = ["Declared", "KombuLink"]

LOG = logging.getLogger(__name__)
#: kombu, as untyped objects (its annotations are partial).
kombu: Any = kombu_typed


class Declared:
    """What was declared on one connection, so that it is declared once per connection."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, Any]] = set()

    def first(self, kind: str, key: Any) -> bool:
        """Return True the first time ``(kind, key)`` is asked about."""
        if (kind, key) in self._seen:
            return False
        self._seen.add((kind, key))
        return True

    def clear(self) -> None:
        """Forget everything (after a reconnection)."""
        self._seen.clear()


class KombuLink:
    """Connections to one broker, as the driver's settings describe it.

    Args:
        settings: the driver's settings.
    """

    def __init__(self, settings: KombuSettings) -> None:
        self.settings = settings
        probe = self.connection()
        #: Errors after which a connection is dropped and opened again.
        self.connection_errors: tuple[type[BaseException], ...] = tuple(probe.connection_errors)
        #: Errors of an operation the broker refused (a redeclaration with other flags...).
        self.channel_errors: tuple[type[BaseException], ...] = tuple(probe.channel_errors)
        #: Refused credentials: trying again with the same ones cannot help.
        self.auth_errors = _auth_errors()
        probe.release()

    def connection(self) -> Any:
        """A new kombu connection to the broker (not connected yet)."""
        return kombu.Connection(
            self.settings.url,
            transport_options=dict(self.settings.transport_options),
            connect_timeout=self.settings.connect_timeout,
        )

    @staticmethod
    def connect(connection: Any) -> Any:
        """Connect ``connection`` in one attempt and return a new channel on it.

        kombu's own ``connect()`` tries twice with a two-second sleep between;
        the driver counts and spaces attempts itself (``retry``, the backoff).
        """
        connection.ensure_connection(max_retries=0, reraise_as_library_errors=False)
        return connection.channel()

    def exchange_type(self, spec: ExchangeSpec) -> str:
        """The type to declare ``spec`` with on this transport."""
        return self.settings.exchange_type if spec.type == "topic" else spec.type

    def declare_exchange(self, channel: Any, spec: ExchangeSpec, declared: Declared) -> None:
        """Declare ``spec`` unless it is the default exchange or was declared already."""
        if not spec.name or not declared.first("exchange", spec.name):
            return
        channel.exchange_declare(
            exchange=spec.name,
            type=self.exchange_type(spec),
            durable=spec.durable,
            auto_delete=spec.auto_delete,
        )

    def declare_queue(self, channel: Any, spec: QueueSpec, declared: Declared) -> None:
        """Declare ``spec`` with its arguments (Redis honours ``x-expires``)."""
        if not declared.first("queue", spec.name):
            return
        channel.queue_declare(
            queue=spec.name,
            durable=spec.durable,
            auto_delete=spec.auto_delete,
            exclusive=spec.exclusive,
            arguments=dict(spec.arguments) or None,
        )

    def bind(self, channel: Any, binding: Binding, declared: Declared) -> None:
        """Bind a queue to an exchange with a routing key."""
        if not declared.first("binding", binding):
            return
        channel.queue_bind(
            queue=binding.queue, exchange=binding.exchange, routing_key=binding.routing_key
        )

    def declare_all(
        self, channel: Any, subscriptions: Iterable[Subscription], declared: Declared
    ) -> None:
        """Declare the exchanges, queues and bindings of ``subscriptions``, in that order."""
        subscriptions = list(subscriptions)
        for sub in subscriptions:
            self.declare_exchange(channel, sub.exchange, declared)
        for sub in subscriptions:
            self.declare_queue(channel, sub.queue, declared)
        for sub in subscriptions:
            if sub.binding is not None:
                self.bind(channel, sub.binding, declared)

    def delete_queue(self, channel: Any, name: str, bindings: Iterable[Binding]) -> None:
        """Empty a queue, delete it, then remove its bindings.

        Emptying comes first because kombu's virtual transports delete only the
        queues they know bindings of (a reply queue has none); unbinding comes
        last, as it removes the routes a kombu process keeps in memory (the
        memory transport's exchange tables) once the broker's are gone.
        """
        channel.queue_purge(queue=name)
        channel.queue_delete(queue=name)
        for binding in bindings:
            channel.queue_unbind(
                queue=binding.queue, exchange=binding.exchange, routing_key=binding.routing_key
            )

    def backoff(self, failures: int) -> float:
        """How long to wait before the next connection attempt."""
        return self.settings.backoff(failures)


def _auth_errors() -> tuple[type[BaseException], ...]:
    # The client libraries are optional: those that are installed say what a refused
    # login looks like (Redis's is a ConnectionError, so kombu would retry it forever).
    found: list[type[BaseException]] = []
    try:
        from redis.exceptions import AuthenticationError

        found.append(AuthenticationError)
    except ImportError:
        pass
    try:
        from amqp.exceptions import AccessRefused

        found.append(AccessRefused)
    except ImportError:
        pass
    return tuple(found)
