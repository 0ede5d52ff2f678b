"""Refusals that retrying cannot heal are errors on RabbitMQ's STOMP plugin, not reconnect loops.

RabbitMQ answers a SUBSCRIBE that declares a queue existing with other
properties with an ERROR frame (``PRECONDITION_FAILED - inequivalent arg
'durable'``) and closes the connection. Before, a listener's ``start()``
returned and the driver reconnected about 480 times a second, and a notifier
reported notifications as sent that no queue stored.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import amqp
import pytest

import messaging
from messaging.exceptions import BrokerRefusal, ServerListenError
from tests.brokers import RABBIT_HOST, RABBIT_PORT, rabbit_vhost, require_service
from tests.drivers.test_rabbit_resilience import make_conf
from tests.drivers.test_stomp_rabbit_conformance import STOMP_HOST, STOMP_PORT, stomp_url

pytestmark = pytest.mark.broker

START_BOUND = 10.0


@pytest.fixture
def vhost() -> Iterator[str]:
    require_service(STOMP_HOST, STOMP_PORT, "RabbitMQ's STOMP plugin")
    with rabbit_vhost("messaging-stomp-refusals") as name:
        yield name


def declare_transient(vhost: str, queue: str) -> None:
    """Declare ``queue`` non-durable over AMQP, as another service might have."""
    conn = amqp.Connection(f"{RABBIT_HOST}:{RABBIT_PORT}", virtual_host=vhost)
    conn.connect()
    try:
        conn.channel().queue_declare(queue, durable=False, auto_delete=False)
    finally:
        conn.close()


def message_count(vhost: str, queue: str) -> int:
    conn = amqp.Connection(f"{RABBIT_HOST}:{RABBIT_PORT}", virtual_host=vhost)
    conn.connect()
    try:
        return int(conn.channel().queue_declare(queue, passive=True).message_count)
    finally:
        conn.close()


@contextlib.contextmanager
def counting(caplog: pytest.LogCaptureFixture, text: str) -> Iterator[Callable[[], int]]:
    caplog.set_level(logging.INFO, logger="messaging")
    first = len(caplog.records)
    yield lambda: sum(text in r.getMessage() for r in caplog.records[first:])


class Events:
    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        """Never reached: these listeners do not start."""


def test_a_pool_queue_existing_otherwise_fails_the_start_once(
    vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = f"pool-{uuid.uuid4().hex}"
    declare_transient(vhost, pool)
    transport = messaging.get_notification_transport(make_conf(), stomp_url(vhost))
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic="stomp-refused")], [Events()], pool=pool
    )
    try:
        with counting(caplog, "Lost the connection") as lost:
            started = time.monotonic()
            with pytest.raises(ServerListenError) as raised:
                listener.start()
            assert time.monotonic() - started < START_BOUND
            time.sleep(1.0)  # the loop ran at ~480 reconnections a second
            assert lost() <= 1
    finally:
        transport.cleanup()
    refusal = raised.value.ex
    assert isinstance(refusal, BrokerRefusal)
    assert refusal.entity.startswith(f"queue {pool!r}")
    assert refusal.argument == "durable"
    assert "another pool" in refusal.fix


def test_a_notifier_reports_what_it_could_not_store(
    vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"stomp-refused-{uuid.uuid4().hex}"
    queue = f"openstack.{topic}.info"
    declare_transient(vhost, queue)
    transport = messaging.get_notification_transport(make_conf(), stomp_url(vhost))
    notifier = messaging.Notifier(transport, "refused.host", driver="messagingv2", topics=[topic])
    try:
        with counting(caplog, "Could not send notification") as failed:
            for n in range(5):
                notifier.info({}, "refused.event", {"n": n})
            assert failed() == 5
        with pytest.raises(BrokerRefusal, match="inequivalent arg 'durable'"):
            notifier.prepare(raise_errors=True).info({}, "refused.event", {})
    finally:
        transport.cleanup()
    assert message_count(vhost, queue) == 0  # and none was reported sent


def test_a_refused_login_fails_the_start(vhost: str) -> None:
    url = stomp_url(vhost).replace("guest:guest@", "guest:not-the-password@")
    transport = messaging.get_notification_transport(make_conf(), url)
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic="stomp-login")], [Events()]
    )
    try:
        started = time.monotonic()
        with pytest.raises(ServerListenError) as raised:
            listener.start()
        assert time.monotonic() - started < START_BOUND
        notifier = messaging.Notifier(transport, "h", driver="messagingv2", topics=["t"])
        with pytest.raises(BrokerRefusal):
            notifier.prepare(raise_errors=True).info({}, "refused.event", {})
    finally:
        transport.cleanup()
    assert isinstance(raised.value.ex, BrokerRefusal)
    assert "Access refused" in raised.value.ex.reason
    assert "not-the-password" not in str(raised.value.ex)
