"""Health reports on the real RabbitMQ: connected and consuming, a broker that closes
connections, a queue deleted under a server, an unreachable broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

import messaging
from messaging import health
from tests.brokers import closed_port, rabbit_url, rabbit_vhost
from tests.drivers.test_rabbit_faults import Echo
from tests.drivers.test_rabbit_resilience import make_conf, rabbitmqctl, wait_for

pytestmark = pytest.mark.broker
TIMEOUT = 60.0


@pytest.fixture
def vhost() -> Iterator[str]:
    with rabbit_vhost("messaging-health") as name:
        yield name


@pytest.fixture
def rpc(vhost: str) -> Iterator[messaging.Transport]:
    transport = messaging.get_rpc_transport(make_conf(), rabbit_url(vhost))
    yield transport
    transport.cleanup()


def serve(rpc: messaging.Transport, topic: str) -> messaging.MessageHandlingServer:
    server = messaging.get_rpc_server(
        rpc, messaging.Target(topic=topic, server="s1"), [Echo()], executor="threading"
    )
    server.start()
    return server


def test_a_serving_rpc_server_reports_itself_connected_and_consuming(
    rpc: messaging.Transport,
) -> None:
    topic = f"health-{uuid.uuid4().hex[:8]}"
    server = serve(rpc, topic)
    try:
        client = messaging.get_rpc_client(rpc, messaging.Target(topic=topic), timeout=10)
        assert client.call({}, "echo", value=1) == 1
        now = server.health()
        assert now.ready and now.live, now.problems
        assert now.consuming and now.link.connected and now.link.alive
        assert now.link.reconnects == 0
        assert now.received == 1
    finally:
        server.stop()
        server.wait()


def test_health_shows_the_reconnects_after_the_broker_closes_the_connections(
    vhost: str, rpc: messaging.Transport
) -> None:
    topic = f"health-{uuid.uuid4().hex[:8]}"
    server = serve(rpc, topic)
    try:
        client = messaging.get_rpc_client(rpc, messaging.Target(topic=topic), timeout=10)
        assert client.call({}, "echo", value=1) == 1
        rabbitmqctl("close_all_connections", "-p", vhost, "health test")
        wait_for(lambda: server.health().link.reconnects >= 1, TIMEOUT, "a reconnect")
        wait_for(lambda: server.health().ready, TIMEOUT, "the server ready again")
        assert client.call({}, "echo", value=2) == 2
    finally:
        server.stop()
        server.wait()


def test_a_queue_deleted_under_a_server_is_consumed_again(
    vhost: str, rpc: messaging.Transport
) -> None:
    """The broker cancels the consumer of a deleted queue; the server must not stay deaf."""
    topic = f"health-{uuid.uuid4().hex[:8]}"
    server = serve(rpc, topic)
    try:
        client = messaging.get_rpc_client(rpc, messaging.Target(topic=topic, server="s1"))
        assert client.call({}, "echo", value=1) == 1
        rabbitmqctl("delete_queue", "-p", vhost, f"{topic}.s1")
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                assert client.prepare(timeout=2).call({}, "echo", value=2) == 2
                break
            except messaging.MessagingTimeout:
                assert time.monotonic() < deadline, "the server stayed deaf: " + repr(
                    server.health()
                )
        assert server.health().ready
    finally:
        server.stop()
        server.wait()


def test_a_server_on_an_unreachable_broker_says_why_it_is_not_ready() -> None:
    url = f"rabbit://guest:guest@127.0.0.1:{closed_port()}/"
    transport = messaging.get_rpc_transport(make_conf(), url)
    server = messaging.get_rpc_server(
        transport, messaging.Target(topic="health-down", server="s1"), [Echo()]
    )
    try:
        server.start()  # returns: consuming starts when the broker is there
        now = health.report([server])
        assert not now.ready
        assert any("not connected to the broker" in p for p in now.problems), now.problems
        assert all("guest:guest" not in p for p in now.problems)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
