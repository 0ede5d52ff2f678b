"""The driver conformance suite on CoilMQ, a second STOMP broker (from PyPI, started here).

The module starts one CoilMQ on a free loopback port (see
:mod:`tests.drivers.coilmq_support`) and stops it afterwards. The URL names
CoilMQ's fully qualified host name as virtual host: the only ``host`` header its
STOMP 1.2 accepts. ``flavor=auto`` learns from the CONNECTED frame that it is not
RabbitMQ and uses the generic destinations.

What is skipped, and why (the driver declares it):

- listener pools: a generic STOMP broker has no way to give each named group of
  subscribers its own copy of a queue's messages;
- full batches: CoilMQ sends a subscription its next message only once the last
  one is acknowledged, so a batch listener gets one message per batch;
- refused credentials: CoilMQ, as started here, checks none.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

import pytest

import messaging
from messaging.drivers.base import Capabilities
from tests.brokers import closed_port
from tests.drivers.coilmq_support import CoilMQ, running_coilmq
from tests.drivers.conformance import DriverHarness, NotificationConformance, RPCConformance
from tests.drivers.conformance_asyncio import AsyncioConformance
from tests.drivers.test_stomp_rabbit_conformance import stomp_publish_raw

pytestmark = pytest.mark.broker

_BROKER: list[CoilMQ] = []


@pytest.fixture(scope="module", autouse=True)
def coilmq() -> Iterator[CoilMQ]:
    with running_coilmq() as broker:
        _BROKER.append(broker)
        try:
            yield broker
        finally:
            _BROKER.remove(broker)


class CoilMQBroker(DriverHarness):
    """CoilMQ over STOMP 1.2, generic destinations."""

    capabilities: ClassVar[Capabilities | None] = Capabilities(
        requeue=True, pools=False, fanout=True, rpc=True, batches=False
    )

    def transport_url(self) -> str:
        broker = _BROKER[-1]
        return broker.url(broker.fqdn)

    def inject_raw(
        self, transport: messaging.Transport, topic: str, rpc: bool, bodies: Sequence[str]
    ) -> None:
        stomp_publish_raw(transport, topic, rpc, bodies)

    def unreachable_url(self, publish_timeout: float) -> str:
        broker = _BROKER[-1]
        url = broker.url(broker.fqdn).replace(f":{broker.port}/", f":{closed_port()}/")
        return f"{url}?flavor=generic&publish_timeout={publish_timeout}"


class TestStompCoilMQNotifications(CoilMQBroker, NotificationConformance):
    """Notifications over STOMP on CoilMQ."""


class TestStompCoilMQRPC(CoilMQBroker, RPCConformance):
    """RPC over STOMP on CoilMQ."""


class TestStompCoilMQAsyncio(CoilMQBroker, AsyncioConformance):
    """Async endpoints and clients on STOMP on CoilMQ."""
