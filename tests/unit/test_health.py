"""Health reports of servers and listeners (messaging.health), on the in-memory transport.

What is read (state, consuming, counts, saturation), how a problem makes a
process not ready or not live, and the HTTP endpoints over a real socket.
"""

from __future__ import annotations

import gc
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

import messaging
from messaging import health
from messaging.health import LinkHealth
from messaging.transport import Transport
from tests.unit.listener_support import TIMEOUT, InfoRecorder, make_conf, transport

TOPIC = messaging.Target(topic="health")


@pytest.fixture
def bus() -> Transport:
    return transport(make_conf())


class Blocking:
    """An endpoint whose ``info`` holds its worker until released."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def info(
        self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any
    ) -> None:
        self.entered.release()
        self.release.wait(TIMEOUT)


def send(bus: Transport, count: int) -> None:
    notifier = messaging.Notifier(bus, "health.test", driver="messaging", topics=["health"])
    for n in range(count):
        notifier.info({}, "health.event", {"n": n})


def test_a_running_listener_is_ready_and_counts_what_it_received(bus: Transport) -> None:
    recorder = InfoRecorder()
    server = messaging.get_notification_listener(bus, [TOPIC], [recorder], executor="threading")
    before = server.health()
    assert (before.state, before.ready, before.live) == ("new", False, True)
    assert before.problems == ("not running (new)",)
    server.start()
    try:
        send(bus, 3)
        recorder.take(3)
        now = server.health()
        assert now.state == "running"
        assert now.ready and now.live and now.consuming, now.problems
        assert now.received == 3
        assert now.last_message_age is not None and 0 <= now.last_message_age < TIMEOUT
        assert now.name == "notification listener on health"
        assert now.link == LinkHealth()
    finally:
        server.stop()
        server.wait()
    after = server.health()
    assert (after.state, after.ready, after.consuming) == ("stopped", False, False)


def test_saturation_is_the_share_of_busy_workers(bus: Transport) -> None:
    endpoint = Blocking()
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint], executor="threading")
    server.start(override_pool_size=2)
    try:
        send(bus, 2)
        for _ in range(2):
            assert endpoint.entered.acquire(timeout=TIMEOUT)
        busy = server.health()
        assert (busy.in_flight, busy.max_workers, busy.saturation) == (2, 2, 1.0)
        assert busy.ready  # busy is not broken
    finally:
        endpoint.release.set()
        server.stop()
        server.wait()
    assert server.health().in_flight == 0


def test_an_rpc_server_is_named_by_its_topic_and_server(bus: Transport) -> None:
    server = messaging.get_rpc_server(
        bus, messaging.Target(topic="health", server="s1"), [], executor="threading"
    )
    assert server.health().name == "RPC server on health.s1"


class _Down:
    """Makes the driver of a transport report a link that is down, or dead."""

    def __init__(self, bus: Transport, link: LinkHealth) -> None:
        self.driver = bus.driver
        self.link = link

    def __enter__(self) -> None:
        self.driver.link_health = lambda: self.link  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        del self.driver.link_health


def test_a_process_with_a_disconnected_server_is_live_but_not_ready(bus: Transport) -> None:
    server = messaging.get_notification_listener(bus, [TOPIC], [InfoRecorder()])
    server.start()
    try:
        with _Down(bus, LinkHealth(connected=False, error="[Errno 111] Connection refused")):
            current = health.report([server])
        assert current.live and not current.ready
        assert current.problems == [
            "notification listener on health: not connected to the broker "
            "([Errno 111] Connection refused)"
        ]
        with _Down(bus, LinkHealth(alive=False)):
            assert not health.report([server]).live
        assert health.report([server]).ready
    finally:
        server.stop()
        server.wait()


def test_report_reads_every_server_of_the_process(bus: Transport) -> None:
    servers = [
        messaging.get_notification_listener(bus, [TOPIC], [InfoRecorder()]) for _ in range(2)
    ]
    names = [s.name for s in health.report().servers]
    assert names.count("notification listener on health") >= len(servers)
    assert not health.report(servers).ready  # created, not started: still starting
    for server in servers:
        server.start()
        server.stop()
    assert health.report(servers).ready  # stopped on purpose: not waited for


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_http_endpoints_answer_probes(bus: Transport) -> None:
    gc.collect()  # servers of earlier tests, never started, would count as starting
    server = messaging.get_notification_listener(bus, [TOPIC], [InfoRecorder()])
    server.start()
    try:
        with health.serve_http() as endpoints:
            status, body = _get(endpoints.url + "/readyz")
            assert status == 200 and body["ready"] is True
            with _Down(bus, LinkHealth(connected=False)):
                status, body = _get(endpoints.url + "/readyz")
                assert status == 503
                assert (
                    "notification listener on health: not connected to the broker"
                    in (body["problems"])
                )
                assert _get(endpoints.url + "/livez")[0] == 200
            with _Down(bus, LinkHealth(alive=False)):
                assert _get(endpoints.url + "/livez")[0] == 503
            status, body = _get(endpoints.url + "/health")
            assert status == 200
            assert any(s["name"] == "notification listener on health" for s in body["servers"])
            assert _get(endpoints.url + "/nothing")[0] == 404
    finally:
        server.stop()
        server.wait()


def test_an_rpc_server_with_a_canary_reports_its_answers(bus: Transport) -> None:
    bus.conf.set_override("rpc_canary_interval", 0.05)
    endpoints: list[Any] = []
    server = messaging.get_rpc_server(
        bus, messaging.Target(topic="health", server="s1"), endpoints, executor="threading"
    )
    assert [type(e).__name__ for e in endpoints] == ["CanaryEndpoint"]
    server.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while server.health().canary.last_answer_age is None:
            assert time.monotonic() < deadline, "the canary was never answered"
            time.sleep(0.01)  # the canary's own thread answers; nothing to wait on
        now = server.health()
        assert now.ready and now.canary.failures == 0 and now.canary.round_trip is not None
        assert health.report([server]).as_dict()["servers"][0]["canary"]["interval"] == 0.05
    finally:
        server.stop()
        server.wait()


def test_a_failing_canary_makes_the_server_not_ready(bus: Transport) -> None:
    bus.conf.set_override("rpc_canary_interval", 0.05)
    server = messaging.get_rpc_server(
        bus, messaging.Target(topic="health", server="s1"), [], executor="threading"
    )
    server.dispatcher.endpoints.clear()  # nothing answers the canary: every call fails
    server.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while server.health().canary.failures == 0:
            assert time.monotonic() < deadline, "the canary never failed"
            time.sleep(0.01)
        now = server.health()
        assert not now.ready
        assert any("canary call through the broker failed" in p for p in now.problems)
        assert now.canary.repairs == 0  # the in-memory driver has nothing to set up again
    finally:
        server.stop()
        server.wait()
