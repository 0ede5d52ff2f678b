"""A poison notification over STOMP (RabbitMQ's plugin) is tried a bounded number of times.

STOMP does not count deliveries and the driver has no parking place yet: the
listener counts the attempts itself, then logs the notification whole and
acknowledges it, instead of requeueing it forever.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import pytest

import messaging
from tests.brokers import rabbit_vhost, require_service
from tests.drivers.test_rabbit_poison import Failing, conf
from tests.drivers.test_stomp_rabbit_conformance import STOMP_HOST, STOMP_PORT, stomp_url
from tests.drivers.test_stomp_refusals import message_count

pytestmark = pytest.mark.broker


@pytest.fixture
def vhost() -> Iterator[str]:
    require_service(STOMP_HOST, STOMP_PORT, "RabbitMQ's STOMP plugin")
    with rabbit_vhost("messaging-stomp-poison") as name:
        yield name


def test_a_failing_notification_is_tried_max_attempts_times(
    vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"stomp-poison-{uuid.uuid4().hex}"
    endpoint = Failing()
    transport = messaging.get_notification_transport(conf(3, 0.05), stomp_url(vhost))
    server = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [endpoint], allow_requeue=True
    )
    server.start()
    try:
        with caplog.at_level(logging.ERROR, logger="messaging.notify.listener"):
            notifier = messaging.Notifier(transport, "h", driver="messagingv2", topics=[topic])
            notifier.info({}, "poison.event", {"n": 9})
            endpoint.wait_calls(3, 30)
            deadline = time.monotonic() + 30
            while not any("cannot park" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "the notification was not given up"
                time.sleep(0.02)  # the log has no event to wait on
            time.sleep(0.5)  # a fourth attempt would come within this
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
    assert len(endpoint.calls) == 3
    assert message_count(vhost, f"openstack.{topic}.info") == 0
