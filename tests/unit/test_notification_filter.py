"""NotificationFilter: its matching rules, and filtered endpoints of a running listener."""

from __future__ import annotations

import re
from typing import Any

import pytest

import messaging
from messaging.serializer import RequestContextSerializer
from messaging.transport import Transport
from tests.unit.listener_support import (
    InfoRecorder,
    broker,
    make_conf,
    notifier,
    request_context,
    running,
    transport,
)

TOPIC = messaging.Target(topic="notifications")
METADATA = {
    "message_id": "6a1c3ba8-3b1a-4b1e-9d0a-0c1b2a3d4e5f",
    "timestamp": "2026-01-02 03:04:05",
}


def matches(rule: messaging.NotificationFilter, **fields: Any) -> bool:
    values: dict[str, Any] = {
        "context": {"user": "alice", "request_id": "req-1", "roles": ["admin"], "count": 5},
        "publisher_id": "compute.host1",
        "event_type": "compute.instance.create.start",
        "metadata": METADATA,
        "payload": {"state": "active", "size": 10},
    }
    values.update(fields)
    return rule.match(
        values["context"],
        values["publisher_id"],
        values["event_type"],
        values["metadata"],
        values["payload"],
    )


# --- the rules -----------------------------------------------------------------------------------


def test_an_empty_filter_matches_everything() -> None:
    rule = messaging.NotificationFilter()
    assert matches(rule)
    assert matches(rule, context={}, publisher_id=None, event_type=None, payload="text")


@pytest.mark.parametrize(
    ("expression", "event_type", "expected"),
    [
        ("compute", "compute.start", True),  # anchored at the start ...
        ("start", "compute.start", False),  # ... so a later part does not match
        ("compute", "computer.start", True),  # ... but not at the end
        (r"^compute\.start$", "compute.start.later", False),
        (r"^instance\..*\.start$", "instance.create.start", True),
        (r"^instance\..*\.start$", "instance.create.end", False),
        (".*start", "compute.start", True),
    ],
)
def test_event_type_uses_re_match(expression: str, event_type: str, expected: bool) -> None:
    assert matches(messaging.NotificationFilter(event_type=expression), event_type=event_type) is (
        expected
    )


def test_publisher_id_rule() -> None:
    rule = messaging.NotificationFilter(publisher_id="^compute.*")
    assert matches(rule, publisher_id="compute.host1")
    assert not matches(rule, publisher_id="network.host1")
    assert not matches(rule, publisher_id="host1.compute")
    assert not matches(rule, publisher_id=None)


@pytest.mark.parametrize("field", ["context", "metadata", "payload"])
def test_dict_rules_need_the_key(field: str) -> None:
    rules: dict[str, Any] = {field: {"absent": ".*"}}
    rule = messaging.NotificationFilter(**rules)
    assert not matches(rule)


def test_dict_rules_match_string_values_only() -> None:
    assert not matches(messaging.NotificationFilter(context={"count": "5"}))
    assert not matches(messaging.NotificationFilter(context={"roles": ".*"}))
    assert not matches(messaging.NotificationFilter(payload={"size": "10"}))
    assert matches(messaging.NotificationFilter(context={"user": "^ali"}))
    assert not matches(messaging.NotificationFilter(context={"user": "ice"}))


def test_dict_rules_on_payload_and_metadata() -> None:
    assert matches(messaging.NotificationFilter(payload={"state": "^act"}))
    assert not matches(messaging.NotificationFilter(payload={"state": "^deleted"}))
    assert matches(messaging.NotificationFilter(metadata={"timestamp": "^2026-"}))
    assert not matches(messaging.NotificationFilter(metadata={"timestamp": "^2025-"}))
    # A payload that is not a mapping has no keys to match.
    assert not matches(messaging.NotificationFilter(payload={"state": ".*"}), payload="active")


