"""The driver core: the delivery and RPC protocol, written once above the transports.

As in kombu's virtual transport, a transport fills in a few primitives and
inherits the rest. :class:`TransportCore` takes three of the driver's:

- :meth:`~TransportCore.publish`: put an encoded body on a :class:`~messaging.drivers.names.Route`
  (declaring the notification queue it names first), and say how many queues got
  it when the transport knows;
- :meth:`~TransportCore.consume`: declare a listener's
  :class:`~messaging.drivers.names.ListenerQueues` and return the
  :class:`~messaging.drivers.delivered.DeliverySource` it takes from;
- :meth:`~DriverCore.reply_source`: the :class:`~messaging.drivers.replies.ReplyWaiters`
  of the reply queue (created on first use), to which the transport hands
  every reply body it receives;

and the six of the source: ``take``, ``ack``, ``requeue``, ``discard``, ``stop``
and ``close``. Everything else is here, or in the modules this one assembles:
oslo's names (:mod:`~messaging.drivers.names`), the cast, fanout and call
sequence with its checks, timeouts and call monitoring (:meth:`DriverCore.send`),
decoding, de-duplication by ``_unique_id``, settling and replying
(:class:`~messaging.drivers.delivered.DecodingListener`), routing replies to
their callers (:class:`~messaging.drivers.replies.ReplyWaiters`), listener
tracking and clean-up.

A driver whose broker wants more than these primitives (RabbitMQ: confirms,
mandatory replies, parking) subclasses :class:`DriverCore` for the send
sequence, reply waiting and listener tracking, and writes the rest itself.
"""

from __future__ import annotations

import abc
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from messaging import wire
from messaging.drivers import base, names
from messaging.drivers.delivered import DecodingListener, DeliverySource
from messaging.drivers.pool import ProcessLocal
from messaging.drivers.replies import ReplyWaiters, describe_request
from messaging.exceptions import InvalidTarget, MessageUndeliverable, MessagingTimeout
from messaging.target import refuse_fanout_call

if TYPE_CHECKING:
    from messaging.target import Target
    from messaging.transport import TransportOptions

__all__ = ["DriverCore", "Kind", "Outgoing", "PendingCall", "TransportCore"]

LOG = logging.getLogger(__name__)

V = TypeVar("V")

Kind = Literal["notification", "cast", "fanout", "call", "reply"]
"""What a published message is."""


@dataclass(frozen=True)
class PendingCall:
    """What publishing the request of a call needs to know of the call.

    Attributes:
        timeout: the call's timeout (a request nobody took by then may be dropped).
        deadline: when the call ends: publishing must not wait past it.
        fail: ends the caller's wait with an error (a publish that fails later).
    """

    timeout: float | None
    deadline: base.Deadline
    fail: Callable[[BaseException], None]


@dataclass(slots=True)
class Outgoing:
    """A message to publish, with what its transport needs to know of it.

    Attributes:
        kind: what it is.
        route: where it goes.
        body: the encoded message, within ``max_message_size``.
        retry: oslo's retry count.
        declare: a queue to declare and bind before publishing (a notification's
            default queue, so that what is sent before anyone listens is kept).
        call: with a call's request: the call.
        mandatory: ``at_least_once``: a request no queue receives is an error.
        message: the request, for errors.
    """

    kind: Kind
    route: names.Route
    body: str
    retry: int | None
    declare: names.QueueBinding | None = None
    call: PendingCall | None = None
    mandatory: bool = False
    message: dict[str, Any] | None = None


