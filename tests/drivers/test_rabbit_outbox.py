"""The notification outbox on RabbitMQ: no broker reachable, then back; a killed process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

import messaging
from messaging.conf import NOTIFICATIONS_GROUP
from tests.brokers import RABBIT_PORT, closed_port, rabbit_url, rabbit_vhost
from tests.drivers.test_rabbit_resilience import Counter
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.broker
TIMEOUT = 60.0


@pytest.fixture
def vhost() -> Iterator[str]:
    with rabbit_vhost("messaging-outbox") as name:
        yield name


def outbox_conf(kind: str, path: str = "") -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="messaging-tests", default_config_files=[], default_config_dirs=[])
    messaging.conf.register_notification_opts(conf)
    conf.set_override("outbox", kind, group=NOTIFICATIONS_GROUP)
    conf.set_override("outbox_path", path, group=NOTIFICATIONS_GROUP)
    conf.set_override("outbox_retry_interval", 0.2, group=NOTIFICATIONS_GROUP)
    return conf


def test_with_no_broker_reachable_notifications_return_at_once_and_drain_after(
    vhost: str,
) -> None:
    topic = f"outbox-{uuid.uuid4().hex[:8]}"
    counter = Counter()
    listening = messaging.get_notification_transport(outbox_conf("none"), rabbit_url(vhost))
    listener = messaging.get_notification_listener(
        listening, [messaging.Target(topic=topic)], [counter]
    )
    listener.start()
    with FaultProxy(RABBIT_PORT) as proxy:
        proxy.refuse()  # a broker that is down
        transport = messaging.get_notification_transport(outbox_conf("memory"), proxy.url(vhost))
        try:
            notifier = messaging.Notifier(transport, "o", driver="messagingv2", topics=[topic])
            started = time.monotonic()
            for n in range(200):
                notifier.info({}, "outbox.test", {"n": n})
            took = time.monotonic() - started
            assert took < 2.0, f"200 notifications took {took:.2f} s with no broker"
            assert counter.distinct() == 0
            proxy.accept()  # the broker is back
            assert transport.flush(TIMEOUT) == 0
            counter.wait_distinct(200, TIMEOUT)
        finally:
            transport.cleanup()
            listener.stop()
            listener.wait()
            listening.cleanup()


_KILLED_SENDER = textwrap.dedent(
    """
    import os, signal, sys
    import messaging
    from tests.drivers.test_rabbit_outbox import outbox_conf
    url, path, topic = sys.argv[1:]
    transport = messaging.get_notification_transport(outbox_conf("sqlite", path), url)
    notifier = messaging.Notifier(transport, "o", driver="messagingv2", topics=[topic])
    for n in range(30):
        notifier.info({}, "outbox.test", {"n": n})
    print("queued", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_killed_process_sends_its_durable_outbox_after_restart(
    vhost: str, tmp_path: Path
) -> None:
    topic = f"outbox-{uuid.uuid4().hex[:8]}"
    path = str(tmp_path / "outbox.db")
    down = f"rabbit://guest:guest@127.0.0.1:{closed_port()}/"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_SENDER, down, path, topic],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert "queued" in killed.stdout, killed.stderr
    assert killed.returncode == -9
    counter = Counter()
    transport = messaging.get_notification_transport(outbox_conf("sqlite", path), rabbit_url(vhost))
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [counter]
    )
    listener.start()
    try:
        messaging.Notifier(transport, "o", driver="messagingv2", topics=[topic])  # the restart
        assert transport.flush(TIMEOUT) == 0
        counter.wait_distinct(30, TIMEOUT)
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
