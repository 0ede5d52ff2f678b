"""The in-memory transport driver: ``fake://``, ``memory://``, ``memory:///<vhost>``.

A faithful stand-in for RabbitMQ inside one process, so that a test that passes
on it means something on a real broker:

- Every message goes through :mod:`messaging.wire` as it would on RabbitMQ: the
  queues hold the JSON text that would be published, a payload that is not
  JSON-serialisable fails with ``MessageSerializationError`` before anything is
  queued, and RPC failures travel serialised and are rebuilt with the client's
  ``allowed_remote_exmods`` (builtins keep their class, allowed modules give a
  ``<Class>_Remote`` subclass, anything else a ``RemoteError``).
- oslo.messaging's topology on RabbitMQ: notifications go to ``<topic>.<priority>``
  in the target's exchange (or ``control_exchange``), and the publisher declares
  that queue, so notifications sent before anyone listens are kept; a listener
  pool gets its own queue named after the pool; RPC uses ``<topic>``,
  ``<topic>.<server>``, a ``<topic>_fanout`` exchange with one queue per server,
  and one ``reply_<hex>`` queue per driver instance.
- Notification requeue, acknowledgement, batches, de-duplication by
  ``_unique_id``; unacknowledged notifications go back to their queue when a
  listener is cleaned up or the connections drop (at-least-once). RPC requests
  are acknowledged when taken (at-most-once), call requests expire after the
  call's timeout, replies are routed to the calling thread by ``_msg_id``, and
  call-monitor heartbeats keep long calls alive.
- Transports of the process on the same virtual host share one broker
  (:func:`get_broker`); different virtual hosts are isolated.
- A body that cannot be decoded (or is past ``[DEFAULT] max_message_size`` or
  ``max_message_depth``) is logged and parked in ``Broker.dead_letters``; a
  message past ``max_message_size`` is refused to its sender (``MessageTooLarge``).

Failure injection, for tests (``broker = get_broker()`` or ``driver.broker``):

- ``broker.fail_next_sends(count=1, error=None)``: the next ``count`` publish
  attempts fail as if the connection broke; senders retry as ``retry`` allows
  and raise ``MessageDeliveryFailure`` once out of attempts.
- ``broker.drop_connections()``: every connection drops; unacknowledged messages
  are redelivered and acknowledging the old deliveries does nothing.
- ``broker.queues()``, ``broker.queue_depth(name)``, ``broker.messages(name)``,
  ``broker.publish(exchange, routing_key, body)`` (a raw body) and
  :func:`reset_brokers` (a fresh broker for every virtual host).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from messaging import wire
from messaging.drivers import base
from messaging.drivers.delivered import DecodingListener, undecodable
from messaging.drivers.memory_broker import (
    FANOUT,
    Broker,
    Consumer,
    Delivery,
    PublishFailed,
    get_broker,
    reset_brokers,
)
from messaging.drivers.replies import describe_call
from messaging.exceptions import (
    InvalidTarget,
    MessageDeliveryFailure,
    MessageUndeliverable,
    MessagingTimeout,
)

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.poison import HandlingFailure
    from messaging.target import Target
    from messaging.transport import TransportOptions, TransportURL

__all__ = ["Broker", "MemoryDriver", "get_broker", "reset_brokers"]

LOG = logging.getLogger(__name__)


class MemoryDriver(base.Driver):
    """The in-memory driver (see the module documentation).

    Args:
        conf: the caller's configuration.
        url: the transport URL; its virtual host selects the broker.
        default_exchange: the exchange of targets without one.
        allowed_remote_exmods: modules whose exceptions RPC calls may rebuild.

    Attributes:
        broker: the process-wide broker of the URL's virtual host.
    """

    capabilities = base.Capabilities(requeue=True, pools=True, fanout=True, rpc=True)

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        url: TransportURL,
        default_exchange: str | None = None,
        allowed_remote_exmods: Sequence[str] | None = None,
    ) -> None:
        super().__init__(conf, url, default_exchange, allowed_remote_exmods)
        self.broker = get_broker(url.virtual_host)
        self._lock = threading.Lock()
        self._waiter: _ReplyWaiter | None = None
        self._listeners: base.OpenListeners[DecodingListener[Delivery]] = base.OpenListeners()

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: str,
        retry: int | None,
        *,
        kind: str = "topic",
        declare_queue: str | None = None,
        expires_in: float | None = None,
    ) -> int:
        """Publish an encoded body, retrying injected connection failures as ``retry`` allows.

        Returns:
            The number of queues the body was put in.

        Raises:
            MessageTooLarge: the body is larger than ``max_message_size``.
            MessageDeliveryFailure: every allowed attempt failed.
        """
        wire.check_size(
            body, self.limits, f"The message to exchange {exchange!r}, routing key {routing_key!r}"
        )
        allowed = base.attempts(retry)
        tries = 0
        while True:
            tries += 1
            try:
                return self.broker.publish(
                    exchange,
                    routing_key,
                    body,
                    kind=kind,
                    declare_queue=declare_queue,
                    expires_in=expires_in,
                )
            except PublishFailed as failed:
                if tries >= allowed:
                    raise MessageDeliveryFailure(
                        f"Unable to publish to exchange {exchange!r} with routing key "
                        f"{routing_key!r} after {tries} attempt(s): {failed.error}"
                    ) from failed.error
                LOG.warning(
                    "Publishing to exchange %r with routing key %r failed (attempt %d): %s; "
                    "trying again",
                    exchange,
                    routing_key,
                    tries,
                    failed.error,
                )

    # Notifications

    def send_notification(
        self, target: Target, ctxt: Any, message: dict[str, Any], version: float, retry: int | None
    ) -> None:
        """Send a notification to ``<target.topic>``, declaring that queue as oslo does."""
        body = wire.encode_notification(ctxt, message, version)
        topic = str(target.topic)
        self.publish(self.exchange_of(target), topic, body, retry, declare_queue=topic)

    def listen_for_notifications(
        self,
        targets_and_priorities: Iterable[tuple[Target, str]],
        pool: str | None,
        batch_size: int,
        batch_timeout: float | None,
    ) -> base.Listener:
        """Consume ``<topic>.<priority>`` queues, or the ``pool`` queue bound to each key."""
        queues = []
        for target, priority in targets_and_priorities:
            key = f"{target.topic}.{priority}"
            queue = pool or key
            self.broker.declare_queue(queue, self.exchange_of(target), key)
            queues.append(queue)
        consumer = self.broker.consumer(queues, auto_ack=False)
        source = _MemorySource(self.broker, consumer)
        return self._track(
            DecodingListener(source, self, batch_size, batch_timeout, False, self._forget)
        )

    # RPC

    def listen(self, target: Target, batch_size: int, batch_timeout: float | None) -> base.Listener:
        """Consume ``<topic>``, ``<topic>.<server>`` and a fanout queue of this listener."""
        topic = str(target.topic)
        exchange = self.exchange_of(target)
        self.broker.declare_queue(topic, exchange, topic)
        queues = [topic]
        if target.server:
            direct = f"{topic}.{target.server}"
            self.broker.declare_queue(direct, exchange, direct)
            queues.append(direct)
        fanout_queue = f"{topic}_fanout_{uuid.uuid4().hex}"
        self.broker.declare_queue(fanout_queue, f"{topic}_fanout", topic, kind=FANOUT)
        queues.append(fanout_queue)
        consumer = self.broker.consumer(queues, auto_ack=True)
        source = _MemorySource(self.broker, consumer, own_queue=fanout_queue)
        return self._track(
            DecodingListener(source, self, batch_size, batch_timeout, True, self._forget)
        )

    def send_reply(self, reply_q: str, msg_id: str, body: str, heartbeat: bool) -> None:
        """Publish a reply (or a heartbeat) to a caller's reply queue; never raises."""
        try:
            if not self.publish("", reply_q, body, retry=None):
                LOG.warning("Reply queue %s doesn't exist, drop reply to %s", reply_q, msg_id)
        except Exception:
            LOG.exception("Cannot send the reply to message ID %s", msg_id)

    def send(
        self,
        target: Target,
        ctxt: Any,
        message: dict[str, Any],
        wait_for_reply: bool | None = None,
        timeout: float | None = None,
        call_monitor_timeout: float | None = None,
        retry: int | None = None,
        transport_options: TransportOptions | None = None,
    ) -> Any:
        """Cast, fan out or call; a call returns the result or raises the remote failure.

        Raises:
            InvalidTarget: a call to a fanout target.
            MessagingTimeout: no reply within ``timeout``, or no heartbeat within
                ``call_monitor_timeout``.
            MessageUndeliverable: ``at_least_once`` and no queue for the request.
            MessageDeliveryFailure: the request could not be published.
            MessageSerializationError: the request does not encode as JSON.
        """
        if wait_for_reply and target.fanout:
            raise InvalidTarget("A call cannot be sent to a fanout target", target)
        mandatory = bool(transport_options and transport_options.at_least_once)
        if not wait_for_reply:
            body = wire.encode_request(ctxt, message)
            self._publish_request(target, message, body, retry, mandatory, None)
            return None
        waiter = self._reply_waiter()
        msg_id = wire.new_msg_id()
        body = wire.encode_request(ctxt, message, msg_id, waiter.queue, call_monitor_timeout)
        waiter.expect(msg_id)
        try:
            self._publish_request(target, message, body, retry, mandatory, timeout)
            return self._wait_for_reply(
                waiter, msg_id, target, message, timeout, call_monitor_timeout
            )
        finally:
            waiter.forget(msg_id)

    def _publish_request(
        self,
        target: Target,
        message: dict[str, Any],
        body: str,
        retry: int | None,
        mandatory: bool,
        expires_in: float | None,
    ) -> None:
        topic = str(target.topic)
        if target.fanout:
            # oslo ignores target.exchange for fanout and publishes with an empty key.
            exchange, kind, key = f"{topic}_fanout", FANOUT, ""
        else:
            exchange, kind = self.exchange_of(target), "topic"
            key = f"{topic}.{target.server}" if target.server else topic
        routed = self.publish(exchange, key, body, retry, kind=kind, expires_in=expires_in)
        if mandatory and not routed:
            no_route = LookupError(
                f"NO_ROUTE: no queue is bound to {key!r} in exchange {exchange!r}"
            )
            raise MessageUndeliverable(no_route, exchange, key, message)

    def _reply_waiter(self) -> _ReplyWaiter:
        with self._lock:
            if self._waiter is None:
                queue = f"reply_{uuid.uuid4().hex}"
                self._waiter = _ReplyWaiter(self.broker, queue, self.limits)
            return self._waiter

    def _wait_for_reply(
        self,
        waiter: _ReplyWaiter,
        msg_id: str,
        target: Target,
        message: dict[str, Any],
        timeout: float | None,
        call_monitor_timeout: float | None,
    ) -> Any:
        now = time.monotonic()
        deadline = None if timeout is None else now + timeout
        monitor = None if call_monitor_timeout is None else now + call_monitor_timeout
        result = None
        while True:
            limits = [d for d in (deadline, monitor) if d is not None]
            wait = None if not limits else max(0.0, min(limits) - time.monotonic())
            reply = waiter.next(msg_id, wait)
            if reply is None:
                raise self._timeout_error(
                    waiter, msg_id, target, message, timeout, call_monitor_timeout, deadline
                )
            body = reply.message
            if body.get("failure"):
                raise wire.deserialize_failure(body["failure"], self.allowed_remote_exmods)
            if body.get("result") is not None:
                result = body["result"]
            if body.get("ending", True):
                return result
            if call_monitor_timeout is not None:
                monitor = time.monotonic() + call_monitor_timeout

    @staticmethod
    def _timeout_error(
        waiter: _ReplyWaiter,
        msg_id: str,
        target: Target,
        message: dict[str, Any],
        timeout: float | None,
        call_monitor_timeout: float | None,
        deadline: float | None,
    ) -> MessagingTimeout:
        head = describe_call(msg_id, target, message)
        tail = f"timeout {timeout}s, reply queue {waiter.queue}"
        if waiter.closed:
            return MessagingTimeout(f"{head}: the transport was cleaned up; {tail}")
        if deadline is None or time.monotonic() < deadline:
            return MessagingTimeout(
                f"{head}: no heartbeat or reply within call_monitor_timeout "
                f"{call_monitor_timeout}s; {tail}"
            )
        return MessagingTimeout(f"{head}: no reply within {timeout}s; {tail}")

    # Lifecycle

    def _track(self, listener: DecodingListener[Delivery]) -> DecodingListener[Delivery]:
        return self._listeners.track(listener)

    def _forget(self, listener: DecodingListener[Delivery]) -> None:
        self._listeners.forget(listener)

    def cleanup(self) -> None:
        """Clean up every listener of this driver and delete its reply queue."""
        with self._lock:
            listeners = self._listeners.take_all()
            waiter, self._waiter = self._waiter, None
        for listener in listeners:
            listener.cleanup()
        if waiter is not None:
            waiter.close()


