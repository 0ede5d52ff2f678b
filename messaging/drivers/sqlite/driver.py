"""``SqliteDriver``: notifications and RPC through a sqlite file shared by the processes of a host.

The topology is the one the other drivers use (oslo.messaging's on RabbitMQ),
so pools and competing consumers behave the same:

- a notification to ``<topic>.<priority>`` goes to the default queue of that
  name (declared by the publisher too, so nothing sent before a listener exists
  is lost) and to every pool queue bound to that key; each pool is one queue,
  so one copy per pool, shared by the pool's listeners;
- an RPC cast or call goes to queue ``<topic>`` or ``<topic>.<server>``; a
  fanout cast to every live server's own queue bound to ``<topic>_fanout``;
  requests are taken at most once; a call's request expires after its timeout;
- replies go to the calling process's ``reply_<hex>`` queue.

Notifications are at-least-once (see :mod:`~messaging.drivers.sqlite.store`
for claims and the visibility timeout). Bodies are encoded by
:mod:`messaging.wire`, as on RabbitMQ.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from messaging import wire
from messaging.drivers import base
from messaging.drivers.delivered import DecodingListener
from messaging.drivers.pool import process_id
from messaging.drivers.sqlite.bus import Bus, close_bus, open_bus
from messaging.drivers.sqlite.listener import SqliteSource
from messaging.drivers.sqlite.options import SqliteSettings, database_path
from messaging.drivers.sqlite.store import Declaration, Limits, StoredMessage, StoreError
from messaging.exceptions import (
    InvalidTarget,
    MessageDeliveryFailure,
    MessageUndeliverable,
)

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.target import Target
    from messaging.transport import TransportOptions, TransportURL

__all__ = ["SqliteDriver"]

LOG = logging.getLogger(__name__)

#: Pauses between attempts to write when the database fails (seconds).
RETRY_PAUSES = (0.05, 0.1, 0.2, 0.5, 1.0)
#: Attempts to store a reply before it is given up (with a log).
REPLY_RETRY = 5


class SqliteDriver(base.Driver):
    """The ``sqlite://`` driver: a durable bus in one file, for the processes of one host.

    URL: ``sqlite:///relative/bus.db`` or ``sqlite:////absolute/bus.db``, with
    ``[oslo_messaging_sqlite]`` options in the query
    (:mod:`~messaging.drivers.sqlite.options`).

    Attributes:
        settings: the options, read once.
        path: the absolute path of the database file.
        bus: the process's shared handle on the file.
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
        self.settings = SqliteSettings.from_conf(conf, url)
        self.path = database_path(url, self.settings)
        self.disk_limits = Limits(self.settings.max_bytes, self.settings.max_messages)
        self._lock = threading.Lock()
        self._listeners: base.OpenListeners[DecodingListener[StoredMessage]] = base.OpenListeners()
        self._pid = process_id()
        # Opened now, so that a file that is not a usable bus is reported at once.
        self._bus: Bus | None = open_bus(self.path, self.settings, self.limits)

    def __repr__(self) -> str:
        return f"<SqliteDriver {self.path}>"

    @property
    def bus(self) -> Bus:
        """This process's handle on the file (opened again after use of a cleaned-up driver)."""
        bus = self._bus
        if bus is not None and self._pid == process_id():
            return bus  # the common case, without the lock
        with self._lock:
            if self._bus is None or self._pid != process_id():
                # In a forked child, the parent's connection and threads are not ours.
                self._pid = process_id()
                self._listeners = base.OpenListeners()
                self._bus = open_bus(self.path, self.settings, self.limits)
            return self._bus

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: str,
        retry: int | None,
        *,
        fanout: bool = False,
        declare: Declaration | None = None,
        expires_at: float | None = None,
        limits: Limits | None = None,
        deadline: base.Deadline | None = None,
    ) -> int:
        """Store a message, trying again as ``retry`` and ``publish_timeout`` allow.

        Args:
            exchange: the exchange.
            routing_key: the routing key.
            body: the encoded message.
            retry: oslo's retry count.
            fanout: copy to every queue bound to the exchange.
            declare: a queue to declare first.
            expires_at: when unconsumed copies are dropped (wall clock).
            limits: the disk bound; None for none.
            deadline: an earlier bound than ``publish_timeout`` (a call's timeout).

        Returns:
            How many queues got a copy.

        Raises:
            MessageTooLarge: the body is larger than ``max_message_size``.
            MessageDeliveryFailure: the tries allowed failed, ``publish_timeout`` (or
                ``deadline``) passed, the file cannot be written (at once), or the
                disk bound was reached (at once: waiting would not make room).
        """
        wire.check_size(
            body, self.limits, f"The message to exchange {exchange!r}, routing key {routing_key!r}"
        )
        bound = (deadline or base.Deadline(None)).within(self.settings.publish_timeout)
        tries = base.Attempts(retry, bound)
        while True:
            tries.begin()
            try:
                return self.bus.store.publish(
                    exchange,
                    routing_key,
                    body,
                    fanout=fanout,
                    declare=declare,
                    expires_at=expires_at,
                    limits=limits,
                    busy=bound.remaining(),
                )
            except StoreError as exc:
                if exc.lasting or not tries.another():
                    raise MessageDeliveryFailure(
                        f"Unable to store a message for exchange {exchange!r}, routing key "
                        f"{routing_key!r} {tries.spent()}: {exc}"
                    ) from exc
                LOG.warning("%s (attempt %d); trying again", exc, tries.tries)
                time.sleep(tries.pause(RETRY_PAUSES[min(tries.tries, len(RETRY_PAUSES)) - 1]))

    # -- notifications --------------------------------------------------------------------

    def send_notification(
        self, target: Target, ctxt: Any, message: dict[str, Any], version: float, retry: int | None
    ) -> None:
        """Store a notification in ``<target.topic>`` (declared here) and the pools bound to it.

        Raises:
            MessageDeliveryFailure: it could not be stored, or the disk bound was reached.
            MessageSerializationError: the message does not encode as JSON.
        """
        body = wire.encode_notification(ctxt, message, version)
        topic = str(target.topic)
        exchange = self.exchange_of(target)
        declare = Declaration(topic, exchange, topic)
        self.publish(exchange, topic, body, retry, declare=declare, limits=self.disk_limits)

    def listen_for_notifications(
        self,
        targets_and_priorities: Iterable[tuple[Target, str]],
        pool: str | None,
        batch_size: int,
        batch_timeout: float | None,
    ) -> base.Listener:
        """Consume ``<topic>.<priority>`` queues, or the ``pool`` queue bound to each key."""
        declarations = []
        for target, priority in targets_and_priorities:
            key = f"{target.topic}.{priority}"
            declarations.append(Declaration(pool or key, self.exchange_of(target), key))
        self.bus.store.declare(declarations, None)
        queues = list(dict.fromkeys(d.queue for d in declarations))
        source = SqliteSource(self, queues, rpc=False)
        return self._track(
            DecodingListener(source, self, batch_size, batch_timeout, False, self._forget)
        )

    # -- RPC ------------------------------------------------------------------------------

    def listen(self, target: Target, batch_size: int, batch_timeout: float | None) -> base.Listener:
        """Consume ``<topic>``, ``<topic>.<server>`` and a fanout queue of this server."""
        topic = str(target.topic)
        exchange = self.exchange_of(target)
        declarations = [Declaration(topic, exchange, topic)]
        if target.server:
            direct = f"{topic}.{target.server}"
            declarations.append(Declaration(direct, exchange, direct))
        self.bus.store.declare(declarations, None)
        fanout = Declaration(f"{topic}_fanout_{uuid.uuid4().hex}", f"{topic}_fanout", topic)
        queues = [d.queue for d in declarations] + [fanout.queue]
        source = SqliteSource(self, queues, rpc=True, own_queue=fanout)
        return self._track(
            DecodingListener(source, self, batch_size, batch_timeout, True, self._forget)
        )

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
            MessageDeliveryFailure: the request could not be stored.
            MessageSerializationError: the request does not encode as JSON.
        """
        if wait_for_reply and target.fanout:
            raise InvalidTarget("A call cannot be sent to a fanout target", target)
        mandatory = bool(transport_options and transport_options.at_least_once)
        if not wait_for_reply:
            body = wire.encode_request(ctxt, message)
            self._publish_request(target, message, body, retry, mandatory, None)
            return None
        started = time.monotonic()
        deadline = base.Deadline(timeout, started)
        expires_at = None if timeout is None else time.time() + timeout
        return self.bus.replies(deadline.remaining()).call(
            target,
            ctxt,
            message,
            lambda body, _box: self._publish_request(
                target, message, body, retry, mandatory, expires_at, deadline
            ),
            timeout,
            call_monitor_timeout,
            self.allowed_remote_exmods,
            started=started,
        )

    def _publish_request(
        self,
        target: Target,
        message: dict[str, Any],
        body: str,
        retry: int | None,
        mandatory: bool,
        expires_at: float | None,
        deadline: base.Deadline | None = None,
    ) -> None:
        topic = str(target.topic)
        if target.fanout:
            # As oslo: the fanout exchange is named after the topic, whatever target.exchange.
            exchange, key = f"{topic}_fanout", ""
        else:
            exchange = self.exchange_of(target)
            key = f"{topic}.{target.server}" if target.server else topic
        routed = self.publish(
            exchange,
            key,
            body,
            retry,
            fanout=bool(target.fanout),
            expires_at=expires_at,
            limits=self.disk_limits,
            deadline=deadline,
        )
        if mandatory and not routed:
            no_route = LookupError(
                f"NO_ROUTE: no queue is bound to {key!r} in exchange {exchange!r}"
            )
            raise MessageUndeliverable(no_route, exchange, key, message)

    def send_reply(self, reply_q: str, msg_id: str, body: str, heartbeat: bool) -> None:
        """Store a reply (or heartbeat) in a caller's reply queue; never raises.

        Replies are not held to the disk bound: they are small and taken at
        once, and refusing one would leave its caller waiting for nothing.
        """
        try:
            routed = self.publish("", reply_q, body, REPLY_RETRY)
        except MessageDeliveryFailure:
            LOG.exception("Could not send the reply to %s on %s", msg_id, reply_q)
            return
        if not routed:
            LOG.warning("Reply queue %s doesn't exist, drop reply to %s", reply_q, msg_id)

    # -- lifecycle ------------------------------------------------------------------------

    def _track(self, listener: DecodingListener[StoredMessage]) -> DecodingListener[StoredMessage]:
        return self._listeners.track(listener)

    def _forget(self, listener: DecodingListener[StoredMessage]) -> None:
        self._listeners.forget(listener)

    def cleanup(self) -> None:
        """Clean up every listener of this driver and let go of the bus file."""
        with self._lock:
            listeners = self._listeners.take_all()
            bus, self._bus = self._bus, None
        for listener in listeners:
            listener.cleanup()
        if bus is not None and self._pid == process_id():
            close_bus(self.path)
