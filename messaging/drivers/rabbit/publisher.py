"""Publishing with publisher confirms, on a shared connection.

Every publish goes through one confirm-mode channel of the connection. Many
threads may publish at once: their messages are written back to back and the
broker's confirms (``basic.ack``, possibly covering several messages) settle
them as they come, so concurrent publishers do not pay one round trip each.
A caller is told a message was sent only once the broker confirmed it.

A message not yet confirmed when the connection drops is published again
after reconnecting (at-least-once), unless its ``retry`` budget of
connection attempts is spent, in which case its caller gets
:class:`~messaging.exceptions.MessageDeliveryFailure`.

When the broker closes the publishing channel (it does so for a message above
its ``max_message_size``: 16 MiB on RabbitMQ 4, 128 MiB on 3.x, and discards
what followed on the channel), the messages not yet confirmed go again on a
new channel, except the ones above the limit the broker named, which fail with
:class:`~messaging.exceptions.MessageTooLarge`; larger messages fail at once
from then on, without reaching the broker.
"""

from __future__ import annotations

import collections
import functools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import amqp
import amqp.exceptions
import amqp.serialization
import amqp.spec

from messaging import green
from messaging.drivers.base import attempts
from messaging.drivers.rabbit.connection import CONNECTION_ERRORS
from messaging.drivers.rabbit.declare import Declarer
from messaging.drivers.rabbit.refusals import DeclarationRefused
from messaging.exceptions import (
    BrokerRefusal,
    MessageDeliveryFailure,
    MessageTooLarge,
    MessageUndeliverable,
    TransportDriverError,
)

if TYPE_CHECKING:
    from messaging.drivers.rabbit.connection import AmqpConnection
    from messaging.drivers.rabbit.topology import Binding, ExchangeSpec, QueueSpec

__all__ = ["Outcome", "Publication", "Publisher", "amqp_properties"]

LOG = green.hand_over_logs(__name__)
#: Seconds a refused destination is remembered: messages to it fail at once meanwhile.
REFUSAL_MEMORY = 60.0
#: Broker closes of the publishing channel in a row, with no confirm between them,
#: after which the messages it keeps refusing fail instead of going again.
CLOSES_WITHOUT_PROGRESS = 3
# RabbitMQ's words (3.x and 4.x) when a message is above its max_message_size.
_SIZE_REFUSAL = re.compile(r"message size (\d+) is larger than configured max size (\d+)")

#: How a publication ended: confirmed, or failed with an error. A thread may
#: wait for it; its callback is told on the application's side.
Outcome = green.Completion


@dataclass(eq=False)
class Publication:
    """One message to publish, and what must exist for it to be routed.

    Attributes:
        exchange: the exchange to declare and publish to; None is the default exchange.
        routing_key: the routing key.
        body: the encoded message.
        properties: AMQP message properties.
        mandatory: ask the broker to return the message if no queue takes it.
        queue: a queue to declare and bind before publishing (notification
            publishers create the default queue, as oslo.messaging's do).
        binding: the binding of ``queue``.
        retry: connection attempts allowed: None or -1 forever, 0 one, N + 1.
    """

    exchange: ExchangeSpec | None
    routing_key: str
    body: bytes
    properties: dict[str, Any]
    mandatory: bool = False
    queue: QueueSpec | None = None
    binding: Binding | None = None
    retry: int | None = None
    outcome: Outcome = field(default_factory=Outcome)
    attempts_left: float = 0.0
    returned: BaseException | None = None

    def __post_init__(self) -> None:
        self.attempts_left = attempts(self.retry)

    @property
    def destination(self) -> tuple[str, str]:
        """The exchange's name and the routing key."""
        return (self.exchange.name if self.exchange else "", self.routing_key)

    def describe(self) -> str:
        """Where the message goes, for errors."""
        name = self.exchange.name if self.exchange else ""
        return f"exchange {name!r} with routing key {self.routing_key!r}"


