"""``StompDriver``: notifications and RPC over STOMP (see :mod:`messaging.drivers.stomp`)."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from messaging import wire
from messaging.drivers import base
from messaging.drivers.replies import describe_request
from messaging.drivers.stomp.connection import REGISTRY, StompConnection
from messaging.drivers.stomp.destinations import Destinations
from messaging.drivers.stomp.listener import StompListener
from messaging.drivers.stomp.options import StompSettings
from messaging.exceptions import InvalidTarget, MessageDeliveryFailure

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.target import Target
    from messaging.transport import TransportOptions, TransportURL

__all__ = ["StompDriver"]

LOG = logging.getLogger(__name__)
#: Attempts to send a reply before it is given up (with a log).
REPLY_RETRY = 5


class StompDriver(base.Driver):
    """The ``stomp://user:pass@host:61613[,host2:61613]/vhost`` driver.

    Attributes:
        settings: the options, read once.
        connection: the process's shared connection to the broker.
        destinations: how targets map to destinations on this broker.
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
        self.settings = StompSettings.from_conf(conf, url)
        self._key = self.settings.broker_key()
        self._lock = threading.Lock()
        self._listeners: base.OpenListeners[StompListener] = base.OpenListeners()
        self._released = False
        self.connection: StompConnection = REGISTRY.acquire(
            self._key, lambda: StompConnection(self.settings)
        )
        flavor = self.connection.flavor(self.settings.connect_timeout)
        self.destinations = Destinations(
            flavor, self.settings.prefetch_count, self.settings.reply_queue_expiry
        )
        # Known once connected: with flavor=auto the line above waited for it.
        self.capabilities = base.Capabilities(
            requeue=True,
            pools=self.destinations.rabbit,
            fanout=True,
            rpc=True,
            batches=not self.connection.holds_one_unacked,
        )

    def __repr__(self) -> str:
        return f"<StompDriver {self.settings.redacted}>"

    # -- notifications --------------------------------------------------------------------

    def send_notification(
        self, target: Target, ctxt: Any, message: dict[str, Any], version: float, retry: int | None
    ) -> None:
        """Send to ``<topic>.<priority>``; on RabbitMQ its default queue is declared first.

        Raises:
            MessageDeliveryFailure: no receipt from the broker within ``retry``.
            MessageSerializationError: the message does not encode as JSON.
        """
        body = wire.encode_notification(ctxt, message, version)
        exchange, key = self.exchange_of(target), str(target.topic)
        wire.check_size(body, self.limits, f"The notification to {key!r}")
        before = None
        if self.destinations.rabbit:
            where, headers = self.destinations.notification_declaration(exchange, key)

            def before() -> None:
                self.connection.declare(where, headers)

        self.connection.send(
            self.destinations.notification_send(exchange, key),
            body,
            {"persistent": "true"},
            retry,
            before,
        )

    def listen_for_notifications(
        self,
        targets_and_priorities: Iterable[tuple[Target, str]],
        pool: str | None,
        batch_size: int,
        batch_timeout: float | None,
    ) -> base.Listener:
        """Subscribe to the default queue of each ``<topic>.<priority>``, or ``pool``'s."""
        if pool is not None:
            self.require_features(pools=True)
        subscriptions = []
        for target, priority in targets_and_priorities:
            exchange, key = self.exchange_of(target), f"{target.topic}.{priority}"
            if pool is None:
                subscriptions.append(self.destinations.notification_default(exchange, key))
            else:
                subscriptions.append(self.destinations.notification_pool(exchange, key, pool))
        unique = list({d: (d, h) for d, h in subscriptions}.values())
        return self._track(StompListener(self, unique, batch_size, batch_timeout, rpc=False))

    # -- RPC ------------------------------------------------------------------------------

    def listen(self, target: Target, batch_size: int, batch_timeout: float | None) -> base.Listener:
        """Subscribe to ``<topic>``, ``<topic>.<server>`` and the topic's fanout."""
        exchange, topic = self.exchange_of(target), str(target.topic)
        subscriptions = [self.destinations.rpc_subscription(exchange, topic)]
        if target.server:
            subscriptions.append(
                self.destinations.rpc_subscription(exchange, f"{topic}.{target.server}")
            )
        subscriptions.append(self.destinations.fanout_subscription(exchange, topic))
        return self._track(StompListener(self, subscriptions, batch_size, batch_timeout, rpc=True))

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
            MessagingTimeout: no reply within ``timeout`` (or heartbeat within
                ``call_monitor_timeout``).
            MessageDeliveryFailure: the request could not be sent.
            MessageSerializationError: the request does not encode as JSON.
        """
        if wait_for_reply and target.fanout:
            raise InvalidTarget("A call cannot be sent to a fanout target", target)
        if transport_options is not None and transport_options.at_least_once:
            LOG.warning("at_least_once is not supported by the STOMP driver; sending anyway")
        exchange, topic = self.exchange_of(target), str(target.topic)
        if target.fanout:
            destination = self.destinations.fanout(exchange, topic)
        else:
            name = f"{topic}.{target.server}" if target.server else topic
            destination = self.destinations.rpc_queue(exchange, name)
        headers: dict[str, str] = {}
        if timeout is not None and self.destinations.rabbit and not target.fanout:
            headers["expiration"] = str(max(1, int(timeout * 1000)))
        what = functools.partial(describe_request, message, topic)
        if not wait_for_reply:
            body = wire.encode_request(ctxt, message)
            wire.check_size(body, self.limits, what)
            self.connection.send(destination, body, headers, retry)
            return None
        started = time.monotonic()
        deadline = base.Deadline(timeout, started)
        replies, reply_to = self.connection.replies(self.destinations.new_reply, self.limits)

        def send(body: str, _box: Any) -> None:
            wire.check_size(body, self.limits, what)
            self.connection.send(destination, body, headers, retry, deadline=deadline)

        return replies.call(
            target,
            ctxt,
            message,
            send,
            timeout,
            call_monitor_timeout,
            self.allowed_remote_exmods,
            reply_address=reply_to,
            started=started,
        )

    def send_reply(self, reply_to: str, msg_id: str, body: str) -> None:
        """Send a reply (or heartbeat) to a caller's reply destination; never raises."""
        try:
            self.connection.send(reply_to, body, {}, REPLY_RETRY)
        except MessageDeliveryFailure:
            LOG.exception("Could not send the reply to %s on %s", msg_id, reply_to)

    # -- lifecycle ------------------------------------------------------------------------

    def _track(self, listener: StompListener) -> StompListener:
        return self._listeners.track(listener)

    def forget(self, listener: StompListener) -> None:
        """Stop tracking a listener that cleaned itself up."""
        self._listeners.forget(listener)

    def cleanup(self) -> None:
        """Clean up this driver's listeners and release its share of the connection."""
        with self._lock:
            listeners = self._listeners.take_all()
            released, self._released = self._released, True
        for listener in listeners:
            listener.cleanup()
        if not released:
            REGISTRY.release(self._key)
