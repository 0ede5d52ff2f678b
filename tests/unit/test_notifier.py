"""The Notifier on the in-memory transport: what it sends, where, and how it fails.

Reference: oslo-messaging.md §1.8 and §5.1, with this project's deliberate
deviations (``retry=0`` honoured, ``raise_errors``, a warning when no driver is
configured, failures logged without the payload).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg
from oslo_context import context as oslo_context

import messaging
from messaging.drivers.memory import get_broker, reset_brokers
from messaging.exceptions import (
    DriverLoadFailure,
    MessageDeliveryFailure,
    MessageSerializationError,
)
from messaging.notify import _impl_test
from messaging.serializer import NoOpSerializer
from messaging.target import Target

MESSAGE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?$")
NOTIFICATION_KEYS = {"message_id", "publisher_id", "event_type", "priority", "payload", "timestamp"}
PRIORITY_METHODS = [
    ("audit", "AUDIT"),
    ("debug", "DEBUG"),
    ("info", "INFO"),
    ("warn", "WARN"),
    ("warning", "WARN"),
    ("error", "ERROR"),
    ("critical", "CRITICAL"),
    ("sample", "SAMPLE"),
]
NOTIFIER_LOG = "messaging.notify.notifier"


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    reset_brokers()
    _impl_test.reset()
    yield
    reset_brokers()
    _impl_test.reset()


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    return cfg.ConfigOpts()


@pytest.fixture
def transport(conf: cfg.ConfigOpts) -> Iterator[messaging.Transport]:
    transport = messaging.get_notification_transport(conf, "fake://")
    yield transport
    transport.cleanup()


def bodies(queue: str) -> list[Any]:
    """The raw JSON bodies queued in ``queue`` of the default virtual host, decoded once."""
    return [json.loads(body) for body in get_broker().messages(queue)]


def inner(queue: str) -> list[dict[str, Any]]:
    """The notifications in ``queue``, taken out of their envelope."""
    out = []
    for body in bodies(queue):
        assert body["oslo.version"] == "2.0"
        out.append(json.loads(body["oslo.message"]))
    return out


def queued_total() -> int:
    broker = get_broker()
    return sum(broker.queue_depth(name) for name in broker.queues())


# --- what is sent, and where -------------------------------------------------------------------


@pytest.mark.parametrize(("method", "priority"), PRIORITY_METHODS)
def test_each_priority_goes_to_every_topic(
    transport: messaging.Transport, method: str, priority: str
) -> None:
    notifier = messaging.Notifier(
        transport, "compute.host1", driver="messagingv2", topics=["alpha", "beta"]
    )
    getattr(notifier, method)({}, "compute.instance.create.end", {"n": 1})

    for topic in ("alpha", "beta"):
        (message,) = inner(f"{topic}.{priority.lower()}")
        assert message["priority"] == priority
        assert message["event_type"] == "compute.instance.create.end"
    assert queued_total() == 2


def test_warning_uses_warn_routing_key(transport: messaging.Transport) -> None:
    notifier = messaging.Notifier(transport, "p", driver="messagingv2")
    notifier.warning({}, "e", {})
    assert get_broker().queues() == ["notifications.warn"]


def test_message_keys_and_formats(transport: messaging.Transport) -> None:
    notifier = messaging.Notifier(transport, "compute.host1", driver="messagingv2")
    notifier.info({}, "compute.instance.create.end", {"instance_id": "abc", "state": "active"})

    (message,) = inner("notifications.info")
    assert set(message) == NOTIFICATION_KEYS | {"_unique_id"}
    assert MESSAGE_ID.match(message["message_id"]) and len(message["message_id"]) == 36
    assert re.fullmatch(r"[0-9a-f]{32}", message["_unique_id"])
    assert message["publisher_id"] == "compute.host1"
    assert message["payload"] == {"instance_id": "abc", "state": "active"}
    assert TIMESTAMP.match(message["timestamp"]), message["timestamp"]


def test_each_notification_gets_its_own_message_id(transport: messaging.Transport) -> None:
    notifier = messaging.Notifier(transport, "p", driver="messagingv2")
    notifier.info({}, "e", 1)
    notifier.info({}, "e", 2)
    first, second = inner("notifications.info")
    assert first["message_id"] != second["message_id"]
    assert [first["payload"], second["payload"]] == [1, 2]


def test_messagingv2_body_is_enveloped(transport: messaging.Transport) -> None:
    messaging.Notifier(transport, "p", driver="messagingv2").error({}, "e", {"x": 1})
    (body,) = bodies("notifications.error")
    assert set(body) == {"oslo.version", "oslo.message"}
    assert isinstance(body["oslo.message"], str)
    assert json.loads(body["oslo.message"])["payload"] == {"x": 1}


def test_messaging_v1_body_is_bare(transport: messaging.Transport) -> None:
    messaging.Notifier(transport, "p", driver="messaging").error({}, "e", {"x": 1})
    (body,) = bodies("notifications.error")
    assert "oslo.version" not in body and "oslo.message" not in body
    assert set(body) == NOTIFICATION_KEYS | {"_unique_id"}
    assert body["payload"] == {"x": 1}
    assert body["priority"] == "ERROR"


@pytest.mark.parametrize("driver", ["messaging", "messagingv2"])
def test_listener_receives_what_was_sent(transport: messaging.Transport, driver: str) -> None:
    listener = transport.listen_for_notifications([(Target(topic="notifications"), "info")])
    try:
        notifier = messaging.Notifier(transport, "compute.host1", driver=driver)
        notifier.info({}, "compute.instance.create.end", {"instance_id": "abc"})
        (incoming,) = listener.poll(timeout=2)
        incoming.acknowledge()
    finally:
        listener.cleanup()
    assert incoming.message["publisher_id"] == "compute.host1"
    assert incoming.message["event_type"] == "compute.instance.create.end"
    assert incoming.message["priority"] == "INFO"
    assert incoming.message["payload"] == {"instance_id": "abc"}
    assert set(incoming.message) == NOTIFICATION_KEYS


# --- configuration -----------------------------------------------------------------------------


def test_topics_from_config(conf: cfg.ConfigOpts, transport: messaging.Transport) -> None:
    conf.set_override("topics", ["t1", "t2"], group="oslo_messaging_notifications")
    messaging.Notifier(transport, "p", driver="messagingv2").info({}, "e", {})
    assert get_broker().queues() == ["t1.info", "t2.info"]


def test_default_topic_is_notifications(transport: messaging.Transport) -> None:
    messaging.Notifier(transport, "p", driver="messagingv2").critical({}, "e", {})
    assert get_broker().queues() == ["notifications.critical"]


def test_oslo_style_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "service.conf"
    config_file.write_text(
        "[DEFAULT]\n"
        "transport_url = rabbit://nowhere\n"
        "[oslo_messaging_notifications]\n"
        "driver = messagingv2\n"
        "driver = test\n"
        "topics = nova_notifications,audit\n"
        "transport_url = fake://\n"
        "retry = 4\n"
    )
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(config_file)], project="svc")
    transport = messaging.get_notification_transport(conf)
    try:
        notifier = messaging.Notifier(transport, "svc.host")
        notifier.info({}, "svc.started", {"ok": True})
    finally:
        transport.cleanup()
    assert get_broker().queues() == ["audit.info", "nova_notifications.info"]
    ((_ctxt, message, priority, retry),) = _impl_test.NOTIFICATIONS
    assert (message["publisher_id"], priority, retry) == ("svc.host", "INFO", 4)


def test_driver_from_config_multistr(conf: cfg.ConfigOpts, transport: messaging.Transport) -> None:
    conf.set_override("driver", ["messaging", "test"], group="oslo_messaging_notifications")
    messaging.Notifier(transport, "p").info({}, "e", {"a": 1})
    (body,) = bodies("notifications.info")
    assert body["payload"] == {"a": 1}
    assert len(_impl_test.NOTIFICATIONS) == 1


def test_driver_argument_overrides_config(
    conf: cfg.ConfigOpts, transport: messaging.Transport
) -> None:
    conf.set_override("driver", ["messagingv2"], group="oslo_messaging_notifications")
    messaging.Notifier(transport, "p", driver="test").info({}, "e", {})
    assert len(_impl_test.NOTIFICATIONS) == 1
    assert get_broker().queues() == []


def test_driver_argument_as_list(transport: messaging.Transport) -> None:
    messaging.Notifier(transport, "p", driver=["test", "messagingv2"]).info({}, "e", {})
    assert len(_impl_test.NOTIFICATIONS) == 1
    assert len(inner("notifications.info")) == 1


def test_unknown_driver_lists_known_names(transport: messaging.Transport) -> None:
    with pytest.raises(DriverLoadFailure) as caught:
        messaging.Notifier(transport, "p", driver=["test", "messagingv3"])
    text = str(caught.value)
    assert "messagingv3" in text
    for known in ("messagingv2", "log", "noop", "routing", "test", "messaging"):
        assert re.search(rf"\b{known}\b", text.split("known names")[-1]), known


def test_no_driver_warns_and_sends_nothing(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=NOTIFIER_LOG):
        notifier = messaging.Notifier(transport, "lonely.publisher")
    notifier.info({}, "e", {"x": 1})
    warnings = [r for r in caplog.records if r.name == NOTIFIER_LOG]
    assert len(warnings) == 1
    assert "lonely.publisher" in warnings[0].getMessage()
    assert "driver" in warnings[0].getMessage()
    assert get_broker().queues() == []
    assert _impl_test.NOTIFICATIONS == []


def test_rpc_transport_is_used_with_a_warning(
    conf: cfg.ConfigOpts, caplog: pytest.LogCaptureFixture
) -> None:
    transport = messaging.get_rpc_transport(conf, "fake://")
    try:
        with caplog.at_level(logging.WARNING, logger=NOTIFIER_LOG):
            notifier = messaging.Notifier(transport, "p", driver="messagingv2")
        notifier.info({}, "e", {})
    finally:
        transport.cleanup()
    assert any("RPC transport" in r.getMessage() for r in caplog.records)
    assert len(inner("notifications.info")) == 1


# --- prepare and is_enabled --------------------------------------------------------------------


def test_prepare_overrides_publisher_and_shares_drivers(transport: messaging.Transport) -> None:
    notifier = messaging.Notifier(transport, "compute.host1", driver=["test", "messagingv2"])
    sub = notifier.prepare(publisher_id="compute")
    assert isinstance(sub, messaging.Notifier)
    assert sub._drivers is notifier._drivers

    sub.info({}, "e", {})
    notifier.info({}, "e", {})
    publishers = [m["publisher_id"] for _c, m, _p, _r in _impl_test.NOTIFICATIONS]
    assert publishers == ["compute", "compute.host1"]
    assert [m["publisher_id"] for m in inner("notifications.info")] == publishers


def test_prepare_without_arguments_keeps_everything(transport: messaging.Transport) -> None:
    notifier = messaging.Notifier(transport, "pub", driver="test", retry=7)
    notifier.prepare().audit({}, "e", {})
    ((_c, message, _p, retry),) = _impl_test.NOTIFICATIONS
    assert (message["publisher_id"], retry) == ("pub", 7)


def test_prepare_of_a_prepared_notifier(transport: messaging.Transport) -> None:
    notifier = messaging.Notifier(transport, "a", driver="test")
    notifier.prepare(publisher_id="b").prepare(retry=2).info({}, "e", {})
    ((_c, message, _p, retry),) = _impl_test.NOTIFICATIONS
    assert (message["publisher_id"], retry) == ("b", 2)


def test_prepare_rejects_unknown_arguments(transport: messaging.Transport) -> None:
    notifier = messaging.Notifier(transport, "a", driver="test")
    with pytest.raises(TypeError, match="topics"):
        notifier.prepare(topics=["x"])


@pytest.mark.parametrize(
    ("drivers", "enabled"),
    [(["noop"], False), (["noop", "test"], True), (["test"], True), (["log"], True)],
)
def test_is_enabled(transport: messaging.Transport, drivers: list[str], enabled: bool) -> None:
    assert messaging.Notifier(transport, "p", driver=drivers).is_enabled() is enabled


def test_noop_driver_sends_nothing(transport: messaging.Transport) -> None:
    notifier = messaging.Notifier(transport, "p", driver="noop")
    notifier.info({}, "e", {})
    assert get_broker().queues() == []


# --- retry ---------------------------------------------------------------------------------------


def _retries() -> list[int | None]:
    return [retry for _c, _m, _p, retry in _impl_test.NOTIFICATIONS]


def test_retry_default_is_forever(transport: messaging.Transport) -> None:
    messaging.Notifier(transport, "p", driver="test").info({}, "e", {})
    assert _retries() == [-1]


def test_retry_from_config(conf: cfg.ConfigOpts, transport: messaging.Transport) -> None:
    conf.set_override("retry", 5, group="oslo_messaging_notifications")
    messaging.Notifier(transport, "p", driver="test").info({}, "e", {})
    assert _retries() == [5]


def test_retry_from_constructor_and_prepare(transport: messaging.Transport) -> None:
    notifier = messaging.Notifier(transport, "p", driver="test", retry=3)
    notifier.info({}, "e", {})
    notifier.prepare(retry=1).info({}, "e", {})
    # As oslo.messaging: prepare(retry=None) means None (retry forever).
    notifier.prepare(retry=None).info({}, "e", {})
    assert _retries() == [3, 1, None]


def test_retry_zero_is_honoured(conf: cfg.ConfigOpts, transport: messaging.Transport) -> None:
    # oslo.messaging's ``retry or self.retry`` turned an explicit 0 into the default.
    conf.set_override("retry", 9, group="oslo_messaging_notifications")
    notifier = messaging.Notifier(transport, "p", driver="test", retry=0)
    notifier.info({}, "e", {})
    messaging.Notifier(transport, "p", driver="test").prepare(retry=0).info({}, "e", {})
    assert _retries() == [0, 0]


def test_retry_reaches_the_transport(transport: messaging.Transport) -> None:
    # One injected failure: retry=1 allows a second attempt, which succeeds.
    get_broker().fail_next_sends(1)
    notifier = messaging.Notifier(transport, "p", driver="messagingv2", retry=1, raise_errors=True)
    notifier.info({}, "e", {"n": 1})
    assert [m["payload"] for m in inner("notifications.info")] == [{"n": 1}]


# --- serializer and context --------------------------------------------------------------------


class RecordingSerializer(NoOpSerializer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        self.calls.append(("entity", ctxt, entity))
        return {"wrapped": entity}

    def serialize_context(self, ctxt: Any) -> Any:
        self.calls.append(("context", ctxt, None))
        return {"serialised": True}


def test_serializer_hooks_are_called(transport: messaging.Transport) -> None:
    serializer = RecordingSerializer()
    ctxt = oslo_context.RequestContext(user_id="u1", auth_token="tok")
    notifier = messaging.Notifier(transport, "p", driver="messagingv2", serializer=serializer)
    notifier.info(ctxt, "e", {"a": 1})

    (entity_call, context_call) = serializer.calls
    assert entity_call == ("entity", ctxt, {"a": 1})
    assert context_call[0] == "context"
    assert isinstance(context_call[1], oslo_context.RequestContext)
    assert context_call[1].auth_token is None  # redacted before the serializer sees it
    (message,) = inner("notifications.info")
    assert message["payload"] == {"wrapped": {"a": 1}}
    assert message["_context_serialised"] is True


def test_serializer_failure_is_logged_and_raised_on_request(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(NoOpSerializer):
        def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
            raise ValueError("cannot convert")

    notifier = messaging.Notifier(transport, "p", driver="test", serializer=Broken())
    with caplog.at_level(logging.ERROR, logger=NOTIFIER_LOG):
        notifier.info({}, "compute.bad", {})
    assert "compute.bad" in caplog.text
    assert _impl_test.NOTIFICATIONS == []
    with pytest.raises(ValueError, match="cannot convert"):
        notifier.prepare(raise_errors=True).info({}, "compute.bad", {})


@pytest.mark.parametrize("ctxt", [None, {}, {"user": "u1", "auth_token": "secret"}])
def test_none_and_dict_contexts_are_not_sent(transport: messaging.Transport, ctxt: Any) -> None:
    messaging.Notifier(transport, "p", driver=["messagingv2", "test"]).info(ctxt, "e", {})
    (message,) = inner("notifications.info")
    assert not [key for key in message if key.startswith("_context_")]
    assert _impl_test.NOTIFICATIONS[0][0] == {}


def test_request_context_is_sent_redacted(transport: messaging.Transport) -> None:
    ctxt = oslo_context.RequestContext(
        user_id="u1", project_id="p1", auth_token="very-secret", request_id="req-123"
    )
    messaging.Notifier(transport, "p", driver="messagingv2").info(ctxt, "e", {})
    (message,) = inner("notifications.info")
    assert message["_context_user"] == "u1"
    assert message["_context_project_id"] == "p1"
    assert message["_context_request_id"] == "req-123"
    assert message.get("_context_auth_token") is None
    assert "very-secret" not in json.dumps(message)
    assert ctxt.auth_token == "very-secret"  # the caller's context is left alone


def test_context_without_redacted_copy_is_dropped_with_warning(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    class LegacyContext:
        def to_dict(self) -> dict[str, Any]:
            return {"user": "u1", "auth_token": "secret"}

    with caplog.at_level(logging.WARNING, logger=NOTIFIER_LOG):
        messaging.Notifier(transport, "p", driver="messagingv2").info(LegacyContext(), "e", {})
    (message,) = inner("notifications.info")
    assert not [key for key in message if key.startswith("_context_")]
    assert "LegacyContext" in caplog.text
    assert "redacted_copy" in caplog.text


# --- failures ------------------------------------------------------------------------------------


def test_unserialisable_payload_is_logged_and_other_drivers_still_run(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = messaging.Notifier(transport, "p", driver=["messagingv2", "test"])
    payload = {"marker": "PAYLOAD-MARKER-4711", "bad": object()}
    with caplog.at_level(logging.ERROR, logger=NOTIFIER_LOG):
        notifier.info({}, "compute.instance.weird", payload)

    assert queued_total() == 0
    ((_c, message, _p, _r),) = _impl_test.NOTIFICATIONS
    (record,) = [r for r in caplog.records if r.name == NOTIFIER_LOG]
    text = record.getMessage()
    assert record.levelno == logging.ERROR
    assert "compute.instance.weird" in text
    assert message["message_id"] in text
    assert "payload['bad']" in text
    assert "PAYLOAD-MARKER-4711" not in caplog.text


def test_unserialisable_payload_raises_with_raise_errors(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = messaging.Notifier(transport, "p", driver=["messagingv2", "test"], raise_errors=True)
    with (
        caplog.at_level(logging.ERROR, logger=NOTIFIER_LOG),
        pytest.raises(MessageSerializationError) as caught,
    ):
        notifier.info({}, "compute.raised", {"when": object()})
    assert "compute.raised" in caplog.text  # logged as well as raised
    assert caught.value.path == "payload['when']"
    assert len(_impl_test.NOTIFICATIONS) == 1  # the failure did not stop the next driver
    assert queued_total() == 0


def test_delivery_failure_with_retry_zero_is_logged(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    get_broker().fail_next_sends(1)
    notifier = messaging.Notifier(transport, "p", driver="messagingv2", retry=0)
    with caplog.at_level(logging.ERROR, logger=NOTIFIER_LOG):
        notifier.info({}, "compute.lost", {"x": 1})
    assert queued_total() == 0
    assert "compute.lost" in caplog.text
    assert "notifications.info" in caplog.text
    # The next notification goes through: the injected failure is used up, nothing stuck.
    notifier.info({}, "compute.found", {"x": 2})
    assert [m["event_type"] for m in inner("notifications.info")] == ["compute.found"]


def test_delivery_failure_raises_with_raise_errors(transport: messaging.Transport) -> None:
    get_broker().fail_next_sends(1)
    notifier = messaging.Notifier(transport, "p", driver="messagingv2", retry=0)
    with pytest.raises(MessageDeliveryFailure):
        notifier.prepare(raise_errors=True).info({}, "e", {})
    assert queued_total() == 0


def test_delivery_failure_on_one_topic_still_sends_the_others(
    transport: messaging.Transport,
) -> None:
    get_broker().fail_next_sends(1)
    notifier = messaging.Notifier(
        transport, "p", driver="messagingv2", topics=["first", "second"], retry=0
    )
    with pytest.raises(MessageDeliveryFailure) as caught:
        notifier.prepare(raise_errors=True).info({}, "e", {})
    assert "first.info" in " ".join(getattr(caught.value, "__notes__", []))
    assert get_broker().queue_depth("second.info") == 1
    assert "first.info" not in get_broker().queues()  # its publish never happened
