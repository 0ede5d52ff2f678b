"""RabbitMQ: connections shared per broker, failover, and recovery from dropped connections.

Each test runs on a virtual host of its own, so that counting and closing
connections with ``rabbitmqctl`` touches only what the test opened.
"""

from __future__ import annotations

import collections
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from tests.brokers import RABBIT_HOST, RABBIT_PORT, rabbit_url, rabbit_vhost

pytestmark = pytest.mark.broker
TIMEOUT = 60.0


@pytest.fixture
def vhost() -> Iterator[str]:
    with rabbit_vhost("messaging-resilience") as name:
        yield name


def rabbitmqctl(*args: str) -> str:
    ctl = shutil.which("rabbitmqctl")
    assert ctl is not None
    result = subprocess.run(
        [ctl, "-q", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    return result.stdout


def connections_on(vhost: str) -> int:
    """How many AMQP connections the broker has on ``vhost`` (from rabbitmqctl)."""
    lines = rabbitmqctl("list_connections", "vhost", "--no-table-headers").splitlines()
    return sum(1 for line in lines if line.strip() == vhost)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)  # polling an external tool's view; there is no event to wait on


def make_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="messaging-tests")
    return conf


class Counter:
    """Counts notifications by payload id."""

    def __init__(self) -> None:
        self.seen: collections.Counter[int] = collections.Counter()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def info(
        self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any
    ) -> None:
        with self.lock:
            self.seen[payload["n"]] += 1
            self.changed.notify_all()

    def distinct(self) -> int:
        with self.lock:
            return len(self.seen)

    def wait_distinct(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.seen) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"only {len(self.seen)} of {count} notifications arrived")
                self.changed.wait(remaining)


class Adder:
    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b


