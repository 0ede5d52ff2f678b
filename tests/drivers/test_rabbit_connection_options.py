"""RabbitMQ: oslo.messaging's reconnection and queue-naming options, against the real broker.

``kombu_reconnect_delay`` is the pause after a lost connection before the next
attempt; ``kombu_reconnect_splay`` adds up to that many random seconds to it;
``use_queue_manager`` names reply and fanout queues ``<host>:<process>:<n>``.
Each test runs on a virtual host of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.rabbit import connection as connection_module
from messaging.drivers.rabbit import queue_manager
from messaging.drivers.rabbit.connection import AmqpConnection
from messaging.drivers.rabbit.options import RABBIT_GROUP, RabbitSettings, register_rabbit_opts
from messaging.transport import TransportHost
from tests.brokers import RABBIT_HOST, RABBIT_PORT, rabbit_url, rabbit_vhost

pytestmark = pytest.mark.broker
TIMEOUT = 30.0


@pytest.fixture
def vhost() -> Iterator[str]:
    with rabbit_vhost("messaging-connopts") as name:
        yield name


class Watcher:
    """Records when the connection comes up and when it is lost."""

    def __init__(self) -> None:
        self.connected: list[float] = []
        self.lost: list[float] = []
        self.changed = threading.Condition()

    def on_connected(self, conn: Any, generation: int) -> None:
        with self.changed:
            self.connected.append(time.monotonic())
            self.changed.notify_all()

    def on_connection_lost(self, error: BaseException) -> None:
        with self.changed:
            self.lost.append(time.monotonic())

    def on_connect_failed(self, error: BaseException) -> None:
        pass

    def wait_connections(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.connected) >= count, TIMEOUT), (
                f"{count} connections expected, saw {len(self.connected)}"
            )


def _reconnect_gap(vhost: str, settings: RabbitSettings) -> float:
    """Seconds between the loss of a connection and its next connection."""
    host = TransportHost(RABBIT_HOST, RABBIT_PORT, "guest", "guest")
    conn = AmqpConnection(settings, [host], vhost, "connopts")
    watcher = Watcher()
    try:
        conn.add_observer(watcher)
        assert conn.wait_connected(TIMEOUT)
        watcher.wait_connections(1)

        def cut() -> None:
            amqp_conn = conn.amqp_connection
            assert amqp_conn is not None
            amqp_conn.sock.shutdown(socket.SHUT_RDWR)

        conn.post(cut)
        watcher.wait_connections(2)
        return watcher.connected[1] - watcher.lost[0]
    finally:
        conn.close()


def test_reconnect_delay_pauses_before_reconnecting(vhost: str) -> None:
    assert _reconnect_gap(vhost, RabbitSettings(kombu_reconnect_delay=1.5)) >= 1.4


def test_no_reconnect_delay_reconnects_at_once(vhost: str) -> None:
    assert _reconnect_gap(vhost, RabbitSettings(kombu_reconnect_delay=0.0)) < 1.0


def test_reconnect_splay_adds_a_random_wait(vhost: str, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        drawn.append((low, high))
        return high

    monkeypatch.setattr(connection_module.random, "uniform", uniform)
    settings = RabbitSettings(kombu_reconnect_delay=0.0, kombu_reconnect_splay=1.5)
    assert _reconnect_gap(vhost, settings) >= 1.4
    assert drawn == [(0.0, 1.5)]


def _queues(vhost: str) -> set[str]:
    ctl = shutil.which("rabbitmqctl")
    assert ctl is not None
    out = subprocess.run(
        [ctl, "-q", "list_queues", "-p", vhost, "name", "--no-table-headers"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=True,
    ).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


class Echo:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


def test_queue_manager_names_reply_and_fanout_queues(vhost: str) -> None:
    process = f"connopts-{uuid.uuid4().hex[:8]}"
    counter_file = queue_manager.counter_path("node1", process)
    conf = cfg.ConfigOpts()
    conf([])
    register_rabbit_opts(conf)
    conf.set_override("use_queue_manager", True, group=RABBIT_GROUP)
    conf.set_override("hostname", "node1", group=RABBIT_GROUP)
    conf.set_override("processname", process, group=RABBIT_GROUP)
    transport = messaging.get_rpc_transport(conf, rabbit_url(vhost))
    server = messaging.get_rpc_server(
        transport, messaging.Target(topic="qm", server="s1"), [Echo()]
    )
    try:
        server.start()
        client = messaging.get_rpc_client(transport, messaging.Target(topic="qm"), timeout=30)
        assert client.call({}, "echo", value=3) == 3
        queues = _queues(vhost)
        assert f"qm_fanout_node1:{process}:1" in queues
        assert f"reply_node1:{process}:2" in queues
        assert not any(q.startswith("reply_") and q.count(":") != 2 for q in queues)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(counter_file)
    assert f"qm_fanout_node1:{process}:1" in _queues(vhost), "kept for the next run"
