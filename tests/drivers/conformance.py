"""The driver conformance suite: what every transport driver must do, through the public API.

Each driver's test module subclasses the mixins with a class named ``Test...``
(pytest collects only those) and says how to reach its service::

    class TestRabbitNotifications(NotificationConformance):
        capabilities = Capabilities(requeue=True, pools=True, fanout=True, rpc=True)

        def setup_broker(self) -> None:
            require_rabbitmq()

        def transport_url(self) -> str:
            return "rabbit://guest:guest@127.0.0.1:5672/"

The suite talks only to the public API (transports from a URL, ``Notifier``,
listeners, ``NotificationFilter``, RPC clients and servers, exceptions), never
to driver internals, so a test means the same on every driver. Every test uses
topics, pools and exchanges named with a fresh uuid, so tests never see each
other's messages even on a shared broker. Every wait is bounded by
:attr:`DriverHarness.wait_timeout`; received messages are collected in queues
and waited for, never slept on. Servers and transports a test creates are
stopped and cleaned up after it, whether it passed or not.

Hooks and settings of a subclass:

- :meth:`~DriverHarness.transport_url` (required): the URL of the service; called
  once per test, so it may name a fresh namespace (a virtual host) each time.
- :meth:`~DriverHarness.setup_broker` / :meth:`~DriverHarness.teardown_broker`:
  run before / after each test (after its servers and transports are released).
- :meth:`~DriverHarness.make_conf`: the configuration of each transport.
- :attr:`~DriverHarness.capabilities`: the capabilities the driver is expected to
  declare. Features the driver does not declare are skipped with the reason;
  setting this attribute makes :meth:`NotificationConformance.test_declared_capabilities`
  fail when the driver stops declaring one, so nothing gets skipped by accident.
- :attr:`~DriverHarness.wait_timeout`: the bound of every wait, in seconds.
- :meth:`~DriverHarness.inject_raw` (required): put a raw body, as it is, in the
  queue a listener or server of a topic takes from, the way a peer without this
  library (or an attacker) could; the poison-input tests send through it.
- :meth:`~DriverHarness.parked_count`: how many bodies the driver parked, for a
  driver that parks what it cannot decode (None: it acknowledges them). A test
  that sends poison adds to :attr:`~DriverHarness.parked_expected`, which the
  driver module's teardown compares with what the broker holds.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import pytest
from oslo_config import cfg
from oslo_context import context as oslo_context

import messaging
from messaging.conf import register_transport_opts
from messaging.drivers.base import Capabilities
from messaging.exceptions import MessageTooLarge
from messaging.server import MessageHandlingServer
from tests.drivers import remote_exc

__all__ = ["Collector", "DriverHarness", "NotificationConformance", "RPCConformance"]

T = TypeVar("T")

REMOTE_EXC_MODULE = remote_exc.__name__
SENTINEL_EVENT = "conformance.sentinel"

#: The password of :meth:`DriverHarness.refused_url`: no error may show it.
WRONG_PASSWORD = "conformance-WRONG-PASSWORD"
#: ``max_message_size`` of the transports of the size tests, in bytes.
SIZE_BOUND = 64 * 1024
#: How many poison bodies the flood tests send: more than any driver's prefetch,
#: so that a listener that left them unsettled would stall.
POISON_FLOOD = 256
#: JSON nested 100,000 deep: json.loads raises RecursionError on it.
DEEP_BODY = "[" * 100_000 + "]" * 100_000


def _notification_body(payload: Any) -> str:
    inner = {
        "message_id": str(uuid.uuid4()),
        "publisher_id": "conformance.raw",
        "event_type": "conformance.raw",
        "priority": "INFO",
        "payload": payload,
        "timestamp": "2026-01-01 00:00:00.000000",
        "_unique_id": uuid.uuid4().hex,
    }
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)})


def _request_body(value: Any) -> str:
    inner = {"method": "record", "args": {"value": value}, "_unique_id": uuid.uuid4().hex}
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)})


def poison_body(kind: str, rpc: bool) -> str:
    """A body no listener can handle, of one of :data:`POISON_KINDS`."""
    if kind == "deep":
        return DEEP_BODY
    if kind == "deep-inside-the-envelope":
        return json.dumps({"oslo.version": "2.0", "oslo.message": DEEP_BODY})
    if kind == "past-the-receivers-bound":
        blob = "x" * (SIZE_BOUND + 1)
        return _request_body(blob) if rpc else _notification_body(blob)
    if kind == "not-json":
        return '{"oslo.version": "2.0", "oslo.message": '
    if kind == "not-an-object":
        return "[1, 2, 3]"
    if kind == "unknown-envelope-version":
        return json.dumps({"oslo.version": "9.0", "oslo.message": "{}"})
    raise ValueError(f"unknown poison kind {kind!r}")


#: The kinds of :func:`poison_body`.
POISON_KINDS = (
    "deep",
    "deep-inside-the-envelope",
    "past-the-receivers-bound",
    "not-json",
    "not-an-object",
    "unknown-envelope-version",
)


class Collector(Generic[T]):
    """A thread-safe inbox that endpoints put into and tests wait on, with a deadline."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._queue: queue.Queue[T] = queue.Queue()

    def put(self, item: T) -> None:
        """Add one received item."""
        self._queue.put(item)

    def take(self, count: int, timeout: float | None = None) -> list[T]:
        """The next ``count`` items; fails the test if they do not all come before the deadline."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        taken: list[T] = []
        while len(taken) < count:
            try:
                taken.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(
                    f"only {len(taken)} of {count} expected items arrived within "
                    f"{self.timeout if timeout is None else timeout}s: {taken!r}"
                ) from None
        return taken

    def drain(self) -> list[T]:
        """Everything received and not taken yet, without waiting."""
        items: list[T] = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items


@dataclass(frozen=True)
class Notification:
    """One notification as an endpoint method received it."""

    endpoint: str
    priority: str
    ctxt: Any
    publisher_id: str
    event_type: str
    payload: Any
    metadata: dict[str, Any]


class InfoEndpoint:
    """Records the ``info`` notifications it receives; :meth:`outcome` decides the result.

    Args:
        inbox: where received notifications go.
        label: names this endpoint in what it records.
    """

    def __init__(self, inbox: Collector[Notification], label: str = "") -> None:
        self.inbox = inbox
        self.label = label
        self.deliveries: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def outcome(self, note: Notification, delivery: int) -> str | None:
        """What to return for the ``delivery``-th delivery (1-based) of ``note``."""
        return None

    def _receive(
        self, priority: str, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any
    ) -> str | None:
        note = Notification(self.label, priority, ctxt, publisher_id, event_type, payload, md)
        with self._lock:
            self.deliveries[str(md.get("message_id"))] += 1
            delivery = self.deliveries[str(md.get("message_id"))]
        self.inbox.put(note)
        return self.outcome(note, delivery)

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> Any:
        return self._receive("info", ctxt, publisher_id, event_type, payload, md)


class AllPrioritiesEndpoint(InfoEndpoint):
    """Records the notifications of every priority, each by the method named after it."""

    def audit(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> Any:
        return self._receive("audit", ctxt, publisher_id, event_type, payload, md)

    def debug(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> Any:
        return self._receive("debug", ctxt, publisher_id, event_type, payload, md)

    def warn(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> Any:
        return self._receive("warn", ctxt, publisher_id, event_type, payload, md)

    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> Any:
        return self._receive("error", ctxt, publisher_id, event_type, payload, md)

    def critical(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> Any:
        return self._receive("critical", ctxt, publisher_id, event_type, payload, md)

    def sample(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> Any:
        return self._receive("sample", ctxt, publisher_id, event_type, payload, md)


class RequeueFirstDelivery(InfoEndpoint):
    """Asks for a requeue on the first delivery of each notification, handles the next."""

    def outcome(self, note: Notification, delivery: int) -> str | None:
        if delivery == 1:
            return messaging.NotificationResult.REQUEUE
        return messaging.NotificationResult.HANDLED


class FailFirstDelivery(InfoEndpoint):
    """Raises on the first delivery of each notification, handles the next."""

    def outcome(self, note: Notification, delivery: int) -> str | None:
        if delivery == 1:
            raise RuntimeError(f"conformance: endpoint failure on {note.event_type}")
        return None


class BatchEndpoint:
    """Records each batch of ``info`` notifications it receives."""

    def __init__(self, inbox: Collector[list[dict[str, Any]]]) -> None:
        self.inbox = inbox

    def info(self, messages: list[dict[str, Any]]) -> None:
        self.inbox.put(messages)


class RPCEndpoint:
    """The methods conformance RPC servers expose.

    Args:
        server: the server's name, returned by :meth:`whoami` and recorded by casts.
        inbox: where casts record ``(server, value)``.
    """

    def __init__(self, server: str, inbox: Collector[tuple[str, Any]]) -> None:
        self.server = server
        self.inbox = inbox

    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b

    def whoami(self, ctxt: Any) -> str:
        return self.server

    def record(self, ctxt: Any, value: Any) -> None:
        self.inbox.put((self.server, value))

    def echo_context(self, ctxt: Any) -> Any:
        return ctxt

    def fail_builtin(self, ctxt: Any, message: str) -> None:
        raise ValueError(message)

    def fail_custom(self, ctxt: Any, message: str) -> None:
        raise remote_exc.ConformanceError(message)

    def slow(self, ctxt: Any, seconds: float) -> str:
        time.sleep(seconds)  # the work of a long call, not synchronisation
        return "done"

    def blob(self, ctxt: Any, size: int) -> str:
        return "x" * size


class DriverHarness:
    """Per-test set-up shared by the conformance mixins (see the module documentation)."""

    #: The capabilities the driver should declare; None takes what it declares.
    capabilities: ClassVar[Capabilities | None] = None
    #: The bound of every wait, in seconds.
    wait_timeout: ClassVar[float] = 10.0
    #: The executor of listeners and servers (``MESSAGING_TEST_EXECUTOR`` may name
    #: another for a whole run, as the monkey-patched runs do).
    executor: ClassVar[str] = os.environ.get("MESSAGING_TEST_EXECUTOR", "threading")
    #: Tests (by function name) the driver is known to fail, with the reason; they
    #: run as ``xfail(strict=False)``, so that the fix shows as a pass.
    known_failures: ClassVar[dict[str, str]] = {}

    url: str

    # -- hooks for driver modules ---------------------------------------------------------

    def transport_url(self) -> str:
        """The transport URL of the service under test (called once per test)."""
        raise NotImplementedError(f"{type(self).__name__} must define transport_url()")

    def setup_broker(self) -> None:
        """Prepare the service before each test (e.g. skip when it is absent)."""

    def teardown_broker(self) -> None:
        """Clean the service after each test, once its servers and transports are released."""

    def inject_raw(
        self, transport: messaging.Transport, topic: str, rpc: bool, bodies: Sequence[str]
    ) -> None:
        """Put ``bodies``, as they are and in order, where a listener of ``topic`` takes from.

        Returns once the broker holds them (a message sent afterwards comes behind).

        Args:
            transport: a transport of the test (its driver names the broker).
            topic: the topic; its queues exist (a listener or server is started).
            rpc: the queue of RPC server requests of ``topic`` (``<topic>``); else the
                default queue of notifications to ``<topic>.info``.
            bodies: the raw bodies, sent without any encoding or check.
        """
        raise NotImplementedError(f"{type(self).__name__} must define inject_raw()")

    def parked_count(self) -> int | None:
        """How many bodies the driver parked; None where it acknowledges them instead."""
        return None

    def refused_url(self) -> str | None:
        """A URL of the service with password :data:`WRONG_PASSWORD`; None if it checks none."""
        return None

    def unreachable_url(self, publish_timeout: float) -> str | None:
        """A URL where no broker answers, sends bounded by ``publish_timeout`` seconds.

        None for a driver without a broker to be unreachable.
        """
        return None

    def make_conf(self) -> cfg.ConfigOpts:
        """A fresh configuration for one transport."""
        conf = cfg.ConfigOpts()
        conf([], project="messaging-conformance", default_config_files=[], default_config_dirs=[])
        return conf

    # -- lifecycle ------------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _conformance_harness(self, request: pytest.FixtureRequest) -> Iterator[None]:
        reason = self.known_failures.get(request.node.originalname)
        if reason is not None:
            request.applymarker(pytest.mark.xfail(strict=False, reason=reason))
        self._servers: list[MessageHandlingServer] = []
        self._transports: list[messaging.Transport] = []
        self.parked_expected = 0
        self.setup_broker()
        try:
            self.url = self.transport_url()
            yield
        finally:
            try:
                self._release()
            finally:
                self.teardown_broker()

    def _release(self) -> None:
        problems: list[str] = []
        for server in reversed(self._servers):
            try:
                self.stop(server)
            except Exception as exc:
                problems.append(f"stopping {server!r}: {type(exc).__name__}: {exc}")
        for transport in reversed(self._transports):
            try:
                transport.cleanup()
            except Exception as exc:
                problems.append(f"cleaning up {transport!r}: {type(exc).__name__}: {exc}")
        assert not problems, "releasing the test's servers and transports failed: " + "; ".join(
            problems
        )

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def unique(label: str) -> str:
        """A name no other test uses: ``conformance-<label>-<hex>``."""
        return f"conformance-{label}-{uuid.uuid4().hex[:12]}"

    def collector(self) -> Collector[Any]:
        """An inbox bounded by :attr:`wait_timeout`."""
        return Collector(self.wait_timeout)

    def require(self, transport: messaging.Transport, feature: str) -> None:
        """Skip the test unless the driver declares ``feature`` (a Capabilities field)."""
        if not getattr(transport.capabilities, feature):
            driver = type(transport.driver).__name__
            pytest.skip(f"{driver} does not declare the {feature!r} capability")

    def bounded_conf(self, max_message_size: int | None) -> cfg.ConfigOpts:
        """:meth:`make_conf`, with ``[DEFAULT] max_message_size`` if given."""
        conf = self.make_conf()
        if max_message_size is not None:
            register_transport_opts(conf)
            conf.set_override("max_message_size", max_message_size)
        return conf

    def notification_transport(
        self, control_exchange: str | None = None, max_message_size: int | None = None
    ) -> messaging.Transport:
        """A notification transport on :attr:`url`, cleaned up after the test."""
        conf = self.bounded_conf(max_message_size)
        if control_exchange is not None:
            register_transport_opts(conf)
            conf.set_override("control_exchange", control_exchange)
        transport = messaging.get_notification_transport(conf, self.url)
        self._transports.append(transport)
        return transport

    def rpc_transport(
        self, allowed_remote_exmods: Sequence[str] = (), max_message_size: int | None = None
    ) -> messaging.Transport:
        """An RPC transport on :attr:`url` (skips unless the driver does RPC)."""
        transport = messaging.get_rpc_transport(
            self.bounded_conf(max_message_size),
            self.url,
            allowed_remote_exmods=list(allowed_remote_exmods),
        )
        self._transports.append(transport)
        self.require(transport, "rpc")
        return transport

    def transport_or_refusal(
        self, url: str, rpc: bool
    ) -> tuple[messaging.Transport | None, BaseException | None]:
        """A transport on ``url``, or the error its creation raised (a refused connection)."""
        make = messaging.get_rpc_transport if rpc else messaging.get_notification_transport
        try:
            transport = make(self.make_conf(), url)
        except messaging.MessagingException as exc:
            return None, exc
        self._transports.append(transport)
        return transport, None

    def check_parked(self, count: int) -> None:
        """Expect ``count`` more parked bodies, and check them now where the driver parks."""
        self.parked_expected += count
        parked = self.parked_count()
        if parked is not None:
            assert parked == self.parked_expected, (
                f"{parked} bodies parked, {self.parked_expected} expected"
            )

    def start(self, server: MessageHandlingServer) -> MessageHandlingServer:
        """Start ``server``; it is stopped and waited for after the test."""
        self._servers.append(server)
        server.start(timeout=self.wait_timeout)
        return server

    def stop(self, *servers: MessageHandlingServer) -> None:
        """Stop ``servers`` and wait until what they received is handled."""
        for server in servers:
            server.stop(timeout=self.wait_timeout)
        for server in servers:
            server.wait(timeout=self.wait_timeout)


class NotificationConformance(DriverHarness):
    """Notifications: topics, priorities, exchanges, pools, requeue, batches, filters, formats."""

    publisher_id: ClassVar[str] = "conformance.host1"

    # -- helpers --------------------------------------------------------------------------

    def notifier(
        self,
        transport: messaging.Transport,
        topic: str,
        driver: str = "messagingv2",
        retry: int = 3,
    ) -> messaging.Notifier:
        """A notifier on ``topic`` that raises send failures instead of logging them."""
        return messaging.Notifier(
            transport,
            self.publisher_id,
            driver=driver,
            topics=[topic],
            retry=retry,
            raise_errors=True,
        )

    def listen(
        self,
        transport: messaging.Transport,
        topics: Sequence[str | messaging.Target],
        endpoints: Sequence[Any],
        pool: str | None = None,
        allow_requeue: bool = False,
    ) -> MessageHandlingServer:
        """Start a notification listener on ``topics`` (names or targets)."""
        targets = [
            t if isinstance(t, messaging.Target) else messaging.Target(topic=t) for t in topics
        ]
        if pool is not None:
            self.require(transport, "pools")
        if allow_requeue:
            self.require(transport, "requeue")
        server = messaging.get_notification_listener(
            transport,
            targets,
            endpoints,
            executor=self.executor,
            allow_requeue=allow_requeue,
            pool=pool,
        )
        return self.start(server)

    def send_info(self, notifier: messaging.Notifier, count: int, event: str = "test.n") -> None:
        """Send ``count`` info notifications with payload ``{"n": 0..count-1}``."""
        for n in range(count):
            notifier.info({}, event, {"n": n})

    def leftovers(
        self, transport: messaging.Transport, topic: str, pool: str | None = None
    ) -> list[Notification]:
        """What is still queued for ``topic`` (in ``pool``), in front of a sentinel.

        Run once every listener of that queue is stopped: a fresh listener takes
        the queue, a sentinel notification is sent behind what is left, and every
        notification that comes before it is returned. An empty list means the
        earlier notifications were all acknowledged (none would come again).
        """
        inbox: Collector[Notification] = self.collector()
        server = self.listen(transport, [topic], [InfoEndpoint(inbox, "drain")], pool=pool)
        self.notifier(transport, topic).info({}, SENTINEL_EVENT, {})
        received: list[Notification] = []
        while not any(n.event_type == SENTINEL_EVENT for n in received):
            received.extend(inbox.take(1))
        self.stop(server)
        received.extend(inbox.drain())
        return [n for n in received if n.event_type != SENTINEL_EVENT]

    # -- capabilities ---------------------------------------------------------------------

    def test_declared_capabilities(self) -> None:
        transport = self.notification_transport()
        if self.capabilities is None:
            pytest.skip("the driver module sets no expected capabilities")
        assert transport.capabilities == self.capabilities

    def test_listener_refuses_undeclared_features(self) -> None:
        transport = self.notification_transport()
        caps = transport.capabilities
        if caps.requeue and caps.pools:
            pytest.skip("the driver declares requeue and pools: nothing to refuse")
        topic = self.unique("refuse")
        endpoint = InfoEndpoint(self.collector())
        if not caps.requeue:
            with pytest.raises(NotImplementedError, match="requeue"):
                messaging.get_notification_listener(
                    transport, [messaging.Target(topic=topic)], [endpoint], allow_requeue=True
                )
        if not caps.pools:
            with pytest.raises(NotImplementedError, match="pool"):
                messaging.get_notification_listener(
                    transport, [messaging.Target(topic=topic)], [endpoint], pool="a-pool"
                )

    # -- routing --------------------------------------------------------------------------

    def test_send_and_receive_on_a_topic(self) -> None:
        transport = self.notification_transport()
        topic = self.unique("topic")
        inbox: Collector[Notification] = self.collector()
        self.listen(transport, [topic], [InfoEndpoint(inbox)])
        self.notifier(transport, topic).info({}, "compute.instance.create.end", {"id": "vm-1"})
        (note,) = inbox.take(1)
        assert note.priority == "info"
        assert note.publisher_id == self.publisher_id
        assert note.event_type == "compute.instance.create.end"
        assert note.payload == {"id": "vm-1"}
        assert set(note.metadata) == {"message_id", "timestamp"}
        assert note.metadata["message_id"]

    def test_each_priority_reaches_its_endpoint_method(self) -> None:
        transport = self.notification_transport()
        topic = self.unique("priorities")
        inbox: Collector[Notification] = self.collector()
        self.listen(transport, [topic], [AllPrioritiesEndpoint(inbox)])
        notifier = self.notifier(transport, topic)
        priorities = ("audit", "debug", "info", "warn", "error", "critical", "sample")
        for priority in priorities:
            getattr(notifier, priority)({}, f"test.{priority}", {"priority": priority})
        notifier.warning({}, "test.warning", {"priority": "warn"})
        received = inbox.take(len(priorities) + 1)
        got = sorted((n.priority, n.event_type) for n in received)
        expected = [(p, f"test.{p}") for p in priorities] + [("warn", "test.warning")]
        assert got == sorted(expected)
        assert all(n.payload == {"priority": n.priority} for n in received)

    def test_one_listener_on_two_topics(self) -> None:
        transport = self.notification_transport()
        first, second = self.unique("first"), self.unique("second")
        inbox: Collector[Notification] = self.collector()
        self.listen(transport, [first, second], [InfoEndpoint(inbox)])
        self.notifier(transport, first).info({}, "test.first", {"topic": first})
        self.notifier(transport, second).info({}, "test.second", {"topic": second})
        received = inbox.take(2)
        assert sorted(n.payload["topic"] for n in received) == sorted([first, second])

    def test_exchange_given_on_the_target(self) -> None:
        exchange = self.unique("exchange")
        sender = self.notification_transport(control_exchange=exchange)
        receiver = self.notification_transport()
        topic = self.unique("exchanged")
        target = messaging.Target(topic=topic, exchange=exchange)
        inbox: Collector[Notification] = self.collector()
        self.listen(receiver, [target], [InfoEndpoint(inbox, "default-queue")])
        expected = ["default-queue"]
        if receiver.capabilities.pools:
            # A pool's queue is bound by the listener alone (the publisher declares
            # only the default queue), so only a listener that binds in the target's
            # exchange receives this copy.
            pool = self.unique("pool")
            self.listen(receiver, [target], [InfoEndpoint(inbox, "pool")], pool=pool)
            expected.append("pool")
        self.notifier(sender, topic).info({}, "test.exchange", {"exchange": exchange})
        received = inbox.take(len(expected))
        assert sorted(n.endpoint for n in received) == sorted(expected)
        assert all(n.payload == {"exchange": exchange} for n in received)

    def test_notifications_sent_before_the_listener_are_kept(self) -> None:
        transport = self.notification_transport()
        topic = self.unique("early")
        self.send_info(self.notifier(transport, topic), 3)
        inbox: Collector[Notification] = self.collector()
        self.listen(transport, [topic], [InfoEndpoint(inbox)])
        assert sorted(n.payload["n"] for n in inbox.take(3)) == [0, 1, 2]

    def test_messaging_v1_and_v2_are_received_alike(self) -> None:
        transport = self.notification_transport()
        topic = self.unique("formats")
        inbox: Collector[Notification] = self.collector()
        self.listen(transport, [topic], [InfoEndpoint(inbox)])
        ctxt = oslo_context.RequestContext(user_id="alice", project_id="proj-1")
        payload = {"n": 1, "nested": {"items": [1, "two", None], "flag": True}, "text": "été"}
        self.notifier(transport, topic, driver="messaging").info(ctxt, "test.v1", payload)
        self.notifier(transport, topic, driver="messagingv2").info(ctxt, "test.v2", payload)
        received = {n.event_type: n for n in inbox.take(2)}
        assert set(received) == {"test.v1", "test.v2"}
        v1, v2 = received["test.v1"], received["test.v2"]
        assert v1.payload == v2.payload == payload
        assert v1.ctxt == v2.ctxt
        assert v1.ctxt["project_id"] == "proj-1"
        assert v1.publisher_id == v2.publisher_id == self.publisher_id

    def test_filter_on_event_type(self) -> None:
        transport = self.notification_transport()
        topic = self.unique("filter")
        everything: Collector[Notification] = self.collector()
        filtered: Collector[Notification] = self.collector()
        selective = InfoEndpoint(filtered, "filtered")
        selective.filter_rule = messaging.NotificationFilter(  # type: ignore[attr-defined]
            event_type=r"^compute\.instance\.create\."
        )
        server = self.listen(transport, [topic], [selective, InfoEndpoint(everything, "all")])
        notifier = self.notifier(transport, topic)
        events = [
            "compute.instance.create.start",
            "compute.instance.delete.end",
            "network.create.end",
            "compute.instance.create.end",
        ]
        for event in events:
            notifier.info({}, event, {})
        assert sorted(n.event_type for n in everything.take(len(events))) == sorted(events)
        self.stop(server)
        assert sorted(n.event_type for n in filtered.drain()) == [
            "compute.instance.create.end",
            "compute.instance.create.start",
        ]

    # -- pools and competing listeners ---------------------------------------------------

    def test_each_pool_gets_one_copy(self) -> None:
        transport = self.notification_transport()
        self.require(transport, "pools")
        topic = self.unique("pools")
        count = 10
        inboxes = {name: self.collector() for name in ("pool-a", "pool-b", "default")}
        servers = [
            self.listen(
                transport, [topic], [InfoEndpoint(inboxes["pool-a"], "a")], pool=topic + "-a"
            ),
            self.listen(
                transport, [topic], [InfoEndpoint(inboxes["pool-b"], "b")], pool=topic + "-b"
            ),
            self.listen(transport, [topic], [InfoEndpoint(inboxes["default"], "default")]),
        ]
        self.send_info(self.notifier(transport, topic), count)
        got = {
            name: sorted(n.payload["n"] for n in inbox.take(count))
            for name, inbox in inboxes.items()
        }
        self.stop(*servers)
        assert got == {name: list(range(count)) for name in inboxes}
        assert {name: inbox.drain() for name, inbox in inboxes.items()} == {
            name: [] for name in inboxes
        }

    @pytest.mark.parametrize("pooled", [False, True], ids=["default-queue", "pool"])
    def test_competing_listeners_split_the_messages(self, pooled: bool) -> None:
        transport = self.notification_transport()
        topic = self.unique("split")
        pool = topic + "-pool" if pooled else None
        count = 100
        inbox: Collector[Notification] = self.collector()
        servers = [
            self.listen(transport, [topic], [InfoEndpoint(inbox, label)], pool=pool)
            for label in ("one", "two")
        ]
        self.send_info(self.notifier(transport, topic), count)
        received = inbox.take(count)
        self.stop(*servers)
        received += inbox.drain()
        assert sorted(n.payload["n"] for n in received) == list(range(count))
        shares = collections.Counter(n.endpoint for n in received)
        assert set(shares) == {"one", "two"}, f"one listener got everything: {shares}"
        assert self.leftovers(transport, topic, pool) == []

    # -- requeue ----------------------------------------------------------------------------

    def test_requeued_notification_comes_again(self) -> None:
        transport = self.notification_transport()
        self.require(transport, "requeue")
        topic = self.unique("requeue")
        inbox: Collector[Notification] = self.collector()
        server = self.listen(transport, [topic], [RequeueFirstDelivery(inbox)], allow_requeue=True)
        self.notifier(transport, topic).info({}, "test.requeue", {"n": 7})
        first, second = inbox.take(2)
        self.stop(server)
        assert first.metadata["message_id"] == second.metadata["message_id"]
        assert first.payload == second.payload == {"n": 7}
        assert inbox.drain() == []
        assert self.leftovers(transport, topic) == []

    def test_failing_endpoint_with_allow_requeue_gets_it_again(self) -> None:
        transport = self.notification_transport()
        self.require(transport, "requeue")
        topic = self.unique("fail-requeue")
        inbox: Collector[Notification] = self.collector()
        server = self.listen(transport, [topic], [FailFirstDelivery(inbox)], allow_requeue=True)
        self.notifier(transport, topic).info({}, "test.fail", {"n": 8})
        first, second = inbox.take(2)
        self.stop(server)
        assert first.metadata["message_id"] == second.metadata["message_id"]
        assert self.leftovers(transport, topic) == []

    def test_failing_endpoint_without_requeue_is_not_redelivered(self) -> None:
        transport = self.notification_transport()
        topic = self.unique("fail-ack")
        inbox: Collector[Notification] = self.collector()
        server = self.listen(transport, [topic], [FailFirstDelivery(inbox)])
        self.notifier(transport, topic).info({}, "test.fail", {"n": 9})
        inbox.take(1)
        self.stop(server)
        assert inbox.drain() == []
        assert self.leftovers(transport, topic) == []

    # -- batches ----------------------------------------------------------------------------

    def test_batches_fill_up_to_size_then_time_out(self) -> None:
        transport = self.notification_transport()
        self.require(transport, "batches")
        topic = self.unique("batch")
        self.send_info(self.notifier(transport, topic), 12)
        inbox: Collector[list[dict[str, Any]]] = self.collector()
        server = messaging.get_batch_notification_listener(
            transport,
            [messaging.Target(topic=topic)],
            [BatchEndpoint(inbox)],
            executor=self.executor,
            batch_size=5,
            batch_timeout=0.5,
        )
        self.start(server)
        batches = inbox.take(3)
        assert sorted(len(batch) for batch in batches) == [2, 5, 5]
        numbers = sorted(m["payload"]["n"] for batch in batches for m in batch)
        assert numbers == list(range(12))
        assert all(m["event_type"] == "test.n" for batch in batches for m in batch)

    # -- brokers that refuse or do not answer -------------------------------------------------

    def test_refused_credentials_fail_a_notification_at_once(self) -> None:
        url = self.refused_url()
        if url is None:
            pytest.skip("the service checks no credentials")
        started = time.monotonic()
        transport, refused = self.transport_or_refusal(url, rpc=False)
        if transport is not None:
            # The default retry, forever: a refusal must not be tried forever.
            notifier = self.notifier(transport, self.unique("refused"), retry=-1)
            with pytest.raises(messaging.MessageDeliveryFailure) as caught:
                notifier.info({}, "test.refused", {})
            refused = caught.value
        assert time.monotonic() - started < 3, "a refused login was retried"
        assert isinstance(refused, messaging.MessageDeliveryFailure)
        assert "refused" in str(refused).lower()
        assert WRONG_PASSWORD not in str(refused)

    def test_a_notification_to_an_unreachable_broker_gives_up_within_its_bound(self) -> None:
        url = self.unreachable_url(publish_timeout=1.0)
        if url is None:
            pytest.skip("the driver has no broker to be unreachable")
        transport = messaging.get_notification_transport(self.make_conf(), url)
        self._transports.append(transport)
        # The default retry: forever, as oslo says, but bounded by the driver's option.
        notifier = self.notifier(transport, self.unique("unreachable"), retry=-1)
        bound = 1.0 + 4  # publish_timeout, and room for a connection attempt in progress
        started = time.monotonic()
        try:
            notifier.info({}, "test.unreachable", {})
        except messaging.MessageDeliveryFailure:
            pass
        else:
            # Handed over without waiting for the broker: it must be given up (and
            # logged) within the bound too, so that nothing is left to flush.
            left = transport.flush(max(0.0, bound - (time.monotonic() - started)))
            assert left == 0, "a notification to an unreachable broker was never given up"
        assert time.monotonic() - started < bound, "the send outlived its bound"

    # -- poison input and size bounds --------------------------------------------------------

    @pytest.mark.parametrize("kind", POISON_KINDS)
    def test_an_undecodable_notification_is_discarded_and_the_next_one_handled(
        self, kind: str
    ) -> None:
        transport = self.notification_transport(max_message_size=SIZE_BOUND)
        topic = self.unique("poison")
        inbox: Collector[Notification] = self.collector()
        server = self.listen(transport, [topic], [InfoEndpoint(inbox)])
        self.inject_raw(transport, topic, False, [poison_body(kind, rpc=False)])
        self.notifier(transport, topic).info({}, "test.after-poison", {"n": 1})
        (note,) = inbox.take(1)
        assert (note.event_type, note.payload) == ("test.after-poison", {"n": 1})
        self.stop(server)
        assert inbox.drain() == []
        self.check_parked(1)

    def test_a_redelivered_notification_is_handled_once(self) -> None:
        transport = self.notification_transport()
        topic = self.unique("dedup")
        inbox: Collector[Notification] = self.collector()
        server = self.listen(transport, [topic], [InfoEndpoint(inbox)])
        body = _notification_body({"n": "once"})
        self.inject_raw(transport, topic, False, [body])
        (first,) = inbox.take(1)
        assert first.payload == {"n": "once"}
        # A notification counts as seen once acknowledged, just after its endpoint returns.
        time.sleep(0.2)
        self.inject_raw(transport, topic, False, [body, _notification_body({"n": "next"})])
        (after,) = inbox.take(1)
        self.stop(server)
        assert [after.payload, *(n.payload for n in inbox.drain())] == [{"n": "next"}]

    def test_a_flood_of_deep_bodies_does_not_stall_a_listener(self) -> None:
        transport = self.notification_transport()
        topic = self.unique("poison-flood")
        inbox: Collector[Notification] = self.collector()
        server = self.listen(transport, [topic], [InfoEndpoint(inbox)])
        self.inject_raw(transport, topic, False, [DEEP_BODY] * POISON_FLOOD)
        self.notifier(transport, topic).info({}, "test.after-flood", {"n": 2})
        (note,) = inbox.take(1, timeout=3 * self.wait_timeout)
        assert note.event_type == "test.after-flood"
        self.stop(server)
        self.check_parked(POISON_FLOOD)

    def test_a_notification_past_max_message_size_is_refused_to_its_sender(self) -> None:
        transport = self.notification_transport(max_message_size=SIZE_BOUND)
        topic = self.unique("too-large")
        inbox: Collector[Notification] = self.collector()
        server = self.listen(transport, [topic], [InfoEndpoint(inbox)])
        notifier = self.notifier(transport, topic)
        with pytest.raises(messaging.MessageDeliveryFailure) as caught:
            notifier.info({}, "test.too-large", {"blob": "x" * SIZE_BOUND})
        assert isinstance(caught.value, MessageTooLarge)
        assert f"max_message_size = {SIZE_BOUND} bytes" in str(caught.value)
        assert caught.value.size > SIZE_BOUND
        notifier.info({}, "test.after", {"n": 3})
        (note,) = inbox.take(1)
        assert note.event_type == "test.after"
        self.stop(server)
        assert inbox.drain() == []


class RPCConformance(DriverHarness):
    """RPC: call, cast, fanout, directed calls, sharing, timeouts, remote failures, monitoring."""

    # -- helpers --------------------------------------------------------------------------

    def serve(
        self, transport: messaging.Transport, topic: str, server: str, inbox: Collector[Any]
    ) -> MessageHandlingServer:
        """Start an RPC server named ``server`` on ``topic`` with an :class:`RPCEndpoint`."""
        target = messaging.Target(topic=topic, server=server)
        rpc_server = messaging.get_rpc_server(
            transport, target, [RPCEndpoint(server, inbox)], executor=self.executor
        )
        return self.start(rpc_server)

    def client(self, transport: messaging.Transport, topic: str, **kwargs: Any) -> Any:
        """An RPC client of ``topic`` whose calls wait at most :attr:`wait_timeout`."""
        kwargs.setdefault("timeout", self.wait_timeout)
        return messaging.get_rpc_client(transport, messaging.Target(topic=topic), **kwargs)

    def served_topic(
        self,
        servers: Sequence[str] = ("server-a",),
        allowed_remote_exmods: Sequence[str] = (),
        server_max_message_size: int | None = None,
        client_max_message_size: int | None = None,
    ) -> tuple[Any, str, Collector[tuple[str, Any]], list[MessageHandlingServer]]:
        """Serve a fresh topic with ``servers``; return a client, the topic, inbox and servers.

        The servers and the client use separate transports, as separate processes
        would, each with its own ``max_message_size`` if given.
        """
        topic = self.unique("rpc")
        inbox: Collector[tuple[str, Any]] = self.collector()
        server_transport = self.rpc_transport(max_message_size=server_max_message_size)
        started = [self.serve(server_transport, topic, name, inbox) for name in servers]
        client_transport = self.rpc_transport(
            allowed_remote_exmods, max_message_size=client_max_message_size
        )
        return self.client(client_transport, topic), topic, inbox, started

    # -- calls and casts --------------------------------------------------------------------

    def test_call_returns_the_result(self) -> None:
        client, _topic, _inbox, _servers = self.served_topic()
        assert client.call({}, "add", a=2, b=40) == 42

    def test_cast_is_handled(self) -> None:
        client, _topic, inbox, _servers = self.served_topic()
        assert client.cast({}, "record", value={"token": "cast-1"}) is None
        assert inbox.take(1) == [("server-a", {"token": "cast-1"})]

    def test_context_round_trips_to_the_endpoint(self) -> None:
        client, _topic, _inbox, _servers = self.served_topic()
        ctxt = {
            "user_id": "alice",
            "project_id": "proj-1",
            "request_id": "req-" + uuid.uuid4().hex,
            "roles": ["reader", "member"],
            "is_admin": False,
        }
        received = client.call(ctxt, "echo_context")
        assert {key: received.get(key) for key in ctxt} == ctxt

    def test_fanout_cast_reaches_every_server(self) -> None:
        names = ("server-a", "server-b", "server-c")
        client, _topic, inbox, servers = self.served_topic(names)
        self.require(client.transport, "fanout")
        client.prepare(fanout=True).cast({}, "record", value="to-all")
        received = inbox.take(len(names))
        self.stop(*servers)
        received += inbox.drain()
        assert sorted(received) == sorted((name, "to-all") for name in names)

    def test_directed_call_reaches_the_named_server_only(self) -> None:
        client, _topic, inbox, _servers = self.served_topic(("server-a", "server-b"))
        directed = client.prepare(server="server-b")
        assert [directed.call({}, "whoami") for _ in range(6)] == ["server-b"] * 6
        directed.cast({}, "record", value="directed")
        assert inbox.take(1) == [("server-b", "directed")]

    def test_servers_of_a_topic_share_the_calls(self) -> None:
        client, _topic, _inbox, _servers = self.served_topic(("server-a", "server-b"))
        answers = collections.Counter(client.call({}, "whoami") for _ in range(20))
        assert sum(answers.values()) == 20
        assert set(answers) == {"server-a", "server-b"}, f"one server took every call: {answers}"

    # -- timeouts ---------------------------------------------------------------------------

    def test_call_to_an_unserved_topic_times_out(self) -> None:
        transport = self.rpc_transport()
        client = self.client(transport, self.unique("nobody"), timeout=1)
        started = time.monotonic()
        with pytest.raises(messaging.MessagingTimeout):
            client.call({}, "add", a=1, b=2)
        elapsed = time.monotonic() - started
        assert 0.5 <= elapsed < self.wait_timeout, f"timeout=1 took {elapsed:.2f}s"

    def test_call_monitoring_keeps_a_long_call_alive(self) -> None:
        client, _topic, _inbox, _servers = self.served_topic()
        monitored = client.prepare(call_monitor_timeout=1)
        assert monitored.call({}, "slow", seconds=2.5) == "done"

    def test_call_monitoring_fails_fast_without_a_server(self) -> None:
        transport = self.rpc_transport()
        client = self.client(transport, self.unique("unmonitored"), call_monitor_timeout=1)
        started = time.monotonic()
        with pytest.raises(messaging.MessagingTimeout):
            client.call({}, "add", a=1, b=2)
        elapsed = time.monotonic() - started
        assert elapsed < self.wait_timeout, f"call_monitor_timeout=1 took {elapsed:.2f}s"

    def test_call_monitor_timeout_0_means_no_monitoring(self) -> None:
        # As oslo.messaging: 0 (like None) asks for no heartbeats and fails no call.
        client, _topic, _inbox, _servers = self.served_topic()
        unmonitored = client.prepare(call_monitor_timeout=0)
        assert unmonitored.call({}, "slow", seconds=1.5) == "done"

    def test_call_monitor_timeout_0_waits_for_the_whole_timeout(self) -> None:
        transport = self.rpc_transport()
        client = self.client(transport, self.unique("nobody"), timeout=1, call_monitor_timeout=0)
        started = time.monotonic()
        with pytest.raises(messaging.MessagingTimeout, match="no reply within 1s"):
            client.call({}, "add", a=1, b=2)
        elapsed = time.monotonic() - started
        assert 0.9 <= elapsed < self.wait_timeout, f"timeout=1 took {elapsed:.2f}s"

    # -- refusals and duplicates ----------------------------------------------------------

    def test_a_call_to_a_fanout_target_is_refused_alike_everywhere(self) -> None:
        transport = self.rpc_transport()
        topic = self.unique("fanout-call")
        expected = r"^A call cannot be used with fanout: "
        with pytest.raises(messaging.InvalidTarget, match=expected):
            transport.send(
                messaging.Target(topic=topic, fanout=True),
                {},
                {"method": "add", "args": {"a": 1, "b": 2}},
                wait_for_reply=True,
                timeout=1,
            )
        with pytest.raises(messaging.InvalidTarget, match=expected):
            self.client(transport, topic).prepare(fanout=True).call({}, "add", a=1, b=2)

    def test_a_redelivered_request_is_handled_once(self) -> None:
        client, topic, inbox, _servers = self.served_topic()
        body = _request_body("once")
        self.inject_raw(client.transport, topic, True, [body, body])
        assert client.call({}, "add", a=1, b=2) == 3  # queued behind both copies
        assert inbox.take(1) == [("server-a", "once")]
        assert client.call({}, "add", a=2, b=2) == 4
        assert inbox.drain() == []

    # -- remote failures -------------------------------------------------------------------

    def test_builtin_exception_is_reraised_as_itself(self) -> None:
        client, _topic, _inbox, _servers = self.served_topic()
        with pytest.raises(ValueError, match="bad value 17"):
            client.call({}, "fail_builtin", message="bad value 17")

    def test_exception_of_a_module_not_allowed_is_a_remote_error(self) -> None:
        client, _topic, _inbox, _servers = self.served_topic()
        with pytest.raises(messaging.RemoteError) as caught:
            client.call({}, "fail_custom", message="not allowed here")
        assert caught.value.exc_type == "ConformanceError"
        assert "not allowed here" in str(caught.value.value)

    def test_exception_of_an_allowed_module_keeps_its_class(self) -> None:
        client, _topic, _inbox, _servers = self.served_topic(
            allowed_remote_exmods=[REMOTE_EXC_MODULE]
        )
        with pytest.raises(remote_exc.ConformanceError, match="allowed here"):
            client.call({}, "fail_custom", message="allowed here")

    def test_unknown_method_is_a_remote_no_such_method(self) -> None:
        client, _topic, _inbox, _servers = self.served_topic()
        with pytest.raises(messaging.RemoteError) as caught:
            client.call({}, "no_such_method_here")
        assert caught.value.exc_type == "NoSuchMethod"
        assert "no_such_method_here" in str(caught.value.value)

    # -- poison input and size bounds --------------------------------------------------------

    @pytest.mark.parametrize("kind", ["deep", "past-the-receivers-bound", "not-json"])
    def test_an_undecodable_request_is_discarded_and_the_next_one_handled(self, kind: str) -> None:
        client, topic, inbox, _servers = self.served_topic(server_max_message_size=SIZE_BOUND)
        self.inject_raw(client.transport, topic, True, [poison_body(kind, rpc=True)])
        assert client.call({}, "add", a=1, b=2) == 3
        assert inbox.drain() == []
        self.check_parked(1)

    def test_a_flood_of_deep_requests_does_not_stall_a_server(self) -> None:
        client, topic, _inbox, _servers = self.served_topic()
        self.inject_raw(client.transport, topic, True, [DEEP_BODY] * POISON_FLOOD)
        assert client.prepare(timeout=3 * self.wait_timeout).call({}, "add", a=2, b=3) == 5
        self.check_parked(POISON_FLOOD)

    def test_a_request_past_max_message_size_is_refused_to_its_caller(self) -> None:
        client, _topic, inbox, _servers = self.served_topic(client_max_message_size=SIZE_BOUND)
        blob = "x" * SIZE_BOUND
        for send in (client.cast, client.call):
            started = time.monotonic()
            with pytest.raises(MessageTooLarge, match=f"max_message_size = {SIZE_BOUND} bytes"):
                send({}, "record", value=blob)
            assert time.monotonic() - started < self.wait_timeout / 2
        assert client.call({}, "add", a=20, b=22) == 42
        assert inbox.drain() == []

    def test_a_reply_past_max_message_size_reaches_the_caller_as_that_error(self) -> None:
        client, _topic, _inbox, _servers = self.served_topic(server_max_message_size=SIZE_BOUND)
        started = time.monotonic()
        with pytest.raises(messaging.RemoteError) as caught:
            client.call({}, "blob", size=SIZE_BOUND)
        assert time.monotonic() - started < self.wait_timeout / 2, "the caller waited"
        assert caught.value.exc_type == "MessageTooLarge"
        assert f"max_message_size = {SIZE_BOUND} bytes" in str(caught.value.value)
        assert client.call({}, "blob", size=10) == "x" * 10

    # -- brokers that refuse or do not answer -------------------------------------------------

    def test_refused_credentials_fail_a_call_at_once(self) -> None:
        url = self.refused_url()
        if url is None:
            pytest.skip("the service checks no credentials")
        started = time.monotonic()
        transport, refused = self.transport_or_refusal(url, rpc=True)
        if transport is not None:
            client = self.client(transport, self.unique("refused"), timeout=10)
            with pytest.raises(messaging.MessagingException) as caught:
                client.call({}, "add", a=1, b=2)
            refused = caught.value
        assert time.monotonic() - started < 3, "the call waited out its timeout"
        assert isinstance(refused, messaging.MessageDeliveryFailure), repr(refused)
        assert "refused" in str(refused).lower()
        assert WRONG_PASSWORD not in str(refused)

    def test_refused_credentials_fail_a_server_start_at_once(self) -> None:
        url = self.refused_url()
        if url is None:
            pytest.skip("the service checks no credentials")
        started = time.monotonic()
        transport, refused = self.transport_or_refusal(url, rpc=True)
        if transport is not None:
            target = messaging.Target(topic=self.unique("refused"), server="server-a")
            server = messaging.get_rpc_server(transport, target, [], executor=self.executor)
            with pytest.raises(messaging.ServerListenError) as caught:
                server.start()
            refused = caught.value
        assert time.monotonic() - started < 3, "the server start waited"
        assert "refused" in str(refused).lower()

    def test_a_call_to_an_unreachable_broker_ends_within_its_timeout(self) -> None:
        url = self.unreachable_url(publish_timeout=30.0)
        if url is None:
            pytest.skip("the driver has no broker to be unreachable")
        transport = messaging.get_rpc_transport(self.make_conf(), url)
        self._transports.append(transport)
        client = self.client(transport, self.unique("unreachable"), timeout=2)
        started = time.monotonic()
        with pytest.raises((messaging.MessagingTimeout, messaging.MessageDeliveryFailure)):
            client.call({}, "add", a=1, b=2)
        elapsed = time.monotonic() - started
        assert elapsed < 2 + 1, f"call(timeout=2) took {elapsed:.1f} s"
