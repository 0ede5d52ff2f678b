"""Health reports on the real RabbitMQ: connected and consuming, a broker that closes
connections, a queue deleted under a server, an unreachable broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import amqp
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


CANARY_INTERVAL = 1.0


@dataclass
class Canaried:
    """A running RPC server whose canary has been answered once."""

    transport: messaging.Transport
    topic: str
    server: messaging.MessageHandlingServer


@pytest.fixture
def canaried(vhost: str) -> Iterator[Canaried]:
    conf = make_conf()
    transport = messaging.get_rpc_transport(conf, rabbit_url(vhost))
    conf.set_override("rpc_canary_interval", CANARY_INTERVAL)  # registered by the transport
    topic = f"canary-{uuid.uuid4().hex[:8]}"
    server = serve(transport, topic)
    try:
        wait_for(lambda: server.health().canary.last_answer_age is not None, TIMEOUT, "a canary")
        yield Canaried(transport, topic, server)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_the_canary_finds_a_deaf_server_and_the_transport_repairs_it(
    vhost: str, canaried: Canaried
) -> None:
    """The exchange deleted broker-side: the connection looks fine, requests go nowhere."""
    server = canaried.server
    client = messaging.get_rpc_client(
        canaried.transport, messaging.Target(topic=canaried.topic, server="s1"), timeout=2
    )
    assert server.health().ready
    deaf = rabbit_publish_raw_connection(vhost)
    deaf.channel().exchange_delete("openstack")
    deaf.close()
    deleted = time.monotonic()
    wait_for(lambda: server.health().canary.failures > 0, TIMEOUT, "the canary to fail")
    found = time.monotonic() - deleted
    failing = server.health()
    assert not failing.ready
    assert any("canary call through the broker failed" in p for p in failing.problems)
    wait_for(lambda: server.health().canary.failures == 0, TIMEOUT, "the repair")
    repaired = time.monotonic() - deleted
    print(f"\n[canary] deaf path found {found:.1f} s and repaired {repaired:.1f} s after")
    # The bound: twice the interval, and some slack.
    assert found <= 2 * CANARY_INTERVAL + 1.0, found
    assert server.health().canary.repairs >= 1
    assert client.call({}, "echo", value=3) == 3  # the service's own calls too
    assert server.health().ready


def rabbit_publish_raw_connection(vhost: str) -> amqp.Connection:
    connection = amqp.Connection(
        "127.0.0.1:5672", userid="guest", password="guest", virtual_host=vhost
    )
    connection.connect()
    return connection


def test_a_reply_queue_deleted_broker_side_is_made_again_and_reported(
    vhost: str, canaried: Canaried
) -> None:
    server = canaried.server
    listed = rabbitmqctl("list_queues", "-p", vhost, "name", "--no-table-headers")
    (reply,) = [name for name in listed.split() if name.startswith("reply_")]
    rabbitmqctl("delete_queue", "-p", vhost, reply)
    deleted = time.monotonic()
    wait_for(lambda: server.health().link.reconnects >= 1, TIMEOUT, "the reconnect")
    wait_for(
        lambda: (server.health().canary.last_answer_age or TIMEOUT) < time.monotonic() - deleted,
        TIMEOUT,
        "a canary answered after the deletion",
    )
    answered = time.monotonic() - deleted
    print(f"\n[reply queue] answered again {answered:.1f} s after its deletion")
    assert answered <= 2 * CANARY_INTERVAL + 5.0, answered
    listed = rabbitmqctl("list_queues", "-p", vhost, "name", "--no-table-headers")
    assert reply in listed.split()  # declared again by the process
