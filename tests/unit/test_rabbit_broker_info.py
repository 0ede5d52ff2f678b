"""Reading the broker's product and version from its server properties."""

from __future__ import annotations

import pytest

from messaging.drivers.rabbit.broker import BrokerInfo


@pytest.mark.parametrize(
    ("properties", "rabbitmq4"),
    [
        ({"product": "RabbitMQ", "version": "4.0.5"}, True),
        ({"product": b"RabbitMQ", "version": b"4.3.0-rc.1"}, True),
        ({"product": "RabbitMQ", "version": "3.10.8"}, False),
        ({"product": "RabbitMQ", "version": "3.13.7"}, False),
        ({"product": "RabbitMQ"}, False),
        ({"product": "LavinMQ", "version": "4.1.0"}, False),
        (None, False),
    ],
)
def test_rabbitmq4_is_read_from_product_and_version(
    properties: dict[str, object] | None, rabbitmq4: bool
) -> None:
    assert BrokerInfo.from_server_properties(properties).rabbitmq4 is rabbitmq4


def test_str_names_product_and_version() -> None:
    assert str(BrokerInfo("RabbitMQ", "4.0.5")) == "RabbitMQ 4.0.5"
    assert str(BrokerInfo()) == "an unknown broker (version unknown)"