def test_a_busy_process_holds_two_connections_to_its_broker(vhost: str) -> None:
    """RPC server + listener on two targets + Notifier + RPCClient from 8 threads: 2 connections."""
    conf = make_conf()
    url = rabbit_url(vhost)
    rpc = messaging.get_rpc_transport(conf, url)
    notifications = messaging.get_notification_transport(conf, url)
    topic = f"count-{uuid.uuid4().hex}"
    server = messaging.get_rpc_server(rpc, messaging.Target(topic=topic, server="s1"), [Adder()])
    counter = Counter()
    listener = messaging.get_notification_listener(
        notifications,
        [messaging.Target(topic=f"{topic}-a"), messaging.Target(topic=f"{topic}-b")],
        [counter],
    )
    server.start()
    listener.start()
    try:
        client = messaging.get_rpc_client(rpc, messaging.Target(topic=topic), timeout=30)
        notifier = messaging.Notifier(
            notifications, "counter", driver="messagingv2", topics=[f"{topic}-a", f"{topic}-b"]
        )
        errors: queue.Queue[BaseException] = queue.Queue()

        def caller(base: int) -> None:
            try:
                for i in range(50):
                    assert client.call({}, "add", a=base, b=i) == base + i
            except BaseException as exc:
                errors.put(exc)

        threads = [threading.Thread(target=caller, args=(k * 1000,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for n in range(50):
            notifier.info({}, "count.test", {"n": n})
        for thread in threads:
            thread.join(TIMEOUT)
        assert errors.empty(), errors.get()
        counter.wait_distinct(50, TIMEOUT)
        held = connections_on(vhost)
        assert 1 <= held <= 3, f"the process holds {held} AMQP connections"
        assert held == 2  # one publishing, one consuming
    finally:
        for srv in (server, listener):
            srv.stop()
            srv.wait()
        rpc.cleanup()
        notifications.cleanup()
    wait_for(lambda: connections_on(vhost) == 0, 30, "the last user to close the connections")


def test_failover_to_the_next_host_of_the_url(vhost: str) -> None:
    conf = make_conf()
    # Port 1 on loopback refuses connections: the driver must move on to the real broker.
    url = f"rabbit://guest:guest@{RABBIT_HOST}:1,guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/{vhost}"
    transport = messaging.get_rpc_transport(conf, url)
    topic = f"failover-{uuid.uuid4().hex}"
    server = messaging.get_rpc_server(
        transport, messaging.Target(topic=topic, server="s1"), [Adder()]
    )
    server.start()
    try:
        client = messaging.get_rpc_client(transport, messaging.Target(topic=topic), timeout=30)
        assert client.call({}, "add", a=2, b=3) == 5
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_recovery_after_the_broker_closes_every_connection(vhost: str) -> None:
    """A listener draining 10,000 notifications and a calling client survive close_all_connections.

    Every notification the notifier reported as sent arrives at least once.
    """
    total = 10_000
    conf = make_conf()
    url = rabbit_url(vhost)
    notifications = messaging.get_notification_transport(conf, url)
    rpc = messaging.get_rpc_transport(conf, url)
    topic = f"recover-{uuid.uuid4().hex}"
    counter = Counter()
    listener = messaging.get_notification_listener(
        notifications, [messaging.Target(topic=topic)], [counter]
    )
    server = messaging.get_rpc_server(rpc, messaging.Target(topic=topic, server="s1"), [Adder()])
    notifier = messaging.Notifier(
        notifications, "recover", driver="messagingv2", topics=[topic], raise_errors=True
    )
    client = messaging.get_rpc_client(rpc, messaging.Target(topic=topic), timeout=20)
    sent: list[int] = []
    failed: list[int] = []
    sent_lock = threading.Lock()
    calls = {"ok": 0, "failed": 0, "ok_after_drop": 0}
    dropped = threading.Event()
    stop_calling = threading.Event()

    def send(part: range) -> None:
        for n in part:
            try:
                notifier.info({}, "recover.test", {"n": n})
            except messaging.MessagingException:
                with sent_lock:
                    failed.append(n)
                continue
            with sent_lock:
                sent.append(n)

    def call() -> None:
        i = 0
        while not stop_calling.is_set():
            i += 1
            try:
                assert client.call({}, "add", a=i, b=1) == i + 1
                calls["ok"] += 1
                if dropped.is_set():
                    calls["ok_after_drop"] += 1
            except messaging.MessagingTimeout:
                calls["failed"] += 1

    listener.start()
    server.start()
    senders = [
        threading.Thread(target=send, args=(range(k, total, 4),), name=f"sender-{k}")
        for k in range(4)
    ]
    caller = threading.Thread(target=call, name="caller")
    try:
        for thread in [*senders, caller]:
            thread.start()
        counter.wait_distinct(total // 5, TIMEOUT)
        rabbitmqctl("close_all_connections", "--vhost", vhost, "resilience test")
        dropped.set()
        for thread in senders:
            thread.join(TIMEOUT * 2)
            assert not thread.is_alive(), "a sender is stuck"
        counter.wait_distinct(len(sent), TIMEOUT * 2)
        wait_for(lambda: calls["ok_after_drop"] >= 5, TIMEOUT, "calls to succeed after the drop")
    finally:
        stop_calling.set()
        caller.join(TIMEOUT)
        for srv in (listener, server):
            srv.stop()
            srv.wait()
        notifications.cleanup()
        rpc.cleanup()
    missing = set(sent) - set(counter.seen)
    duplicates = sum(count - 1 for count in counter.seen.values())
    print(
        f"\nsent {len(sent)} (send failures reported to the caller: {len(failed)}), "
        f"received {len(counter.seen)} distinct, {duplicates} duplicates; "
        f"calls ok {calls['ok']} (after the drop {calls['ok_after_drop']}), "
        f"timed out {calls['failed']}"
    )
    assert not missing, f"{len(missing)} notifications reported as sent never arrived"
    assert len(sent) + len(failed) == total


def test_a_forked_child_opens_its_own_connections(vhost: str) -> None:
    """After fork() the child sends on connections of its own; the parent's keep working."""
    import os

    conf = make_conf()
    transport = messaging.get_notification_transport(conf, rabbit_url(vhost))
    topic = f"fork-{uuid.uuid4().hex}"
    counter = Counter()
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [counter]
    )
    listener.start()
    try:
        notifier = messaging.Notifier(transport, "fork", driver="messagingv2", topics=[topic])
        notifier.info({}, "fork.test", {"n": 0})
        assert notifier.flush(30) == 0
        held_before = connections_on(vhost)
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                notifier.info({}, "fork.test", {"n": 1})
                code = 0 if notifier.flush(30) == 0 else 3
                transport.cleanup()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        notifier.info({}, "fork.test", {"n": 2})
        assert notifier.flush(30) == 0
        counter.wait_distinct(3, TIMEOUT)
        assert set(counter.seen) == {0, 1, 2}
        # The child closed its own connections, not the parent's.
        wait_for(
            lambda: connections_on(vhost) == held_before, 30, "the child's connections to close"
        )
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