class Publisher:
    """Publishes on a connection with confirms; one per connection.

    Args:
        connection: the connection to publish on.
        compression: a kombu compression method (``gzip``...) for bodies, as
            oslo.messaging's ``kombu_compression``; the ``compression`` header says so.
    """

    def __init__(self, connection: AmqpConnection, compression: str | None = None) -> None:
        self.connection = connection
        self.compression = compression
        self._channel: amqp.Channel | None = None
        self._next_tag = 1
        self._unconfirmed: collections.OrderedDict[int, Publication] = collections.OrderedDict()
        self._declared: set[tuple[str, str]] = set()
        self._waiting: list[Publication] = []  # submitted while disconnected
        self._declarer: Declarer | None = None
        self._in_flight = 0  # messages handed over by publish_async, not yet settled
        self._in_flight_bytes = 0  # and the size of their bodies
        self._in_flight_waiters = 0
        self._in_flight_lock = threading.Condition()
        # Destinations whose declaration the broker refused for good, until when.
        self._refused: dict[tuple[str, str], tuple[float, BrokerRefusal]] = {}
        self.size_limit: int | None = None  # the broker's max_message_size, once it refused one
        self._closes_in_a_row = 0
        connection.add_observer(self)

    # -- any thread ------------------------------------------------------------------------

    def publish(self, publication: Publication, timeout: float | None) -> None:
        """Publish and wait for the broker's confirm.

        Raises:
            MessageDeliveryFailure: the broker could not be reached within the
                retry budget, refused the message, or did not confirm in time.
            MessageUndeliverable: a mandatory message was routed to no queue.
        """
        self._raise_if_refused(publication)
        self._send(publication)
        outcome = publication.outcome
        # Withdrawn on timeout: not written later (after a reconnection) behind the
        # caller's back. One already written may still arrive. Settled meanwhile,
        # it ends as it ended.
        if not outcome.wait(timeout) and outcome.settle(
            TimeoutError("withdrawn after the publish timeout")
        ):
            blocked = self.connection.blocked
            raise MessageDeliveryFailure(
                f"No confirm from the broker within {timeout} s for the message to "
                f"{publication.describe()}"
                + (f" (the broker has blocked the connection: {blocked})" if blocked else "")
            )
        if outcome.error is not None:
            raise outcome.error

    def publish_nowait(self, publication: Publication) -> None:
        """Publish without waiting; ``publication.outcome`` (and its callback) tells the end."""
        self._send(publication)

    def _send(self, publication: Publication) -> None:
        if not self.connection.try_direct(lambda: self._write(publication, direct=True)):
            self.connection.post(lambda: self._write(publication))

    def publish_then(
        self, publication: Publication, on_failure: Callable[[BaseException], None]
    ) -> None:
        """Publish without waiting; ``on_failure`` is called (on the I/O thread) if it fails.

        For RPC calls: the caller waits for the reply instead of the confirm, and a
        failure to publish ends that wait.
        """

        def settled(outcome: Outcome) -> None:
            if outcome.error is not None:
                on_failure(outcome.error)

        publication.outcome.callback = settled
        self._send(publication)

    def publish_async(
        self, publication: Publication, depth: int, timeout: float, max_bytes: int = 0
    ) -> None:
        """Hand a message over without waiting for its confirm; failures are logged.

        At most ``depth`` messages, and ``max_bytes`` bytes of them (0: no byte
        bound), await their confirm at once: beyond that the caller waits (up
        to ``timeout``) for room. One message alone may exceed ``max_bytes``.
        The message is kept and sent again until the broker confirms it or its
        retry budget is spent.

        Raises:
            MessageDeliveryFailure: no room freed up within ``timeout``.
            BrokerRefusal: the broker refused this destination's declarations
                within the last :data:`REFUSAL_MEMORY` seconds.
        """
        self._raise_if_refused(publication)
        size = len(publication.body)
        with self._in_flight_lock:
            if self._in_flight >= depth or (
                max_bytes and self._in_flight and self._in_flight_bytes + size > max_bytes
            ):

                def room() -> bool:
                    return self._in_flight < depth and (
                        not max_bytes
                        or not self._in_flight
                        or self._in_flight_bytes + size <= max_bytes
                    )

                self._wait_in_flight(room, time.monotonic() + timeout)
                if not room():
                    raise MessageDeliveryFailure(
                        f"{self._in_flight} messages ({self._in_flight_bytes} bytes) have awaited "
                        f"the broker's confirm for {timeout} s; not sending more to "
                        f"{publication.describe()}"
                    )
            self._in_flight += 1
            self._in_flight_bytes += size
        publication.outcome.callback = lambda outcome: self._async_done(outcome, publication)
        self._send(publication)

    def _raise_if_refused(self, publication: Publication) -> None:
        # A message to a destination refused a moment ago, or while the broker
        # refuses the login, fails at once, so that a sender that does not wait
        # for confirms learns of it too.
        failure = self.connection.last_failure
        if isinstance(failure, BrokerRefusal) and not self.connection.connected:
            raise failure
        known = self._refused.get(publication.destination)
        if known is not None:
            until, refusal = known
            if time.monotonic() < until:
                raise refusal
            self._refused.pop(publication.destination, None)

    def _wait_in_flight(self, done: Callable[[], bool], deadline: float | None) -> None:
        # Called with _in_flight_lock held.
        self._in_flight_waiters += 1
        try:
            while not done():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                self._in_flight_lock.wait(remaining)
        finally:
            self._in_flight_waiters -= 1

    def _async_done(self, outcome: Outcome, publication: Publication) -> None:
        # Reported before it counts as settled: once flush() returns, every
        # failure it waited for is in the log.
        if outcome.error is not None:
            LOG.error(
                "A message to %s could not be delivered: %s", publication.describe(), outcome.error
            )
        with self._in_flight_lock:
            self._in_flight -= 1
            self._in_flight_bytes -= len(publication.body)
            if self._in_flight_waiters:
                self._in_flight_lock.notify_all()

    @property
    def unconfirmed(self) -> int:
        """Messages handed over and not yet settled by the broker (read without a lock)."""
        return max(self._in_flight, len(self._unconfirmed))

    def flush(self, timeout: float | None) -> int:
        """Wait until every message handed over by :meth:`publish_async` is settled.

        Returns:
            How many are still unsettled after ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._in_flight_lock:
            self._wait_in_flight(lambda: not self._in_flight, deadline)
            return self._in_flight

    # -- the I/O thread ----------------------------------------------------------------------

    def _ensure_channel(self, conn: amqp.Connection) -> amqp.Channel:
        if self._channel is None or not self._channel.is_open:
            channel = conn.channel()
            channel.on_broker_close = self._on_channel_closed
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            channel.events["basic_return"].add(self._on_return)
            self._channel = channel
            self._next_tag = 1
        return self._channel

    def _write(self, publication: Publication, direct: bool = False) -> None:
        """Write a message (on the I/O thread, or ``direct``ly from the caller's thread).

        A direct write that would wait for the broker's answer (a channel to
        open, a destination to declare) goes to the I/O thread instead: such a
        wait is bounded there, and does not hold a caller that has its own timeout.
        """
        if publication.outcome.done:
            return  # withdrawn by its caller (timed out)
        conn = self.connection.amqp_connection  # on the I/O thread: its own connection
        if conn is None:
            failure = self.connection.last_failure
            if isinstance(failure, BrokerRefusal):
                _fail(publication, failure)  # the login is refused: no use waiting
                return
            if failure is not None:
                # The broker is down now: that failed attempt counts for this message
                # too, so that retry=0 fails at once instead of at the next attempt.
                publication.attempts_left -= 1
                if publication.attempts_left <= 0:
                    _fail(
                        publication, _delivery_failure(publication, self._where(), failure), failure
                    )
                    return
            self._waiting.append(publication)
            return
        try:
            if not self._declare(conn, publication, may_wait=not direct):
                self.connection.post(lambda: self._write(publication))
                return
            channel = self._channel
            if channel is None or not channel.is_open:
                if direct:
                    self.connection.post(lambda: self._write(publication))
                    return
                channel = self._ensure_channel(conn)  # after: a declaration waits for the broker
            message = self._message(publication)
            if self.size_limit is not None and len(message.body) > self.size_limit:
                _fail(publication, self._too_large(publication, len(message.body)))
                return
            tag = self._next_tag
            self._next_tag += 1
            self._unconfirmed[tag] = publication
            arguments = _publish_arguments(
                publication.exchange.name if publication.exchange else "",
                publication.routing_key,
                publication.mandatory,
            )
            self.connection.write_buffered(
                lambda: _basic_publish(conn, channel.channel_id, arguments, message)
            )
        except DeclarationRefused as refused:
            # Refused for good: this message fails, and is not declared again.
            self._refused[publication.destination] = (
                time.monotonic() + REFUSAL_MEMORY,
                refused.refusal,
            )
            _fail(publication, refused.refusal, refused.__cause__)
            if refused.closes_connection and refused.__cause__ is not None:
                raise refused.__cause__ from None  # the broker closed the connection: reconnect
        except amqp.exceptions.ChannelError as exc:
            # The broker closed the declaring channel: this message fails (the
            # publishing channel has an owner, which hears of its own closes).
            _fail(
                publication,
                TransportDriverError(
                    f"The broker refused the message to {publication.describe()}: {exc}"
                ),
                exc,
            )
        except CONNECTION_ERRORS:
            # Lost before it was written: it waits for the next connection.
            if not publication.outcome.done and publication not in self._unconfirmed.values():
                self._waiting.append(publication)
            raise
        except Exception as exc:
            # Whatever else went wrong, its sender hears of it: never a message
            # that is neither sent nor failed.
            LOG.exception("Publishing a message to %s failed", publication.describe())
            self._unconfirmed = collections.OrderedDict(
                (t, p) for t, p in self._unconfirmed.items() if p is not publication
            )
            _fail(
                publication,
                TransportDriverError(
                    f"Could not publish the message to {publication.describe()}: {exc!r}"
                ),
                exc,
            )

    def _too_large(self, publication: Publication, size: int) -> MessageTooLarge:
        return MessageTooLarge(
            f"The message to {publication.describe()}",
            size,
            self.size_limit or 0,
            bound="the broker's limit (max_message_size on RabbitMQ)",
        )

    def _on_channel_closed(self, error: amqp.exceptions.AMQPError) -> None:
        # Called while frames are read: the channel is gone, and the broker
        # discarded what followed the refused message on it. What was not
        # confirmed goes again on a new channel, once the read is over.
        self._channel = None
        self._declared.clear()
        pending = list(self._unconfirmed.values())
        self._unconfirmed.clear()
        match = _SIZE_REFUSAL.search(str(error))
        self._closes_in_a_row += 1
        if match:
            self.size_limit = int(match.group(2))
        elif self._closes_in_a_row >= CLOSES_WITHOUT_PROGRESS:
            # Refused again and again for a reason this driver cannot read: fail
            # what it keeps refusing rather than sending it forever.
            for publication in pending:
                _fail(
                    publication,
                    TransportDriverError(
                        f"The broker refused the message to {publication.describe()} "
                        f"{self._closes_in_a_row} times in a row: {error}"
                    ),
                    error,
                )
            pending = []
        LOG.error(
            "The broker closed the publishing channel: %s; the %d messages not yet "
            "confirmed go again on a new channel%s",
            error,
            len(pending),
            f", except those above its limit of {self.size_limit} bytes" if match else "",
        )
        self.connection.post(lambda: self._write_all(pending))

    def _write_all(self, pending: list[Publication]) -> None:
        for index, publication in enumerate(pending):
            publication.returned = None
            try:
                self._write(publication)
            except BaseException:
                # Lost again: the others wait for the next connection.
                self._waiting.extend(p for p in pending[index + 1 :] if not p.outcome.done)
                raise

    def _message(self, publication: Publication) -> amqp.Message:
        properties = amqp_properties(publication.properties)
        body = publication.body
        if self.compression:
            from kombu import compression

            properties = dict(properties)
            body, content_type = compression.compress(body, self.compression)  # type: ignore[no-untyped-call]
            properties["application_headers"] = {
                **(properties.get("application_headers") or {}),
                "compression": content_type,
            }
        return _Message(body, **properties)

    def _declare(self, conn: amqp.Connection, publication: Publication, may_wait: bool) -> bool:
        # False, having done nothing, when a declaration is due and may not wait.
        exchange = publication.exchange
        declare_exchange = (
            exchange is not None
            and bool(exchange.name)
            and ("exchange", exchange.name) not in self._declared
        )
        queue = publication.queue
        declare_queue = queue is not None and ("queue", queue.name) not in self._declared
        if not (declare_exchange or declare_queue):
            return True
        if not may_wait:
            return False
        if self._declarer is None:
            self._declarer = Declarer(conn)
        if declare_exchange and exchange is not None:
            self._declarer.exchange(exchange)
            self._declared.add(("exchange", exchange.name))
        if declare_queue and queue is not None:
            self._declarer.queue(queue)
            if publication.binding is not None:
                self._declarer.bind(publication.binding)
            self._declared.add(("queue", queue.name))
        return True

    def _settle(self, tag: int, multiple: bool, ok: bool) -> None:
        self._closes_in_a_row = 0
        tags = [t for t in self._unconfirmed if t <= tag] if multiple else [tag]
        for t in tags:
            publication = self._unconfirmed.pop(t, None)
            if publication is None:
                continue
            if not ok:
                _fail(
                    publication,
                    MessageDeliveryFailure(
                        f"The broker refused (nack) the message to {publication.describe()}"
                    ),
                )
            elif publication.returned is not None:
                _fail(
                    publication,
                    MessageUndeliverable(
                        publication.returned,
                        publication.exchange.name if publication.exchange else "",
                        publication.routing_key,
                        publication.body,
                    ),
                )
            else:
                publication.outcome.settle()

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, ok=True)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, ok=False)

    def _on_return(self, exc: BaseException, exchange: str, routing_key: str, message: Any) -> None:
        # A return comes before the confirm of the same message: mark the oldest
        # unconfirmed mandatory message with that destination.
        for publication in self._unconfirmed.values():
            name = publication.exchange.name if publication.exchange else ""
            if (
                publication.mandatory
                and publication.returned is None
                and name == exchange
                and publication.routing_key == routing_key
            ):
                publication.returned = exc
                return
        LOG.warning(
            "The broker returned a message to %r/%r that nobody waits for", exchange, routing_key
        )

    # -- ConnectionObserver ----------------------------------------------------------------

    def on_connected(self, conn: amqp.Connection, generation: int) -> None:
        """Open a fresh channel and publish again what was not confirmed."""
        self._channel = None
        self._declarer = None
        self._declared.clear()
        pending = list(self._unconfirmed.values()) + self._waiting
        self._unconfirmed.clear()
        self._waiting = []
        self._write_all(pending)

    def on_connection_lost(self, error: BaseException) -> None:
        """Forget the channel; unconfirmed messages will go again after reconnecting."""
        self._channel = None
        self._spend_attempt(error)

    def on_connect_failed(self, error: BaseException) -> None:
        """Count a failed attempt against every waiting message's retry budget."""
        self._spend_attempt(error)

    def _where(self) -> str:
        host = self.connection.current_host
        return f"{host.hostname}:{host.port}" if host else "the broker"

    def _spend_attempt(self, error: BaseException) -> None:
        if isinstance(error, BrokerRefusal):
            # A refused login: every waiting message fails at once with it.
            for publication in [*self._unconfirmed.values(), *self._waiting]:
                _fail(publication, error)
            self._unconfirmed.clear()
            self._waiting = []
            return
        where = self._where()
        for tag, publication in list(self._unconfirmed.items()):
            publication.attempts_left -= 1
            if publication.attempts_left <= 0:
                del self._unconfirmed[tag]
                _fail(publication, _delivery_failure(publication, where, error), error)
        still_waiting = []
        for publication in self._waiting:
            publication.attempts_left -= 1
            if publication.attempts_left <= 0:
                _fail(publication, _delivery_failure(publication, where, error), error)
            else:
                still_waiting.append(publication)
        self._waiting = still_waiting


