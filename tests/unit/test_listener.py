"""Notification listeners end to end: Notifier -> in-memory broker -> listener -> endpoints.

Covers priority routing and subscriptions, targets on several topics and exchanges,
the endpoint arguments, serializer hooks, NotificationResult (ack / requeue),
endpoint failures, driver capability checks and listener pools.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, ClassVar

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.base import Capabilities
from messaging.drivers.memory import MemoryDriver
from messaging.notify.listener import NotificationServer
from messaging.serializer import Serializer
from messaging.transport import Transport, TransportURL
from tests.unit.listener_support import (
    TIMEOUT,
    InfoRecorder,
    Recorder,
    broker,
    make_conf,
    notifier,
    request_context,
    running,
    transport,
)

DASHED_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TOPIC = messaging.Target(topic="notifications")


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    return make_conf()


@pytest.fixture
def bus(conf: cfg.ConfigOpts) -> Transport:
    return transport(conf)


class AllPriorities(Recorder):
    def audit(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.record("audit", event_type)

    def debug(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.record("debug", event_type)

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.record("info", event_type)

    def warn(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.record("warn", event_type)

    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.record("error", event_type)

    def critical(
        self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any
    ) -> None:
        self.record("critical", event_type)

    def sample(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.record("sample", event_type)


class ErrorOnly(Recorder):
    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.record("error", event_type)


class WarnOnly(Recorder):
    def warn(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.record("warn", event_type)


# --- what endpoints receive ----------------------------------------------------------------------


def test_endpoint_gets_context_publisher_event_payload_and_metadata(bus: Transport) -> None:
    endpoint = InfoRecorder()
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint])
    with running(server):
        ctxt = request_context(user_id="alice", project_id="p1", request_id="req-1")
        notifier(bus, "compute.host1").info(ctxt, "compute.instance.create.end", {"x": [1, 2]})
        [call] = endpoint.take(1)

    priority, got_ctxt, publisher_id, event_type, payload, metadata = call
    assert priority == "info"
    assert publisher_id == "compute.host1"
    assert event_type == "compute.instance.create.end"
    assert payload == {"x": [1, 2]}
    assert isinstance(got_ctxt, dict)
    assert got_ctxt["user"] == "alice"
    assert got_ctxt["project_id"] == "p1"
    assert got_ctxt["request_id"] == "req-1"
    assert "client_timeout" in got_ctxt and got_ctxt["client_timeout"] is None
    assert set(metadata) == {"message_id", "timestamp"}
    assert DASHED_UUID.match(metadata["message_id"])
    assert isinstance(metadata["timestamp"], str) and " " in metadata["timestamp"]


def test_each_priority_goes_to_the_methods_named_like_it(bus: Transport) -> None:
    everything, errors, warnings = AllPriorities(), ErrorOnly(), WarnOnly()
    server = messaging.get_notification_listener(bus, [TOPIC], [everything, errors, warnings])
    sender = notifier(bus)
    with running(server):
        for priority in ("audit", "debug", "info", "warn", "error", "critical", "sample"):
            getattr(sender, priority)({}, f"event.{priority}", {})
        got = everything.take(7)
        error_calls = errors.take(1)
        warn_calls = warnings.take(1)

    assert sorted(got) == sorted(
        (p, f"event.{p}") for p in ("audit", "debug", "info", "warn", "error", "critical", "sample")
    )
    assert error_calls == [("error", "event.error")]
    assert warn_calls == [("warn", "event.warn")]
    assert errors.pending() == [] and warnings.pending() == []


def test_warning_alias_is_sent_as_warn(bus: Transport) -> None:
    endpoint = WarnOnly()
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint])
    with running(server):
        notifier(bus).warning({}, "disk.low", {})
        assert endpoint.take(1) == [("warn", "disk.low")]


def test_listener_subscribes_only_to_priorities_its_endpoints_implement(bus: Transport) -> None:
    errors = ErrorOnly()
    server = messaging.get_notification_listener(bus, [TOPIC], [errors])
    sender = notifier(bus)
    with running(server):
        sender.info({}, "not.for.me", {})
        sender.error({}, "for.me", {})
        assert errors.take(1) == [("error", "for.me")]
    # The info notification was never consumed: it waits in its default queue.
    assert broker().queue_depth("notifications.info") == 1
    assert broker().queue_depth("notifications.error") == 0

    late = InfoRecorder()
    with running(messaging.get_notification_listener(bus, [TOPIC], [late])):
        [call] = late.take(1)
    assert call[3] == "not.for.me"


def test_listener_without_priority_methods_warns_at_start_and_subscribes_to_nothing(
    bus: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server = messaging.get_notification_listener(bus, [TOPIC], [object()])
    assert "subscribes to nothing" not in caplog.text
    with running(server):
        assert "subscribes to nothing" in caplog.text
        notifier(bus).info({}, "ignored", {})
    assert broker().queue_depth("notifications.info") == 1


def test_every_target_is_listened_to(bus: Transport) -> None:
    endpoint = InfoRecorder()
    targets = [TOPIC, messaging.Target(topic="notifications_bis")]
    server = messaging.get_notification_listener(bus, targets, [endpoint])
    with running(server):
        notifier(bus, topics=["notifications"]).info({}, "first", {})
        notifier(bus, topics=["notifications_bis"]).info({}, "second", {})
        notifier(bus, topics=["notifications", "notifications_bis"]).info({}, "both", {})
        events = sorted(call[3] for call in endpoint.take(4))
    assert events == ["both", "both", "first", "second"]


def test_targets_on_different_exchanges(conf: cfg.ConfigOpts, bus: Transport) -> None:
    nova_conf = make_conf(control_exchange="nova")
    endpoint = InfoRecorder()
    targets = [TOPIC, messaging.Target(topic="notifications", exchange="nova")]
    server = messaging.get_notification_listener(bus, targets, [endpoint])
    with running(server):
        notifier(bus).info({}, "from.openstack", {})
        notifier(transport(nova_conf)).info({}, "from.nova", {})
        events = sorted(call[3] for call in endpoint.take(2))
    assert events == ["from.nova", "from.openstack"]


class TaggingSerializer(Serializer):
    """Wraps contexts and payloads on the way in, and records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity

    def serialize_context(self, ctxt: Any) -> Any:
        return ctxt

    def deserialize_context(self, ctxt: Any) -> Any:
        self.calls.append(("context", ctxt.get("request_id")))
        return {"wrapped": ctxt}

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        self.calls.append(("entity", "wrapped" in ctxt))
        return ("deserialized", entity)


