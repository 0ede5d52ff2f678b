"""The driver conformance suite on RabbitMQ 4, with the driver's default options.

The broker is Debian trixie's RabbitMQ 4.0.5 in a chroot (tests/rabbitmq_nodes.py),
configured to refuse what RabbitMQ 4.3 refuses by default: transient
non-exclusive queues, global QoS and queue master locators. On it the default
options declare quorum queues where they would otherwise declare transient
ones (``rabbit_auto_quorum``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import ClassVar

import pytest

import messaging
from messaging.drivers.base import Capabilities
from tests.brokers import (
    closed_port,
    rabbit4_url,
    rabbit4_vhost,
    rabbit_publish_raw,
    require_rabbitmq4,
)
from tests.drivers.conformance import (
    WRONG_PASSWORD,
    DriverHarness,
    NotificationConformance,
    RPCConformance,
)
from tests.drivers.conformance_asyncio import AsyncioConformance
from tests.drivers.test_rabbit_resilience import make_conf
from tests.rabbitmq_nodes import RABBIT4, rabbitmqctl

pytestmark = pytest.mark.broker

_VHOST: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def vhost() -> Iterator[str]:
    with rabbit4_vhost("messaging-conformance4") as name:
        _VHOST.append(name)
        try:
            yield name
        finally:
            _VHOST.remove(name)


class Rabbit4Broker(DriverHarness):
    """RabbitMQ 4 refusing what 4.3 refuses, with the default options."""

    capabilities: ClassVar[Capabilities | None] = Capabilities(
        requeue=True, pools=True, fanout=True, rpc=True
    )

    def setup_broker(self) -> None:
        require_rabbitmq4()

    def transport_url(self) -> str:
        return rabbit4_url(_VHOST[-1])

    def inject_raw(
        self, transport: messaging.Transport, topic: str, rpc: bool, bodies: Sequence[str]
    ) -> None:
        queue = topic if rpc else f"{topic}.info"
        rabbit_publish_raw(_VHOST[-1], queue, bodies, port=RABBIT4.amqp_port)

    def refused_url(self) -> str:
        return rabbit4_url(_VHOST[-1]).replace("guest:guest@", f"guest:{WRONG_PASSWORD}@")

    def unreachable_url(self, publish_timeout: float) -> str:
        url = rabbit4_url(_VHOST[-1]).replace(f":{RABBIT4.amqp_port}/", f":{closed_port()}/")
        return f"{url}?publish_confirm_timeout={publish_timeout}"


class TestRabbit4Notifications(Rabbit4Broker, NotificationConformance):
    """Notifications on RabbitMQ 4."""


class TestRabbit4RPC(Rabbit4Broker, RPCConformance):
    """RPC on RabbitMQ 4."""


class TestRabbit4Asyncio(Rabbit4Broker, AsyncioConformance):
    """Async endpoints and clients on RabbitMQ 4."""


def test_the_broker_refuses_transient_queues(vhost: str) -> None:
    import amqp
    import amqp.exceptions

    from tests.rabbitmq_nodes import RABBIT4

    conn = amqp.Connection(f"127.0.0.1:{RABBIT4.amqp_port}", virtual_host=vhost)
    conn.connect()
    try:
        assert conn.server_properties["version"].startswith("4.")
        with pytest.raises(amqp.exceptions.InternalError, match="transient_nonexcl_queues"):
            conn.channel().queue_declare("transient", durable=False, auto_delete=False)
    finally:
        conn.collect()


class Echo:
    def echo(self, ctxt: dict[str, object], value: int) -> int:
        return value


def test_the_default_options_declare_quorum_queues(vhost: str) -> None:
    transport = messaging.get_rpc_transport(make_conf(), rabbit4_url(vhost))
    topic = f"quorum4-{uuid.uuid4().hex}"
    target = messaging.Target(topic=topic, server="s1")
    server = messaging.get_rpc_server(transport, target, [Echo()])
    server.start()
    try:
        client = messaging.get_rpc_client(transport, messaging.Target(topic=topic), timeout=30)
        assert client.call({}, "echo", value=7) == 7
        listed = rabbitmqctl(
            "list_queues", "-p", vhost, "name", "type", "durable", "--no-table-headers", "-q"
        )
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
    queues = {line.split()[0]: line.split()[1:] for line in listed.splitlines() if line.strip()}
    assert queues[topic] == ["quorum", "true"]
    assert queues[f"{topic}.s1"] == ["quorum", "true"]
    replies = [name for name in queues if name.startswith("reply_")]
    fanout = [name for name in queues if name.startswith(f"{topic}_fanout_")]
    # The module's other tests left reply queues too (they expire after 30 min).
    assert replies and all(queues[name] == ["quorum", "true"] for name in replies)
    assert len(fanout) == 1 and queues[fanout[0]] == ["quorum", "true"]
