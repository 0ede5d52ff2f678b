"""RabbitMQ publishing: pipelined notification confirms, flush, and failures that are reported."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import amqp
import pytest
from oslo_config import cfg

import messaging
from tests.brokers import RABBIT_HOST, RABBIT_PORT, rabbit_url, rabbit_vhost
from tests.drivers.test_rabbit_resilience import Counter, make_conf
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.broker
# Port 1 on loopback refuses connections at once: a broker that is down.
DOWN_URL = f"rabbit://guest:guest@{RABBIT_HOST}:1/"


@pytest.fixture
def vhost() -> Iterator[str]:
    with rabbit_vhost("messaging-publishing") as name:
        yield name


def notify_many(conf: cfg.ConfigOpts, url: str, count: int) -> Counter:
    return notify_many_on(conf, url, f"pipe-{uuid.uuid4().hex}", count)


def notify_many_on(conf: cfg.ConfigOpts, url: str, topic: str, count: int) -> Counter:
    transport = messaging.get_notification_transport(conf, url)
    counter = Counter()
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [counter]
    )
    listener.start()
    try:
        notifier = messaging.Notifier(transport, "pipe", driver="messagingv2", topics=[topic])
        for n in range(count):
            notifier.info({}, "pipe.test", {"n": n})
        assert notifier.flush(30) == 0
        counter.wait_distinct(count, 30)
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    return counter


def test_pipelined_notifications_all_arrive_after_flush(vhost: str) -> None:
    counter = notify_many(make_conf(), rabbit_url(vhost), 2000)
    assert set(counter.seen) == set(range(2000))


def test_without_pipelining_every_notification_is_confirmed_before_returning(vhost: str) -> None:
    counter = notify_many(make_conf(), rabbit_url(vhost) + "?notification_pipeline_depth=0", 200)
    assert set(counter.seen) == set(range(200))


def test_a_broker_that_is_down_fails_a_notification_with_finite_retry() -> None:
    transport = messaging.get_notification_transport(make_conf(), DOWN_URL)
    try:
        notifier = messaging.Notifier(
            transport, "down", driver="messagingv2", topics=["t"], retry=1, raise_errors=True
        )
        with pytest.raises(messaging.MessageDeliveryFailure, match="after 2 tries"):
            notifier.info({}, "down.test", {"n": 1})
    finally:
        transport.cleanup()


def test_unconfirmed_notifications_are_reported_at_cleanup(
    vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FaultProxy(RABBIT_PORT) as proxy:
        url = proxy.url(vhost) + "?publish_confirm_timeout=0.5"
        transport = messaging.get_notification_transport(make_conf(), url)
        notifier = messaging.Notifier(transport, "frozen", driver="messagingv2", topics=["t"])
        notifier.info({}, "frozen.test", {"n": 0})
        assert notifier.flush(30) == 0  # connected
        proxy.freeze()  # a broker that stops answering: nothing is confirmed
        for n in range(1, 6):
            notifier.info({}, "frozen.test", {"n": n})  # retry -1: handed over, not lost
        assert notifier.flush(0.2) == 5
        with caplog.at_level(logging.ERROR):
            transport.cleanup()
    assert "5 notifications were still unconfirmed" in caplog.text


def test_a_notification_while_the_broker_is_down_waits_its_bound_and_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = messaging.get_notification_transport(
        make_conf(), DOWN_URL + "?publish_confirm_timeout=0.5"
    )
    try:
        notifier = messaging.Notifier(transport, "down", driver="messagingv2", topics=["t"])
        started = time.monotonic()
        with caplog.at_level(logging.ERROR):
            notifier.info({}, "down.test", {"n": 1})
        assert time.monotonic() - started < 0.5 + 2
        assert "Could not send notification down.test" in caplog.text
        assert notifier.flush(0) == 0  # nothing left behind unreported
    finally:
        transport.cleanup()


def test_call_to_a_topic_nobody_serves_is_undeliverable_with_at_least_once(vhost: str) -> None:
    transport = messaging.get_rpc_transport(make_conf(), rabbit_url(vhost))
    try:
        client = messaging.get_rpc_client(
            transport,
            messaging.Target(topic=f"nobody-{uuid.uuid4().hex}"),
            timeout=5,
            transport_options=messaging.TransportOptions(at_least_once=True),
        )
        with pytest.raises(messaging.MessageUndeliverable):
            client.call({}, "anything")
        with pytest.raises(messaging.MessageUndeliverable):
            client.cast({}, "anything")
    finally:
        transport.cleanup()


def test_entities_declared_otherwise_by_another_service_are_used_as_they_are(
    vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A fleet where one service has amqp_durable_queues=true and another not still talks."""
    topic = f"mixed-{uuid.uuid4().hex}"
    durable = messaging.get_notification_transport(
        make_conf(), rabbit_url(vhost) + "?amqp_durable_queues=true"
    )
    try:
        notifier = messaging.Notifier(durable, "durable", driver="messagingv2", topics=[topic])
        notifier.info({}, "mixed.test", {"n": 0})  # declares a durable exchange and queue
        assert notifier.flush(30) == 0
    finally:
        durable.cleanup()
    with caplog.at_level(logging.WARNING):
        counter = notify_many_on(make_conf(), rabbit_url(vhost), topic, 5)
    assert set(counter.seen) >= {0, 1, 2, 3, 4}
    assert "exists on the broker with other properties" in caplog.text


