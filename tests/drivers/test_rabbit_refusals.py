"""Refusals that retrying cannot heal are errors, on RabbitMQ 3.10 and on RabbitMQ 4.

A listener's ``start()`` raises them within a bounded time, naming the entity,
the argument in conflict and what fixes it; a notifier logs them (and raises
them with ``raise_errors``); nothing reconnects in a loop. Each test runs on
the machine's RabbitMQ 3.10 and on the RabbitMQ 4 node of tests/rabbitmq_nodes.py
(which refuses what RabbitMQ 4.3 refuses), each on a virtual host of its own.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import messaging
from messaging.exceptions import BrokerRefusal, ServerListenError
from tests import rabbitmq_nodes
from tests.brokers import rabbit4_url, rabbit4_vhost, rabbit_url, rabbit_vhost
from tests.drivers.test_rabbit_resilience import make_conf
from tests.drivers.test_rabbit_resilience import rabbitmqctl as rabbitmqctl3

pytestmark = pytest.mark.broker

#: A refused start must raise well within this (the driver's setup wait is 10 s).
START_BOUND = 10.0


@dataclass
class Broker:
    """One of the two brokers, on a virtual host of this test's own."""

    name: str
    vhost: str
    url: Callable[[str], str]
    ctl: Callable[..., str]

    def transport_url(self, query: str = "") -> str:
        return self.url(self.vhost) + query


@pytest.fixture(params=["rabbitmq3", "rabbitmq4"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    if request.param == "rabbitmq3":
        with rabbit_vhost("messaging-refusals") as vhost:
            yield Broker("rabbitmq3", vhost, rabbit_url, rabbitmqctl3)
    else:
        with rabbit4_vhost("messaging-refusals") as vhost:
            yield Broker("rabbitmq4", vhost, rabbit4_url, rabbitmq_nodes.rabbitmqctl)


class Events:
    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        """Never reached: the listeners of these tests do not start."""


def start_refused(transport: messaging.Transport, pool: str | None = None) -> BrokerRefusal:
    """Start a listener that the broker refuses; return the refusal, checking the time."""
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=f"refused-{uuid.uuid4().hex}")], [Events()], pool=pool
    )
    started = time.monotonic()
    with pytest.raises(ServerListenError) as raised:
        listener.start()
    assert time.monotonic() - started < START_BOUND
    assert isinstance(raised.value.ex, BrokerRefusal), raised.value.ex
    return raised.value.ex


@contextlib.contextmanager
def counting(caplog: pytest.LogCaptureFixture, text: str) -> Iterator[Callable[[], int]]:
    """Count log records containing ``text`` from here on."""
    caplog.set_level(logging.INFO, logger="messaging")
    first = len(caplog.records)
    yield lambda: sum(text in r.getMessage() for r in caplog.records[first:])