def test_serializer_deserializes_context_and_payload(bus: Transport) -> None:
    serializer = TaggingSerializer()
    endpoint = InfoRecorder()
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint], serializer=serializer)
    with running(server):
        notifier(bus).info(request_context(request_id="req-9"), "x", {"a": 1})
        [call] = endpoint.take(1)
    ctxt, payload = call[1], call[4]
    assert ctxt["wrapped"]["request_id"] == "req-9"
    assert payload == ("deserialized", {"a": 1})
    # The entity is deserialised with the already-deserialised context.
    assert serializer.calls == [("context", "req-9"), ("entity", True)]


def test_unknown_priority_is_acknowledged_with_a_warning(
    bus: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    endpoint = InfoRecorder()
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint])
    message = {
        "message_id": "0f0e0d0c-0000-4000-8000-000000000000",
        "publisher_id": "p",
        "event_type": "odd",
        "priority": "LOUD",
        "payload": {},
        "timestamp": "2026-01-01 00:00:00",
    }
    with running(server):
        bus.send_notification(messaging.Target(topic="notifications.info"), {}, message, 2.0)
        notifier(bus).info({}, "normal", {})
        assert endpoint.take(1)[0][3] == "normal"
    assert 'Unknown priority "loud"' in caplog.text
    assert broker().queue_depth("notifications.info") == 0


# --- NotificationResult, requeue and failures ----------------------------------------------------


class Scripted(Recorder):
    """Returns (or raises) the scripted results in turn, then HANDLED."""

    def __init__(self, name: str, *results: Any, log: Recorder | None = None) -> None:
        super().__init__()
        self.name = name
        self.results = list(results)
        self.log = log or self

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> Any:
        self.log.record(self.name, event_type)
        result = self.results.pop(0) if self.results else messaging.NotificationResult.HANDLED
        if isinstance(result, BaseException):
            raise result
        return result


