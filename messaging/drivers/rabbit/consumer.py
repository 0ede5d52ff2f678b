"""Consuming on a shared connection: one channel per subscription.

A :class:`Subscription` declares its exchanges, queues and bindings, consumes
from its queues on a channel of its own (with its own prefetch), and keeps the
deliveries for its listener to take. Acknowledgements and requeues are carried
out on the connection's I/O thread. After a reconnection everything is
declared and consumed again; deliveries of the old connection that were not
acknowledged are dropped from the local buffer, since the broker delivers them
again (at-least-once), and an acknowledgement of an old delivery is a no-op.
The same holds when the broker closes only the subscription's channel (its
consumer timeout, an unknown delivery tag): the subscription logs why and
consumes again on a new channel.
"""

from __future__ import annotations

import collections
import functools
import itertools
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import amqp
import amqp.exceptions

from messaging import green
from messaging.drivers.rabbit.declare import Declarer
from messaging.drivers.rabbit.refusals import DeclarationRefused, refusal_of
from messaging.exceptions import BrokerRefusal, TransportDriverError

if TYPE_CHECKING:
    from messaging.drivers.rabbit.connection import AmqpConnection
    from messaging.drivers.rabbit.topology import Binding, ExchangeSpec, QueueSpec

__all__ = ["Delivery", "Subscription"]

LOG = green.hand_over_logs(__name__)
_tags = itertools.count(1)


@dataclass(frozen=True, eq=False)
class Delivery:
    """A message as the broker delivered it.

    Attributes:
        generation: the subscription's channel generation it came on.
        channel: the channel it came on (acks must go there).
        delivery_tag: the broker's tag for it.
        body: the raw body.
        redelivered: whether the broker delivered it before.
        queue: the queue it came from.
        exchange: the exchange it was published to.
        routing_key: the routing key it was published with.
        properties: its AMQP properties (py-amqp's names; ``application_headers``).
    """

    generation: int
    channel: Any
    delivery_tag: int
    body: bytes
    redelivered: bool
    queue: str
    exchange: str = ""
    routing_key: str = ""
    properties: dict[str, Any] = field(default_factory=dict)


def _decompress(body: bytes, content_type: str) -> bytes:
    # Services with kombu_compression set send compressed bodies, marked in a header.
    from kombu import compression

    try:
        return bytes(compression.decompress(body, content_type))  # type: ignore[no-untyped-call]
    except Exception as exc:  # the body stays as it came; decoding reports the error
        LOG.error("Cannot decompress a message body compressed with %s: %s", content_type, exc)
        return body


