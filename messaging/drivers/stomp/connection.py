"""One STOMP connection per broker and process, shared by every driver instance.

:data:`REGISTRY` (a :class:`~messaging.drivers.pool.ConnectionRegistry`) holds one
:class:`StompConnection` per broker key (hosts, credentials, virtual host, TLS
...): every notifier, listener and RPC client of the process on that broker uses
it, and it closes when the last one leaves.

A connection's thread (``messaging-stomp-<host>``) connects, trying the hosts in
order (failover), and reconnects with a growing wait when the connection drops;
after every (re)connection it subscribes again to every live subscription.
How it opens a connection (versions, ``host`` header): :mod:`.handshake`.
MESSAGE frames are routed to their subscription by the ``subscription`` header;
one for a subscription that is gone is given back (NACK, or sent again and
acknowledged), never dropped. Every SEND asks for a RECEIPT and waits for it
(RabbitMQ sends it once the message is routed), so a send that returns was
taken by the broker; one whose receipt does not come is sent again on the next
connection (at least once).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import stomp as stomp_untyped  # type: ignore[import-untyped]

from messaging import wire
from messaging.drivers import base
from messaging.drivers.pool import ConnectionRegistry
from messaging.drivers.replies import ReplyWaiters
from messaging.drivers.stomp.acks import AckLedger
from messaging.drivers.stomp.destinations import give_back_destination
from messaging.drivers.stomp.handshake import Hello, hellos, worth_another_try
from messaging.drivers.stomp.options import StompSettings
from messaging.drivers.stomp.refusals import login_refusal, refusal_of
from messaging.exceptions import BrokerRefusal, MessageDeliveryFailure

__all__ = ["PASSCODES", "REGISTRY", "Delivery", "PasscodeFilter", "StompConnection", "Subscription"]

LOG = logging.getLogger(__name__)
stomp: Any = stomp_untyped
#: Closed subscriptions remembered per connection, for the messages still coming to them.
CLOSED_REMEMBERED = 1024
#: Seconds a refused declaration is remembered: sends needing it fail at once meanwhile.
REFUSAL_MEMORY = 60.0


class PasscodeFilter(logging.Filter):
    """Masks passwords in the records of stomp.py's logger (``stomp.py``).

    stomp.py logs every frame it sends at DEBUG, the CONNECT frame's ``passcode``
    header included (its own masking expects a space after the colon, which it
    never writes). This filter, installed on that logger when the driver is
    imported, replaces the value of any ``passcode:`` header, and any password a
    connection of this process uses (as it is, as STOMP escapes it and as a repr
    shows it), with ``****``.
    """

    _HEADER = re.compile(r"(passcode:).*?(?=\\n|\\r|['\"\n]|$)")

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, password: str) -> None:
        """Mask ``password`` too, in every form a stomp.py record may show it."""
        if len(password) < 3:  # shorter ones would mask half of every line
            return
        escaped = (
            password.replace("\\", "\\\\")
            .replace(":", "\\c")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
        for form in (password, escaped):
            self._secrets.update({form, repr(form)[1:-1], repr(form.encode())[2:-1]})

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record's message; never drops a record."""
        message = record.getMessage()
        masked = self._HEADER.sub(r"\1****", message)
        for secret in sorted(self._secrets, key=len, reverse=True):
            masked = masked.replace(secret, "****")
        if masked != message:
            record.msg, record.args = masked, None
        return True


#: The filter on stomp.py's logger.
PASSCODES = PasscodeFilter()
logging.getLogger("stomp.py").addFilter(PASSCODES)


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

    @property
    def queue(self) -> str:
        """Where it came from, for logs (its destination)."""
        return self.destination

    @property
    def redelivered(self) -> bool:
        """Whether the broker says it delivered it before (RabbitMQ's ``redelivered``)."""
        return self.headers.get("redelivered") == "true"