@pytest.mark.parametrize("result", [messaging.NotificationResult.HANDLED, None])
def test_handled_and_none_acknowledge(bus: Transport, result: Any) -> None:
    endpoint = Scripted("e", result)
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint], allow_requeue=True)
    with running(server):
        notifier(bus).info({}, "once", {})
        assert endpoint.take(1) == [("e", "once")]
    # wait() returned unacknowledged messages to the queue; there are none.
    assert broker().queue_depth("notifications.info") == 0
    assert endpoint.pending() == []


def test_requeue_redelivers_until_handled(bus: Transport) -> None:
    endpoint = Scripted("e", messaging.NotificationResult.REQUEUE)
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint], allow_requeue=True)
    with running(server):
        notifier(bus).info({}, "again", {})
        assert endpoint.take(2) == [("e", "again"), ("e", "again")]
    assert broker().queue_depth("notifications.info") == 0
    assert endpoint.pending() == []


def test_first_requeue_stops_the_later_endpoints(bus: Transport) -> None:
    log = Recorder()
    first = Scripted("first", messaging.NotificationResult.REQUEUE, log=log)
    second = Scripted("second", log=log)
    server = messaging.get_notification_listener(bus, [TOPIC], [first, second], allow_requeue=True)
    with running(server):
        notifier(bus).info({}, "ev", {})
        calls = log.take(3)
    assert calls == [("first", "ev"), ("first", "ev"), ("second", "ev")]
    assert log.pending() == []


def test_requeue_without_allow_requeue_acknowledges(
    bus: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = Scripted("e", messaging.NotificationResult.REQUEUE)
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint])
    with running(server):
        notifier(bus).info({}, "dropped", {})
        assert endpoint.take(1) == [("e", "dropped")]
    assert broker().queue_depth("notifications.info") == 0
    assert endpoint.pending() == []
    assert "will not come again" in caplog.text


def test_endpoint_exception_is_logged_and_requeued(
    bus: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = Scripted("e", RuntimeError("database is gone"))
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint], allow_requeue=True)
    with running(server):
        notifier(bus).info({}, "flaky", {})
        assert endpoint.take(2) == [("e", "flaky"), ("e", "flaky")]
    assert broker().queue_depth("notifications.info") == 0
    failures = [
        r for r in caplog.records if r.exc_info and "database is gone" in str(r.exc_info[1])
    ]
    assert failures, caplog.text
    assert "'flaky'" in failures[0].getMessage()


def test_endpoint_exception_without_allow_requeue_is_logged_as_lost(
    bus: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = Scripted("e", RuntimeError("boom"))
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint], allow_requeue=False)
    with running(server):
        notifier(bus).info({}, "lost", {"password": "s3cret", "n": 1})
        assert endpoint.take(1) == [("e", "lost")]
    assert broker().queue_depth("notifications.info") == 0
    assert endpoint.pending() == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    lost = [r.getMessage() for r in errors if "will not come again" in r.getMessage()]
    assert lost, caplog.text
    assert "'lost'" in lost[0]
    assert "s3cret" not in caplog.text


# --- driver capabilities -------------------------------------------------------------------------


class NoRequeueDriver(MemoryDriver):
    capabilities: ClassVar[Capabilities] = Capabilities(
        requeue=False, pools=True, fanout=True, rpc=True
    )


class NoPoolsDriver(MemoryDriver):
    capabilities: ClassVar[Capabilities] = Capabilities(
        requeue=True, pools=False, fanout=True, rpc=True
    )


def _transport_of(driver_cls: type[MemoryDriver], conf: cfg.ConfigOpts) -> Transport:
    return Transport(driver_cls(conf, TransportURL.parse(conf, "fake://")))


@pytest.mark.parametrize(
    "factory", [messaging.get_notification_listener, messaging.get_batch_notification_listener]
)
def test_allow_requeue_needs_a_driver_that_requeues(conf: cfg.ConfigOpts, factory: Any) -> None:
    bus = _transport_of(NoRequeueDriver, conf)
    with pytest.raises(NotImplementedError, match="requeue"):
        factory(bus, [TOPIC], [InfoRecorder()], allow_requeue=True)
    # Without allow_requeue the same driver is fine.
    assert factory(bus, [TOPIC], [InfoRecorder()]) is not None