def test_compressed_bodies_are_sent_and_read(vhost: str) -> None:
    """kombu_compression=gzip (an oslo option) on the sender; a default listener reads it."""
    topic = f"gzip-{uuid.uuid4().hex}"
    counter = Counter()
    listener_transport = messaging.get_notification_transport(make_conf(), rabbit_url(vhost))
    listener = messaging.get_notification_listener(
        listener_transport, [messaging.Target(topic=topic)], [counter]
    )
    listener.start()
    sender = messaging.get_notification_transport(
        make_conf(), rabbit_url(vhost) + "?kombu_compression=gzip"
    )
    try:
        notifier = messaging.Notifier(sender, "gzip", driver="messagingv2", topics=[topic])
        for n in range(20):
            notifier.info({}, "gzip.test", {"n": n, "text": "x" * 500})
        assert notifier.flush(30) == 0
        counter.wait_distinct(20, 30)
    finally:
        sender.cleanup()
        listener.stop()
        listener.wait()
        listener_transport.cleanup()
    assert set(counter.seen) == set(range(20))


class LogSeen(logging.Handler):
    """Sets :attr:`seen` when a record containing ``text`` is logged, from any thread."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@contextlib.contextmanager
def watching(logger: str, text: str) -> Iterator[LogSeen]:
    handler = LogSeen(text)
    log = logging.getLogger(logger)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def test_a_reply_to_a_queue_that_appears_late_is_retried_until_it_arrives(vhost: str) -> None:
    transport = messaging.get_rpc_transport(make_conf(), rabbit_url(vhost))
    reply_q = f"reply_{uuid.uuid4().hex}"
    raw = amqp.Connection(host=f"{RABBIT_HOST}:5672", virtual_host=vhost)
    raw.connect()
    try:
        with watching("messaging.drivers.rabbit.driver", "retrying") as retrying:
            transport.driver.send_reply(reply_q, "m1", '{"oslo.message": "late"}', False)
            assert retrying.seen.wait(10)  # the first try found no queue
        channel = raw.channel()
        channel.queue_declare(reply_q, auto_delete=True)
        bodies: list[str] = []
        channel.basic_consume(reply_q, callback=lambda m: bodies.append(m.body), no_ack=True)
        deadline = time.monotonic() + 10
        while not bodies and time.monotonic() < deadline:
            with contextlib.suppress(socket.timeout):
                raw.drain_events(timeout=deadline - time.monotonic())
        assert bodies == ['{"oslo.message": "late"}']  # py-amqp decodes a utf-8 body
    finally:
        raw.close()
        transport.cleanup()


def test_a_reply_whose_queue_never_appears_is_given_up_with_an_error(vhost: str) -> None:
    url = rabbit_url(vhost) + "?kombu_missing_consumer_retry_timeout=1"
    transport = messaging.get_rpc_transport(make_conf(), url)
    try:
        with watching("messaging.drivers.rabbit.driver", "Abandoning") as abandoned:
            transport.driver.send_reply(f"reply_{uuid.uuid4().hex}", "m2", "{}", False)
            assert abandoned.seen.wait(10)
    finally:
        transport.cleanup()


def test_a_malformed_notification_is_logged_whole_and_the_next_one_handled(
    vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"malformed-{uuid.uuid4().hex}"
    transport = messaging.get_notification_transport(make_conf(), rabbit_url(vhost))
    counter = Counter()
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [counter]
    )
    raw = amqp.Connection(host=f"{RABBIT_HOST}:5672", virtual_host=vhost)
    raw.connect()
    try:
        listener.start()
        # Confirmed, so that it is queued ahead of the good notification.
        raw.channel().basic_publish_confirm(
            amqp.Message(b"not json at all"), exchange="", routing_key=f"{topic}.info"
        )
        notifier = messaging.Notifier(transport, "pipe", driver="messagingv2", topics=[topic])
        notifier.info({}, "after.garbage", {"n": 7})
        assert notifier.flush(30) == 0
        counter.wait_distinct(1, 30)
        assert set(counter.seen) == {7}
        assert "Cannot decode a message from queue" in caplog.text
        assert "not json at all" in caplog.text
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    # Acknowledged, not left to be delivered again and again.
    channel = raw.channel()
    assert channel.queue_declare(f"{topic}.info", passive=True).message_count == 0
    raw.close()


def test_notifications_awaiting_their_confirm_are_bounded_in_bytes(vhost: str) -> None:
    """With the broker silent, a notifier holds at most notification_pipeline_bytes of them."""
    bound = 4 * 1024 * 1024
    payload = "x" * (1024 * 1024)
    target = messaging.Target(topic="t")
    with FaultProxy(RABBIT_PORT) as proxy:
        url = proxy.url(vhost) + f"?publish_confirm_timeout=0.3&notification_pipeline_bytes={bound}"
        transport = messaging.get_notification_transport(make_conf(), url)
        try:
            transport.send_notification(target, {}, {"n": -1}, 2.0, None)
            assert transport.flush(30) == 0  # connected
            proxy.freeze()
            publisher = transport.driver.broker.publisher  # type: ignore[attr-defined]
            for n in range(3):  # 3 MiB and a little: room for all three
                transport.send_notification(target, {}, {"n": n, "p": payload}, 2.0, None)
            with pytest.raises(messaging.MessageDeliveryFailure, match=r"bytes\) have awaited"):
                transport.send_notification(target, {}, {"n": 3, "p": payload}, 2.0, None)
            assert publisher._in_flight == 3
            assert publisher._in_flight_bytes <= bound
        finally:
            transport.cleanup()


def test_a_reply_retried_many_times_uses_one_scheduler_thread(vhost: str) -> None:
    """2,000 replies to a missing queue: their retries share one thread."""
    transport = messaging.get_rpc_transport(
        make_conf(), rabbit_url(vhost) + "?kombu_missing_consumer_retry_timeout=1"
    )
    before = {t.ident for t in threading.enumerate()}
    try:
        for n in range(2000):
            transport.driver.send_reply(f"reply_{uuid.uuid4().hex}", f"m{n}", '{"x": 1}', False)
        from messaging import delayed

        deadline = time.monotonic() + 10
        while delayed.shared().pending() < 100 and time.monotonic() < deadline:
            time.sleep(0.01)  # the first tries come back as returned messages
        started = [t for t in threading.enumerate() if t.ident not in before]
        assert delayed.shared().pending() >= 100
        assert len(started) <= 3, [t.name for t in started]
    finally:
        transport.cleanup()


def test_a_cleaned_up_transport_deletes_its_reply_queue(vhost: str) -> None:
    transport = messaging.get_rpc_transport(make_conf(), rabbit_url(vhost))
    try:
        reply_queue = transport.driver.broker.replies.queue_name  # type: ignore[attr-defined]
        assert reply_queue in _queues(vhost)
    finally:
        transport.cleanup()
    assert reply_queue not in _queues(vhost)


def _queues(vhost: str) -> set[str]:
    import shutil
    import subprocess

    ctl = shutil.which("rabbitmqctl")
    assert ctl is not None
    listed = subprocess.run(
        [ctl, "-q", "list_queues", "-p", vhost, "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(listed.stdout.split())


def test_a_call_to_a_broker_that_is_down_times_out_saying_why() -> None:
    transport = messaging.get_rpc_transport(make_conf(), DOWN_URL)
    try:
        client = messaging.get_rpc_client(transport, messaging.Target(topic="nobody"), timeout=1)
        started = time.monotonic()
        with pytest.raises(messaging.MessagingTimeout, match="the broker was not reachable"):
            client.call({}, "echo")
        assert time.monotonic() - started < 1 + 2
    finally:
        transport.cleanup()
