"""Network faults between a process and RabbitMQ, through the tests' own proxy.

Latency, a bandwidth cap and connection resets, under notifications and calls:
no call waits past its timeout and every notification reported as sent
arrives at least once. (A peer that stops answering: tests/drivers/test_rabbit_cluster.py.)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import messaging
from tests.brokers import RABBIT_PORT, rabbit_vhost
from tests.drivers.test_rabbit_faults import Echo
from tests.drivers.test_rabbit_resilience import Counter, make_conf
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.broker
TIMEOUT = 60.0
OVERRUN = 2.0


@pytest.fixture
def proxied() -> Iterator[tuple[FaultProxy, str]]:
    with rabbit_vhost("messaging-network") as vhost, FaultProxy(RABBIT_PORT) as proxy:
        yield proxy, proxy.url(vhost)


class Service:
    """A listener, an RPC server, a notifier and a client on one transport URL."""

    def __init__(self, url: str, call_timeout: float) -> None:
        self.topic = f"net-{uuid.uuid4().hex[:8]}"
        self.transport = messaging.get_notification_transport(make_conf(), url)
        self.rpc = messaging.get_rpc_transport(make_conf(), url)
        self.counter = Counter()
        self.listener = messaging.get_notification_listener(
            self.transport, [messaging.Target(topic=self.topic)], [self.counter],
            executor="threading",
        )  # fmt: skip
        self.server = messaging.get_rpc_server(
            self.rpc, messaging.Target(topic=self.topic, server="s1"), [Echo()],
            executor="threading",
        )  # fmt: skip
        self.listener.start()
        self.server.start()
        self.notifier = messaging.Notifier(
            self.transport, "net", driver="messagingv2", topics=[self.topic]
        )
        self.client = messaging.RPCClient(
            self.rpc, messaging.Target(topic=self.topic), timeout=call_timeout
        )
        self.call_timeout = call_timeout
        self.longest_call = 0.0
        self.call_outcomes: list[str] = []

    def call(self, value: Any) -> None:
        started = time.monotonic()
        try:
            assert self.client.call({}, "echo", value=value) == value
            self.call_outcomes.append("ok")
        except messaging.MessagingException as exc:
            self.call_outcomes.append(type(exc).__name__)
        self.longest_call = max(self.longest_call, time.monotonic() - started)

    def close(self) -> None:
        for server in (self.listener, self.server):
            server.stop()
            server.wait()
        self.transport.cleanup()
        self.rpc.cleanup()


def test_latency_slows_but_loses_nothing(proxied: tuple[FaultProxy, str]) -> None:
    proxy, url = proxied
    proxy.latency = 0.05  # 50 ms each way
    service = Service(url, call_timeout=5)
    try:
        for n in range(20):
            service.call(n)
        for n in range(500):
            service.notifier.info({}, "net.test", {"n": n})
        assert service.transport.flush(TIMEOUT) == 0
        service.counter.wait_distinct(500, TIMEOUT)
        assert service.call_outcomes == ["ok"] * 20
        assert service.longest_call <= service.call_timeout + OVERRUN
    finally:
        service.close()


def test_a_bandwidth_cap_holds_no_call_past_its_timeout(proxied: tuple[FaultProxy, str]) -> None:
    proxy, url = proxied
    service = Service(url, call_timeout=2)
    try:
        service.call(0)
        proxy.rate = 2 * 1024 * 1024  # 2 MiB/s each way
        big = "x" * 50_000
        sending = threading.Thread(
            target=lambda: [
                service.notifier.info({}, "net.test", {"n": n, "p": big}) for n in range(200)
            ]
        )
        sending.start()  # 10 MB through a 2 MiB/s pipe: about 5 s
        while sending.is_alive():
            service.call(1)
        sending.join(TIMEOUT)
        assert service.transport.flush(TIMEOUT) == 0
        service.counter.wait_distinct(200, TIMEOUT)
        assert service.longest_call <= service.call_timeout + OVERRUN, service.longest_call
        assert "ok" in service.call_outcomes
    finally:
        service.close()


def test_resets_lose_nothing_reported_as_sent(proxied: tuple[FaultProxy, str]) -> None:
    proxy, url = proxied
    service = Service(url, call_timeout=5)
    try:
        sent = 0
        for round_ in range(3):
            for n in range(sent, sent + 1000):
                service.notifier.info({}, "net.test", {"n": n})
            sent += 1000
            service.call(round_)
            proxy.reset()  # every connection closed at once, mid-stream
        for n in range(sent, sent + 1000):
            service.notifier.info({}, "net.test", {"n": n})
        sent += 1000
        service.call("after")
        assert service.transport.flush(TIMEOUT) == 0
        service.counter.wait_distinct(sent, TIMEOUT)
        assert service.longest_call <= service.call_timeout + OVERRUN
        assert service.call_outcomes[-1] == "ok", service.call_outcomes
    finally:
        service.close()
