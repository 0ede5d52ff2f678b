"""Poison notifications on real brokers: bounded, spaced-out attempts, then parked with the failure.

Each test runs on RabbitMQ 3.10 with classic queues (the defaults), on 3.10
with quorum queues, and on RabbitMQ 4 with its defaults (quorum queues with
the broker's own delivery limit of 20), each on a virtual host of its own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import amqp
import pytest
from oslo_config import cfg

import messaging
from messaging.conf import NOTIFICATIONS_GROUP, register_notification_opts
from messaging.poison import PARKING_QUEUE
from tests import rabbitmq_nodes
from tests.brokers import RABBIT_PORT, rabbit4_url, rabbit4_vhost, rabbit_url, rabbit_vhost
from tests.drivers.test_rabbit_resilience import make_conf

pytestmark = pytest.mark.broker

QUORUM = "?rabbit_quorum_queue=true&rabbit_transient_quorum_queue=true"
WAIT = 30.0


@dataclass
class Broker:
    name: str
    vhost: str
    url: str
    port: int

    def amqp(self) -> amqp.Connection:
        conn = amqp.Connection(f"127.0.0.1:{self.port}", virtual_host=self.vhost)
        conn.connect()
        return conn


@pytest.fixture(params=["rabbitmq3-classic", "rabbitmq3-quorum", "rabbitmq4-quorum"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    name = request.param
    if name.startswith("rabbitmq3"):
        with rabbit_vhost("messaging-poison") as vhost:
            query = QUORUM if name.endswith("quorum") else ""
            yield Broker(name, vhost, rabbit_url(vhost) + query, RABBIT_PORT)
    else:
        with rabbit4_vhost("messaging-poison") as vhost:
            yield Broker(name, vhost, rabbit4_url(vhost), rabbitmq_nodes.RABBIT4.amqp_port)


def conf(max_attempts: int, backoff: float, backoff_max: float | None = None) -> cfg.ConfigOpts:
    config = make_conf()
    register_notification_opts(config)
    group = NOTIFICATIONS_GROUP
    config.set_override("max_delivery_attempts", max_attempts, group=group)
    config.set_override("requeue_backoff", backoff, group=group)
    config.set_override("requeue_backoff_max", backoff_max or backoff, group=group)
    return config


class Failing:
    """Raises (or asks for a requeue) on every notification; counts the attempts."""

    def __init__(self, requeue: bool = False) -> None:
        self.calls: list[float] = []
        self.requeue = requeue
        self.changed = threading.Condition()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> Any:
        with self.changed:
            self.calls.append(time.monotonic())
            self.changed.notify_all()
        if self.requeue:
            return messaging.NotificationResult.REQUEUE
        raise ValueError(f"cannot handle {payload['n']}")

    def wait_calls(self, count: int, timeout: float) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.calls) >= count, timeout), self.calls


def parked(broker: Broker, expected: int, timeout: float = WAIT) -> list[amqp.Message]:
    """Wait for ``expected`` messages in the parking queue; take them (acknowledged)."""
    deadline = time.monotonic() + timeout
    got: list[amqp.Message] = []
    conn = broker.amqp()
    try:
        channel = conn.channel()
        while len(got) < expected and time.monotonic() < deadline:
            try:
                message = channel.basic_get(PARKING_QUEUE, no_ack=True)
            except amqp.exceptions.NotFound:
                channel = conn.channel()  # not declared yet
                message = None
            except amqp.exceptions.InternalError:
                # A quorum queue just declared has no leader yet ("noproc").
                conn.collect()
                conn = broker.amqp()
                channel = conn.channel()
                message = None
            if message is None:
                time.sleep(0.05)  # polling the broker's queue: there is no event to wait on
                continue
            got.append(message)
        return got
    finally:
        conn.collect()


def queue_depth(broker: Broker, queue: str) -> int:
    conn = broker.amqp()
    try:
        return int(conn.channel().queue_declare(queue, passive=True).message_count)
    finally:
        conn.close()


def listening(
    broker: Broker, config: cfg.ConfigOpts, topic: str, endpoint: Any
) -> tuple[messaging.Transport, Callable[[], None]]:
    transport = messaging.get_notification_transport(config, broker.url)
    server = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [endpoint], allow_requeue=True
    )
    server.start()

    def stop() -> None:
        server.stop()
        server.wait()
        transport.cleanup()

    return transport, stop


def notify(transport: messaging.Transport, topic: str, n: int) -> None:
    notifier = messaging.Notifier(transport, "poison.host", driver="messagingv2", topics=[topic])
    notifier.info({}, "poison.event", {"n": n})
    assert notifier.flush(WAIT) == 0


def test_a_failing_notification_is_parked_with_its_failure(broker: Broker) -> None:
    topic = f"poison-{uuid.uuid4().hex}"
    endpoint = Failing()
    transport, stop = listening(broker, conf(4, 0.05, 0.2), topic, endpoint)
    try:
        notify(transport, topic, 1)
        (message,) = parked(broker, 1)
        assert len(endpoint.calls) == 4
    finally:
        stop()
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in message.headers.items()}
    assert headers["x-messaging-attempts"] == 4
    assert headers["x-messaging-exception"] == "builtins.ValueError"
    assert headers["x-messaging-exception-message"] == "cannot handle 1"
    assert 'raise ValueError(f"cannot handle' in headers["x-messaging-traceback"]
    assert headers["x-messaging-original-exchange"] == "openstack"
    assert headers["x-messaging-original-routing-key"] == f"{topic}.info"
    assert headers["x-messaging-original-queue"] == f"{topic}.info"
    body = message.body.decode() if isinstance(message.body, bytes) else message.body
    assert "poison.event" in body
    assert queue_depth(broker, f"{topic}.info") == 0


def test_requeues_back_off_instead_of_spinning(broker: Broker) -> None:
    topic = f"poison-{uuid.uuid4().hex}"
    endpoint = Failing()
    transport, stop = listening(broker, conf(100, 0.2), topic, endpoint)
    try:
        notify(transport, topic, 2)
        endpoint.wait_calls(4, WAIT)
    finally:
        stop()
    gaps = [b - a for a, b in zip(endpoint.calls, endpoint.calls[1:], strict=False)]
    assert min(gaps) >= 0.15, gaps  # requeue_backoff 0.2 s; it used to be ~1,500 a second
    # Given back at stop, not lost (a quorum queue counts a returned message a moment later).
    deadline = time.monotonic() + WAIT
    while (depth := queue_depth(broker, f"{topic}.info")) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)  # the broker's count has no event to wait on
    assert depth == 1


def test_an_endpoint_asking_for_requeue_every_time_is_parked(broker: Broker) -> None:
    topic = f"poison-{uuid.uuid4().hex}"
    endpoint = Failing(requeue=True)
    transport, stop = listening(broker, conf(3, 0.01), topic, endpoint)
    try:
        notify(transport, topic, 3)
        (message,) = parked(broker, 1)
    finally:
        stop()
    assert len(endpoint.calls) == 3
    assert message.headers["x-messaging-exception"] == ""
    assert "asked to requeue" in message.headers["x-messaging-failure"]


def test_attempts_past_the_brokers_delivery_limit_are_not_dropped(broker: Broker) -> None:
    # RabbitMQ 4 drops a quorum queue's message after 20 deliveries; the requeued
    # copies start the broker's count again, so every attempt happens, then parking.
    topic = f"poison-{uuid.uuid4().hex}"
    endpoint = Failing()
    transport, stop = listening(broker, conf(25, 0.0), topic, endpoint)
    try:
        notify(transport, topic, 4)
        (message,) = parked(broker, 1)
    finally:
        stop()
    assert len(endpoint.calls) == 25
    assert message.headers["x-messaging-attempts"] == 25


def test_a_message_redelivered_too_often_is_parked_before_handling(broker: Broker) -> None:
    if not broker.name.endswith("quorum"):
        pytest.skip("classic queues only say 'redelivered', without a count")
    topic = f"poison-{uuid.uuid4().hex}"
    queue = f"{topic}.info"
    endpoint = Failing()
    # Declared by a listener first; then delivered and given back unsettled 3 times,
    # as a handler that crashes its process would.
    _transport, stop = listening(broker, conf(3, 0.01), topic, endpoint)
    stop()
    notify_transport = messaging.get_notification_transport(make_conf(), broker.url)
    notify(notify_transport, topic, 5)
    notify_transport.cleanup()
    conn = broker.amqp()
    try:
        channel = conn.channel()
        for _ in range(3):
            got = None
            deadline = time.monotonic() + WAIT
            while got is None and time.monotonic() < deadline:
                got = channel.basic_get(queue)
            assert got is not None
            channel.basic_reject(got.delivery_tag, requeue=True)
    finally:
        conn.close()
    _transport, stop = listening(broker, conf(3, 0.01), topic, endpoint)
    try:
        (message,) = parked(broker, 1)
    finally:
        stop()
    assert endpoint.calls == []
    assert "without being acknowledged" in message.headers["x-messaging-failure"]