class _ReplyWaiter:
    """The reply queue of one driver, shared by its calling threads.

    Whichever caller is first in line takes the next reply from the broker and
    files it under its ``_msg_id``; each caller returns when its own file fills.
    """

    def __init__(self, broker: Broker, queue: str, limits: wire.Limits) -> None:
        self.queue = queue
        self.limits = limits
        self.closed = False
        self._broker = broker
        broker.declare_queue(queue)
        self._consumer = broker.consumer([queue], auto_ack=True)
        self._lock = threading.Lock()
        self._replies: dict[str, collections.deque[wire.Decoded]] = {}

    def expect(self, msg_id: str) -> None:
        with self._lock:
            self._replies[msg_id] = collections.deque()

    def forget(self, msg_id: str) -> None:
        with self._lock:
            self._replies.pop(msg_id, None)

    def _ready(self, msg_id: str) -> bool:
        with self._lock:
            return bool(self._replies.get(msg_id))

    def next(self, msg_id: str, timeout: float | None) -> wire.Decoded | None:
        """The next reply to ``msg_id``, or None after ``timeout`` or once closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                replies = self._replies[msg_id]
                if replies:
                    return replies.popleft()
            remaining = None if deadline is None else deadline - time.monotonic()
            if self.closed or (remaining is not None and remaining <= 0):
                return None
            delivery = self._broker.get(self._consumer, remaining, lambda: self._ready(msg_id))
            if delivery is not None:
                self._file(delivery)

    def _file(self, delivery: Delivery) -> None:
        try:
            reply = wire.decode(delivery.body, self.limits)
        except Exception as exc:  # whatever it is, the callers must go on
            reason = undecodable(exc, delivery.body, f"reply queue {delivery.queue}")
            self._broker.dead_letter(delivery, reason)
            return
        with self._lock:
            replies = self._replies.get(str(reply.msg_id))
            if replies is not None:
                replies.append(reply)
        if replies is None:
            LOG.info("No calling threads waiting for msg_id : %s", reply.msg_id)
        else:
            self._broker.wake()

    def close(self) -> None:
        self.closed = True
        self._broker.stop_consumer(self._consumer)
        self._broker.delete_queue(self.queue)


class _MemorySource:
    """A broker consumer as the :class:`~messaging.drivers.delivered.DecodingListener` takes it."""

    def __init__(self, broker: Broker, consumer: Consumer, own_queue: str | None = None) -> None:
        self.broker = broker
        self.consumer = consumer
        self._own_queue = own_queue

    def take(self, timeout: float | None) -> Delivery | None:
        """The next delivery; None after ``timeout`` or once stopped."""
        return self.broker.get(self.consumer, timeout)

    def ack(self, delivery: Delivery) -> None:
        """Remove a delivery from the broker (RPC requests were when taken)."""
        if not self.consumer.auto_ack and not self.broker.ack(delivery):
            LOG.debug("Not acknowledging delivery %s: already settled or dropped", delivery.tag)

    def requeue(self, delivery: Delivery) -> None:
        """Put a delivery back at the head of its queue (RPC requests cannot go back)."""
        if not self.consumer.auto_ack and not self.broker.requeue(delivery):
            LOG.debug("Not requeueing delivery %s: already settled or dropped", delivery.tag)

    def discard(self, delivery: Delivery, reason: str) -> None:
        """Park an undecodable delivery in the broker's dead letters."""
        self.broker.dead_letter(delivery, reason)

    def attempts(self, delivery: Delivery) -> int:
        """How many times the delivery was requeued before."""
        return delivery.attempts

    def park(self, delivery: Delivery, failure: HandlingFailure) -> bool:
        """Park a delivery that failed too often in the broker's dead letters."""
        self.broker.dead_letter(delivery, failure.summary())
        return True

    def stop(self) -> None:
        """Make a blocked :meth:`take` return None; later takes return None at once."""
        self.broker.stop_consumer(self.consumer)

    def close(self) -> None:
        """Stop, return unacknowledged deliveries to their queues, delete this listener's queue."""
        self.stop()
        returned = self.broker.release(self.consumer)
        if returned:
            LOG.debug("Returned %d unacknowledged message(s) to their queues", returned)
        if self._own_queue is not None:
            self.broker.delete_queue(self._own_queue)