_ENCODED_PROPERTIES: dict[tuple[Any, ...], bytes] = {}
_ENCODED_PROPERTIES_MAX = 1024


class _Message(amqp.Message):  # type: ignore[misc]
    """A message whose encoded properties are reused: the same few sets recur."""

    def _serialize_properties(self) -> bytes:
        key = tuple(
            (name, ("table", *value.items()) if isinstance(value, dict) else value)
            for name, value in self.properties.items()
        )
        try:
            encoded = _ENCODED_PROPERTIES.get(key)
        except TypeError:  # a value that cannot be a key: encoded each time
            return bytes(super()._serialize_properties())
        if encoded is None:
            encoded = bytes(super()._serialize_properties())
            if len(_ENCODED_PROPERTIES) < _ENCODED_PROPERTIES_MAX:
                _ENCODED_PROPERTIES[key] = encoded
        return encoded


@functools.lru_cache(maxsize=4096)
def _publish_arguments(exchange: str, routing_key: str, mandatory: bool) -> bytes:
    # The same few destinations over and over: encoded once each.
    encoded: bytes = amqp.serialization.dumps("Bssbb", (0, exchange, routing_key, mandatory, False))
    return encoded


def _basic_publish(
    conn: amqp.Connection, channel_id: int, arguments: bytes, message: amqp.Message
) -> None:
    # py-amqp's Channel.basic_publish first tries a non-blocking read of the
    # socket (to see a connection.blocked notice), which costs every publish
    # several system calls and an exception; the I/O thread reads the socket
    # anyway, so the frames are written directly.
    try:
        conn.frame_writer(1, channel_id, amqp.spec.Basic.Publish, arguments, message)
    except StopIteration:
        raise amqp.exceptions.RecoverableConnectionError("connection already closed") from None


def amqp_properties(properties: dict[str, Any]) -> dict[str, Any]:
    """Message properties in py-amqp's spelling (``headers`` is ``application_headers``)."""
    if "headers" not in properties:
        return properties
    converted = dict(properties)
    converted["application_headers"] = converted.pop("headers")
    return converted


def _delivery_failure(
    publication: Publication, where: str, error: BaseException
) -> MessageDeliveryFailure:
    tries = "" if publication.retry is None else f" after {int(attempts(publication.retry))} tries"
    return MessageDeliveryFailure(
        f"Unable to connect to AMQP server on {where}{tries}: {error} "
        f"(message to {publication.describe()} not sent)"
    )


def _fail(
    publication: Publication, error: BaseException, cause: BaseException | None = None
) -> None:
    if cause is not None:
        error.__cause__ = cause
    publication.outcome.settle(error)
