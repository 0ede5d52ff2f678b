"""The RabbitMQ publisher's cached encodings give exactly py-amqp's bytes."""

from __future__ import annotations

from typing import Any

import amqp
import amqp.serialization
import pytest

from messaging.drivers.rabbit import publisher, topology

PROPERTY_SETS: list[dict[str, Any]] = [
    publisher.amqp_properties(topology.publish_properties("reply")),
    publisher.amqp_properties(topology.publish_properties("call", 30)),
    publisher.amqp_properties(topology.publish_properties("notification")),
    {"content_type": "application/json", "application_headers": {"compression": "gzip"}},
    {"content_type": "application/json", "application_headers": {"nested": {"a": [1, 2]}}},
]


@pytest.mark.parametrize("properties", PROPERTY_SETS)
def test_encoded_properties_are_py_amqps_and_stay_so_when_reused(
    properties: dict[str, Any],
) -> None:
    expected = amqp.Message(b"body", **properties)._serialize_properties()
    first = publisher._Message(b"body", **properties)._serialize_properties()
    again = publisher._Message(b"other body", **properties)._serialize_properties()
    assert first == expected
    assert again == expected


def test_different_properties_are_not_confused() -> None:
    short = publisher._Message(b"", **{**PROPERTY_SETS[1], "expiration": "1000"})
    long = publisher._Message(b"", **{**PROPERTY_SETS[1], "expiration": "60000"})
    assert short._serialize_properties() != long._serialize_properties()
    assert b"60000" in long._serialize_properties()


@pytest.mark.parametrize(
    ("exchange", "routing_key", "mandatory"),
    [("", "reply_abc", True), ("nova", "compute.host1", False), ("", "", False)],
)
def test_publish_arguments_are_py_amqps(exchange: str, routing_key: str, mandatory: bool) -> None:
    expected = amqp.serialization.dumps("Bssbb", (0, exchange, routing_key, mandatory, False))
    assert publisher._publish_arguments(exchange, routing_key, mandatory) == expected
