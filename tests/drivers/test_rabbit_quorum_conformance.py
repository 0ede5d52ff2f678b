"""The driver conformance suite on RabbitMQ with quorum queues.

``rabbit_quorum_queue`` makes the topic exchange, the RPC and notification
queues durable quorum queues; ``rabbit_transient_quorum_queue`` makes reply
and fanout queues quorum queues too (oslo.messaging's recommended settings for
RabbitMQ 4). The durable topic exchange cannot share a virtual host with the
non-durable one of the default settings, so this module has a vhost of its own.
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

QUORUM_QUERY = "?rabbit_quorum_queue=true&rabbit_transient_quorum_queue=true"
_VHOST: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def vhost() -> Iterator[str]:
    with rabbit_vhost("messaging-quorum") as name:
        _VHOST.append(name)
        try:
            yield name
        finally:
            _VHOST.remove(name)


class QuorumRabbitBroker(DriverHarness):
    """The local RabbitMQ with quorum queues everywhere."""

    capabilities: ClassVar[Capabilities | None] = Capabilities(
        requeue=True, pools=True, fanout=True, rpc=True
    )

    def setup_broker(self) -> None:
        require_rabbitmq()

    def transport_url(self) -> str:
        return rabbit_url(_VHOST[-1]) + QUORUM_QUERY

    def inject_raw(
        self, transport: messaging.Transport, topic: str, rpc: bool, bodies: Sequence[str]
    ) -> None:
        rabbit_publish_raw(_VHOST[-1], topic if rpc else f"{topic}.info", bodies)

    def refused_url(self) -> str:
        return rabbit_url(_VHOST[-1]).replace("guest:guest@", f"guest:{WRONG_PASSWORD}@")

    def unreachable_url(self, publish_timeout: float) -> str:
        url = rabbit_url(_VHOST[-1]).replace(":5672/", f":{closed_port()}/")
        return f"{url}?publish_confirm_timeout={publish_timeout}"


class TestQuorumRabbitNotifications(QuorumRabbitBroker, NotificationConformance):
    """Notifications on RabbitMQ quorum queues."""


class TestQuorumRabbitRPC(QuorumRabbitBroker, RPCConformance):
    """RPC on RabbitMQ quorum queues."""


class TestQuorumRabbitAsyncio(QuorumRabbitBroker, AsyncioConformance):
    """Async endpoints and clients on RabbitMQ with quorum queues."""


def test_the_queues_are_quorum_queues(vhost: str) -> None:
    import uuid

    from tests.drivers.test_rabbit_resilience import make_conf, rabbitmqctl

    transport = messaging.get_rpc_transport(make_conf(), rabbit_url(vhost) + QUORUM_QUERY)
    topic = f"quorum-{uuid.uuid4().hex}"
    server = messaging.get_rpc_server(transport, messaging.Target(topic=topic, server="s1"), [])
    server.start()
    try:
        listed = rabbitmqctl(
            "list_queues", "-p", vhost, "name", "type", "durable", "--no-table-headers"
        )
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
    queues = {line.split()[0]: line.split()[1:] for line in listed.splitlines() if line.strip()}
    assert queues[topic] == ["quorum", "true"]
    assert queues[f"{topic}.s1"] == ["quorum", "true"]
    fanout = [name for name in queues if name.startswith(f"{topic}_fanout_")]
    assert len(fanout) == 1 and queues[fanout[0]] == ["quorum", "true"]
