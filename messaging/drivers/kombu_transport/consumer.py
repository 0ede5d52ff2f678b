"""Consuming over kombu: one connection and one thread per consumer.

kombu connections are not thread-safe, so a :class:`Consumer` owns its
connection and does everything on it from its own thread: declaring, draining
events (waiting at most :data:`TICK` at a time, so that it notices work and
:meth:`Consumer.close` promptly; a transport that has to be polled is polled
at random intervals around its ``polling_interval``), acknowledging and
requeueing. Other threads ask for those through a queue of pending operations,
as oslo.messaging does.

Giving a message back (a requeue, or closing with messages not yet settled):
kombu's virtual transports (memory, Redis...) put a rejected message back by
routing it again through its exchange, which would hand a copy to every other
queue bound with the same key (every listener pool of a topic). Here the
message is instead published again to the one queue it came from, through the
default exchange, and then acknowledged (a crash in between duplicates it,
never loses it). Transports that speak AMQP to a broker requeue natively.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import functools
import logging
import queue
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import kombu as kombu_typed

from messaging.drivers.kombu_transport.link import Declared
from messaging.exceptions import MessageDeliveryFailure, TransportDriverError

if TYPE_CHECKING:
    from messaging.drivers.entities import Subscription
    from messaging.drivers.kombu_transport.link import KombuLink

__all__ = ["TICK", "Consumer", "Delivery"]

LOG = logging.getLogger(__name__)
#: kombu, as untyped objects (its annotations are partial).
kombu: Any = kombu_typed

#: The longest wait for the broker in one go, in seconds: it bounds how late a
#: pending acknowledgement runs and how long closing takes.
TICK = 0.05
#: How long :meth:`Consumer.close` waits for the messages to be settled, in seconds.
CLOSE_TIMEOUT = 10.0


#: Threads of closed consumers that may still be closing their connection.
_CLOSING: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


@atexit.register
def _wait_for_closing_consumers() -> None:
    deadline = time.monotonic() + CLOSE_TIMEOUT
    for thread in list(_CLOSING):
        thread.join(max(0.0, deadline - time.monotonic()))


@dataclass(frozen=True, eq=False)
class Delivery:
    """A message as kombu delivered it.

    Attributes:
        generation: the connection it came on (1 for the first, then one more per reconnection).
        message: kombu's message (to acknowledge on the consumer's thread only).
        queue: the queue it came from.
        body: the raw body.
        redelivered: whether the broker delivered it before.
    """

    generation: int
    message: Any
    queue: str
    body: bytes
    redelivered: bool = False


class Consumer:
    """Consumes some queues on a connection and a thread of its own.

    Args:
        link: the broker.
        subscriptions: what to declare and consume.
        label: names the thread (``messaging-kombu-<label>``) and log lines.
        prefetch: how many unacknowledged messages it may hold (0: no limit).
        prefetch_bytes: while the messages waiting in it add up to more bytes than
            this, it takes no more from the broker (0: no limit).
        no_ack: let the broker forget messages as it delivers them.
        on_delivery: called on the consumer's thread for each message instead
            of keeping it for :meth:`take` (with ``no_ack``).
        delete_on_close: queues deleted (and unbound) when the consumer closes.
    """

    def __init__(
        self,
        link: KombuLink,
        subscriptions: Sequence[Subscription],
        label: str,
        *,
        prefetch: int = 0,
        prefetch_bytes: int = 0,
        no_ack: bool = False,
        on_delivery: Callable[[Delivery], None] | None = None,
        delete_on_close: Sequence[str] = (),
    ) -> None:
        self.link = link
        self.subscriptions = list(subscriptions)
        self.queue_names = list(dict.fromkeys(s.queue.name for s in self.subscriptions))
        self.label = label
        self.prefetch = prefetch
        self.prefetch_bytes = prefetch_bytes
        self.no_ack = no_ack
        self.on_delivery = on_delivery
        self.delete_on_close = list(delete_on_close)
        self.error: BaseException | None = None
        self._buffer: collections.deque[Delivery] = collections.deque()
        self._buffered_bytes = 0
        self._cond = threading.Condition()
        self._stopped = False
        self._ops: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._closing = threading.Event()
        self._ready = threading.Event()
        self._settled = threading.Event()
        # Touched on the consumer's thread only:
        self._connection: Any = None
        self._channel: Any = None
        self._generation = 0
        self._unsettled: set[Delivery] = set()
        self._giving_back_all = False
        self._thread = threading.Thread(
            target=self._run, name=f"messaging-kombu-{label}", daemon=True
        )
        self._thread.start()

    # -- any thread ---------------------------------------------------------------------------

    def wait_ready(self, timeout: float) -> bool:
        """Wait until consuming has started; raise if the declarations were refused."""
        ready = self._ready.wait(timeout)
        if self.error is not None:
            raise self.error
        return ready

    def take(self, timeout: float | None) -> Delivery | None:
        """Return the next delivery; None after ``timeout`` or once stopped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._buffer:
                if self._stopped:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            delivery = self._buffer.popleft()
            self._buffered_bytes -= len(delivery.body)
            return delivery

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery (on the consumer's thread, soon)."""
        self._ops.put(functools.partial(self._settle, delivery, False))

    def requeue(self, delivery: Delivery) -> None:
        """Give a delivery back to its queue for another delivery."""
        self._ops.put(functools.partial(self._settle, delivery, True))

    def discard(self, delivery: Delivery, reason: str) -> None:
        """Acknowledge a delivery that cannot be decoded (the listener logged it whole)."""
        self.ack(delivery)

    def stop(self) -> None:
        """Wake a blocked :meth:`take`; no more deliveries are returned."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Settle what is pending, give back what is not, and close the connection.

        Returns once every message is settled or given back; the connection may
        still be closing in the background (Redis: until the ``BRPOP`` in flight
        returns, at most a second, so that a message it takes is given back too).
        A process waits for those closings at exit.
        """
        self.stop()
        self._closing.set()
        if self._thread is threading.current_thread():
            return
        _CLOSING.add(self._thread)
        if not self._settled.wait(timeout):
            LOG.warning(
                "The consumer of %s did not settle its messages within %s s",
                self.queue_names,
                timeout,
            )

    # -- the consumer's thread ---------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        try:
            while not self._closing.is_set():
                try:
                    if self._channel is None:
                        self._setup()
                    self._run_ops()
                    self._drain()
                except Exception as exc:
                    refused = isinstance(exc, self.link.auth_errors)
                    if not self._ready.is_set() and (
                        refused or not isinstance(exc, self.link.connection_errors)
                    ):
                        error = MessageDeliveryFailure if refused else TransportDriverError
                        why = "the broker refused the connection" if refused else "failed"
                        self.error = error(
                            f"Could not set up consuming from {self.queue_names} on "
                            f"{self.link.settings.redacted}: {why}: {exc}"
                        )
                        self.error.__cause__ = exc
                        self._ready.set()
                        return
                    failures += 1
                    self._lost(exc, failures)
                    continue
                failures = 0
                self._ready.set()
        except BaseException:
            LOG.exception("The consumer of %s failed", self.queue_names)
            raise
        finally:
            self._shutdown()

    def _setup(self) -> None:
        if self._connection is None:
            self._connection = self.link.connection()
        channel = self.link.connect(self._connection)
        if self.prefetch:
            channel.basic_qos(0, self.prefetch, False)
        self.link.declare_all(channel, self.subscriptions, Declared())
        self._generation += 1
        self._channel = channel
        for name in self.queue_names:
            kombu.Consumer(
                channel,
                queues=[kombu.Queue(name, no_declare=True)],
                no_ack=self.no_ack,
                on_message=functools.partial(self._on_message, name),
                auto_declare=False,
            ).consume()

    def _drain(self) -> None:
        assert self._connection is not None
        if self._full():
            # Enough waits here already: what is not taken stays with the broker.
            self._closing.wait(TICK)
            return
        interval = self.link.settings.poll_interval
        if interval is None:
            with contextlib.suppress(TimeoutError):  # socket.timeout: nothing came
                self._connection.drain_events(timeout=TICK)
            return
        # A transport that is polled: take what is there (up to the prefetch),
        # then wait a random while. Polling again at once after a message would
        # let the busiest consumer of a queue take everything; waits of one
        # length would keep consumers in step, the same one always first.
        while not self._closing.is_set() and not self._full():
            try:
                self._connection.drain_events(timeout=0)
            except TimeoutError:
                break
        self._closing.wait(min(TICK, interval * random.uniform(0.5, 1.5)))

    def _full(self) -> bool:
        return bool(self.prefetch_bytes) and self._buffered_bytes > self.prefetch_bytes

    def _run_ops(self) -> None:
        while True:
            try:
                operation = self._ops.get_nowait()
            except queue.Empty:
                return
            operation()

    def _on_message(self, queue_name: str, message: Any) -> None:
        body = message.body
        delivery = Delivery(
            self._generation,
            message,
            queue_name,
            body if isinstance(body, bytes) else str(body).encode("utf-8"),
            bool(message.delivery_info.get("redelivered")),
        )
        if self.on_delivery is not None:
            self.on_delivery(delivery)
            return
        if self._giving_back_all:
            self._give_back(delivery)
            return
        self._unsettled.add(delivery)
        with self._cond:
            self._buffer.append(delivery)
            self._buffered_bytes += len(delivery.body)
            self._cond.notify()

    def _settle(self, delivery: Delivery, requeue: bool) -> None:
        if delivery not in self._unsettled:
            LOG.debug(
                "A delivery of %s came on a connection since lost; the broker delivers it again",
                delivery.queue,
            )
            return
        self._unsettled.discard(delivery)
        if requeue:
            self._give_back(delivery)
        else:
            delivery.message.ack()

    def _give_back(self, delivery: Delivery) -> None:
        message = delivery.message
        if not self.link.settings.virtual:
            message.requeue()
            return
        kombu.Producer(message.channel, auto_declare=False).publish(
            delivery.body,
            exchange="",
            routing_key=delivery.queue,
            content_type=message.content_type or "application/json",
            content_encoding=message.content_encoding or "utf-8",
            headers=dict(message.headers or {}),
            retry=False,
        )
        message.ack()

    def _lost(self, error: BaseException, failures: int) -> None:
        delay = self.link.backoff(failures)
        LOG.warning(
            "Consuming from %s on %s failed: %s: %s. Reconnecting in %.1f seconds.",
            self.queue_names,
            self.link.settings.redacted,
            type(error).__name__,
            error,
            delay,
        )
        # What was not acknowledged stays with the broker, which delivers it again
        # (Redis after its visibility_timeout).
        self._unsettled.clear()
        self._channel = None
        with self._cond:
            self._buffer.clear()
            self._buffered_bytes = 0
        connection = self._connection
        if connection is not None:
            try:
                connection.collect()
            except Exception:
                LOG.debug("Dropping a broken consuming connection failed", exc_info=True)
            connection.maybe_switch_next()
        self._closing.wait(delay)

    def _shutdown(self) -> None:
        channel, self._channel = self._channel, None
        try:
            if channel is not None:
                self._run_ops()
                self._giving_back_all = True
                for delivery in list(self._unsettled):
                    self._give_back(delivery)
                self._unsettled.clear()
                for name in self.delete_on_close:
                    bindings = [
                        s.binding
                        for s in self.subscriptions
                        if s.queue.name == name and s.binding is not None
                    ]
                    self.link.delete_queue(channel, name, bindings)
        except Exception:
            LOG.warning(
                "Could not settle everything before closing the consumer of %s",
                self.queue_names,
                exc_info=True,
            )
        finally:
            self._giving_back_all = True
            self._settled.set()
            connection, self._connection = self._connection, None
            if connection is not None:
                try:
                    connection.release()
                except Exception:
                    LOG.debug("Closing a consuming connection failed", exc_info=True)
            with self._cond:
                self._stopped = True
                self._buffer.clear()
                self._buffered_bytes = 0
                self._cond.notify_all()
