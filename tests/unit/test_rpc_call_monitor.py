"""Call monitoring and timeouts on fake://: heartbeats keep slow calls alive, a dead server
is noticed after the monitor timeout, and a MessagingTimeout says what timed out."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.delivered import DeliveredRequest
from messaging.drivers.memory import reset_brokers
from tests.unit.rpc_support import (
    TIMEOUT,
    Echo,
    Gate,
    Outcome,
    make_conf,
    rpc_transport,
    serving,
)

TARGET = messaging.Target(topic="t", server="s1")


@pytest.fixture(autouse=True)
def fresh_broker() -> Iterator[None]:
    reset_brokers()
    yield
    reset_brokers()


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    return make_conf()


@pytest.fixture
def server_transport(conf: cfg.ConfigOpts) -> Iterator[messaging.Transport]:
    transport = rpc_transport(conf)
    yield transport
    transport.cleanup()


@pytest.fixture
def client(conf: cfg.ConfigOpts) -> Iterator[messaging.RPCClient]:
    transport = rpc_transport(conf)
    yield messaging.get_rpc_client(transport, messaging.Target(topic="t"), timeout=TIMEOUT)
    transport.cleanup()


class HeartbeatCounter:
    """Counts the heartbeats servers send; ``reached(n)`` waits for the n-th."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self._cond = threading.Condition()
        original = DeliveredRequest.heartbeat
        counter = self

        def heartbeat(message: DeliveredRequest[Any]) -> None:
            original(message)
            with counter._cond:
                counter.count += 1
                counter._cond.notify_all()

        monkeypatch.setattr(DeliveredRequest, "heartbeat", heartbeat)

    def reached(self, count: int, timeout: float = TIMEOUT) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.count >= count, timeout)


class Worker(Echo):
    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    def work(self, ctxt: Any, seconds: float) -> str:
        # Stands for work that takes this long; the test asserts on what the
        # caller sees meanwhile, not on the duration.
        threading.Event().wait(seconds)
        return "worked"

    def hold(self, ctxt: Any) -> str:
        self.gate.hold()
        return "released"


def test_heartbeats_keep_a_call_alive_past_the_monitor_timeout(
    server_transport: messaging.Transport,
    client: messaging.RPCClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    beats = HeartbeatCounter(monkeypatch)
    with serving(server_transport, TARGET, [Worker(Gate())]):
        monitored = client.prepare(call_monitor_timeout=0.5, timeout=10)
        assert monitored.call({}, "work", seconds=1.5) == "worked"
    # Every 0.25 s for 1.5 s: without them the call would have failed after 0.5 s.
    assert beats.count >= 2


def test_without_monitoring_a_slow_call_times_out_and_the_late_reply_is_dropped(
    server_transport: messaging.Transport,
    client: messaging.RPCClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    beats = HeartbeatCounter(monkeypatch)
    gate = Gate()
    with serving(server_transport, TARGET, [Worker(gate)], release=[gate.release]):
        with pytest.raises(messaging.MessagingTimeout, match=r"no reply within 0\.3s"):
            client.prepare(timeout=0.3).call({}, "hold")
        gate.wait_entered(1)
        gate.release.set()
        # The late reply ("released") must not be mistaken for this call's reply.
        assert client.call({}, "echo", value="fresh") == "fresh"
    assert beats.count == 0


def test_heartbeats_do_not_extend_the_overall_timeout(
    server_transport: messaging.Transport,
    client: messaging.RPCClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    beats = HeartbeatCounter(monkeypatch)
    gate = Gate()
    with serving(server_transport, TARGET, [Worker(gate)], release=[gate.release]):
        monitored = client.prepare(call_monitor_timeout=0.2, timeout=0.8)
        with pytest.raises(messaging.MessagingTimeout, match=r"no reply within 0\.8s"):
            monitored.call({}, "hold")
    assert beats.count >= 2


def test_a_killed_server_is_noticed_after_the_monitor_timeout(
    server_transport: messaging.Transport,
    client: messaging.RPCClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The in-memory broker lives in this process, so the server cannot run in a
    # subprocess that we SIGKILL. What a killed server looks like from the
    # broker and the caller is reproduced instead: its connection is gone, so
    # nothing it publishes (heartbeats, the reply) arrives any more, and it takes
    # no more requests; the method it was running never finishes (held at a gate
    # until the test ends). The server has its own transport (own driver
    # instance), as a separate process would, so the caller's side is untouched.
    beats = HeartbeatCounter(monkeypatch)
    gate = Gate()
    server = messaging.get_rpc_server(server_transport, TARGET, [Worker(gate)])
    server.start()
    try:
        monitored = client.prepare(call_monitor_timeout=0.5, timeout=30)
        call = Outcome(monitored.call, {}, "hold")
        gate.wait_entered(1)
        assert beats.reached(2)  # the server was alive and heartbeating

        def connection_gone(*args: Any, **kwargs: Any) -> int:
            raise ConnectionError("the server process was killed")

        monkeypatch.setattr(server_transport.driver, "publish", connection_gone)
        server.stop(timeout=TIMEOUT)
        killed_at = time.monotonic()

        error = call.error(timeout=TIMEOUT)
        noticed_after = time.monotonic() - killed_at
    finally:
        gate.release.set()
        server.stop(timeout=TIMEOUT)
        server.wait(timeout=TIMEOUT)
    assert isinstance(error, messaging.MessagingTimeout)
    assert "call_monitor_timeout 0.5s" in str(error)
    # Long before the overall 30 s timeout (a loose bound, not a timing test).
    assert noticed_after < 5


def test_messaging_timeout_names_topic_server_method_timeout_and_reply_queue(
    client: messaging.RPCClient,
) -> None:
    with pytest.raises(messaging.MessagingTimeout) as info:
        client.prepare(server="s9", timeout=0.2).call({}, "resize_instance", size=2)
    text = str(info.value)
    assert "'t'" in text  # topic
    assert "'s9'" in text  # server
    assert "'resize_instance'" in text  # method
    assert "0.2s" in text  # timeout
    assert re.search(r"reply queue reply_[0-9a-f]{32}", text)  # reply destination
    assert re.search(r"message ID [0-9a-f]{32}", text)
