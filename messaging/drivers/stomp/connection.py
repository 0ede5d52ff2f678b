"""One STOMP connection per broker and process, shared by every driver instance.

:data:`REGISTRY` (a :class:`~messaging.drivers.pool.ConnectionRegistry`) holds one
:class:`StompConnection` per broker key (hosts, credentials, virtual host, TLS
...): every notifier, listener and RPC client of the process on that broker uses
it, and it closes when the last one leaves.

A connection's thread (``messaging-stomp-<host>``) connects, trying the hosts in
order (failover), and reconnects with a growing wait when the connection drops;
after every (re)connection it subscribes again to every live subscription.
MESSAGE frames are routed to their subscription by the ``subscription`` header.
Every SEND asks for a RECEIPT and waits for it (RabbitMQ sends it once the
message is routed), so a send that returns was taken by the broker; one whose
receipt does not come is sent again on the next connection (at least once).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import stomp as stomp_untyped  # type: ignore[import-untyped]

from messaging.drivers import base
from messaging.drivers.pool import ConnectionRegistry
from messaging.drivers.replies import ReplyWaiters
from messaging.drivers.stomp.options import StompSettings
from messaging.exceptions import MessageDeliveryFailure

__all__ = ["REGISTRY", "Delivery", "StompConnection", "Subscription"]

LOG = logging.getLogger(__name__)
stomp: Any = stomp_untyped


@dataclass(frozen=True, eq=False)
class Delivery:
    """A MESSAGE frame as received.

    Attributes:
        generation: the connection it came on (acks on a later one are skipped:
            the broker delivers the message again).
        subscription: the subscription id.
        destination: where it was sent.
        headers: the frame's headers.
        body: the frame's body.
    """

    generation: int
    subscription: str
    destination: str
    headers: dict[str, str]
    body: str


@dataclass(eq=False)
class Subscription:
    """A subscription, subscribed again after every reconnection.

    Attributes:
        destination: what to subscribe to.
        headers: extra SUBSCRIBE headers.
        ack: the ack mode (``auto``, ``client``, ``client-individual``).
        handler: called on the connection's receiving thread for each message; must not block.
        id: the subscription id.
    """

    destination: str
    headers: dict[str, str]
    ack: str
    handler: Callable[[Delivery], None]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


class _Receipt:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: str | None = None


class StompConnection:
    """A shared STOMP connection with its own connecting thread.

    Args:
        settings: where and how to connect.
    """

    def __init__(self, settings: StompSettings) -> None:
        self.settings = settings
        self.generation = 0
        self.version = settings.stomp_version
        self.server = ""
        self._lock = threading.RLock()
        self._subs: dict[str, Subscription] = {}
        self._receipts: dict[str, _Receipt] = {}
        self._connected = threading.Event()
        self._connect_answer = threading.Event()
        self._connect_error: str | None = None
        self._flavor_known = threading.Event()
        self._closing = threading.Event()
        self._wake = threading.Event()
        self._declared: set[tuple[str, str]] = set()
        self._replies: tuple[ReplyWaiters, str] | None = None
        self._conn: Any = None
        host = settings.hosts[0][0]
        self._thread = threading.Thread(
            target=self._run, name=f"messaging-stomp-{host}", daemon=True
        )
        self._thread.start()

    # -- state ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the connection is up now."""
        return self._connected.is_set()

    def flavor(self, timeout: float) -> str:
        """The destination flavor: configured, or learnt from the broker's CONNECTED frame.

        Waits up to ``timeout`` for the first connection; ``generic`` if it does not come.
        """
        if self.settings.flavor != "auto":
            return self.settings.flavor
        if not self._flavor_known.wait(timeout):
            LOG.warning(
                "No connection to %s within %ss: assuming a generic STOMP broker "
                "(set [messaging_stomp] flavor to be sure)",
                self.settings.redacted,
                timeout,
            )
            return "generic"
        return "rabbitmq" if self.server.lower().startswith("rabbitmq") else "generic"

    @property
    def supports_nack(self) -> bool:
        """Whether NACK puts a message back (STOMP 1.1+ on a broker that implements it)."""
        return self.version != "1.0" and self.server.lower().startswith("rabbitmq")

    # -- the connection's thread --------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._closing.is_set():
            if self._connected.is_set():
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self._connect()
                failures = 0
            except Exception as exc:
                failures += 1
                delay = self.settings.backoff(failures)
                LOG.warning(
                    "Cannot connect to the STOMP broker at %s: %s. Trying again in %.1f s.",
                    self.settings.redacted,
                    exc,
                    delay,
                )
                self._closing.wait(delay)
        self._disconnect()

    def _new_stomp(self, version: str) -> Any:
        heartbeats = (self.settings.heartbeat_send, self.settings.heartbeat_receive)
        cls = stomp.Connection12 if version == "1.2" else stomp.Connection11
        conn = cls(
            list(self.settings.hosts),
            reconnect_attempts_max=1,
            timeout=self.settings.connect_timeout,
            heartbeats=heartbeats,
            vhost=self.settings.vhost,
            try_loopback_connect=False,
        )
        if self.settings.ssl:
            conn.set_ssl(
                for_hosts=list(self.settings.hosts),
                key_file=self.settings.ssl_key_file or None,
                cert_file=self.settings.ssl_cert_file or None,
                ca_certs=self.settings.ssl_ca_file or None,
            )
        conn.set_listener("messaging", _Events(self, conn))
        return conn

    def _connect(self) -> None:
        self._disconnect()
        for version in dict.fromkeys([self.settings.stomp_version, "1.1"]):
            conn = self._new_stomp(version)
            self._connect_answer.clear()
            self._connect_error = None
            conn.connect(self.settings.username, self.settings.password, wait=False)
            if not self._connect_answer.wait(self.settings.connect_timeout):
                self._drop(conn)
                raise ConnectionError(f"no CONNECTED frame within {self.settings.connect_timeout}s")
            if self._connect_error is None:
                break
            self._drop(conn)
            if "version" not in self._connect_error.lower():
                raise ConnectionError(self._connect_error)
            LOG.info("%s refused STOMP %s; asking for 1.1", self.settings.redacted, version)
        else:
            raise ConnectionError(self._connect_error or "refused")
        with self._lock:
            self._conn = conn
            self.version = version
            self.generation += 1
            self._declared.clear()
            for sub in self._subs.values():
                self._subscribe_frame(sub, receipt=None)
            self._connected.set()
        self._flavor_known.set()
        if self.generation > 1:
            LOG.info(
                "Reconnected to %s; subscribed again to %d destination(s)",
                self.settings.redacted,
                len(self._subs),
            )

    def _drop(self, conn: Any) -> None:
        try:
            conn.disconnect_socket()
        except Exception:
            LOG.debug("Dropping a STOMP connection failed", exc_info=True)

    def _disconnect(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            self._connected.clear()
        if conn is not None:
            try:
                if conn.is_connected():
                    conn.disconnect()
            except Exception:
                LOG.debug("Disconnecting failed", exc_info=True)
            self._drop(conn)

    # -- events, on stomp.py's receiving thread -------------------------------------------

    def on_connected(self, conn: Any, frame: Any) -> None:
        """The broker accepted the connection."""
        self.server = str(frame.headers.get("server", ""))
        self._connect_answer.set()

    def on_error(self, conn: Any, frame: Any) -> None:
        """An ERROR frame: fail the receipt it names, or the connection attempt."""
        message = f"{frame.headers.get('message', '')} {frame.body or ''}".strip()
        LOG.warning("The STOMP broker %s sent an error: %s", self.settings.redacted, message)
        receipt = self._receipts.pop(str(frame.headers.get("receipt-id", "")), None)
        if receipt is not None:
            receipt.error = message
            receipt.event.set()
        if not self._connect_answer.is_set():
            self._connect_error = message or "ERROR frame"
            self._connect_answer.set()

    def on_receipt(self, frame: Any) -> None:
        """A RECEIPT: wake its sender."""
        receipt = self._receipts.pop(str(frame.headers.get("receipt-id", "")), None)
        if receipt is not None:
            receipt.event.set()

    def on_disconnected(self, conn: Any) -> None:
        """The connection dropped: fail waiting sends, and have the thread reconnect."""
        with self._lock:
            if conn is not self._conn:
                return
            self._connected.clear()
        for receipt in list(self._receipts.values()):
            receipt.error = "the connection dropped"
            receipt.event.set()
        self._receipts.clear()
        if not self._closing.is_set():
            LOG.warning("Lost the connection to the STOMP broker %s", self.settings.redacted)
        self._wake.set()

    def on_message(self, conn: Any, frame: Any) -> None:
        """Hand a MESSAGE to its subscription (messages of unknown ones go back)."""
        headers = {str(k): str(v) for k, v in frame.headers.items()}
        delivery = Delivery(
            self.generation,
            headers.get("subscription", ""),
            headers.get("destination", ""),
            headers,
            frame.body if isinstance(frame.body, str) else frame.body.decode("utf-8"),
        )
        sub = self._subs.get(delivery.subscription)
        if sub is None:
            # A declaration's or a closed subscription's: not ours to handle.
            if self.supports_nack:
                self._settle(delivery, nack=True)
            return
        try:
            sub.handler(delivery)
        except Exception:
            LOG.exception("The handler of %s failed", sub.destination)

    # -- any thread -----------------------------------------------------------------------

    def _subscribe_frame(self, sub: Subscription, receipt: str | None) -> None:
        headers = dict(sub.headers)
        if receipt is not None:
            headers["receipt"] = receipt
        self._conn.subscribe(sub.destination, id=sub.id, ack=sub.ack, headers=headers)

    def _expect(self) -> tuple[str, _Receipt]:
        name = uuid.uuid4().hex
        receipt = self._receipts[name] = _Receipt()
        return name, receipt

    def _wait(self, receipt: _Receipt, what: str) -> None:
        if not receipt.event.wait(self.settings.send_timeout):
            raise ConnectionError(f"no RECEIPT for {what} within {self.settings.send_timeout}s")
        if receipt.error is not None:
            raise ConnectionError(f"{what}: {receipt.error}")

    def subscribe(self, sub: Subscription) -> None:
        """Subscribe now (waiting for the broker's receipt) and after every reconnection."""
        with self._lock:
            self._subs[sub.id] = sub
            if not self._connected.is_set():
                return
            name, receipt = self._expect()
            self._subscribe_frame(sub, name)
        try:
            self._wait(receipt, f"SUBSCRIBE {sub.destination}")
        except ConnectionError as exc:
            LOG.warning("%s; subscribing again after reconnecting", exc)

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop a subscription."""
        with self._lock:
            if self._subs.pop(sub.id, None) is None or not self._connected.is_set():
                return
            try:
                self._conn.unsubscribe(id=sub.id)
            except Exception:
                LOG.debug("UNSUBSCRIBE %s failed", sub.destination, exc_info=True)

    def declare(self, destination: str, headers: dict[str, str]) -> None:
        """Make the broker declare what subscribing to ``destination`` declares, then leave.

        Raises:
            ConnectionError: not connected, or no receipt.
        """
        key = (destination, headers.get("x-queue-name", ""))
        if key in self._declared:
            return
        sid = f"declare-{uuid.uuid4().hex}"
        with self._lock:
            if not self._connected.is_set():
                raise ConnectionError("not connected")
            name, receipt = self._expect()
            self._conn.subscribe(
                destination, id=sid, ack="client-individual", headers={**headers, "receipt": name}
            )
        self._wait(receipt, f"SUBSCRIBE {destination}")
        with self._lock:
            if self._connected.is_set():
                self._conn.unsubscribe(id=sid)
        self._declared.add(key)

    def send(
        self,
        destination: str,
        body: str,
        headers: dict[str, str],
        retry: int | None,
        before: Callable[[], None] | None = None,
    ) -> None:
        """Send and wait for the broker's receipt, on a new connection as ``retry`` allows.

        Args:
            destination: where to.
            body: the JSON text.
            headers: extra SEND headers.
            retry: oslo's retry count (None or -1: forever).
            before: run first on each attempt (declarations).

        Raises:
            MessageDeliveryFailure: no receipt in the allowed attempts, or an ERROR.
        """
        allowed = base.attempts(retry)
        tries = 0
        while True:
            tries += 1
            try:
                if self._closing.is_set():
                    raise MessageDeliveryFailure(
                        f"The connection to {self.settings.redacted} is closed"
                    )
                if not self._connected.wait(self.settings.connect_timeout):
                    raise ConnectionError(f"not connected to {self.settings.redacted}")
                if before is not None:
                    before()
                with self._lock:
                    if not self._connected.is_set():
                        raise ConnectionError("the connection dropped")
                    name, receipt = self._expect()
                    self._conn.send(
                        destination,
                        body,
                        content_type="application/json",
                        headers={**headers, "receipt": name},
                    )
                self._wait(receipt, f"SEND {destination}")
                return
            except (ConnectionError, OSError, stomp.exception.StompException) as exc:
                if tries >= allowed:
                    raise MessageDeliveryFailure(
                        f"Unable to send to {destination} on {self.settings.redacted} after "
                        f"{tries} tries: {exc}"
                    ) from exc
                LOG.warning("Sending to %s failed (%s); trying again", destination, exc)
                self._wake.set()

    def _settle(self, delivery: Delivery, nack: bool) -> bool:
        with self._lock:
            if delivery.generation != self.generation or not self._connected.is_set():
                return False  # the broker gives it again on the new connection
            try:
                if self.version == "1.2":
                    ack_id = delivery.headers.get("ack", delivery.headers.get("message-id"))
                    (self._conn.nack if nack else self._conn.ack)(ack_id)
                else:
                    (self._conn.nack if nack else self._conn.ack)(
                        delivery.headers.get("message-id"), delivery.subscription
                    )
            except Exception:
                LOG.debug("Settling a message failed", exc_info=True)
                return False
            return True

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery; never raises."""
        self._settle(delivery, nack=False)

    def requeue(self, delivery: Delivery) -> None:
        """Give a delivery back for another delivery; never raises.

        NACK where the broker implements it; elsewhere the message is sent again
        to the destination it came from and then acknowledged (a crash between
        the two duplicates it, never loses it).
        """
        if self.supports_nack:
            self._settle(delivery, nack=True)
            return
        if delivery.generation != self.generation:
            return
        try:
            self.send(delivery.destination, delivery.body, {"persistent": "true"}, retry=3)
        except MessageDeliveryFailure:
            LOG.error(
                "Could not give back a message of %s; left unacknowledged", delivery.destination
            )
            return
        self._settle(delivery, nack=False)

    def replies(self, make_destination: Callable[[], str]) -> tuple[ReplyWaiters, str]:
        """The process's reply waiters on this broker and their destination (made on first use)."""
        with self._lock:
            if self._replies is None:
                destination = make_destination()
                waiters = ReplyWaiters(destination)
                self._replies = (waiters, destination)
                sub = Subscription(destination, {}, "auto", lambda d: waiters.deliver(d.body))
            else:
                return self._replies
        self.subscribe(sub)
        return waiters, destination

    def drop_for_test(self) -> None:
        """Close the socket under the connection, as a network failure would (tests)."""
        with self._lock:
            conn = self._conn
        sock = None if conn is None else getattr(conn.transport, "socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Disconnect and stop the connection's thread."""
        self._closing.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(self.settings.connect_timeout + self.settings.send_timeout)


class _Events(stomp_untyped.ConnectionListener):  # type: ignore[misc]
    """stomp.py's callbacks for one stomp.py connection, passed on to the shared one."""

    def __init__(self, owner: StompConnection, conn: Any) -> None:
        self.owner = owner
        self.conn = conn

    def on_connected(self, frame: Any) -> None:
        self.owner.on_connected(self.conn, frame)

    def on_error(self, frame: Any) -> None:
        self.owner.on_error(self.conn, frame)

    def on_receipt(self, frame: Any) -> None:
        self.owner.on_receipt(frame)

    def on_message(self, frame: Any) -> None:
        self.owner.on_message(self.conn, frame)

    def on_disconnected(self) -> None:
        self.owner.on_disconnected(self.conn)


#: The process's STOMP connections, one per broker key.
REGISTRY: ConnectionRegistry[StompConnection] = ConnectionRegistry("stomp connections")
