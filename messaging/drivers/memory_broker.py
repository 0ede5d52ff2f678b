"""The in-process broker behind the in-memory driver (:mod:`messaging.drivers.memory`).

It models the part of RabbitMQ that oslo.messaging relies on: per virtual host,
exchanges (``topic`` with exact routing-key match, ``fanout``, and the default
exchange ``""`` that routes to the queue named by the routing key), named queues
bound to them, competing consumers served fairly, unacknowledged deliveries
that go back to their queue (marked redelivered) on requeue, on consumer release
and when connections drop, and per-message expiry. Queues hold encoded bodies
(``str``), exactly as they would be published.

One :class:`Broker` exists per virtual host and process (:func:`get_broker`);
:func:`reset_brokers` throws them all away, for tests.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from messaging.exceptions import TransportDriverError

__all__ = [
    "DEFAULT_VIRTUAL_HOST",
    "FANOUT",
    "TOPIC",
    "Broker",
    "Consumer",
    "Delivery",
    "PublishFailed",
    "get_broker",
    "reset_brokers",
]

LOG = logging.getLogger(__name__)

DEFAULT_VIRTUAL_HOST = "/"
TOPIC = "topic"
FANOUT = "fanout"


class PublishFailed(Exception):
    """A publish attempt failed because a connection failure was injected.

    Attributes:
        error: the injected error (a connection error by default).
    """

    def __init__(self, error: BaseException) -> None:
        self.error = error
        super().__init__(str(error))


@dataclass
class _Stored:
    body: str
    redelivered: bool = False
    expires_at: float | None = None
    attempts: int = 0


class Consumer:
    """A subscription to one or more queues, taken from in turn.

    Build one with :meth:`Broker.consumer`.

    Attributes:
        queues: the queue names consumed from.
        auto_ack: deliveries count as acknowledged as soon as they are taken.
        stopped: set by :meth:`Broker.stop_consumer`; a stopped consumer gets nothing.
    """

    def __init__(self, queues: Sequence[str], auto_ack: bool) -> None:
        self.queues = tuple(dict.fromkeys(queues))
        self.auto_ack = auto_ack
        self.stopped = False
        self.next_index = 0


@dataclass(eq=False)
class Delivery:
    """A message handed to a consumer.

    Attributes:
        tag: the delivery tag, unique within the broker.
        queue: the queue the message was taken from.
        body: the encoded body, as published.
        redelivered: whether the message was delivered before.
        expires_at: when the broker discards it if still queued (monotonic clock).
        consumer: who took it.
        attempts: how many times it was requeued (:meth:`Broker.requeue`) before.
    """

    tag: int
    queue: str
    body: str
    redelivered: bool
    expires_at: float | None
    consumer: Consumer
    attempts: int = 0


class _Exchange:
    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.bindings: dict[str, set[str]] = collections.defaultdict(set)

    def route(self, routing_key: str) -> set[str]:
        if self.kind == FANOUT:
            return set().union(*self.bindings.values())
        return set(self.bindings.get(routing_key, ()))


class _Ticket:
    __slots__ = ("consumer",)

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer


class Broker:
    """A process-wide in-memory message broker for one virtual host. Thread-safe.

    Args:
        virtual_host: the virtual host it stands for.

    Attributes:
        dead_letters: ``(queue, body, reason)`` of every message that could not
            be handled (undecodable, or whose queue disappeared before it was
            acknowledged), oldest first.
    """

    def __init__(self, virtual_host: str = DEFAULT_VIRTUAL_HOST) -> None:
        self.virtual_host = virtual_host
        self.dead_letters: list[tuple[str, str, str]] = []
        self._cond = threading.Condition()
        self._queues: dict[str, collections.deque[_Stored]] = {}
        self._exchanges: dict[str, _Exchange] = {}
        self._unacked: dict[int, Delivery] = {}
        self._tags = itertools.count(1)
        self._send_failures: collections.deque[BaseException] = collections.deque()
        self._waiting: list[_Ticket] = []
        self._consumers: weakref.WeakSet[Consumer] = weakref.WeakSet()
        self._handlers: dict[str, Callable[[str], None]] = {}

    def __repr__(self) -> str:
        return f"<Broker virtual_host={self.virtual_host!r}>"

    # Topology

    def declare_exchange(self, name: str, kind: str = TOPIC) -> None:
        """Create an exchange unless it exists.

        Raises:
            TransportDriverError: it exists with another type (as RabbitMQ's
                ``PRECONDITION_FAILED``).
        """
        with self._cond:
            self._declare_exchange(name, kind)

    def _declare_exchange(self, name: str, kind: str) -> _Exchange:
        exchange = self._exchanges.get(name)
        if exchange is None:
            exchange = self._exchanges[name] = _Exchange(name, kind)
        elif exchange.kind != kind:
            raise TransportDriverError(
                f"Exchange {name!r} of virtual host {self.virtual_host!r} is a {exchange.kind} "
                f"exchange; it cannot be used as a {kind} exchange"
            )
        return exchange

    def declare_queue(
        self, name: str, exchange: str | None = None, routing_key: str = "", kind: str = TOPIC
    ) -> None:
        """Create a queue unless it exists; bind it to ``exchange`` (declared if needed).

        Args:
            name: the queue name.
            exchange: the exchange to bind it to; None for no binding.
            routing_key: the binding key (ignored by fanout exchanges).
            kind: the exchange's type, ``"topic"`` or ``"fanout"``.
        """
        with self._cond:
            self._declare_queue(name, exchange, routing_key, kind)

    def _declare_queue(self, name: str, exchange: str | None, routing_key: str, kind: str) -> None:
        self._queues.setdefault(name, collections.deque())
        if exchange is not None:
            self._declare_exchange(exchange, kind).bindings[routing_key].add(name)

    def delete_queue(self, name: str) -> None:
        """Delete a queue, its bindings and its messages (a no-op if it does not exist)."""
        with self._cond:
            queue = self._queues.pop(name, None)
            self._handlers.pop(name, None)
            for exchange in self._exchanges.values():
                for bound in exchange.bindings.values():
                    bound.discard(name)
        if queue:
            LOG.info("Deleted queue %s with %d message(s) in it", name, len(queue))

    def queues(self) -> list[str]:
        """The names of the existing queues, sorted."""
        with self._cond:
            return sorted(self._queues)

    def queue_depth(self, name: str) -> int:
        """How many live (unexpired, not taken) messages a queue holds.

        Raises:
            KeyError: there is no such queue; the message lists the existing ones.
        """
        return len(self.messages(name))

    def consumer_count(self, name: str) -> int:
        """How many consumers, not stopped, take from the queue ``name``."""
        with self._cond:
            return sum(1 for c in self._consumers if not c.stopped and name in c.queues)

    def messages(self, name: str) -> list[str]:
        """The bodies queued in ``name``, head first, left in place.

        Raises:
            KeyError: there is no such queue; the message lists the existing ones.
        """
        with self._cond:
            queue = self._queues.get(name)
            if queue is None:
                raise KeyError(f"No queue named {name!r}; existing queues: {sorted(self._queues)}")
            self._discard_expired(name, queue)
            return [stored.body for stored in queue]

    # Publishing

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: str,
        *,
        kind: str = TOPIC,
        declare_queue: str | None = None,
        expires_in: float | None = None,
    ) -> int:
        """Route ``body`` to every queue bound to ``routing_key`` in ``exchange``.

        The exchange is declared first (publishers declare theirs); exchange
        ``""`` routes to the queue named ``routing_key``, if any.

        Args:
            exchange: the exchange name.
            routing_key: the routing key.
            body: the encoded message.
            kind: the exchange's type.
            declare_queue: a queue to declare and bind with ``routing_key`` first.
            expires_in: seconds after which queued copies are discarded.

        Returns:
            The number of queues the message was put in.

        Raises:
            PublishFailed: an injected connection failure (see :meth:`fail_next_sends`).
        """
        handlers = []
        with self._cond:
            if self._send_failures:
                raise PublishFailed(self._send_failures.popleft())
            if exchange == "":
                names = {routing_key} if routing_key in self._queues else set()
            else:
                if declare_queue is not None:
                    self._declare_queue(declare_queue, exchange, routing_key, kind)
                names = self._declare_exchange(exchange, kind).route(routing_key)
            expires_at = None if expires_in is None else time.monotonic() + expires_in
            queued = False
            for name in names:
                handler = self._handlers.get(name) if self._handlers else None
                if handler is not None:
                    handlers.append(handler)
                else:
                    self._queues[name].append(_Stored(body, expires_at=expires_at))
                    queued = True
            if queued:
                self._cond.notify_all()
        for handler in handlers:
            handler(body)
        return len(names)

    def deliver_to(self, name: str, handler: Callable[[str], None] | None) -> None:
        """Hand what is routed to queue ``name`` to ``handler`` instead of queueing it.

        The handler runs on the publishing thread, outside the broker's lock, and
        the message counts as acknowledged (a consumer with ``auto_ack`` that
        never waits: RabbitMQ's push consumers). None stops it.

        Args:
            name: an existing queue.
            handler: called with each body; must not raise.
        """
        with self._cond:
            if handler is None:
                self._handlers.pop(name, None)
            else:
                self._handlers[name] = handler

    def fail_next_sends(self, count: int = 1, error: BaseException | None = None) -> None:
        """Make the next ``count`` publish attempts fail as if the connection broke.

        Args:
            count: how many attempts fail.
            error: the error they fail with; a ``ConnectionError`` by default.
        """
        with self._cond:
            for _ in range(count):
                self._send_failures.append(
                    error or ConnectionError("injected failure: connection to the broker lost")
                )

    # Consuming

    def consumer(self, queues: Sequence[str], auto_ack: bool = False) -> Consumer:
        """Subscribe to ``queues``; with ``auto_ack`` deliveries need no acknowledgement."""
        consumer = Consumer(queues, auto_ack)
        with self._cond:
            self._consumers.add(consumer)
        return consumer

    def stop_consumer(self, consumer: Consumer) -> None:
        """Stop ``consumer``: a blocked :meth:`get` returns None promptly."""
        with self._cond:
            consumer.stopped = True
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake every blocked :meth:`get`, so that it checks its ``until`` condition again."""
        with self._cond:
            self._cond.notify_all()

    def get(
        self,
        consumer: Consumer,
        timeout: float | None = None,
        until: Callable[[], bool] | None = None,
    ) -> Delivery | None:
        """Take the next message for ``consumer``, waiting up to ``timeout`` seconds.

        Consumers take from their queues in turn; callers waiting on a shared
        queue are served in the order they started waiting.

        Args:
            consumer: who takes.
            timeout: how long to wait; None for as long as needed.
            until: return None as soon as this returns True (checked under the lock).

        Returns:
            The delivery, or None on timeout, once ``until`` holds or the consumer
            is stopped.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        ticket = _Ticket(consumer)
        with self._cond:
            self._waiting.append(ticket)
            try:
                while not consumer.stopped and not (until is not None and until()):
                    delivery = self._take(ticket)
                    if delivery is not None:
                        return delivery
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    self._cond.wait(remaining)
                return None
            finally:
                self._waiting.remove(ticket)
                if self._waiting:
                    self._cond.notify_all()

    def _take(self, ticket: _Ticket) -> Delivery | None:
        consumer = ticket.consumer
        ahead: set[str] = set()
        for other in self._waiting:
            if other is ticket:
                break
            if not other.consumer.stopped:
                ahead.update(other.consumer.queues)
        count = len(consumer.queues)
        for step in range(count):
            index = (consumer.next_index + step) % count
            name = consumer.queues[index]
            queue = self._queues.get(name)
            if not queue or name in ahead:
                continue
            self._discard_expired(name, queue)
            if not queue:
                continue
            stored = queue.popleft()
            consumer.next_index = (index + 1) % count
            delivery = Delivery(
                next(self._tags),
                name,
                stored.body,
                stored.redelivered,
                stored.expires_at,
                consumer,
                stored.attempts,
            )
            if not consumer.auto_ack:
                self._unacked[delivery.tag] = delivery
            return delivery
        return None

    def _discard_expired(self, name: str, queue: collections.deque[_Stored]) -> None:
        now = time.monotonic()
        kept = [stored for stored in queue if stored.expires_at is None or stored.expires_at > now]
        if len(kept) != len(queue):
            LOG.debug("Discarded %d expired message(s) from queue %s", len(queue) - len(kept), name)
            queue.clear()
            queue.extend(kept)

    # Settling deliveries

    def ack(self, delivery: Delivery) -> bool:
        """Acknowledge a delivery; False if it was already settled or its connection dropped."""
        with self._cond:
            return self._unacked.pop(delivery.tag, None) is not None

    def requeue(self, delivery: Delivery) -> bool:
        """Put a delivery back at the head of its queue, marked redelivered, one attempt more.

        Returns:
            False if it was already settled or its connection dropped (nothing done).
        """
        with self._cond:
            if self._unacked.pop(delivery.tag, None) is None:
                return False
            self._return([delivery], counted=True)
            return True

    def release(self, consumer: Consumer) -> int:
        """Return every unacknowledged delivery of ``consumer`` to its queue.

        Returns:
            How many deliveries went back.
        """
        with self._cond:
            mine = [d for d in self._unacked.values() if d.consumer is consumer]
            for delivery in mine:
                del self._unacked[delivery.tag]
            self._return(mine)
            return len(mine)

    def drop_connections(self) -> int:
        """Simulate every connection dropping: unacknowledged deliveries go back.

        They are redelivered (marked so); acknowledging or requeueing the old
        deliveries afterwards does nothing, as on RabbitMQ.

        Returns:
            How many deliveries went back.
        """
        with self._cond:
            dropped = list(self._unacked.values())
            self._unacked.clear()
            self._return(dropped)
        LOG.info("Dropped every connection of %r; %d message(s) requeued", self, len(dropped))
        return len(dropped)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Settle a delivery that cannot be handled and park it in :attr:`dead_letters`."""
        with self._cond:
            self._unacked.pop(delivery.tag, None)
            self.dead_letters.append((delivery.queue, delivery.body, reason))

    def _return(self, deliveries: Iterable[Delivery], counted: bool = False) -> None:
        # Back to the head, the earliest delivered first, as AMQP does on close.
        for delivery in sorted(deliveries, key=lambda d: d.tag, reverse=True):
            queue = self._queues.get(delivery.queue)
            if queue is None:
                reason = "its queue was deleted before the message was acknowledged"
                LOG.warning("Parking a message of queue %s: %s", delivery.queue, reason)
                self.dead_letters.append((delivery.queue, delivery.body, reason))
                continue
            attempts = delivery.attempts + (1 if counted else 0)
            queue.appendleft(_Stored(delivery.body, True, delivery.expires_at, attempts))
        self._cond.notify_all()

    def close(self) -> None:
        """Stop every consumer (blocked :meth:`get` calls return None)."""
        with self._cond:
            for consumer in list(self._consumers):
                consumer.stopped = True
            self._cond.notify_all()


_brokers: dict[str, Broker] = {}
_brokers_lock = threading.Lock()


def get_broker(virtual_host: str | None = None) -> Broker:
    """Return the process's broker for ``virtual_host`` (``None`` or ``""``: ``"/"``)."""
    name = virtual_host or DEFAULT_VIRTUAL_HOST
    with _brokers_lock:
        broker = _brokers.get(name)
        if broker is None:
            broker = _brokers[name] = Broker(name)
        return broker


def reset_brokers() -> None:
    """Forget every broker of the process, stopping their consumers (for tests)."""
    with _brokers_lock:
        brokers = list(_brokers.values())
        _brokers.clear()
    for broker in brokers:
        broker.close()
