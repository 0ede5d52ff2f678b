"""Prometheus metrics (messaging.metrics) on the in-memory transport, scraped over HTTP."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import messaging
from messaging import metrics
from messaging.conf import register_notification_opts
from messaging.drivers.memory import reset_brokers
from messaging.transport import Transport
from tests.unit.listener_support import TIMEOUT, InfoRecorder, make_conf, transport


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    reset_brokers()
    metrics.disable()
    yield
    metrics.disable()
    reset_brokers()


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics.enable(registry=registry)
    return registry


@pytest.fixture
def bus() -> Transport:
    return transport(make_conf())


class Calc:
    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b

    def fail(self, ctxt: Any) -> None:
        raise ValueError("no")


class Requeuing(InfoRecorder):
    def __init__(self) -> None:
        super().__init__()
        self.first = threading.Event()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> Any:
        super().info(ctxt, publisher_id, event_type, payload, md)
        if not self.first.is_set():
            self.first.set()
            return messaging.NotificationResult.REQUEUE
        return None


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_notifications_are_counted_sent_received_and_handled(
    registry: CollectorRegistry, bus: Transport
) -> None:
    endpoint = Requeuing()
    register_notification_opts(bus.conf)
    bus.conf.set_override("requeue_backoff", 0.0, group="oslo_messaging_notifications")
    listener = messaging.get_notification_listener(
        bus, [messaging.Target(topic="m")], [endpoint], executor="threading", allow_requeue=True
    )
    listener.start()
    try:
        notifier = messaging.Notifier(bus, "m.test", driver="messaging", topics=["m"])
        for n in range(3):
            notifier.info({}, "m.event", {"n": n})
        endpoint.take(4)  # one requeued and seen again
    finally:
        listener.stop()
        listener.wait()
    sent = value(registry, "messaging_sent_total", kind="notification", topic="m", priority="info")
    assert sent == 3
    server = "notification listener on m"
    assert (
        value(
            registry,
            "messaging_received_total",
            server=server,
            kind="notification",
            priority="info",
        )
        == 4
    )
    handled = {
        outcome: value(
            registry, "messaging_handled_total", server=server, kind="notification", outcome=outcome
        )
        for outcome in ("ok", "requeued")
    }
    assert handled == {"ok": 3, "requeued": 1}
    assert (
        value(registry, "messaging_handling_seconds_count", server=server, kind="notification") == 4
    )


def test_calls_and_casts_are_counted_and_timed(registry: CollectorRegistry, bus: Transport) -> None:
    server = messaging.get_rpc_server(
        bus, messaging.Target(topic="calc", server="s1"), [Calc()], executor="threading"
    )
    server.start()
    try:
        client = messaging.get_rpc_client(bus, messaging.Target(topic="calc"), timeout=TIMEOUT)
        assert client.call({}, "add", a=1, b=2) == 3
        with pytest.raises(ValueError):
            client.call({}, "fail")
        with pytest.raises(messaging.MessagingTimeout):
            client.prepare(topic="nobody", timeout=0.05).call({}, "add", a=1, b=1)
        client.cast({}, "add", a=1, b=1)
    finally:
        server.stop()
        server.wait()
    assert value(registry, "messaging_sent_total", kind="call", topic="calc", priority="") == 2
    assert value(registry, "messaging_sent_total", kind="cast", topic="calc", priority="") == 1
    assert value(registry, "messaging_call_seconds_count", topic="calc", outcome="ok") == 1
    assert value(registry, "messaging_call_seconds_count", topic="calc", outcome="error") == 1
    assert value(registry, "messaging_call_seconds_count", topic="nobody", outcome="timeout") == 1
    name = "RPC server on calc.s1"
    assert value(registry, "messaging_handled_total", server=name, kind="rpc", outcome="ok") >= 1
    assert (
        value(registry, "messaging_handled_total", server=name, kind="rpc", outcome="failed") == 1
    )


def test_a_send_that_fails_is_counted_with_its_exception(
    registry: CollectorRegistry, bus: Transport
) -> None:
    client = messaging.get_rpc_client(bus, messaging.Target(topic="calc"))
    with pytest.raises(messaging.MessageSerializationError):
        client.cast({}, "add", a=object())
    labels = {"kind": "cast", "topic": "calc", "priority": ""}
    failed = value(
        registry, "messaging_send_failed_total", exception="MessageSerializationError", **labels
    )
    assert failed == 1
    assert value(registry, "messaging_sent_total", **labels) == 0


def test_a_scrape_over_http_reads_the_counts_and_the_health_gauges(
    registry: CollectorRegistry, bus: Transport
) -> None:
    listener = messaging.get_notification_listener(
        bus, [messaging.Target(topic="scraped")], [InfoRecorder()], executor="threading"
    )
    listener.start()
    try:
        messaging.Notifier(bus, "m.test", driver="messaging", topics=["scraped"]).info({}, "e", {})
        port = metrics.serve_http(0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT) as page:
            text = page.read().decode()
    finally:
        listener.stop()
        listener.wait()
    assert 'messaging_sent_total{kind="notification",priority="info",topic="scraped"} 1.0' in text
    assert 'messaging_reconnects{server="notification listener on scraped"} 0.0' in text
    assert 'messaging_unconfirmed_sends{server="notification listener on scraped"} 0.0' in text


def test_metrics_from_configuration_label_the_process(bus: Transport) -> None:
    conf = make_conf()
    metrics.register_metrics_opts(conf)
    conf.set_override("metrics_enabled", True, group="oslo_messaging_metrics")
    conf.set_override("metrics_process_name", "nova-compute", group="oslo_messaging_metrics")
    registry = CollectorRegistry()
    metrics.enable(registry=registry, process="nova-compute")  # what conf would make, on ours
    metrics.enable_from_conf(conf)  # enabled already: keeps the first
    transport(conf)
    assert metrics.ACTIVE is not None and metrics.ACTIVE.process == "nova-compute"


def test_oslo_daemon_options_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    from messaging.confhelpers import forget_warnings

    forget_warnings()
    conf = make_conf()
    metrics.register_metrics_opts(conf)
    conf.set_override("metrics_socket_file", "/run/m.sock", group="oslo_messaging_metrics")
    with caplog.at_level("WARNING"):
        metrics.enable_from_conf(conf)
    assert "[oslo_messaging_metrics] metrics_socket_file = '/run/m.sock' has no effect" in (
        caplog.text
    )
    assert metrics.ACTIVE is None  # not enabled: warned only


def test_notifications_sent_through_an_outbox_are_counted_once_sent(
    registry: CollectorRegistry, bus: Transport
) -> None:
    register_notification_opts(bus.conf)
    bus.conf.set_override("outbox", "memory", group="oslo_messaging_notifications")
    endpoint = InfoRecorder()
    listener = messaging.get_notification_listener(
        bus, [messaging.Target(topic="boxed")], [endpoint], executor="threading"
    )
    listener.start()
    try:
        notifier = messaging.Notifier(bus, "m.test", driver="messaging", topics=["boxed"])
        for n in range(5):
            notifier.info({}, "m.event", {"n": n})
        assert bus.flush(TIMEOUT) == 0
        endpoint.take(5)
    finally:
        listener.stop()
        listener.wait()
    labels = {"kind": "notification", "topic": "boxed", "priority": "info"}
    assert value(registry, "messaging_sent_total", **labels) == 5


def test_histogram_buckets_are_cumulative_and_bounds_inclusive() -> None:
    registry = CollectorRegistry()
    counting = metrics.Metrics(registry, process="p1")
    try:
        for seconds in (0.0025, 0.003, 100.0):
            counting.observe_call("t", "ok", seconds)
        labels = {"topic": "t", "outcome": "ok", "process": "p1"}
        assert value(registry, "messaging_call_seconds_bucket", le="0.001", **labels) == 0
        assert value(registry, "messaging_call_seconds_bucket", le="0.0025", **labels) == 1
        assert value(registry, "messaging_call_seconds_bucket", le="0.005", **labels) == 2
        assert value(registry, "messaging_call_seconds_bucket", le="60.0", **labels) == 2
        assert value(registry, "messaging_call_seconds_bucket", le="+Inf", **labels) == 3
        assert value(registry, "messaging_call_seconds_count", **labels) == 3
        assert value(registry, "messaging_call_seconds_sum", **labels) == pytest.approx(100.0055)
    finally:
        counting.unregister()


def test_counts_from_many_threads_add_up() -> None:
    registry = CollectorRegistry()
    counting = metrics.Metrics(registry)
    start = threading.Barrier(4)

    def count() -> None:
        start.wait(TIMEOUT)
        for _ in range(20_000):
            counting.count_received("s", "rpc")

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    try:
        assert (
            value(registry, "messaging_received_total", server="s", kind="rpc", priority="")
            == 80_000
        )
    finally:
        counting.unregister()
