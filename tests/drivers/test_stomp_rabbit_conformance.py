"""The driver conformance suite on RabbitMQ's STOMP plugin (127.0.0.1:61613, guest/guest).

The module's tests share one RabbitMQ virtual host of their own (the URL's path,
sent as STOMP's ``host`` header), deleted afterwards with whatever queues the
tests left.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import ClassVar

import pytest

from messaging.drivers.base import Capabilities
from tests.brokers import rabbit_vhost, require_service
from tests.drivers.conformance import DriverHarness, NotificationConformance, RPCConformance

pytestmark = pytest.mark.broker

STOMP_HOST = "127.0.0.1"
STOMP_PORT = 61613
_VHOST: list[str] = []


def stomp_url(vhost: str, query: str = "") -> str:
    """The STOMP transport URL of the local RabbitMQ on ``vhost``."""
    path = urllib.parse.quote(vhost, safe="")
    return f"stomp://guest:guest@{STOMP_HOST}:{STOMP_PORT}/{path}{query}"


@pytest.fixture(scope="module", autouse=True)
def vhost() -> Iterator[str]:
    require_service(STOMP_HOST, STOMP_PORT, "RabbitMQ's STOMP plugin")
    with rabbit_vhost("messaging-stomp") as name:
        _VHOST.append(name)
        try:
            yield name
        finally:
            _VHOST.remove(name)


class RabbitStompBroker(DriverHarness):
    """RabbitMQ's STOMP plugin, on this module's virtual host."""

    capabilities: ClassVar[Capabilities | None] = Capabilities(
        requeue=True, pools=True, fanout=True, rpc=True
    )

    def setup_broker(self) -> None:
        require_service(STOMP_HOST, STOMP_PORT, "RabbitMQ's STOMP plugin")

    def transport_url(self) -> str:
        return stomp_url(_VHOST[-1])


class TestStompRabbitNotifications(RabbitStompBroker, NotificationConformance):
    """Notifications over STOMP on RabbitMQ."""


class TestStompRabbitRPC(RabbitStompBroker, RPCConformance):
    """RPC over STOMP on RabbitMQ."""