def test_every_rule_must_match() -> None:
    rule = messaging.NotificationFilter(
        publisher_id="^compute", event_type="compute", context={"user": "alice"}
    )
    assert matches(rule)
    assert not matches(rule, publisher_id="network.host")
    assert not matches(rule, event_type="image.upload")
    assert not matches(rule, context={"user": "bob"})


def test_context_objects_are_matched_by_their_fields() -> None:
    rule = messaging.NotificationFilter(context={"request_id": "^req-7"})
    assert matches(rule, context=request_context(request_id="req-7"))
    assert not matches(rule, context=request_context(request_id="req-8"))


def test_a_bad_expression_fails_at_construction() -> None:
    with pytest.raises(re.error):
        messaging.NotificationFilter(event_type="(unclosed")


# --- on a running listener -----------------------------------------------------------------------


@pytest.fixture
def bus() -> Transport:
    return transport(make_conf())


class Filtered(InfoRecorder):
    def __init__(self, rule: messaging.NotificationFilter) -> None:
        super().__init__()
        self.filter_rule = rule


def test_filtered_out_notifications_are_acknowledged_not_redelivered(bus: Transport) -> None:
    picky = Filtered(messaging.NotificationFilter(event_type="^compute"))
    server = messaging.get_notification_listener(bus, [TOPIC], [picky], allow_requeue=True)
    with running(server):
        sender = notifier(bus)
        sender.info({}, "image.upload", {})
        sender.info({}, "compute.start", {})
        [call] = picky.take(1)
    assert call[3] == "compute.start"
    assert picky.pending() == []
    # Acknowledged, so neither requeued nor returned to the queue by wait().
    assert broker().queue_depth("notifications.info") == 0


def test_only_the_filtered_endpoint_is_skipped(bus: Transport) -> None:
    picky = Filtered(messaging.NotificationFilter(publisher_id="^compute"))
    everything = InfoRecorder()
    server = messaging.get_notification_listener(bus, [TOPIC], [picky, everything])
    with running(server):
        notifier(bus, "network.host1").info({}, "net.up", {})
        notifier(bus, "compute.host1").info({}, "vm.up", {})
        got_all = sorted(call[3] for call in everything.take(2))
        [picked] = picky.take(1)
    assert got_all == ["net.up", "vm.up"]
    assert picked[2] == "compute.host1"
    assert picky.pending() == []


def test_filters_on_context_payload_and_metadata_of_real_notifications(bus: Transport) -> None:
    by_context = Filtered(messaging.NotificationFilter(context={"request_id": "^req-a"}))
    by_payload = Filtered(messaging.NotificationFilter(payload={"state": "^active$"}))
    by_metadata = Filtered(messaging.NotificationFilter(metadata={"message_id": "^[0-9a-f-]{36}$"}))
    server = messaging.get_notification_listener(
        bus, [TOPIC], [by_context, by_payload, by_metadata]
    )
    with running(server):
        sender = notifier(bus)
        sender.info(request_context(request_id="req-a1"), "one", {"state": "building"})
        sender.info(request_context(request_id="req-b2"), "two", {"state": "active"})
        sender.info(request_context(request_id="req-b3"), "three", {"state": 1})
        assert sorted(c[3] for c in by_metadata.take(3)) == ["one", "three", "two"]
        assert [c[3] for c in by_context.take(1)] == ["one"]
        assert [c[3] for c in by_payload.take(1)] == ["two"]
    assert by_context.pending() == [] and by_payload.pending() == []


def test_filter_sees_the_deserialized_context(bus: Transport) -> None:
    picky = Filtered(messaging.NotificationFilter(context={"user": "^alice$"}))
    server = messaging.get_notification_listener(
        bus, [TOPIC], [picky], serializer=RequestContextSerializer()
    )
    with running(server):
        sender = notifier(bus)
        sender.info(request_context(user_id="bob"), "by.bob", {})
        sender.info(request_context(user_id="alice"), "by.alice", {})
        [call] = picky.take(1)
    assert call[3] == "by.alice"
    assert picky.pending() == []