def test_an_invalid_declaration_is_refused_at_start(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    # Quorum queues cannot be auto-delete: there is no existing queue to fall back on.
    transport = messaging.get_notification_transport(
        make_conf(), broker.transport_url("?rabbit_quorum_queue=true&amqp_auto_delete=true")
    )
    pool = f"pool-{uuid.uuid4().hex}"
    try:
        with counting(caplog, "AMQP connection lost") as lost:
            refusal = start_refused(transport, pool)
            time.sleep(1.0)  # a reconnect loop would show within this second
            assert lost() == 0
    finally:
        transport.cleanup()
    assert refusal.entity == f"queue {pool!r}"
    assert refusal.argument == "auto-delete"
    assert "amqp_auto_delete" in refusal.fix
    assert "PRECONDITION_FAILED" in str(refusal) and pool in str(refusal)


def test_a_queue_existing_otherwise_is_used_as_it_is(broker: Broker) -> None:
    # The passive fallback applies: not a refusal (oslo's non-durable fallback, generalised).
    pool = f"pool-{uuid.uuid4().hex}"
    durable = messaging.get_notification_transport(
        make_conf(), broker.transport_url("?amqp_durable_queues=true&rabbit_auto_quorum=false")
    )
    plain = messaging.get_notification_transport(
        make_conf(), broker.transport_url("?rabbit_quorum_queue=true")
    )
    target = messaging.Target(topic=f"shared-{uuid.uuid4().hex}")
    first = messaging.get_notification_listener(durable, [target], [Events()], pool=pool)
    second = messaging.get_notification_listener(plain, [target], [Events()], pool=pool)
    try:
        first.start()
        second.start()  # a quorum declaration of a durable classic queue: 406, then passive
    finally:
        for listener in (first, second):
            listener.stop()
            listener.wait()
        durable.cleanup()
        plain.cleanup()


def test_missing_permissions_are_refused_at_start_and_when_sending(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    broker.ctl("set_permissions", "-p", broker.vhost, "guest", "^$", ".*", ".*")
    transport = messaging.get_notification_transport(make_conf(), broker.transport_url())
    try:
        refusal = start_refused(transport)
        assert "ACCESS_REFUSED" in refusal.reason
        assert "set_permissions" in refusal.fix
        notifier = messaging.Notifier(
            transport, "refused.host", driver="messagingv2", topics=["refused"], retry=0
        )
        with pytest.raises(BrokerRefusal, match="ACCESS_REFUSED"):
            notifier.prepare(raise_errors=True).info({}, "refused.event", {})
    finally:
        transport.cleanup()


def test_a_refused_login_fails_fast_instead_of_waiting(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    url = broker.transport_url().replace("guest:guest@", "guest:not-the-password@")
    transport = messaging.get_notification_transport(make_conf(), url)
    try:
        refusal = start_refused(transport)
        assert "ACCESS_REFUSED" in refusal.reason
        assert "credentials in transport_url" in refusal.fix
        assert "not-the-password" not in str(refusal)
        # With the default retry a notification is handed over at once: the refusal is logged.
        notifier = messaging.Notifier(
            transport, "refused.host", driver="messagingv2", topics=["refused"]
        )
        first = len(caplog.records)
        notifier.info({}, "refused.event", {})
        assert transport.driver.flush(START_BOUND) == 0
        # Logged by the notifier (the connection had failed already) or by the
        # publisher (it failed while the notification waited for it).
        reporters = ("messaging.notify.notifier", "messaging.drivers.rabbit.publisher")
        assert any(
            r.name in reporters and "ACCESS_REFUSED" in r.getMessage()
            for r in caplog.records[first:]
        )
        # Waiting for its confirm (retry=0 here), it raises the refusal, at once.
        started = time.monotonic()
        with pytest.raises(BrokerRefusal):
            notifier.prepare(retry=0, raise_errors=True).info({}, "refused.event", {})
        assert time.monotonic() - started < START_BOUND
    finally:
        transport.cleanup()
    assert not any("not-the-password" in r.getMessage() for r in caplog.records)


@pytest.fixture
def rabbitmq4() -> Iterator[Broker]:
    with rabbit4_vhost("messaging-refusals") as vhost:
        yield Broker("rabbitmq4", vhost, rabbit4_url, rabbitmq_nodes.rabbitmqctl)


def test_rabbitmq4_refuses_transient_queues_once_not_in_a_loop(
    rabbitmq4: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    # RabbitMQ 3.10 accepts transient queues: this is RabbitMQ 4's refusal only.
    transport = messaging.get_notification_transport(
        make_conf(), rabbitmq4.transport_url("?rabbit_auto_quorum=false")
    )
    try:
        with counting(caplog, "AMQP connection lost") as lost:
            refusal = start_refused(transport)
            assert refusal.argument == "transient_nonexcl_queues"
            assert "rabbit_auto_quorum" in refusal.fix
            # The broker closes the connection with a 541: it reconnects once, and the
            # refused subscription is not declared again.
            time.sleep(2.0)
            assert lost() <= 1
        notifier = messaging.Notifier(
            transport, "refused.host", driver="messagingv2", topics=["transient"]
        )
        with counting(caplog, "transient_nonexcl_queues") as logged:
            notifier.info({}, "refused.event", {})  # handed over; the refusal is logged
            assert transport.driver.flush(START_BOUND) == 0
            assert logged() >= 1
        with pytest.raises(BrokerRefusal, match="transient_nonexcl_queues"):
            notifier.prepare(raise_errors=True).info({}, "refused.event", {})
    finally:
        transport.cleanup()
