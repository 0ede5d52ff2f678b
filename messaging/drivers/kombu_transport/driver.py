"""``KombuDriver``: notifications and RPC over any kombu transport (``kombu+<transport>://``).

Per broker and process (:mod:`messaging.drivers.pool`) the driver shares one
publishing connection (used under a lock) and, once a call is made, one reply
queue with its consumer; every listener has a connection and a thread of its own.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from messaging import wire
from messaging.drivers import base
from messaging.drivers.delivered import DecodingListener
from messaging.drivers.kombu_transport.consumer import Consumer, Delivery
from messaging.drivers.kombu_transport.link import KombuLink
from messaging.drivers.kombu_transport.options import KombuSettings
from messaging.drivers.kombu_transport.publisher import Publication, Publisher
from messaging.drivers.pool import ConnectionRegistry, process_id
from messaging.drivers.rabbit import topology
from messaging.drivers.rabbit.options import RabbitSettings
from messaging.drivers.replies import ReplyWaiters, describe_request
from messaging.exceptions import InvalidTarget

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.target import Target
    from messaging.transport import TransportOptions, TransportURL

__all__ = ["KombuDriver"]

LOG = logging.getLogger(__name__)

#: How long listen() and the first call wait for consuming to start before going
#: on (it starts later by itself if the broker is down now), in seconds.
SETUP_WAIT = 10.0
#: Publishing attempts of a reply or heartbeat (oslo's retry count).
REPLY_RETRY = 3

#: oslo.messaging's default flags and arguments, which every entity is declared with.
TOPOLOGY = RabbitSettings()


class KombuBroker:
    """What a process holds per broker: the publisher and the reply queue.

    Args:
        settings: the settings of the first driver that opened it.
        limits: the bounds replies are decoded with (that driver's).
    """

    def __init__(self, settings: KombuSettings, limits: wire.Limits) -> None:
        self.link = KombuLink(settings)
        self.limits = limits
        self.publisher = Publisher(self.link)
        self._reply_lock = threading.Lock()
        self._replies: tuple[ReplyWaiters, Consumer] | None = None

    def replies(self, setup_wait: float | None = SETUP_WAIT) -> ReplyWaiters:
        """The process's reply queue on this broker, consumed from its first use.

        Args:
            setup_wait: how long the first use waits for consuming to start (it
                starts later by itself if the broker is unreachable now).

        Raises:
            TransportDriverError: the broker refused the credentials or the declarations.
        """
        with self._reply_lock:
            if self._replies is None:
                spec = topology.reply_subscription(TOPOLOGY, uuid.uuid4().hex)
                waiters = ReplyWaiters(spec.queue.name, self.limits)
                consumer = Consumer(
                    self.link,
                    [spec],
                    "replies",
                    no_ack=True,
                    on_delivery=lambda delivery: waiters.deliver(delivery.body),
                    delete_on_close=[spec.queue.name],
                )
                try:
                    if not consumer.wait_ready(SETUP_WAIT if setup_wait is None else setup_wait):
                        LOG.warning(
                            "The broker at %s is not reachable yet; replies on %s will "
                            "be received when it is",
                            self.link.settings.redacted,
                            spec.queue.name,
                        )
                except Exception:
                    consumer.close()
                    raise
                self._replies = (waiters, consumer)
            return self._replies[0]

    def close(self) -> None:
        """Stop consuming replies (deleting the reply queue) and close the publisher."""
        with self._reply_lock:
            replies, self._replies = self._replies, None
        if replies is not None:
            replies[1].close()
        self.publisher.close()


REGISTRY: ConnectionRegistry[KombuBroker] = ConnectionRegistry("kombu")


class KombuDriver(base.Driver):
    """The ``kombu+<transport>://`` driver (see :mod:`messaging.drivers.kombu_transport`).

    Its :attr:`capabilities` depend on the kombu transport of the URL.
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
        self.settings = KombuSettings.from_url(url)
        self.capabilities = self.settings.capabilities
        self._key = self.settings.broker_key()
        self._lock = threading.Lock()
        self._broker: KombuBroker | None = None
        self._pid = process_id()
        self._listeners: base.OpenListeners[DecodingListener[Delivery]] = base.OpenListeners()
        self._warned_at_least_once = False

    @property
    def broker(self) -> KombuBroker:
        """This process's connections to the broker (opened on first use)."""
        broker = self._broker
        if broker is not None and self._pid == process_id():
            return broker  # the common case, without the lock
        with self._lock:
            if self._broker is None or self._pid != process_id():
                # In a forked child the parent's connections are not ours to use.
                self._pid = process_id()
                self._listeners = base.OpenListeners()
                self._broker = REGISTRY.acquire(
                    self._key, lambda: KombuBroker(self.settings, self.limits)
                )
            return self._broker

    def cleanup(self) -> None:
        """Close this driver's listeners and leave the shared connections."""
        with self._lock:
            listeners = self._listeners.take_all()
            broker, self._broker = self._broker, None
        for listener in listeners:
            listener.cleanup()
        if broker is not None and self._pid == process_id():
            REGISTRY.release(self._key)

    # -- notifications -----------------------------------------------------------------------

    def send_notification(
        self, target: Target, ctxt: Any, message: dict[str, Any], version: float, retry: int | None
    ) -> None:
        """Publish a notification to ``<topic>.<priority>``, declaring that queue first."""
        body = wire.encode_notification(ctxt, message, version)
        topic = str(target.topic)
        wire.check_size(body, self.limits, f"The notification to {topic!r}")
        exchange = topology.notification_exchange(TOPOLOGY, self.exchange_of(target))
        queue = topology.notification_queue(TOPOLOGY, topic)
        publication = Publication(
            exchange,
            topic,
            body,
            queue=queue,
            binding=topology.Binding(exchange.name, queue.name, topic),
            retry=retry,
        )
        self.broker.publisher.publish(publication)

    def listen_for_notifications(
        self,
        targets_and_priorities: Iterable[tuple[Target, str]],
        pool: str | None,
        batch_size: int,
        batch_timeout: float | None,
    ) -> base.Listener:
        """Consume ``<topic>.<priority>`` queues, or the pool's queue bound to each key."""
        triples = [
            (self.exchange_of(target), str(target.topic), priority)
            for target, priority in targets_and_priorities
        ]
        subs = topology.notification_subscriptions(TOPOLOGY, triples, pool)
        prefetch = max(self.settings.prefetch_count, batch_size)
        consumer = self._consume(subs, "notifications", prefetch)
        return self._track(
            DecodingListener(consumer, self, batch_size, batch_timeout, False, self._forget)
        )

    # -- RPC ------------------------------------------------------------------------------------

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
        """Publish an RPC request; for a call, wait for and return the reply."""
        if wait_for_reply and target.fanout:
            raise InvalidTarget("A call cannot be used with fanout", target)
        if target.fanout and not self.capabilities.fanout:
            raise NotImplementedError(
                f"The kombu transport {self.settings.transport!r} has no fanout exchanges"
            )
        if transport_options and transport_options.at_least_once:
            self._warn_at_least_once()
        topic = str(target.topic)
        spec = topology.rpc_publish(
            TOPOLOGY, self.exchange_of(target), topic, target.server, fanout=bool(target.fanout)
        )
        # Fanout exchanges ignore the key on AMQP; Redis's PUB/SUB matches it
        # against the key its queues are bound with, which is the topic.
        key = topic if target.fanout else spec.routing_key
        broker = self.broker
        what = functools.partial(describe_request, message, topic)
        if not wait_for_reply:
            body = wire.encode_request(ctxt, message)
            wire.check_size(body, self.limits, what)
            broker.publisher.publish(Publication(spec.exchange, key, body, retry=retry))
            return None
        started = time.monotonic()
        deadline = base.Deadline(timeout, started)
        replies = broker.replies(deadline.remaining(SETUP_WAIT))

        def send(body: str, _box: Any) -> None:
            wire.check_size(body, self.limits, what)
            broker.publisher.publish(
                Publication(spec.exchange, key, body, expiration=timeout, retry=retry), deadline
            )

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

    def listen(self, target: Target, batch_size: int, batch_timeout: float | None) -> base.Listener:
        """Consume ``<topic>``, ``<topic>.<server>`` and (with fanout) a queue of this server."""
        subs: Sequence[topology.Subscription] = topology.rpc_server_subscriptions(
            TOPOLOGY,
            self.exchange_of(target),
            str(target.topic),
            str(target.server),
            uuid.uuid4().hex,
        )
        delete = [subs[2].queue.name]
        if not self.capabilities.fanout:
            subs, delete = subs[:2], []
        consumer = self._consume(subs, "rpc", self.settings.prefetch_count, delete)
        return self._track(
            DecodingListener(consumer, self, batch_size, batch_timeout, True, self._forget)
        )

    def send_reply(self, reply_q: str, msg_id: str, body: str, heartbeat: bool = False) -> None:
        """Publish a reply (or a heartbeat) to a caller's reply queue; never raises."""
        queue = None
        if self.settings.virtual:
            # Declared so that Redis gives the list the reply queue's expiry: a
            # reply to a caller that is gone then vanishes with its queue.
            queue = dataclasses.replace(topology.reply_queue(TOPOLOGY, ""), name=reply_q)
        exchange = topology.reply_exchange(TOPOLOGY, publishing=True)
        try:
            self.broker.publisher.publish(
                Publication(exchange, reply_q, body, queue=queue, retry=REPLY_RETRY)
            )
        except Exception:
            LOG.exception("Could not send the reply to %s on %s", msg_id, reply_q)

    # -- helpers ----------------------------------------------------------------------------------

    def _consume(
        self,
        subs: Sequence[topology.Subscription],
        label: str,
        prefetch: int,
        delete_on_close: Sequence[str] = (),
    ) -> Consumer:
        consumer = Consumer(
            self.link,
            subs,
            label,
            prefetch=prefetch,
            prefetch_bytes=self.settings.prefetch_bytes,
            delete_on_close=delete_on_close,
        )
        try:
            if not consumer.wait_ready(SETUP_WAIT):
                LOG.warning(
                    "The broker at %s is not reachable yet; consuming from %s will start "
                    "when it is",
                    self.settings.redacted,
                    consumer.queue_names,
                )
        except Exception:
            consumer.close()
            raise
        return consumer

    @property
    def link(self) -> KombuLink:
        """The broker's connection factory."""
        return self.broker.link

    def _warn_at_least_once(self) -> None:
        if not self._warned_at_least_once:
            self._warned_at_least_once = True
            LOG.warning(
                "TransportOptions(at_least_once=True) is not supported by the kombu driver: "
                "a request nobody can receive is dropped, not reported"
            )

    def _track(self, listener: DecodingListener[Delivery]) -> DecodingListener[Delivery]:
        return self._listeners.track(listener)

    def _forget(self, listener: DecodingListener[Delivery]) -> None:
        self._listeners.forget(listener)
