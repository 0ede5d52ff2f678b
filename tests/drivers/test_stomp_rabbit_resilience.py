"""One STOMP connection per broker and process, and re-subscription after a drop (RabbitMQ).

Both run on RabbitMQ's STOMP plugin (127.0.0.1:61613) in a virtual host of
their own, whose connections ``rabbitmqctl`` lists and closes.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.stomp.connection import REGISTRY
from tests.brokers import rabbit_vhost, require_service, unavailable
from tests.drivers.test_stomp_rabbit_conformance import STOMP_HOST, STOMP_PORT, stomp_url

pytestmark = pytest.mark.broker

FAST_RECONNECT = "?reconnect_interval=0.1&reconnect_interval_max=0.5"


@pytest.fixture
def vhost() -> Iterator[str]:
    require_service(STOMP_HOST, STOMP_PORT, "RabbitMQ's STOMP plugin")
    with rabbit_vhost("messaging-stomp-resilience") as name:
        yield name


def _ctl(*args: str) -> str:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        unavailable("rabbitmqctl is not installed")
    result = subprocess.run(
        [ctl, "-q", *args], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


def _own_stomp_ports() -> set[int]:
    """The local ports of this process's TCP connections to the STOMP port (Linux /proc)."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs Linux /proc to find this process's sockets")
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                established = state == "01"
                if inode in inodes and established and int(remote.split(":")[1], 16) == STOMP_PORT:
                    ports.add(int(local.split(":")[1], 16))
    return ports


def stomp_connection_pids() -> list[str]:
    """RabbitMQ's pids of the STOMP connections this process holds open."""
    ours = _own_stomp_ports()
    lines = _ctl("-s", "list_stomp_connections", "peer_port", "connection").splitlines()
    rows = [line.split("\t") for line in lines if line.strip()]
    return [pid for port, pid in rows if int(port) in ours]


def stomp_connections() -> int:
    """How many STOMP connections of this process RabbitMQ has open."""
    return len(stomp_connection_pids())


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class Inbox:
    """Endpoint putting each ``info`` payload in a queue."""

    def __init__(self) -> None:
        self.received: queue.Queue[Any] = queue.Queue()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.received.put(payload)


def test_ten_messengers_share_one_connection_closed_by_the_last(vhost: str) -> None:
    url = stomp_url(vhost)
    transports: list[messaging.Transport] = []
    servers: list[Any] = []
    inbox = Inbox()
    try:
        for n in range(4):
            transport = messaging.get_notification_transport(cfg.ConfigOpts(), url)
            transports.append(transport)
            messaging.Notifier(
                transport, f"p{n}", driver="messagingv2", topics=["shared"], raise_errors=True
            ).info({}, "test.shared", {"n": n})
        for _ in range(3):
            transport = messaging.get_notification_transport(cfg.ConfigOpts(), url)
            transports.append(transport)
            server = messaging.get_notification_listener(
                transport, [messaging.Target(topic="shared")], [inbox], executor="threading"
            )
            server.start()
            servers.append(server)
        for _ in range(3):
            transport = messaging.get_rpc_transport(cfg.ConfigOpts(), url)
            transports.append(transport)
            client = messaging.get_rpc_client(
                transport, messaging.Target(topic="nobody"), timeout=0.5
            )
            with pytest.raises(messaging.MessagingTimeout):
                client.call({}, "ping")
        received = sorted(inbox.received.get(timeout=10)["n"] for _ in range(4))
        assert received == [0, 1, 2, 3]
        key = transports[0].driver.settings.broker_key()  # type: ignore[attr-defined]
        assert len({id(t.driver.connection) for t in transports}) == 1  # type: ignore[attr-defined]
        assert REGISTRY.users(key) == 10
        assert stomp_connections() == 1
        for server in servers:
            server.stop()
            server.wait()
        for transport in transports[:-1]:
            transport.cleanup()
        assert REGISTRY.users(key) == 1
        assert stomp_connections() == 1
        transports[-1].cleanup()
        assert REGISTRY.users(key) == 0
        wait_until(lambda: stomp_connections() == 0, "the STOMP connection to close")
    finally:
        for server in servers:
            server.stop()
            server.wait()
        for transport in transports:
            transport.cleanup()


def test_listener_resubscribes_after_the_connection_is_killed(vhost: str) -> None:
    total = 5000
    url = stomp_url(vhost, FAST_RECONNECT)
    transport = messaging.get_notification_transport(cfg.ConfigOpts(), url)
    inbox = Inbox()
    server = messaging.get_notification_listener(
        transport, [messaging.Target(topic="drain")], [inbox], executor="threading"
    )
    sent: list[int] = []
    errors: list[BaseException] = []

    def send_all() -> None:
        notifier = messaging.Notifier(
            transport, "p", driver="messagingv2", topics=["drain"], retry=-1, raise_errors=True
        )
        try:
            for n in range(total):
                notifier.info({}, "test.drain", {"n": n})
                sent.append(n)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    sender = threading.Thread(target=send_all, name="stomp-test-sender")
    server.start()
    seen: set[int] = set()
    deliveries = 0
    try:
        sender.start()
        while deliveries < total // 5:
            seen.add(inbox.received.get(timeout=30)["n"])
            deliveries += 1
        generation = transport.driver.connection.generation  # type: ignore[attr-defined]
        # RabbitMQ's close_connection does not close STOMP connections: the
        # socket is shut down under the driver instead, as a network failure would.
        transport.driver.connection.drop_for_test()  # type: ignore[attr-defined]
        sender.join(timeout=120)
        assert not sender.is_alive(), "the sender did not finish"
        assert errors == []
        deadline = time.monotonic() + 60
        while len(seen) < len(sent) and time.monotonic() < deadline:
            try:
                seen.add(inbox.received.get(timeout=1)["n"])
                deliveries += 1
            except queue.Empty:
                continue
        assert transport.driver.connection.generation > generation  # type: ignore[attr-defined]
        assert len(sent) == total
        assert seen == set(sent), f"{len(set(sent) - seen)} sent notifications never arrived"
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