@pytest.mark.parametrize(
    "factory", [messaging.get_notification_listener, messaging.get_batch_notification_listener]
)
def test_pool_needs_a_driver_with_pools(conf: cfg.ConfigOpts, factory: Any) -> None:
    bus = _transport_of(NoPoolsDriver, conf)
    with pytest.raises(NotImplementedError, match="pools"):
        factory(bus, [TOPIC], [InfoRecorder()], pool="workers")
    assert factory(bus, [TOPIC], [InfoRecorder()], allow_requeue=True) is not None


def test_listener_is_a_notification_server(bus: Transport) -> None:
    server = messaging.get_notification_listener(bus, [TOPIC], [InfoRecorder()])
    assert isinstance(server, NotificationServer)
    assert isinstance(server, messaging.MessageHandlingServer)


# --- pools ---------------------------------------------------------------------------------------


class Counting(Recorder):
    """Records payload numbers and sets ``done`` once ``expected`` came."""

    def __init__(self, expected: int, shared: Counting | None = None) -> None:
        super().__init__()
        self.expected = expected
        self.seen: list[int] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.total = shared or self

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        with self.lock:
            self.seen.append(payload["n"])
        self.total.count_one()

    def count_one(self) -> None:
        with self.lock:
            self.expected -= 1
            if self.expected <= 0:
                self.done.set()


def test_each_pool_and_the_default_queue_get_a_copy(bus: Transport) -> None:
    count = 20
    default, pool_a, pool_b = Counting(count), Counting(count), Counting(count)
    servers = [
        messaging.get_notification_listener(bus, [TOPIC], [default]),
        messaging.get_notification_listener(bus, [TOPIC], [pool_a], pool="pool-a"),
        messaging.get_notification_listener(bus, [TOPIC], [pool_b], pool="pool-b"),
    ]
    with running(servers[0]), running(servers[1]), running(servers[2]):
        sender = notifier(bus)
        for n in range(count):
            sender.info({}, "ev", {"n": n})
        for endpoint in (default, pool_a, pool_b):
            assert endpoint.done.wait(TIMEOUT), f"only {len(endpoint.seen)} of {count} came"
    for endpoint in (default, pool_a, pool_b):
        assert sorted(endpoint.seen) == list(range(count))
    for queue_name in ("notifications.info", "pool-a", "pool-b"):
        assert broker().queue_depth(queue_name) == 0


def test_members_of_a_pool_share_its_notifications(bus: Transport) -> None:
    count = 200
    total = Counting(count)
    members = [Counting(count, shared=total), Counting(count, shared=total)]
    servers = [
        messaging.get_notification_listener(bus, [TOPIC], [member], pool="workers")
        for member in members
    ]
    with running(servers[0]), running(servers[1]):
        sender = notifier(bus)
        for n in range(count):
            sender.info({}, "ev", {"n": n})
        assert total.done.wait(TIMEOUT), f"only {count - total.expected} of {count} came"
    together = members[0].seen + members[1].seen
    assert sorted(together) == list(range(count))  # no losses, no duplicates
    assert members[0].seen and members[1].seen  # both members took a share
    assert broker().queue_depth("workers") == 0
    # The publisher always feeds the default queue as well (oslo's topology).
    assert broker().queue_depth("notifications.info") == count


def test_a_target_without_topic_is_refused_at_start(bus: Transport) -> None:
    server = messaging.get_notification_listener(bus, [messaging.Target()], [InfoRecorder()])
    with pytest.raises(messaging.InvalidTarget, match="topic"):
        server.start()


def test_an_rpc_transport_works_with_a_warning(
    conf: cfg.ConfigOpts, caplog: pytest.LogCaptureFixture
) -> None:
    rpc_bus = messaging.get_rpc_transport(conf, "fake://")
    endpoint = InfoRecorder()
    server = messaging.get_notification_listener(rpc_bus, [TOPIC], [endpoint])
    # oslo.messaging's words, once.
    assert [r.getMessage() for r in caplog.records] == [
        "Using RPC transport for notifications. Please use get_notification_transport to "
        "obtain a notification transport instance."
    ]
    with running(server):
        notifier(transport(conf)).info({}, "over.rpc.transport", {})
        assert endpoint.take(1)[0][3] == "over.rpc.transport"
