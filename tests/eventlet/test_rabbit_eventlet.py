"""RabbitMQ in a monkey-patched process: native I/O threads, heartbeats, forked workers.

Run patched by ``tests/drivers/test_under_eventlet.py``; each test uses a
virtual host of its own, so counting connections with ``rabbitmqctl`` sees
only what it opened.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import amqp
import eventlet.hubs
import pytest
from oslo_config import cfg

import messaging
from messaging import green
from tests.brokers import rabbit_url, rabbit_vhost
from tests.drivers.test_rabbit_resilience import Adder, Counter, rabbitmqctl, wait_for

pytestmark = pytest.mark.broker
TIMEOUT = 60.0


@pytest.fixture
def vhost() -> Iterator[str]:
    with rabbit_vhost("messaging-eventlet") as name:
        yield name


def make_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="messaging-tests")
    return conf


def connection_names(vhost: str) -> list[str]:
    """The client-given names of the AMQP connections on ``vhost``."""
    lines = rabbitmqctl("list_connections", "vhost", "name", "--no-table-headers").splitlines()
    names = []
    for line in lines:
        host, _, name = line.partition("\t")
        if host.strip() == vhost:
            names.append(name.strip())
    return names


def client_names(vhost: str) -> list[str]:
    """The ``connection_name`` client property of each connection on ``vhost``."""
    out = rabbitmqctl("list_connections", "vhost", "client_properties", "--no-table-headers")
    names = []
    for line in out.splitlines():
        host, _, props = line.partition("\t")
        if host.strip() == vhost:
            names.extend(re.findall(r'\{"connection_name","([^"]*)"\}', props))
    return names


def test_the_process_is_patched_and_io_threads_are_native(vhost: str) -> None:
    assert green.monkey_patched()
    transport = messaging.get_notification_transport(make_conf(), rabbit_url(vhost))
    try:
        notifier = messaging.Notifier(transport, "t", driver="messagingv2", topics=["native"])
        notifier.info({}, "native.test", {"n": 1})
        assert notifier.flush(30) == 0
        native = green.natives().threading
        io_threads = [t for t in native.enumerate() if t.name.startswith("messaging-amqp-")]
        assert io_threads, "no native I/O thread runs"
        # A green thread is not in the native thread table, and vice versa.
        green_names = {t.name for t in threading.enumerate()}
        assert not any(t.name in green_names for t in io_threads)
    finally:
        transport.cleanup()


def test_green_threads_holding_the_cpu_do_not_stop_heartbeats(vhost: str) -> None:
    """Green threads that never yield for 3 x the heartbeat timeout: the connection is kept.

    With a heartbeat timeout of 2 s, RabbitMQ closes a connection from which it
    hears nothing for about 4 s. The I/O threads are native, so they keep
    sending heartbeats (and receiving confirms and deliveries) while the hub is
    stuck; nothing has to reconnect, and what was sent meanwhile arrives.
    """
    threshold = 2
    url = rabbit_url(vhost) + f"?heartbeat_timeout_threshold={threshold}"
    transport = messaging.get_notification_transport(make_conf(), url)
    topic = f"hog-{uuid.uuid4().hex}"
    counter = Counter()
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [counter], executor="eventlet"
    )
    listener.start()
    try:
        notifier = messaging.Notifier(transport, "hog", driver="messagingv2", topics=[topic])
        notifier.info({}, "hog.test", {"n": 0})
        counter.wait_distinct(1, TIMEOUT)
        before = sorted(connection_names(vhost))
        assert len(before) == 2  # publishing and consuming
        # The control: a green connection with the same heartbeat, which only
        # the hub could keep alive. The broker must drop it meanwhile.
        control_name = f"control-{uuid.uuid4().hex}"
        control = amqp.Connection(
            "127.0.0.1:5672",
            virtual_host=vhost,
            heartbeat=threshold,
            client_properties={"connection_name": control_name},
        )
        control.connect()
        assert control_name in client_names(vhost)
        for n in range(1, 201):  # handed over, confirmed while the hub is stuck
            notifier.info({}, "hog.test", {"n": n})
        end = time.monotonic() + 3 * threshold
        while time.monotonic() < end:  # holds the hub: no green thread runs meanwhile
            pass
        assert notifier.flush(10) == 0
        counter.wait_distinct(201, 10)
        assert sorted(connection_names(vhost)) == before, "a connection was dropped"
        wait_for(
            lambda: control_name not in client_names(vhost),
            10,
            "the broker to drop the connection that could not send heartbeats",
        )
        control.collect()
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()


def test_forked_workers_open_their_own_connections(vhost: str) -> None:
    """A patched parent with live connections forks two workers, as oslo.service does.

    Each worker (one calls ``eventlet.hubs.use_hub()`` first as oslo.service
    does, one does not) serves RPC on the parent's transport object, sends a
    notification and calls the parent, over connections of its own; the
    parent calls each worker, and its own connections keep working after the
    workers are gone.
    """
    conf = make_conf()
    url = rabbit_url(vhost)
    rpc = messaging.get_rpc_transport(conf, url)
    notifications = messaging.get_notification_transport(conf, url)
    topic = f"workers-{uuid.uuid4().hex}"
    counter = Counter()
    listener = messaging.get_notification_listener(
        notifications, [messaging.Target(topic=topic)], [counter]
    )
    parent_server = messaging.get_rpc_server(
        rpc, messaging.Target(topic=topic, server="parent"), [Adder()]
    )
    notifier = messaging.Notifier(notifications, "parent", driver="messagingv2", topics=[topic])
    client = messaging.get_rpc_client(rpc, messaging.Target(topic=topic), timeout=30)
    listener.start()
    parent_server.start()
    children: dict[int, str] = {}
    try:
        assert client.prepare(server="parent").call({}, "add", a=1, b=1) == 2
        notifier.info({}, "workers.test", {"n": 0})
        counter.wait_distinct(1, TIMEOUT)
        parent_connections = set(client_names(vhost))
        for index, fresh_hub in enumerate((True, False)):
            name = f"worker-{index}"
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    if fresh_hub:
                        eventlet.hubs.use_hub()
                    code = _worker(rpc, notifications, topic, name, index + 1)
                finally:
                    os._exit(code)
            children[pid] = name
        for pid, name in children.items():
            worker = client.prepare(server=name, timeout=5)
            deadline = time.monotonic() + TIMEOUT
            while True:  # the worker is serving once it answers
                try:
                    assert worker.call({}, "add", a=40, b=2) == 42
                    break
                except messaging.MessagingTimeout:
                    if time.monotonic() > deadline:
                        raise
            # It answers on connections of its own: their names carry its pid.
            assert any(f":{pid}:" in n for n in client_names(vhost)), client_names(vhost)
            worker.cast({}, "stop", worker=name)
        for pid in children:
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, f"worker {children[pid]} failed"
        children.clear()
        counter.wait_distinct(3, TIMEOUT)  # one notification from each worker
        notifier.info({}, "workers.test", {"n": 10})
        assert client.prepare(server="parent").call({}, "add", a=2, b=2) == 4
        counter.wait_distinct(4, TIMEOUT)
        assert set(counter.seen) == {0, 1, 2, 10}
        # The workers' connections were their own and went with them.
        wait_for(
            lambda: set(client_names(vhost)) == parent_connections,
            30,
            "only the parent's connections to remain",
        )
    finally:
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        for srv in (listener, parent_server):
            srv.stop()
            srv.wait()
        rpc.cleanup()
        notifications.cleanup()


def _worker(
    rpc: messaging.Transport,
    notifications: messaging.Transport,
    topic: str,
    name: str,
    number: int,
) -> int:
    """A forked worker's life: serve, notify, call the parent, stop when told."""
    stopped = threading.Event()

    class Control:
        def stop(self, ctxt: Any, worker: str) -> None:
            stopped.set()

    server = messaging.get_rpc_server(
        rpc, messaging.Target(topic=topic, server=name), [Adder(), Control()]
    )
    server.start()
    try:
        notifier = messaging.Notifier(notifications, name, driver="messagingv2", topics=[topic])
        notifier.info({}, "workers.test", {"n": number})
        if notifier.flush(30):
            return 2
        client = messaging.get_rpc_client(rpc, messaging.Target(topic=topic, server="parent"))
        if client.call({}, "add", a=number, b=100) != number + 100:
            return 3
        if not stopped.wait(TIMEOUT):
            return 5
        return 0
    finally:
        server.stop()
        server.wait()
        rpc.cleanup()
        notifications.cleanup()
