"""Listeners of the STOMP driver: subscriptions feeding one queue, polled by a server."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from messaging import wire
from messaging.drivers import base
from messaging.drivers.delivered import encode_reply, undecodable
from messaging.drivers.stomp.connection import Delivery, Subscription

if TYPE_CHECKING:
    from messaging.drivers.stomp.driver import StompDriver

__all__ = ["PARKING_DESTINATION", "StompListener"]

LOG = logging.getLogger(__name__)
#: Where a message that is not a readable body goes (instead of being dropped).
PARKING_DESTINATION = "/queue/messaging.unreadable"


class StompListener(base.Listener):
    """Consumes some subscriptions of the driver's shared connection.

    Args:
        driver: the driver (for the connection and replies).
        subscriptions: ``(destination, headers)`` pairs to subscribe to.
        batch_size: see :class:`~messaging.drivers.base.Listener`.
        batch_timeout: see :class:`~messaging.drivers.base.Listener`.
        rpc: RPC requests (acknowledged on receipt, replied to) rather than notifications.
    """

    def __init__(
        self,
        driver: StompDriver,
        subscriptions: Sequence[tuple[str, dict[str, str]]],
        batch_size: int,
        batch_timeout: float | None,
        rpc: bool,
    ) -> None:
        super().__init__(batch_size, batch_timeout)
        self.driver = driver
        self.connection = driver.connection
        self.rpc = rpc
        self._inbox: queue.Queue[Delivery | None] = queue.Queue()
        self._stopped = threading.Event()
        self._closed = False
        ack = driver.destinations.ack_mode
        self.subscriptions = [
            Subscription(destination, headers, ack, self._inbox.put, on_refused=self._refused)
            for destination, headers in subscriptions
        ]
        try:
            for sub in self.subscriptions:
                self.connection.subscribe(sub)
        except BaseException:
            # Refused (BrokerRefusal): the start fails; what was subscribed goes.
            for sub in self.subscriptions:
                self.connection.unsubscribe(sub)
            raise

    def _refused(self, refusal: Exception) -> None:
        # The broker refused to subscribe again after a reconnection: this
        # listener receives nothing more, and says so (its server stops polling).
        LOG.error("A listener stops: %s", refusal)
        self.stop()

    def poll_one(self, timeout: float | None) -> base.IncomingMessage | None:
        """Return the next message, or None after ``timeout`` or once stopped."""
        while not self._stopped.is_set():
            try:
                delivery = self._inbox.get(timeout=timeout)
            except queue.Empty:
                return None
            if delivery is None:
                return None
            incoming = self._incoming(delivery)
            if incoming is not None:
                return incoming
        return None

    def _incoming(self, delivery: Delivery) -> base.IncomingMessage | None:
        try:
            decoded = wire.decode(delivery.body, self.driver.limits)
        except Exception as exc:  # RecursionError, MemoryError...: nothing may stall here
            undecodable(exc, delivery.body, delivery.destination)
            LOG.error("Parking it in %s", PARKING_DESTINATION)
            try:
                self.connection.send(PARKING_DESTINATION, delivery.body, {}, retry=3)
            except Exception:
                LOG.exception("Could not park it; leaving it unacknowledged")
                return None
            self.connection.ack(delivery)
            return None
        if self.rpc:
            return _RpcMessage(self.driver, self.connection, delivery, decoded)
        return _Notification(self.connection, delivery, decoded)

    def stop(self) -> None:
        """Wake a blocked :meth:`poll_one`; no more messages are returned."""
        self._stopped.set()
        self._inbox.put(None)

    def cleanup(self) -> None:
        """Unsubscribe and give back what was received but not handed out."""
        self.stop()
        if self._closed:
            return
        self._closed = True
        # Unsubscribed first: a NACK now would have RabbitMQ deliver the message
        # straight back to this subscription, and strand it there once it closes.
        for sub in self.subscriptions:
            self.connection.unsubscribe(sub)
        self._give_back_inbox()
        self.driver.forget(self)

    def _give_back_inbox(self) -> None:
        while True:
            try:
                delivery = self._inbox.get_nowait()
            except queue.Empty:
                return
            if delivery is not None:
                self.connection.requeue(delivery)


class _Notification(base.IncomingMessage):
    def __init__(self, connection: Any, delivery: Delivery, decoded: wire.Decoded) -> None:
        super().__init__(decoded.ctxt, decoded.message, decoded.unique_id)
        self._connection = connection
        self._delivery = delivery

    def acknowledge(self) -> None:
        self._connection.ack(self._delivery)

    def requeue(self) -> None:
        self._connection.requeue(self._delivery)


class _RpcMessage(base.RpcIncomingMessage):
    def __init__(
        self, driver: StompDriver, connection: Any, delivery: Delivery, decoded: wire.Decoded
    ) -> None:
        super().__init__(decoded.ctxt, decoded.message, decoded.msg_id, decoded.client_timeout)
        self._driver = driver
        self._connection = connection
        self._delivery = delivery
        self._reply_q = decoded.reply_q

    def acknowledge(self) -> None:
        self._connection.ack(self._delivery)

    def requeue(self) -> None:
        self._connection.requeue(self._delivery)

    def reply(self, reply: Any = None, failure: BaseException | None = None) -> None:
        self._send(reply, failure, ending=True)

    def heartbeat(self) -> None:
        self._send(None, None, ending=False)

    def _send(self, result: Any, failure: BaseException | None, ending: bool) -> None:
        if self.msg_id is None or not self._reply_q:
            return
        method = self.message.get("method")
        body = encode_reply(self.msg_id, method, self._driver.limits, result, failure, ending)
        self._driver.send_reply(self._reply_q, self.msg_id, body)