@dataclass(eq=False)
class Subscription:
    """A subscription, subscribed again after every reconnection.

    Attributes:
        destination: what to subscribe to.
        headers: extra SUBSCRIBE headers.
        ack: the ack mode (``auto``, ``client``, ``client-individual``).
        handler: called on the connection's receiving thread for each message; must not block.
        id: the subscription id.
        on_refused: called (on the receiving thread) when the broker refuses to
            subscribe again after a reconnection; the subscription is then dropped.
    """

    destination: str
    headers: dict[str, str]
    ack: str
    handler: Callable[[Delivery], None]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    on_refused: Callable[[BrokerRefusal], None] | None = None


class _Refused(ConnectionError):
    """A connection attempt that failed; ``another_try``: another way may work."""

    def __init__(self, message: str, another_try: bool = False) -> None:
        super().__init__(message)
        self.another_try = another_try


class _Receipt:
    def __init__(
        self, what: str, subscription: str | None = None, queue: str | None = None
    ) -> None:
        self.what = what
        self.subscription = subscription
        self.queue = queue  # the queue a SUBSCRIBE declares, which an ERROR may name
        self.event = threading.Event()
        self.error: str | None = None
        self.refusal: BrokerRefusal | None = None


class StompConnection:
    """A shared STOMP connection with its own connecting thread.

    Args:
        settings: where and how to connect.

    Attributes:
        settings: where and how to connect.
        generation: how many times it connected (deliveries carry it).
        version: the STOMP version spoken now.
        server: the broker's ``server`` header (``RabbitMQ/3.12.1``, ``coilmq/1.1.0``...).
        hello: how the last connection was opened (version and ``host`` header).
    """

    def __init__(self, settings: StompSettings) -> None:
        self.settings = settings
        PASSCODES.add(settings.password)
        self.generation = 0
        self.version = settings.stomp_version
        self.server = ""
        self.hello: Hello | None = None
        #: Why the broker refuses the login, while it does (sends fail at once meanwhile).
        self.refused: BrokerRefusal | None = None
        self._hellos = hellos(settings)
        self._lock = threading.RLock()
        self._subs: dict[str, Subscription] = {}
        self._ledgers: dict[str, AckLedger[Delivery]] = {}
        self._orphans: collections.deque[Delivery] = collections.deque()
        # Subscriptions closed on this connection -> where their messages go back.
        self._closed: collections.OrderedDict[str, str | None] = collections.OrderedDict()
        self._declaring: set[str] = set()
        self._receipts: dict[str, _Receipt] = {}
        self._connected = threading.Event()
        # Notified when a connection is made or its login refused (under self._lock).
        self._changed = threading.Condition(self._lock)
        self._last_error = ""
        # Connection attempts that failed, and whether the thread now waits out a
        # backoff after one (no attempt under way): a send with a finite retry
        # counts connection attempts (see _wait_connected).
        self._failed_attempts = 0
        self._backing_off = False
        self._connect_answer = threading.Event()
        self._connect_error: str | None = None
        self._flavor_known = threading.Event()
        self._closing = threading.Event()
        self._wake = threading.Event()
        self._declared: set[tuple[str, str]] = set()
        self._refused_declarations: dict[tuple[str, str], tuple[float, BrokerRefusal]] = {}
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

        Waits up to ``timeout`` for the first connection (not past a refused
        login, which sends and listeners then raise at once); ``generic`` if it
        does not come.
        """
        if self.settings.flavor != "auto":
            return self.settings.flavor
        with self._changed:
            self._changed.wait_for(
                lambda: self._flavor_known.is_set() or self.refused is not None, timeout
            )
            refused = self.refused
        if not self._flavor_known.is_set():
            LOG.warning(
                "No connection to %s (%s): assuming a generic STOMP broker "
                "(set [oslo_messaging_stomp] flavor to be sure)",
                self.settings.redacted,
                refused if refused is not None else f"none within {timeout}s",
            )
            return "generic"
        return "rabbitmq" if self.server.lower().startswith("rabbitmq") else "generic"

    @property
    def supports_nack(self) -> bool:
        """Whether NACK puts a message back (STOMP 1.1+ on a broker that implements it)."""
        return self.version != "1.0" and self.server.lower().startswith("rabbitmq")

    @property
    def holds_one_unacked(self) -> bool:
        """Whether the broker sends a subscription its next message only once the last is acked.

        CoilMQ does (in ``client`` mode, the only one in which it tracks acknowledgements).
        """
        return self.server.lower().startswith("coilmq")

    # -- the connection's thread --------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._closing.is_set():
            if self._connected.is_set():
                self._wake.wait(1.0)
                self._wake.clear()
                self._give_back_orphans()
                continue
            with self._changed:
                self._backing_off = False
            try:
                self._connect()
                failures = 0
            except Exception as exc:
                with self._changed:
                    self._last_error = f"{type(exc).__name__}: {exc}"
                    self.refused = login_refusal(f"the login to {self.settings.redacted}", str(exc))
                    self._failed_attempts += 1
                    self._backing_off = True
                    self._changed.notify_all()
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

    def _new_stomp(self, hello: Hello) -> Any:
        heartbeats = (self.settings.heartbeat_send, self.settings.heartbeat_receive)
        cls = stomp.Connection12 if hello.version == "1.2" else stomp.Connection11
        conn = cls(
            list(self.settings.hosts),
            prefer_localhost=False,
            try_loopback_connect=False,
            reconnect_attempts_max=1,
            timeout=self.settings.connect_timeout,
            heartbeats=heartbeats,
        )
        if self.settings.ssl:
            conn.set_ssl(
                for_hosts=list(self.settings.hosts),
                key_file=self.settings.ssl_key_file or None,
                cert_file=self.settings.ssl_cert_file or None,
                ca_certs=self.settings.ssl_ca_file or None,
            )
        conn.set_listener("messaging", _Events(self, conn, hello))
        return conn

    def _open(self, hello: Hello) -> Any:
        """A stomp.py connection opened with ``hello``.

        Raises:
            _Refused: no answer, or a refusal.
        """
        conn = self._new_stomp(hello)
        self._connect_answer.clear()
        self._connect_error = None
        try:
            conn.connect(self.settings.username, self.settings.password, wait=False)
        except stomp.exception.ConnectFailedException:
            # stomp.py's exception says nothing: find out what the hosts answer.
            raise ConnectionError(f"cannot connect: {self._unreachable()}") from None
        if not self._connect_answer.wait(self.settings.connect_timeout):
            self._drop(conn)
            raise _Refused(f"no CONNECTED frame within {self.settings.connect_timeout}s")
        if self._connect_error is not None:
            self._drop(conn)
            raise _Refused(
                f"{hello} refused: {self._connect_error}", worth_another_try(self._connect_error)
            )
        return conn

    def _unreachable(self) -> str:
        """What each host answers to a TCP connection, for an error message."""
        answers = []
        for host, port in self.settings.hosts:
            try:
                socket.create_connection((host, port), self.settings.connect_timeout).close()
                answers.append(f"{host}:{port} accepts TCP connections")
            except OSError as exc:
                answers.append(f"{host}:{port}: {exc.strerror or type(exc).__name__}")
        return "; ".join(answers)

    def _connect(self) -> None:
        self._disconnect()
        refusals: list[str] = []
        for hello in list(self._hellos):
            try:
                conn = self._open(hello)
                break
            except _Refused as exc:
                refusals.append(str(exc))
                if not exc.another_try:
                    raise ConnectionError("; ".join(refusals)) from None
                LOG.info("%s: %s; trying the next way", self.settings.redacted, exc)
        else:
            raise ConnectionError("; ".join(refusals))
        # The next reconnection starts with what worked.
        self._hellos.remove(hello)
        self._hellos.insert(0, hello)
        with self._lock:
            self._conn = conn
            self.hello = hello
            self.version = hello.version
            self.generation += 1
            self._declared.clear()
            self._ledgers = {
                sub.id: AckLedger() for sub in self._subs.values() if sub.ack == "client"
            }
            self._orphans.clear()
            self._closed.clear()
            for sub in self._subs.values():
                # With a receipt, so that a refusal names the subscription it is about.
                name, _receipt = self._expect(
                    f"SUBSCRIBE {sub.destination}", sub.id, _queue_of(sub.destination, sub.headers)
                )
                self._subscribe_frame(sub, receipt=name)
            self._connected.set()
            self.refused = None
            self._changed.notify_all()
        self._flavor_known.set()
        if self.generation > 1:
            LOG.info(
                "Reconnected to %s; subscribed again to %d destination(s)",
                self.settings.redacted,
                len(self._subs),
            )

    def _drop(self, conn: Any) -> None:
        try:
            conn.transport.disconnect_socket()
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
        failed = [receipt] if receipt is not None else self._receipts_about(message)
        for receipt in failed:
            receipt.error = message
            receipt.refusal = refusal_of(receipt.what, message)
            receipt.event.set()
            if receipt.refusal is not None and receipt.subscription is not None:
                self._refused_again(receipt.subscription, receipt.refusal)
        if not self._connect_answer.is_set():
            self._connect_error = message or "ERROR frame"
            self._connect_answer.set()

    def _receipts_about(self, message: str) -> list[_Receipt]:
        # RabbitMQ's ERROR for a refused SUBSCRIBE carries no receipt-id, but names
        # the queue: the receipts of the SUBSCRIBE frames declaring it are failed.
        match = _QUEUE_NAMED.search(message)
        if match is None:
            return []
        name = match.group(1)
        about = [n for n, r in list(self._receipts.items()) if r.queue == name]
        return [r for n in about if (r := self._receipts.pop(n, None)) is not None]

    def _refused_again(self, sid: str, refusal: BrokerRefusal) -> None:
        # Dropped, so that the next reconnection does not subscribe to it again.
        with self._lock:
            sub = self._subs.pop(sid, None)
            self._ledgers.pop(sid, None)
        if sub is None:
            return
        LOG.error("%s; no longer subscribed to %s", refusal, sub.destination)
        if sub.on_refused is not None:
            sub.on_refused(refusal)

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
        """Hand a MESSAGE to its subscription; one of a subscription that is gone goes back."""
        headers = {str(k): str(v) for k, v in frame.headers.items()}
        delivery = Delivery(
            self.generation,
            headers.get("subscription", ""),
            headers.get("destination", ""),
            headers,
            frame.body if isinstance(frame.body, str) else frame.body.decode("utf-8"),
        )
        with self._lock:
            sub = self._subs.get(delivery.subscription)
            ledger = self._ledgers.get(delivery.subscription)
            if ledger is not None:
                ledger.received(delivery)
        if sub is not None:
            try:
                sub.handler(delivery)
                return
            except Exception:
                LOG.exception("The handler of %s failed", sub.destination)
            if sub.ack == "auto":
                return  # the broker counts it as delivered
        if delivery.subscription in self._declaring and self.supports_nack:
            self._settle(delivery, nack=True)
        elif sub is None and delivery.subscription not in self._closed:
            LOG.warning(
                "A message of unknown subscription %s is left unacknowledged (the broker "
                "gives it again once the connection closes)",
                delivery.subscription,
            )
        else:
            # Giving it back means sending it again, which waits for a receipt that
            # this thread delivers: the connection's thread does it.
            self._orphans.append(delivery)
            self._wake.set()

    # -- any thread -----------------------------------------------------------------------

    def _subscribe_frame(self, sub: Subscription, receipt: str | None) -> None:
        headers = dict(sub.headers)
        if receipt is not None:
            headers["receipt"] = receipt
        self._conn.subscribe(sub.destination, id=sub.id, ack=sub.ack, headers=headers)

    def _expect(
        self, what: str, subscription: str | None = None, queue: str | None = None
    ) -> tuple[str, _Receipt]:
        name = uuid.uuid4().hex
        if queue is not None:
            what = f"queue {queue!r} ({what})"
        receipt = self._receipts[name] = _Receipt(what, subscription, queue)
        return name, receipt

    def _wait(self, receipt: _Receipt, deadline: base.Deadline | None = None) -> None:
        """Wait for a receipt, ``send_timeout`` at most (and until ``deadline``).

        Raises:
            BrokerRefusal: the broker refused it for good.
            ConnectionError: no receipt in time, or another error.
        """
        what = receipt.what
        limit = self.settings.send_timeout
        if deadline is not None:
            limit = deadline.remaining(limit) or 0.0
        if not receipt.event.wait(limit):
            raise ConnectionError(f"no RECEIPT for {what} within {limit:g}s")
        if receipt.refusal is not None:
            raise receipt.refusal
        if receipt.error is not None:
            raise ConnectionError(f"{what}: {receipt.error}")

    def _wait_connected(
        self, deadline: base.Deadline, attempt: bool = False, first: bool = False
    ) -> None:
        """Return once connected; raise at once if the broker refuses the login.

        Args:
            deadline: when to stop waiting (at most ``connect_timeout`` from now).
            attempt: the try of a send with a finite ``retry``, which counts
                connection attempts: it ends with the next attempt that fails.
            first: the send's first try: a failed attempt whose backoff is under
                way counts as its outcome (the send does not wait for the next).

        Raises:
            BrokerRefusal: the broker refused the last login attempt.
            ConnectionError: not connected within ``connect_timeout`` (or the
                deadline), or (``attempt``) the connection attempt failed.
        """
        limit = deadline.remaining(self.settings.connect_timeout)
        with self._changed:
            failed = self._failed_attempts

            def attempt_failed() -> bool:
                return attempt and ((first and self._backing_off) or self._failed_attempts > failed)

            self._changed.wait_for(
                lambda: (
                    self._connected.is_set()
                    or self.refused is not None
                    or self._closing.is_set()
                    or attempt_failed()
                ),
                limit,
            )
            if self._connected.is_set():
                return
            if self.refused is not None:
                raise self.refused
            last = self._last_error or "no attempt finished yet"
            if attempt_failed():
                raise ConnectionError(
                    f"not connected to {self.settings.redacted} (last attempt: {last})"
                )
        raise ConnectionError(
            f"not connected to {self.settings.redacted} within {limit:g} s (last attempt: {last})"
        )

    def subscribe(self, sub: Subscription) -> None:
        """Subscribe now (waiting for the broker's receipt) and after every reconnection.

        Raises:
            BrokerRefusal: the broker refused the subscription (or the login) for
                good; the subscription is dropped.
        """
        if self.refused is not None:
            raise self.refused
        with self._lock:
            self._subs[sub.id] = sub
            if sub.ack == "client":
                self._ledgers[sub.id] = AckLedger()
            if not self._connected.is_set():
                return
            name, receipt = self._expect(
                f"SUBSCRIBE {sub.destination}", queue=_queue_of(sub.destination, sub.headers)
            )
            self._subscribe_frame(sub, name)
        try:
            self._wait(receipt)
        except BrokerRefusal:
            with self._lock:
                self._subs.pop(sub.id, None)
                self._ledgers.pop(sub.id, None)
            raise
        except ConnectionError as exc:
            LOG.warning("%s; subscribing again after reconnecting", exc)

    def _remember_closed(self, sid: str, destination: str, headers: dict[str, str]) -> None:
        self._closed[sid] = give_back_destination(destination, headers)
        while len(self._closed) > CLOSED_REMEMBERED:
            self._closed.popitem(last=False)

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop a subscription (what it still receives is given back)."""
        with self._lock:
            if self._subs.pop(sub.id, None) is None:
                return
            self._remember_closed(sub.id, sub.destination, sub.headers)
            ledger = self._ledgers.get(sub.id)
            if ledger is not None and not ledger:
                del self._ledgers[sub.id]
            if not self._connected.is_set():
                return
            try:
                # ``destination`` is not needed by the specification, but CoilMQ requires it.
                self._conn.unsubscribe(id=sub.id, headers={"destination": sub.destination})
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
        refused = self._refused_declarations.get(key)
        if refused is not None and time.monotonic() < refused[0]:
            raise refused[1]  # refused a moment ago: not asked again (each costs a reconnection)
        sid = f"declare-{uuid.uuid4().hex}"
        with self._lock:
            if not self._connected.is_set():
                raise ConnectionError("not connected")
            name, receipt = self._expect(
                f"SUBSCRIBE {destination} to declare it", queue=_queue_of(destination, headers)
            )
            self._declaring.add(sid)
            self._conn.subscribe(
                destination, id=sid, ack="client-individual", headers={**headers, "receipt": name}
            )
        try:
            self._wait(receipt)
        except BrokerRefusal as refusal:
            self._refused_declarations[key] = (time.monotonic() + REFUSAL_MEMORY, refusal)
            raise
        finally:
            with self._lock:
                self._declaring.discard(sid)
                self._remember_closed(sid, destination, headers)
                if self._connected.is_set():
                    self._conn.unsubscribe(id=sid, headers={"destination": destination})
        self._declared.add(key)

    def send(
        self,
        destination: str,
        body: str,
        headers: dict[str, str],
        retry: int | None,
        before: Callable[[], None] | None = None,
        deadline: base.Deadline | None = None,
    ) -> None:
        """Send and wait for the broker's receipt, on a new connection as ``retry`` allows.

        Tries stop at ``publish_timeout`` (or ``deadline``, if earlier), whatever
        ``retry`` says.

        Args:
            destination: where to.
            body: the JSON text.
            headers: extra SEND headers.
            retry: oslo's retry count (None or -1: as long as ``publish_timeout`` allows).
            before: run first on each attempt (declarations).
            deadline: an earlier bound (a call's timeout).

        Raises:
            MessageDeliveryFailure: no receipt in the tries allowed, or an ERROR.
            BrokerRefusal: the broker refused the send, a declaration before it,
                or the login, in a way that retrying cannot heal (at once).
        """
        bound = (deadline or base.Deadline(None)).within(self.settings.publish_timeout)
        tries = base.Attempts(retry, bound)
        while True:
            tries.begin()
            try:
                if self._closing.is_set():
                    raise MessageDeliveryFailure(
                        f"The connection to {self.settings.redacted} is closed"
                    )
                self._wait_connected(
                    bound, attempt=tries.allowed != float("inf"), first=tries.tries == 1
                )
                if before is not None:
                    before()
                with self._lock:
                    if not self._connected.is_set():
                        raise ConnectionError("the connection dropped")
                    name, receipt = self._expect(f"SEND {destination}")
                    try:
                        self._conn.send(
                            destination,
                            body,
                            content_type="application/json",
                            headers={**headers, "receipt": name},
                        )
                    except (OSError, stomp.exception.StompException) as exc:
                        raise ConnectionError(
                            f"the connection dropped while sending ({type(exc).__name__}: {exc})"
                        ) from exc
                self._wait(receipt, bound)
                return
            except (ConnectionError, OSError, stomp.exception.StompException) as exc:
                if not tries.another():
                    raise MessageDeliveryFailure(
                        f"Unable to send to {destination} on {self.settings.redacted} "
                        f"{tries.spent()}: {exc}"
                    ) from exc
                LOG.warning("Sending to %s failed (%s); trying again", destination, exc)
                self._wake.set()

    def _settle_frame(self, delivery: Delivery, nack: bool) -> None:
        headers = {
            "message-id": delivery.headers.get("message-id", ""),
            "subscription": delivery.subscription,
        }
        if self.version == "1.2":
            if "ack" in delivery.headers:
                headers = {"id": delivery.headers["ack"]}
            else:
                # The broker left out STOMP 1.2's ack header: the message is named the
                # 1.1 way, with the subscription as id too (what CoilMQ reads).
                headers["id"] = delivery.subscription
        self._conn.send_frame("NACK" if nack else "ACK", headers)

    def _settle(self, delivery: Delivery, nack: bool) -> bool:
        with self._lock:
            if delivery.generation != self.generation or not self._connected.is_set():
                return False  # the broker gives it again on the new connection
            target: Delivery | None = delivery
            ledger = self._ledgers.get(delivery.subscription)
            if ledger is not None:
                target = ledger.settle(delivery)
                if not ledger and delivery.subscription not in self._subs:
                    del self._ledgers[delivery.subscription]
            if target is None:
                return True  # acknowledged with a later one
            try:
                self._settle_frame(target, nack)
            except Exception:
                LOG.debug("Settling a message failed", exc_info=True)
                return False
            return True

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery; never raises."""
        self._settle(delivery, nack=False)

    def requeue(self, delivery: Delivery) -> None:
        """Give a delivery back for another delivery; never raises.

        NACK where the broker implements it, acknowledgements are individual and
        the subscription is open; elsewhere the message is sent again to the
        queue it came from and then acknowledged (a crash between the two
        duplicates it, never loses it).
        """
        with self._lock:
            live = delivery.subscription in self._subs
            individual = delivery.subscription not in self._ledgers
        if live and individual and self.supports_nack:
            self._settle(delivery, nack=True)
            return
        self._give_back(delivery, retry=3)

    def _give_back(self, delivery: Delivery, retry: int) -> None:
        if delivery.generation != self.generation:
            return  # not acknowledged on its connection: the broker gives it again
        with self._lock:
            sub = self._subs.get(delivery.subscription)
            if sub is not None:
                where = give_back_destination(sub.destination, sub.headers)
            else:
                where = self._closed.get(delivery.subscription)
        if where is not None:
            try:
                self.send(where, delivery.body, {"persistent": "true"}, retry=retry)
            except MessageDeliveryFailure:
                LOG.error("Could not give back a message of %s; left unacknowledged", where)
                return
        if sub is None and self.server.lower().startswith("rabbitmq"):
            # RabbitMQ refuses to settle a message of a closed subscription: it stays
            # unacknowledged until the connection closes, then comes again (a duplicate).
            return
        self._settle(delivery, nack=False)

    def _give_back_orphans(self) -> None:
        while self._orphans and self._connected.is_set():
            try:
                delivery = self._orphans.popleft()
            except IndexError:
                return
            LOG.debug("Giving back a message of closed subscription %s", delivery.subscription)
            self._give_back(delivery, retry=0)

    def replies(
        self,
        make_subscription: Callable[[], tuple[str, dict[str, str], str]],
        limits: wire.Limits = wire.DEFAULT_LIMITS,
    ) -> tuple[ReplyWaiters, str]:
        """The process's reply waiters on this broker and their destination (made on first use).

        Args:
            make_subscription: makes the reply destination, its SUBSCRIBE headers and ack mode.
            limits: the bounds replies are decoded with (the first caller's).
        """
        with self._lock:
            if self._replies is not None:
                return self._replies
            destination, headers, ack = make_subscription()
            waiters = ReplyWaiters(destination, limits)
            self._replies = (waiters, destination)

            def deliver(delivery: Delivery) -> None:
                waiters.deliver(delivery.body)
                if ack != "auto":
                    self.ack(delivery)

            sub = Subscription(destination, headers, ack, deliver)
        self.subscribe(sub)
        return waiters, destination

    def close(self) -> None:
        """Disconnect and stop the connection's thread."""
        self._closing.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(self.settings.connect_timeout + self.settings.send_timeout)


_QUEUE_NAMED = re.compile(r"queue '([^']+)'")


def _queue_of(destination: str, headers: dict[str, str]) -> str | None:
    """The queue a SUBSCRIBE to ``destination`` declares on RabbitMQ, if it has a known name."""
    if "x-queue-name" in headers:
        return headers["x-queue-name"]
    for prefix in ("/queue/", "/amq/queue/"):
        if destination.startswith(prefix):
            return destination[len(prefix) :]
    return None


class _Events(stomp_untyped.ConnectionListener):  # type: ignore[misc]
    """stomp.py's callbacks for one stomp.py connection, passed on to the shared one."""

    def __init__(self, owner: StompConnection, conn: Any, hello: Hello) -> None:
        self.owner = owner
        self.conn = conn
        self.hello = hello

    def on_connecting(self, host_and_port: tuple[str, int]) -> None:
        # Without it, a small frame written while another is unacknowledged waits
        # for the broker's delayed TCP ACK (tens of ms): an ACK followed by a SEND.
        with contextlib.suppress(OSError, AttributeError):
            self.conn.transport.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def on_send(self, frame: Any) -> None:
        if frame.cmd in ("CONNECT", "STOMP"):
            host = self.hello.host_header(str(self.conn.transport.current_host_and_port[0]))
            frame.headers.pop("host", None)
            if host is not None:
                frame.headers["host"] = host

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
