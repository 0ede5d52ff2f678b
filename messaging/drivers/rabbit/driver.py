"""``RabbitDriver``: notifications and RPC over RabbitMQ, wire-compatible with oslo.messaging.

Connections are shared per broker and process (:mod:`messaging.drivers.pool`):
however many transports, notifiers, listeners, clients and servers a process
has on one broker, it holds two AMQP connections to it, one that publishes and
one that consumes (RabbitMQ may throttle a publishing connection; consumers
must not be stuck behind it). Each listener gets a channel of its own on the
consuming connection; every RPC client of the process shares one reply queue.

The RPC send sequence, reply waiting and listener tracking are the driver
core's (:class:`~messaging.drivers.core.DriverCore`); this module publishes
requests with confirms, replies with RabbitMQ's mandatory flag, and consumes
with parking.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from messaging import delayed, wire
from messaging.drivers import base
from messaging.drivers.core import DriverCore, Outgoing
from messaging.drivers.delivered import DecodingListener
from messaging.drivers.pool import ConnectionRegistry
from messaging.drivers.rabbit import topology
from messaging.drivers.rabbit.connection import AmqpConnection
from messaging.drivers.rabbit.consumer import Subscription
from messaging.drivers.rabbit.options import RabbitSettings, broker_key
from messaging.drivers.rabbit.parking import ParkingSubscription
from messaging.drivers.rabbit.publisher import Publication, Publisher, amqp_properties
from messaging.drivers.rabbit.queue_manager import queue_unique
from messaging.drivers.rabbit.reply import ReplyRouter
from messaging.exceptions import MessageTooLarge, MessageUndeliverable, MessagingTimeout
from messaging.health import LinkHealth

if TYPE_CHECKING:
    from messaging.poison import ParkedMessage
    from messaging.target import Target
    from messaging.transport import TransportURL

__all__ = ["RabbitDriver"]

LOG = logging.getLogger(__name__)

#: Prefetch of listeners when ``rabbit_qos_prefetch_count`` is 0: unlimited would
#: let a backlog of millions flow into this process's memory.
DEFAULT_PREFETCH = 256
#: How long listen() waits for its consumers to be set up before going on
#: (they are set up later by themselves if the broker is down now).
SETUP_WAIT = 10.0
REPLY_RETRY_INTERVAL = 0.25


class BrokerConnections:
    """What a process holds per broker: two connections, the publisher, the reply queue.

    Args:
        settings: the settings of the first transport that opened it.
        url: the transport URL.
        limits: the bounds of the first transport that opened it (replies decoded).
    """

    def __init__(
        self, settings: RabbitSettings, url: TransportURL, limits: wire.Limits = wire.DEFAULT_LIMITS
    ) -> None:
        self.settings = settings
        self.limits = limits
        self.publishing = AmqpConnection(settings, url.hosts, url.virtual_host, "publish")
        self.consuming = AmqpConnection(settings, url.hosts, url.virtual_host, "consume")
        self.publisher = Publisher(self.publishing, compression=settings.kombu_compression)
        self._reply_lock = threading.Lock()
        self._replies: ReplyRouter | None = None

    @property
    def replies(self) -> ReplyRouter:
        """The process's reply queue on this broker, created on first use."""
        with self._reply_lock:
            if self._replies is None:
                spec = topology.reply_queue(self.settings, queue_unique(self.settings))
                router = ReplyRouter(self.consuming, spec, self.limits)
                try:
                    router.subscription.wait_ready(SETUP_WAIT)
                except Exception:
                    router.close()  # refused: the next call tries a new reply queue
                    raise
                self._replies = router
            return self._replies

    def close(self) -> None:
        """Close the reply queue's consumer and both connections."""
        if self._replies is not None:
            self._replies.close()
        self.consuming.close()
        self.publishing.close()


REGISTRY: ConnectionRegistry[BrokerConnections] = ConnectionRegistry("rabbit")
EXIT_FLUSH_TIMEOUT = 10.0


@atexit.register
def _flush_at_exit() -> None:
    # Notifications handed over without waiting must not vanish with the process.
    for broker in REGISTRY.objects():
        left = broker.publisher.flush(EXIT_FLUSH_TIMEOUT)
        if left:
            LOG.error("%d notifications were not confirmed by the broker before exit", left)


