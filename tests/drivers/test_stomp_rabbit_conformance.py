"""The driver conformance suite on RabbitMQ's STOMP plugin (127.0.0.1:61613, guest/guest).

The module's tests share one RabbitMQ virtual host of their own (the URL's path,
sent as STOMP's ``host`` header), deleted afterwards with whatever queues the
tests left.
"""

from __future__ import annotations

import queue
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pytest
import stomp  # type: ignore[import-untyped]

import messaging
from messaging.drivers.base import Capabilities
from tests.brokers import closed_port, rabbit_vhost, require_service
from tests.drivers.conformance import (
    WRONG_PASSWORD,
    DriverHarness,
    NotificationConformance,
    RPCConformance,
)
from tests.drivers.conformance_asyncio import AsyncioConformance

pytestmark = pytest.mark.broker

STOMP_HOST = "127.0.0.1"
STOMP_PORT = 61613
_VHOST: list[str] = []


class _Receipts(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.received: queue.Queue[str] = queue.Queue()
        self.errors: queue.Queue[str] = queue.Queue()

    def on_receipt(self, frame: Any) -> None:
        self.received.put(frame.headers.get("receipt-id", ""))

    def on_error(self, frame: Any) -> None:
        self.errors.put(f"{frame.headers.get('message', '')} {frame.body}")


def stomp_publish_raw(
    transport: messaging.Transport, topic: str, rpc: bool, bodies: Sequence[str]
) -> None:
    """Send ``bodies`` as they are, with stomp.py, where the driver's listeners of ``topic`` read.

    Returns once the broker has sent the receipt of the last one.
    """
    driver: Any = transport.driver
    destinations, exchange = driver.destinations, driver.default_exchange
    if rpc:
        destination = destinations.rpc_queue(exchange, topic)
    elif destinations.rabbit:
        destination = f"/amq/queue/{exchange}.{topic}.info"  # the default queue, by name
    else:
        destination = destinations.notification_send(exchange, f"{topic}.info")
    settings = driver.settings
    connection = stomp.Connection12(
        [settings.hosts[0]], vhost=settings.vhost, heartbeats=(0, 0), timeout=5
    )
    receipts = _Receipts()
    connection.set_listener("receipts", receipts)
    connection.connect(settings.username, settings.password, wait=True)
    try:
        for body in bodies:
            connection.send(destination, body, content_type="application/json", receipt="last")
            try:
                receipts.received.get(timeout=10)
            except queue.Empty:
                errors = list(receipts.errors.queue)
                raise AssertionError(
                    f"no receipt for a raw SEND to {destination}: {errors}"
                ) from None
    finally:
        connection.disconnect()


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

    def inject_raw(
        self, transport: messaging.Transport, topic: str, rpc: bool, bodies: Sequence[str]
    ) -> None:
        stomp_publish_raw(transport, topic, rpc, bodies)

    def refused_url(self) -> str:
        return stomp_url(_VHOST[-1]).replace("guest:guest@", f"guest:{WRONG_PASSWORD}@")

    def unreachable_url(self, publish_timeout: float) -> str:
        url = stomp_url(_VHOST[-1]).replace(f":{STOMP_PORT}/", f":{closed_port()}/")
        return f"{url}?flavor=rabbitmq&publish_timeout={publish_timeout}"


class TestStompRabbitNotifications(RabbitStompBroker, NotificationConformance):
    """Notifications over STOMP on RabbitMQ."""


class TestStompRabbitRPC(RabbitStompBroker, RPCConformance):
    """RPC over STOMP on RabbitMQ."""


class TestStompRabbitAsyncio(RabbitStompBroker, AsyncioConformance):
    """Async endpoints and clients on STOMP on RabbitMQ."""
