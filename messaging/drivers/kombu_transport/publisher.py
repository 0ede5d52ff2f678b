"""Publishing over kombu: one connection per broker and process, used under a lock.

kombu connections and channels are not thread-safe, so every publish of the
process to one broker goes through :class:`Publisher`, one at a time. A publish
that fails with a connection error drops the connection and is tried again, as
``retry`` allows (oslo's semantics: ``None`` or ``-1`` forever, ``0`` once,
``N`` ``N + 1`` times), after a growing wait (``interval_start``,
``interval_step``, ``interval_max``), during which other threads may publish.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import kombu as kombu_typed

from messaging.drivers import base
from messaging.drivers.kombu_transport.link import Declared
from messaging.exceptions import MessageDeliveryFailure

if TYPE_CHECKING:
    from messaging.drivers.entities import Binding, ExchangeSpec, QueueSpec
    from messaging.drivers.kombu_transport.link import KombuLink

__all__ = ["Publication", "Publisher"]

LOG = logging.getLogger(__name__)
#: kombu, as untyped objects (its annotations are partial).
kombu: Any = kombu_typed


@dataclass(frozen=True)
class Publication:
    """One message to publish.

    Attributes:
        exchange: the exchange; ``""`` (the default exchange) routes to the queue
            named by the routing key.
        routing_key: the routing key.
        body: the JSON text (see :mod:`messaging.wire`).
        expiration: seconds after which the broker may drop it (where it can).
        queue: a queue to declare before publishing (notifications' default queue).
        binding: the binding of that queue.
        retry: oslo's retry count.
    """

    exchange: ExchangeSpec
    routing_key: str
    body: str
    expiration: float | None = None
    queue: QueueSpec | None = None
    binding: Binding | None = None
    retry: int | None = None


class Publisher:
    """Publishes for every driver instance of the process on one broker.

    Args:
        link: the broker.
    """

    def __init__(self, link: KombuLink) -> None:
        self.link = link
        self._lock = threading.Lock()
        self._connection: Any = None
        self._producer: Any = None
        self._declared = Declared()
        self._closed = False

    def publish(self, publication: Publication, deadline: base.Deadline | None = None) -> None:
        """Publish, reconnecting as ``publication.retry`` and ``publish_timeout`` allow.

        Args:
            publication: what to publish.
            deadline: an earlier bound than ``publish_timeout`` (a call's timeout).

        Raises:
            MessageDeliveryFailure: the broker could not be reached in the tries
                allowed or before the bound, refused the credentials (at once), or
                refused the declarations; chained to kombu's error.
        """
        bound = (deadline or base.Deadline(None)).within(self.link.settings.publish_timeout)
        tries = base.Attempts(publication.retry, bound)
        where = self.link.settings.redacted
        while True:
            tries.begin()
            with self._lock:
                if self._closed:
                    raise MessageDeliveryFailure(f"The publisher of {where} is closed")
                try:
                    self._publish_locked(publication)
                    return
                except self.link.auth_errors as exc:
                    self._drop_locked()
                    raise MessageDeliveryFailure(f"{where} refused the connection: {exc}") from exc
                except self.link.connection_errors as exc:
                    self._drop_locked()
                    error: BaseException = exc
                except Exception as exc:
                    # A refusal (a redeclaration with other flags...) would only
                    # be refused again: no retry.
                    self._drop_locked()
                    raise MessageDeliveryFailure(
                        f"{where} refused to route a message to exchange "
                        f"{publication.exchange.name!r} with key {publication.routing_key!r}: "
                        f"{exc}"
                    ) from exc
            if not tries.another():
                raise MessageDeliveryFailure(
                    f"Unable to publish to {where} {tries.spent()}: {error}"
                ) from error
            delay = tries.pause(self.link.backoff(tries.tries))
            LOG.warning(
                "The broker at %s is unreachable: %s. Trying again in %.1f seconds.",
                where,
                error,
                delay,
            )
            time.sleep(delay)

    def _publish_locked(self, publication: Publication) -> None:
        producer = self._producer
        if producer is None:
            if self._connection is None:
                self._connection = self.link.connection()
            channel = self.link.connect(self._connection)
            producer = kombu.Producer(channel, auto_declare=False)
            self._producer = producer
            self._declared.clear()
        channel = producer.channel
        self.link.declare_exchange(channel, publication.exchange, self._declared)
        if publication.queue is not None:
            self.link.declare_queue(channel, publication.queue, self._declared)
        if publication.binding is not None:
            self.link.bind(channel, publication.binding, self._declared)
        options: dict[str, Any] = {}
        if publication.expiration is not None:
            options["expiration"] = publication.expiration
        producer.publish(
            publication.body,
            exchange=publication.exchange.name,
            routing_key=publication.routing_key,
            content_type="application/json",
            content_encoding="utf-8",
            headers={},
            delivery_mode=2,
            priority=0,
            retry=False,
            **options,
        )

    def _drop_locked(self) -> None:
        producer, self._producer = self._producer, None
        self._declared.clear()
        connection = self._connection
        if connection is None:
            return
        try:
            if producer is not None:
                connection.maybe_close_channel(producer.channel)
            connection.collect()
        except Exception:
            LOG.debug("Dropping a broken publishing connection failed", exc_info=True)
        # With several hosts in the URL, try the next one.
        connection.maybe_switch_next()

    def close(self) -> None:
        """Close the connection; later publishes fail."""
        with self._lock:
            self._closed = True
            producer, self._producer = self._producer, None
            connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if producer is not None:
                connection.maybe_close_channel(producer.channel)
            connection.release()
        except Exception:
            LOG.debug("Closing the publishing connection failed", exc_info=True)