class RabbitDriver(DriverCore):
    """The ``rabbit://`` driver.

    URL: ``rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost?option=value``;
    query parameters override options of ``[oslo_messaging_rabbit]``.
    """

    capabilities = base.Capabilities(requeue=True, pools=True, fanout=True, rpc=True)

    def open(self) -> None:
        """Read the options; the connections open on first use."""
        self.settings = RabbitSettings.from_conf(self.conf, self.url)
        self._key = broker_key(self.url, self.settings)
        self._broker = self.process_local(
            lambda: REGISTRY.acquire(
                self._key, lambda: BrokerConnections(self.settings, self.url, self.limits)
            ),
            lambda _broker: REGISTRY.release(self._key),
        )
        self._routes: dict[
            tuple[str | None, str | None],
            tuple[topology.ExchangeSpec, topology.QueueSpec, topology.Binding, dict[str, Any]],
        ] = {}
        # What every reply is published with; only the reply queue varies.
        self._reply_mandatory = topology.publish_mandatory(self.settings, "reply")
        self._reply_properties = topology.publish_properties("reply")

    # -- connections ---------------------------------------------------------------------

    @property
    def broker(self) -> BrokerConnections:
        """This process's connections to the broker (opened on first use)."""
        return self._broker.get()

    def _opened_broker(self) -> BrokerConnections | None:
        # Never opens them: a forked child's inherited connections are not its own.
        return self._broker.opened()

    def link_health(self) -> LinkHealth:
        """The state of the process's two connections to this broker and of its publisher."""
        broker = self._opened_broker()
        if broker is None:
            return LinkHealth()
        connections = [c for c in (broker.publishing, broker.consuming) if c.in_use]
        down = [c for c in connections if not c.connected]
        failure = next((c.last_failure for c in down if c.last_failure is not None), None)
        return LinkHealth(
            connected=not down,
            alive=all(c.io_thread_alive for c in connections),
            reconnects=sum(max(0, c.generation - 1) for c in connections),
            unconfirmed=broker.publisher.unconfirmed,
            error=None if failure is None else str(failure),
        )

    def repair(self, reason: str) -> bool:
        """Make both connections again: every exchange, queue and binding is declared anew."""
        broker = self._opened_broker()
        if broker is None:
            return False
        LOG.warning("Connecting again to declare everything anew: %s", reason)
        for connection in (broker.consuming, broker.publishing):
            connection.reconnect(reason)
        return True

    def flush(self, timeout: float | None = None) -> int:
        """Wait for the confirms of notifications sent without waiting for them."""
        broker = self._opened_broker()
        return 0 if broker is None else broker.publisher.flush(timeout)

    def cleanup(self) -> None:
        """Close this driver's listeners and leave the shared connections.

        Notifications still awaiting the broker's confirm are waited for, up to
        ``publish_confirm_timeout``; any left are reported.
        """
        unconfirmed = self.flush(self.settings.publish_confirm_timeout)
        if unconfirmed:
            LOG.error(
                "%d notifications were still unconfirmed by the broker after %s s at cleanup",
                unconfirmed,
                self.settings.publish_confirm_timeout,
            )
        super().cleanup()

    def release(self) -> None:
        """Leave the shared connections (the last driver of the process closes them)."""
        self._broker.release()

    # -- notifications -----------------------------------------------------------------------

    def send_notification(
        self, target: Target, ctxt: Any, message: dict[str, Any], version: float, retry: int | None
    ) -> None:
        """Publish a notification to ``<topic>.<priority>`` and wait for the broker's confirm."""
        body = wire.encode_notification(ctxt, message, version).encode("utf-8")
        exchange, queue, binding, properties = self._notification_route(target)
        wire.check_size(body, self.limits, lambda: f"The notification to {binding.routing_key!r}")
        publication = Publication(
            exchange,
            binding.routing_key,
            body,
            properties,
            queue=queue,
            binding=binding,
            retry=retry,
        )
        depth = self.settings.notification_pipeline_depth
        publisher = self.broker.publisher
        if depth > 0 and base.attempts(retry) == float("inf") and publisher.connection.connected:
            # Retried until confirmed anyway: waiting for each confirm would only
            # make the caller pay a broker round trip per notification. While the
            # connection is down the caller waits instead (up to the timeout), so
            # that a refused login or a broker that stays away reaches it.
            publisher.publish_async(
                publication,
                depth,
                self.settings.publish_confirm_timeout,
                self.settings.notification_pipeline_bytes,
            )
        else:
            publisher.publish(publication, timeout=self.settings.publish_confirm_timeout)

    def _notification_route(
        self, target: Target
    ) -> tuple[topology.ExchangeSpec, topology.QueueSpec, topology.Binding, dict[str, Any]]:
        # The same few topics over and over: worked out once each.
        key = (target.exchange, target.topic)
        route = self._routes.get(key)
        if route is None:
            topic = str(target.topic)
            exchange = topology.notification_exchange(self.settings, self.exchange_of(target))
            queue = topology.notification_queue(self.settings, topic)
            binding = topology.Binding(exchange.name, queue.name, topic)
            route = self._routes[key] = (
                exchange,
                queue,
                binding,
                amqp_properties(topology.publish_properties("notification")),
            )
        return route

    def listen_for_notifications(
        self,
        targets_and_priorities: Iterable[tuple[Target, str]],
        pool: str | None,
        batch_size: int,
        batch_timeout: float | None,
        temporary: bool = False,
    ) -> base.Listener:
        """Consume ``<topic>.<priority>`` queues, or the pool's queue bound to each key.

        A ``temporary`` pool's queue is auto-delete: RabbitMQ removes it when its
        last consumer leaves, even if the process dies.
        """
        if temporary and pool is None:
            raise ValueError("A temporary listener needs a pool name")
        triples = [
            (self.exchange_of(target), str(target.topic), priority)
            for target, priority in targets_and_priorities
        ]
        subs = topology.notification_subscriptions(self.settings, triples, pool, temporary)
        subscription = self._subscribe(subs, max(1, batch_size))
        source = ParkingSubscription(subscription, self.broker.publisher, self.settings)
        return self.track(
            DecodingListener(source, self, batch_size, batch_timeout, False, self.forget)
        )

    # -- RPC ------------------------------------------------------------------------------------

    def reply_source(self, deadline: base.Deadline) -> ReplyRouter:
        """The process's reply queue on this broker, consumed from its first use."""
        return self.broker.replies

    def publish_request(self, request: Outgoing) -> None:
        """Publish a request as oslo does; a cast waits for the broker's confirm, a call not.

        A call's wait ends with its reply, or with the failure to publish (the
        request's confirm is not waited for: it would cost the caller a wake-up).
        """
        route, call = request.route, request.call
        kind: topology.PublishKind = "fanout" if route.fanout else ("call" if call else "cast")
        if route.fanout:
            exchange = topology.fanout_exchange(self.settings, route.topic)
        else:
            exchange = topology.rpc_topic_exchange(self.settings, route.exchange)
        publication = Publication(
            exchange,
            route.routing_key,
            request.body.encode("utf-8"),
            topology.publish_properties(kind, None if call is None else call.timeout),
            topology.publish_mandatory(self.settings, kind, request.mandatory),
            retry=request.retry,
        )
        publisher = self.broker.publisher
        if call is None:
            publisher.publish(publication, timeout=self.settings.publish_confirm_timeout)
        else:
            publisher.publish_then(publication, call.fail)

    def timed_out(self, error: MessagingTimeout) -> MessagingTimeout:
        """Say why a call timed out when the request never left: the broker was not reachable."""
        broker = self._opened_broker()  # not reopened after a clean-up
        if broker is None or broker.publishing.last_failure is None:
            return error
        failure = broker.publishing.last_failure
        if broker.publishing.connected:
            return error
        return MessagingTimeout(f"{error}; the broker was not reachable: {failure}")

    def listen(self, target: Target, batch_size: int, batch_timeout: float | None) -> base.Listener:
        """Consume ``<topic>``, ``<topic>.<server>`` and a fanout queue of this server."""
        subs = topology.rpc_server_subscriptions(
            self.settings,
            self.exchange_of(target),
            str(target.topic),
            str(target.server),
            queue_unique(self.settings),
        )
        # A fanout stream is shared by every server of the topic, and a queue
        # manager's fanout queue is for the restarted server: they stay.
        keep = self.settings.rabbit_stream_fanout or self.settings.use_queue_manager
        own_fanout = [] if keep else [subs[2].queue.name]
        subscription = self._subscribe(subs, 1, delete_on_close=own_fanout)
        listener = DecodingListener(
            subscription, self, batch_size, batch_timeout, True, self.forget
        )
        listener.queues = tuple(sub.queue.name for sub in subs)
        return self.track(listener)

    def send_reply(self, reply_q: str, msg_id: str, body: str, heartbeat: bool) -> None:
        """Publish a reply (or a heartbeat) to a caller's reply queue; never raises.

        The worker does not wait for the broker's confirm: the caller's wait ends
        with the reply itself, so the worker is free at once. A reply queue that
        does not exist (yet, or any more) is retried every 0.25 s, on a timer, for
        ``kombu_missing_consumer_retry_timeout`` seconds (the retries of every
        reply share one scheduler thread), then given up with an error log. A
        reply above the broker's size limit is replaced by that error, which the
        caller then gets; any other failure to publish it is logged at once.
        """
        spec = topology.reply_publish(self.settings, reply_q)
        mandatory = self._reply_mandatory
        deadline = time.monotonic() + self.settings.kombu_missing_consumer_retry_timeout
        encoded = body.encode("utf-8")
        properties = self._reply_properties
        replaced: list[BaseException] = []  # the reply became its size error (once)

        def failed(error: BaseException) -> None:
            if isinstance(error, MessageUndeliverable):
                if not heartbeat and time.monotonic() < deadline:
                    LOG.debug("No reply queue %s yet; retrying the reply %s", reply_q, msg_id)
                    delayed.shared().call_later(REPLY_RETRY_INTERVAL, send)
                    return
                LOG.error(
                    "The reply %s failed to send after %d seconds due to a missing queue (%s). "
                    "Abandoning...",
                    msg_id,
                    self.settings.kombu_missing_consumer_retry_timeout,
                    reply_q,
                )
                return
            if isinstance(error, MessageTooLarge) and not heartbeat and not replaced:
                LOG.error("%s; replying with that error", error)
                replaced.append(error)
                send(wire.encode_reply(msg_id, failure=wire.serialize_failure(error)).encode())
                return
            LOG.error("Could not send the reply to %s on %s: %s", msg_id, reply_q, error)

        publisher = self.broker.publisher  # retries too: never reopened after cleanup

        def send(body: bytes | None = None) -> None:
            nonlocal encoded
            encoded = body or encoded
            if publisher.connection.closed:
                LOG.error(
                    "The reply %s to %s is given up: the connection is closed", msg_id, reply_q
                )
                return
            try:
                publisher.publish_then(
                    Publication(spec.exchange, spec.routing_key, encoded, properties, mandatory),
                    failed,
                )
            except Exception:
                LOG.exception("Could not send the reply to %s on %s", msg_id, reply_q)

        send()

    def parked(
        self, limit: int, queue: str | None = None, replay: bool = False
    ) -> tuple[list[ParkedMessage], list[ParkedMessage]]:
        """List (or replay) what listeners parked in ``messaging.parked`` of the virtual host."""
        from messaging.drivers.rabbit.parked import browse

        return browse(self.broker.consuming, limit, queue, replay)

    def queue_stats(self, names: Sequence[str]) -> list[base.QueueStats]:
        """Count each queue's ready messages and consumers with a passive declaration."""
        from messaging.drivers.rabbit.queue_stats import passive_stats

        return passive_stats(self.broker.consuming, names)

    # -- helpers ----------------------------------------------------------------------------------

    def _subscribe(
        self,
        subs: Sequence[topology.Subscription],
        min_prefetch: int,
        delete_on_close: Sequence[str] = (),
    ) -> Subscription:
        exchanges = list({s.exchange.name: s.exchange for s in subs}.values())
        queues = list({s.queue.name: s.queue for s in subs}.values())
        bindings = [s.binding for s in subs if s.binding is not None]
        prefetch = self.settings.rabbit_qos_prefetch_count or max(
            DEFAULT_PREFETCH, 2 * min_prefetch
        )
        subscription = Subscription(
            self.broker.consuming,
            exchanges,
            queues,
            bindings,
            prefetch=prefetch,
            consumer_arguments={
                s.queue.name: topology.consumer_arguments(self.settings, s.kind) for s in subs
            },
            delete_on_close=delete_on_close,
        )
        try:
            if not subscription.wait_ready(SETUP_WAIT):
                LOG.warning(
                    "The broker is not reachable yet; consuming from %s will start when it is",
                    [q.name for q in queues],
                )
        except Exception:
            subscription.close()
            raise
        return subscription