class DriverCore(base.Driver):
    """The RPC send sequence, reply waiting and listener tracking of every driver.

    A subclass provides :meth:`reply_source` and :meth:`publish_request`, may
    set itself up in :meth:`open` (instead of repeating the constructor), and
    tracks the listeners it hands out with :meth:`track` and :meth:`forget`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Built as every driver is: (conf, url, default_exchange, allowed_remote_exmods).
        super().__init__(*args, **kwargs)
        self._listeners: base.OpenListeners[base.Listener] = base.OpenListeners()
        self.open()

    # -- what a driver provides ------------------------------------------------------------

    def open(self) -> None:
        """Set the driver up, once its ``conf``, ``url`` and ``limits`` are known."""

    @abc.abstractmethod
    def reply_source(self, deadline: base.Deadline) -> ReplyWaiters:
        """The reply queue calls wait on, created on first use.

        Args:
            deadline: bounds the wait for the broker when the queue is created.
        """

    @abc.abstractmethod
    def publish_request(self, request: Outgoing) -> None:
        """Publish an encoded RPC request (already checked against ``max_message_size``).

        Raises:
            MessageUndeliverable: ``mandatory`` and no queue received it.
            MessageDeliveryFailure: it could not be published.
        """

    def release(self) -> None:
        """Let go of the transport's own resources at :meth:`cleanup` (its listeners are closed)."""

    def timed_out(self, error: MessagingTimeout) -> MessagingTimeout:
        """The error a call that timed out raises: ``error``, or one that says more."""
        return error

    def publish_gathered(self, request: Outgoing) -> int | None:
        """Publish the request of :meth:`gather`; return how many queues got it, if known."""
        self.publish_request(request)
        return None

    # -- RPC ---------------------------------------------------------------------------------

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

        A ``call_monitor_timeout`` of 0 or None means no call monitoring (oslo's rule).

        Raises:
            InvalidTarget: a call to a fanout target.
            MessagingTimeout: no reply within ``timeout``, or no heartbeat within
                ``call_monitor_timeout``.
            MessageTooLarge: the request is larger than ``max_message_size``.
            MessageUndeliverable: ``at_least_once`` and no queue for the request.
            MessageDeliveryFailure: the request could not be published.
            MessageSerializationError: the request does not encode as JSON.
        """
        if wait_for_reply:
            refuse_fanout_call(target)
        route = names.request_route(target, self.default_exchange)
        mandatory = bool(transport_options and transport_options.at_least_once)
        what = functools.partial(describe_request, message, route.topic)
        if not wait_for_reply:
            body = wire.encode_request(ctxt, message)
            wire.check_size(body, self.limits, what)
            kind: Kind = "fanout" if route.fanout else "cast"
            self.publish_request(Outgoing(kind, route, body, retry, None, None, mandatory, message))
            return None
        started = time.monotonic()
        deadline = base.Deadline(timeout, started)
        replies = self.reply_source(deadline)

        def send(body: str, box: Any) -> None:
            wire.check_size(body, self.limits, what)
            call = PendingCall(timeout, deadline, functools.partial(replies.send_failed, box))
            self.publish_request(
                Outgoing("call", route, body, retry, None, call, mandatory, message)
            )

        try:
            return replies.call(
                target,
                ctxt,
                message,
                send,
                timeout,
                call_monitor_timeout,
                self.allowed_remote_exmods,
                started=started,
            )
        except MessagingTimeout as exc:
            better = self.timed_out(exc)
            if better is exc:
                raise
            raise better from exc

    def gather(
        self,
        target: Target,
        ctxt: Any,
        message: dict[str, Any],
        timeout: float,
        expect: int | None = None,
        retry: int | None = None,
    ) -> list[base.GatheredReply]:
        """Send one request to the topic's fanout exchange and gather every reply.

        See :meth:`messaging.drivers.base.Driver.gather`.
        """
        if not target.topic:
            raise InvalidTarget("A topic is required to send", target)
        if not self.capabilities.fanout:
            raise NotImplementedError(
                f"The {type(self).__name__} driver has no fanout to reach every server"
            )
        route = names.request_route(target(fanout=True), self.default_exchange)
        what = functools.partial(describe_request, message, route.topic)
        started = time.monotonic()
        deadline = base.Deadline(timeout, started)
        replies = self.reply_source(deadline)

        def send(body: str, box: Any) -> int | None:
            wire.check_size(body, self.limits, what)
            call = PendingCall(timeout, deadline, functools.partial(replies.send_failed, box))
            return self.publish_gathered(
                Outgoing("fanout", route, body, retry, None, call, False, message)
            )

        return replies.gather(
            ctxt, message, send, timeout, self.allowed_remote_exmods, expect, started
        )

    # -- listeners and lifecycle -------------------------------------------------------------

    def track(self, listener: base.Listener) -> base.Listener:
        """Remember a listener handed out, to close it at :meth:`cleanup`; return it."""
        return self._listeners.track(listener)

    def forget(self, listener: base.Listener) -> None:
        """Forget a listener that cleaned itself up."""
        self._listeners.forget(listener)

    def process_local(self, open_: Callable[[], V], close: Callable[[V], None]) -> ProcessLocal[V]:
        """What this driver opens per process; each opening starts with no listeners tracked."""
        return ProcessLocal(open_, close, on_open=self._forget_listeners)

    def _forget_listeners(self) -> None:
        # The listeners of a parent process, or of a released opening, are not ours to close.
        self._listeners = base.OpenListeners()

    def cleanup(self) -> None:
        """Clean up every listener of this driver, then :meth:`release` the transport."""
        for listener in self._listeners.take_all():
            listener.cleanup()
        self.release()


class TransportCore(DriverCore):
    """A whole driver on a transport's primitives (see the module documentation).

    Attributes:
        reply_retry: oslo's retry count of a reply's publish.
        concurrent_poll: whether the threads of an executor may take from a
            listener at once (see :attr:`~messaging.drivers.base.Listener.concurrent_poll`).
    """

    reply_retry: ClassVar[int | None] = 5
    concurrent_poll: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The few topics notified over and over: their routes worked out once each.
        self._notification_routes: dict[
            tuple[str | None, str | None], tuple[names.Route, names.QueueBinding]
        ] = {}
        self._warned_at_least_once = False
        super().__init__(*args, **kwargs)

    # -- the transport's primitives ----------------------------------------------------------

    @abc.abstractmethod
    def publish(self, out: Outgoing) -> int | None:
        """Publish an encoded body, trying again as ``out.retry`` allows.

        Returns:
            How many queues got the message; None where the transport cannot tell.

        Raises:
            MessageDeliveryFailure: every allowed attempt failed.
        """

    @abc.abstractmethod
    def consume(self, queues: names.ListenerQueues, batch_size: int) -> DeliverySource[Any]:
        """Declare ``queues`` and start consuming them.

        Args:
            queues: what to declare and consume.
            batch_size: the listener's batch size (a prefetch may follow it).

        Returns:
            Where the listener takes deliveries from; for RPC requests, each
            delivery leaves the queue when taken or acknowledged.
        """

    # -- notifications -----------------------------------------------------------------------

    def send_notification(
        self, target: Target, ctxt: Any, message: dict[str, Any], version: float, retry: int | None
    ) -> None:
        """Publish a notification to ``<topic>.<priority>``, declaring that queue first.

        Raises:
            MessageTooLarge: it is larger than ``max_message_size``.
            MessageDeliveryFailure: it could not be published within ``retry``.
            MessageSerializationError: the message does not encode as JSON.
        """
        body = wire.encode_notification(ctxt, message, version)
        route, queue = self._notification_route(target)
        wire.check_size(body, self.limits, lambda: f"The notification to {route.routing_key!r}")
        self.publish(Outgoing("notification", route, body, retry, queue))

    def _notification_route(self, target: Target) -> tuple[names.Route, names.QueueBinding]:
        key = (target.exchange, target.topic)
        found = self._notification_routes.get(key)
        if found is None:
            topic = str(target.topic)
            exchange = names.exchange_of(target, self.default_exchange)
            found = (
                names.Route(exchange, topic, topic, exchange),
                names.QueueBinding(topic, exchange, topic),
            )
            self._notification_routes[key] = found
        return found

    def listen_for_notifications(
        self,
        targets_and_priorities: Iterable[tuple[Target, str]],
        pool: str | None,
        batch_size: int,
        batch_timeout: float | None,
        temporary: bool = False,
    ) -> base.Listener:
        """Consume ``<topic>.<priority>`` queues, or the ``pool`` queue bound to each key.

        A ``temporary`` pool's queue is the listener's own, deleted when it closes.
        """
        if pool is not None:
            self.require_features(pools=True)
        queues = names.notification_queues(
            targets_and_priorities, pool, self.default_exchange, temporary
        )
        return self._listener(queues, batch_size, batch_timeout)

    # -- RPC ---------------------------------------------------------------------------------

    def listen(self, target: Target, batch_size: int, batch_timeout: float | None) -> base.Listener:
        """Consume ``<topic>``, ``<topic>.<server>`` and a fanout queue of this server."""
        queues = names.server_queues(target, self.default_exchange, names.new_id())
        return self._listener(queues, batch_size, batch_timeout)

    def publish_request(self, request: Outgoing) -> None:
        """Publish a request with :meth:`publish`; check that it was routed if ``mandatory``."""
        routed = self.publish(request)
        if not request.mandatory:
            return
        if routed is None:
            self._warn_at_least_once()
        elif not routed:
            route = request.route
            no_route = LookupError(
                f"NO_ROUTE: no queue is bound to {route.routing_key!r} "
                f"in exchange {route.exchange!r}"
            )
            raise MessageUndeliverable(no_route, route.exchange, route.routing_key, request.message)

    def publish_gathered(self, request: Outgoing) -> int | None:
        """Publish with :meth:`publish`, which may say how many queues got the request."""
        return self.publish(request)

    def send_reply(self, reply_q: str, msg_id: str, body: str, heartbeat: bool) -> None:
        """Publish a reply (or a heartbeat) to a caller's reply queue; never raises."""
        route = names.Route(names.DEFAULT_EXCHANGE, reply_q, reply_q, names.DEFAULT_EXCHANGE)
        try:
            routed = self.publish(Outgoing("reply", route, body, self.reply_retry))
        except Exception:
            LOG.exception("Could not send the reply to %s on %s", msg_id, reply_q)
            return
        if routed == 0:
            LOG.warning("Reply queue %s doesn't exist, drop reply to %s", reply_q, msg_id)

    # -- helpers -----------------------------------------------------------------------------

    def _listener(
        self, queues: names.ListenerQueues, batch_size: int, batch_timeout: float | None
    ) -> base.Listener:
        source = self.consume(queues, batch_size)
        listener = DecodingListener(
            source, self, batch_size, batch_timeout, queues.rpc, self.forget
        )
        listener.concurrent_poll = self.concurrent_poll
        listener.queues = tuple(queues.queues)
        return self.track(listener)

    def _warn_at_least_once(self) -> None:
        if not self._warned_at_least_once:
            self._warned_at_least_once = True
            LOG.warning(
                "TransportOptions(at_least_once=True) is not supported by the %s driver: "
                "a request nobody can receive is dropped, not reported",
                type(self).__name__,
            )