class Subscription:
    """Consumes some queues for one listener.

    Args:
        connection: the shared consuming connection.
        exchanges: exchanges to declare.
        queues: queues to declare and consume.
        bindings: bindings to declare.
        prefetch: how many unacknowledged deliveries the broker may send (0: no limit).
        consumer_arguments: ``basic.consume`` arguments, by queue name.
        no_ack: let the broker forget messages as it sends them.
        on_delivery: called on the I/O thread for each delivery instead of buffering it.
        delete_on_close: queues to delete when the subscription closes.
    """

    def __init__(
        self,
        connection: AmqpConnection,
        exchanges: Sequence[ExchangeSpec],
        queues: Sequence[QueueSpec],
        bindings: Sequence[Binding],
        prefetch: int = 0,
        consumer_arguments: Mapping[str, dict[str, Any]] | None = None,
        no_ack: bool = False,
        on_delivery: Callable[[Delivery], None] | None = None,
        delete_on_close: Sequence[str] = (),
    ) -> None:
        self.connection = connection
        self.exchanges = list(exchanges)
        self.queues = list(queues)
        self.bindings = list(bindings)
        self.prefetch = prefetch
        self.consumer_arguments = dict(consumer_arguments or {})
        self.no_ack = no_ack
        self.on_delivery = on_delivery
        self.delete_on_close = list(delete_on_close)
        self._buffer: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()  # None: stop
        self._stopped = False
        self._closed = False
        self._channel: amqp.Channel | None = None
        self._generation = 0
        self._ready = green.CallerEvent()
        self._settled = green.CallerEvent()  # ready, or a connection attempt failed
        self._consumer_tags: list[str] = []
        self._queue_of: dict[str, str] = {}  # consumer tag -> queue
        # Delivery tags of this channel not yet acknowledged or requeued, in
        # delivery order; True once acknowledged by the listener, not yet sent.
        self._unsettled: collections.OrderedDict[int, bool] = collections.OrderedDict()
        self._acked = 0  # how many of them are True
        self.error: BaseException | None = None
        self._refused = False  # a declaration refused for good: not declared again
        connection.add_observer(self)

    # -- any thread ---------------------------------------------------------------------------

    def wait_ready(self, timeout: float) -> bool:
        """Wait until consuming has started; False at once if the broker is unreachable now.

        Raises:
            TransportDriverError: the broker refused the declarations.
        """
        self._settled.wait(timeout)
        if self.error is not None:
            raise self.error
        return self._ready.is_set()

    def consuming(self) -> bool:
        """Whether the broker delivers to this subscription now (a channel consuming on it)."""
        return self._channel is not None and not (self._closed or self._refused or self._stopped)

    def take(self, timeout: float | None) -> Delivery | None:
        """Return the next delivery; None after ``timeout`` or once stopped.

        Deliveries of a connection that has since been lost are skipped: the
        broker delivers them again on the new one.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._stopped:
                return None
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    delivery = self._buffer.get_nowait()
                else:
                    delivery = self._buffer.get(timeout=remaining)
            except queue.Empty:
                return None
            if delivery is None:
                self._buffer.put(None)  # wake the next taker too
                return None
            if delivery.generation == self._generation:
                return delivery

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery (on the I/O thread, soon)."""
        self._settle_later(delivery, requeue=None)

    def requeue(self, delivery: Delivery) -> None:
        """Give a delivery back to the broker for another delivery."""
        self._settle_later(delivery, requeue=True)

    def discard(self, delivery: Delivery, reason: str) -> None:
        """Acknowledge a delivery that cannot be decoded (the listener logged it whole)."""
        self._settle_later(delivery, requeue=None)

    def _settle_later(self, delivery: Delivery, requeue: bool | None) -> None:
        settle = lambda: self._settle(delivery, requeue)  # noqa: E731
        if self.connection.try_direct(settle):
            return
        try:
            self.connection.post(settle)
        except Exception:
            LOG.debug("Could not settle a delivery of %s: connection closed", delivery.queue)

    def stop(self) -> None:
        """Wake a blocked :meth:`take`; no more deliveries are returned."""
        self._stopped = True
        self._buffer.put(None)

    def close(self, timeout: float = 10.0) -> None:
        """Cancel consuming and close the channel; unacknowledged messages go back to the queues."""
        self.stop()
        future = self.connection.submit_raw(self._close_on_io_thread)
        try:
            future.result(timeout)
        except Exception:
            LOG.debug("Closing a subscription did not complete cleanly", exc_info=True)
        self.connection.remove_observer(self)

    # -- the I/O thread -------------------------------------------------------------------------

    def _settle(self, delivery: Delivery, requeue: bool | None) -> None:
        channel = self._channel
        if (
            delivery.generation != self._generation
            or channel is not delivery.channel
            or channel is None
            or not channel.is_open
        ):
            LOG.debug(
                "Delivery %s of %s belongs to a closed channel; the broker redelivers it",
                delivery.delivery_tag,
                delivery.queue,
            )
            return
        tag = delivery.delivery_tag
        if self.no_ack or tag not in self._unsettled:
            return
        if requeue is None:
            # Acknowledged at the end of the I/O round, together with the others:
            # one ``multiple`` ack covers a run of consecutive deliveries.
            if not self._unsettled[tag]:
                self._unsettled[tag] = True
                self._acked += 1
            self.connection.at_round_end(self._flush_acks)
        else:
            del self._unsettled[tag]
            self.connection.write_buffered(lambda: channel.basic_reject(tag, requeue=True))
            self.connection.at_round_end(self._flush_acks)

    def _flush_acks(self) -> None:
        channel = self._channel
        unsettled = self._unsettled
        if channel is None or not channel.is_open or not self._acked:
            return
        last, count = 0, 0
        for tag, acked in unsettled.items():
            if not acked:
                break
            last, count = tag, count + 1
        for _ in range(count):
            unsettled.popitem(last=False)
        self._acked -= count
        if count:
            self.connection.write_buffered(lambda: channel.basic_ack(last, multiple=count > 1))
        if not self._acked:
            return
        # Acknowledged after a delivery still being handled: one by one, now, so
        # that a slow handler does not hold back the others (and the prefetch window).
        for tag in [t for t, acked in unsettled.items() if acked]:
            del unsettled[tag]
            self.connection.write_buffered(functools.partial(channel.basic_ack, tag))
        self._acked = 0

    def _close_on_io_thread(self) -> None:
        self._closed = True
        self._flush_acks()  # what the listener acknowledged must not come again
        channel, self._channel = self._channel, None
        if channel is None or not channel.is_open:
            return
        try:
            # Cancel first, so that nothing is delivered while the channel closes.
            for tag in self._consumer_tags:
                channel.basic_cancel(tag)
        except amqp.exceptions.ChannelError:
            LOG.debug("Could not cancel consuming cleanly", exc_info=True)
            return
        for name in self.delete_on_close:
            try:
                channel.queue_delete(name)
            except amqp.exceptions.ChannelError:
                LOG.debug("Could not delete queue %s", name, exc_info=True)
                return
        try:
            channel.close()
        except amqp.exceptions.ChannelError:
            LOG.debug("Could not close a channel cleanly", exc_info=True)

    def _on_message(self, message: amqp.Message) -> None:
        info = message.delivery_info
        body = message.body if isinstance(message.body, bytes) else bytes(message.body, "utf-8")
        compression = (message.headers or {}).get("compression")
        if compression:
            body = _decompress(body, compression)
        routing_key = info.get("routing_key", "")
        delivery = Delivery(
            self._generation,
            message.channel,
            info["delivery_tag"],
            body,
            bool(info.get("redelivered")),
            self._queue_of.get(info.get("consumer_tag", ""), routing_key),
            info.get("exchange", ""),
            routing_key,
            message.properties,
        )
        if self.on_delivery is not None:
            green.to_caller(self.on_delivery, delivery)
            return
        if not self.no_ack:
            self._unsettled[delivery.delivery_tag] = False
        green.to_caller(self._buffer.put, delivery)

    # -- ConnectionObserver -----------------------------------------------------------------------

    def on_connected(self, conn: amqp.Connection, generation: int) -> None:
        """Declare and consume again on the new connection.

        A refusal that retrying cannot heal fails the subscription for good: it
        is not declared again on later connections.
        """
        if self._closed or self._refused:
            return
        self.error = None  # a login refused earlier, now accepted
        self._forget_unsettled()
        try:
            declarer = Declarer(conn)
            declarer.all(self.exchanges, self.queues, self.bindings)
            declarer.close()
            channel = conn.channel()
            channel.on_broker_close = self._on_channel_closed
            if self.prefetch:
                channel.basic_qos(0, self.prefetch, False)
            self._generation += 1
            self._channel = channel
            self._consumer_tags = []
            self._queue_of = {}
            for spec in self.queues:
                tag = str(next(_tags))
                self._consumer_tags.append(tag)
                self._queue_of[tag] = spec.name
                channel.basic_consume(
                    spec.name,
                    consumer_tag=tag,
                    callback=self._on_message,
                    no_ack=self.no_ack,
                    arguments=self.consumer_arguments.get(spec.name) or None,
                )
        except DeclarationRefused as refused:
            self._refused = True
            self._fail(refused.refusal)
            if refused.closes_connection and refused.__cause__ is not None:
                raise refused.__cause__ from None  # the broker closed the connection: reconnect
            return
        except amqp.exceptions.ChannelError as exc:
            names = [q.name for q in self.queues]
            refusal = refusal_of(f"consuming from {names}", exc)
            self._refused = refusal is not None
            self._fail(
                refusal
                or TransportDriverError(
                    f"The broker refused to set up consuming from {names}: {exc}"
                ),
                exc,
            )
            return
        self._ready.set()
        self._settled.set()

    def _fail(self, error: BaseException, cause: BaseException | None = None) -> None:
        if cause is not None and error.__cause__ is None:
            error.__cause__ = cause
        self.error = error
        self._channel = None
        self._ready.set()
        self._settled.set()

    def _forget_unsettled(self) -> None:
        # Their channel is gone: the broker delivers them again.
        self._unsettled.clear()
        self._acked = 0

    def _on_channel_closed(self, error: amqp.exceptions.AMQPError) -> None:
        # Called while frames are read; consuming starts again once the read is over.
        self._channel = None
        self._forget_unsettled()
        if self._closed:
            return
        timed_out = "timed out" in str(error) or "timeout" in str(error)
        LOG.error(
            "The broker closed the channel consuming %s: %s%s; consuming again on a new "
            "channel (what was not acknowledged is delivered again)",
            [q.name for q in self.queues],
            error,
            " (a message was handled for longer than the broker's consumer_timeout)"
            if timed_out
            else "",
        )
        conn = self.connection.amqp_connection
        self.connection.post(lambda: self._consume_again(conn))

    def _consume_again(self, conn: amqp.Connection | None) -> None:
        if conn is not None and conn is self.connection.amqp_connection and self._channel is None:
            self.on_connected(conn, self.connection.generation)

    def on_connection_lost(self, error: BaseException) -> None:
        """Drop the channel and the deliveries not yet taken (the broker sends them again)."""
        self._channel = None
        self._forget_unsettled()

    def on_connect_failed(self, error: BaseException) -> None:
        """Consuming starts after the next successful connection; waiters stop waiting.

        A refused login fails a subscription not yet set up (its waiter raises it);
        one already consuming resumes once the login is accepted again.
        """
        if isinstance(error, BrokerRefusal) and not self._ready.is_set():
            self.error = error
        self._settled.set()
