"""oslo.messaging's documented notifier usage, unchanged but for the import line.

Each test body is the documentation's snippet, with ``cfg.CONF`` replaced by a
private configuration set to ``fake://`` (the in-memory transport); what the
snippet sends is then read back by a listener and compared with what was sent.
"""

from __future__ import annotations

import logging
import logging.config
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg
from oslo_context import context

import messaging as oslo_messaging
from messaging.drivers.base import IncomingMessage


@pytest.fixture
def conf() -> Iterator[cfg.ConfigOpts]:
    conf = cfg.ConfigOpts()
    with oslo_messaging.ConfFixture(conf) as fixture:
        fixture.transport_url = "fake://"
        yield conf


def receive(
    transport: oslo_messaging.Transport, topic: str, priority: str, count: int
) -> list[IncomingMessage]:
    """Take exactly ``count`` notifications from ``<topic>.<priority>``, then check none is left."""
    listener = transport.listen_for_notifications([(oslo_messaging.Target(topic=topic), priority)])
    got: list[IncomingMessage] = []
    try:
        while len(got) < count:
            batch = listener.poll(timeout=2)
            assert batch, f"only {len(got)} of {count} notifications arrived"
            got.extend(batch)
        assert listener.poll(timeout=0) == []
        for incoming in got:
            incoming.acknowledge()
    finally:
        listener.cleanup()
    return got


def test_notifier_documentation_example(conf: cfg.ConfigOpts) -> None:
    ctxt: dict[str, Any] = {}
    payload = {"instance_id": "abc", "state": "active"}

    transport = oslo_messaging.get_notification_transport(conf)
    notifier = oslo_messaging.Notifier(
        transport, "compute.host1", driver="messaging", topics=["notifications"]
    )
    notifier.info(ctxt, "compute.create_instance", payload)

    notifier = notifier.prepare(publisher_id="compute")
    notifier.info(ctxt, "compute.create_instance", payload)

    try:
        first, second = receive(transport, "notifications", "info", 2)
    finally:
        transport.cleanup()
    for incoming, publisher in ((first, "compute.host1"), (second, "compute")):
        message = incoming.message
        assert message["publisher_id"] == publisher
        assert message["event_type"] == "compute.create_instance"
        assert message["priority"] == "INFO"
        assert message["payload"] == payload
        assert str(uuid.UUID(message["message_id"])) == message["message_id"]
    assert first.message["message_id"] != second.message["message_id"]


def test_messagingv2_with_request_context(conf: cfg.ConfigOpts) -> None:
    ctxt = context.RequestContext(user_id="u1", project_id="p1", auth_token="s3cr3t")

    transport = oslo_messaging.get_notification_transport(conf)
    notifier = oslo_messaging.Notifier(
        transport, publisher_id="compute.host1", driver="messagingv2", topics=["notifications"]
    )
    notifier.error(ctxt, "compute.instance.create.error", {"instance_id": "abc"})
    notifier.sample(ctxt, "compute.metrics.update", {"cpu": 0.5})

    try:
        (error,) = receive(transport, "notifications", "error", 1)
        (sample,) = receive(transport, "notifications", "sample", 1)
    finally:
        transport.cleanup()
    assert error.message["payload"] == {"instance_id": "abc"}
    assert error.message["priority"] == "ERROR"
    assert sample.message["payload"] == {"cpu": 0.5}
    assert sample.message["priority"] == "SAMPLE"
    assert error.ctxt["user"] == "u1"
    assert error.ctxt["project_id"] == "p1"
    assert error.ctxt["auth_token"] is None  # redacted before sending


def test_notifier_from_configuration(conf: cfg.ConfigOpts) -> None:
    # The configuration-driven form of the documentation: driver and topics from
    # [oslo_messaging_notifications] (set here through the fixture's legacy names).
    conf.set_override("notification_driver", ["messagingv2"])
    conf.set_override("notification_topics", ["notifications", "audit"])

    transport = oslo_messaging.get_notification_transport(conf)
    notifier = oslo_messaging.Notifier(transport, publisher_id="image.host2")
    notifier.warn({}, "image.delete", {"image_id": "i1"})

    try:
        (one,) = receive(transport, "notifications", "warn", 1)
        (two,) = receive(transport, "audit", "warn", 1)
    finally:
        transport.cleanup()
    assert one.message == two.message
    assert one.message["payload"] == {"image_id": "i1"}
    assert one.message["priority"] == "WARN"


def test_notification_listener_documentation_example(conf: cfg.ConfigOpts) -> None:
    received: list[tuple[Any, ...]] = []
    done = threading.Event()

    class NotificationEndpoint:
        filter_rule = oslo_messaging.NotificationFilter(publisher_id="^compute.*")

        def warn(
            self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any
        ) -> None:
            received.append((publisher_id, event_type, payload, metadata))
            done.set()

    transport = oslo_messaging.get_notification_transport(conf)
    targets = [oslo_messaging.Target(topic="notifications")]
    endpoints = [NotificationEndpoint()]
    server = oslo_messaging.get_notification_listener(
        transport, targets, endpoints, executor="threading"
    )
    server.start()
    try:
        notifier = oslo_messaging.Notifier(transport, "image.host", driver="messagingv2")
        notifier.warn({}, "image.ignored", {"n": 0})  # filtered out by publisher_id
        notifier = notifier.prepare(publisher_id="compute.host1")
        notifier.warn({}, "compute.instance.update", {"n": 1})
        assert done.wait(timeout=5)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
    ((publisher_id, event_type, payload, metadata),) = received
    assert (publisher_id, event_type, payload) == (
        "compute.host1",
        "compute.instance.update",
        {"n": 1},
    )
    assert set(metadata) == {"message_id", "timestamp"}


def test_logging_handler_from_a_logging_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    # The documented logging configuration file section:
    #   [handler_notifier]
    #   class=oslo_messaging.LoggingNotificationHandler
    #   level=ERROR
    #   args=('rabbit:///',)
    # The class is found by name as logging's configuration finds it and built
    # with those args (here fake://, a publisher id and a driver); logging.config
    # itself is not run, as it would close every handler of the process.
    conf = cfg.ConfigOpts()
    monkeypatch.setattr(oslo_messaging.LoggingNotificationHandler, "CONF", conf)
    handler_class = logging.config.BaseConfigurator({}).resolve(
        "messaging.LoggingNotificationHandler"
    )
    handler = handler_class("fake://", "logs.host1", "messagingv2")
    handler.setLevel(logging.ERROR)
    log = logging.getLogger(f"doc.example.{uuid.uuid4().hex}")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("not sent")
        log.error("disk %s failed", "sda")
        transport = oslo_messaging.get_notification_transport(conf, "fake://")
        try:
            (incoming,) = receive(transport, "notifications", "error", 1)
        finally:
            transport.cleanup()
    finally:
        log.removeHandler(handler)
        handler.close()
    assert handler_class is oslo_messaging.LoggingNotificationHandler
    assert incoming.message["publisher_id"] == "logs.host1"
    assert incoming.message["event_type"] == "logrecord"
    assert incoming.message["payload"]["msg"] == "disk sda failed"
