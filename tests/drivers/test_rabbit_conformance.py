"""The driver conformance suite on the real RabbitMQ (127.0.0.1:5672, guest/guest).

The tests of this module share one virtual host made for the session (and
deleted after it); every test uses names of its own within it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

import pytest

import messaging
from messaging.drivers.base import Capabilities
from tests.brokers import (
    closed_port,
    rabbit_publish_raw,
    rabbit_url,
    rabbit_vhost,
    require_rabbitmq,
)
from tests.drivers.conformance import (
    WRONG_PASSWORD,
    DriverHarness,
    NotificationConformance,
    RPCConformance,
)
from tests.drivers.conformance_asyncio import AsyncioConformance

pytestmark = pytest.mark.broker

RABBIT_CAPABILITIES = Capabilities(requeue=True, pools=True, fanout=True, rpc=True)
_VHOST: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def vhost() -> Iterator[str]:
    # Module-scoped fixtures run before the harness's own (function-scoped) one.
    with rabbit_vhost("messaging-conformance") as name:
        _VHOST.append(name)
        try:
            yield name
        finally:
            _VHOST.remove(name)


class RabbitBroker(DriverHarness):
    """The local RabbitMQ, on this module's virtual host."""

    capabilities: ClassVar[Capabilities | None] = RABBIT_CAPABILITIES

    def setup_broker(self) -> None:
        require_rabbitmq()

    def transport_url(self) -> str:
        return rabbit_url(_VHOST[-1])

    def inject_raw(
        self, transport: messaging.Transport, topic: str, rpc: bool, bodies: Sequence[str]
    ) -> None:
        rabbit_publish_raw(_VHOST[-1], topic if rpc else f"{topic}.info", bodies)

    def refused_url(self) -> str:
        return rabbit_url(_VHOST[-1]).replace("guest:guest@", f"guest:{WRONG_PASSWORD}@")

    def unreachable_url(self, publish_timeout: float) -> str:
        url = rabbit_url(_VHOST[-1]).replace(":5672/", f":{closed_port()}/")
        return f"{url}?publish_confirm_timeout={publish_timeout}"


class TestRabbitNotifications(RabbitBroker, NotificationConformance):
    """Notifications on RabbitMQ."""


class TestRabbitRPC(RabbitBroker, RPCConformance):
    """RPC on RabbitMQ."""


class TestRabbitAsyncio(RabbitBroker, AsyncioConformance):
    """Async endpoints and clients on RabbitMQ."""
