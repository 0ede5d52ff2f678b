"""One STOMP connection per broker and process, and recovery when the broker kills it (RabbitMQ).

All run on RabbitMQ's STOMP plugin (127.0.0.1:61613) in a virtual host of their
own. ``rabbitmqctl`` lists the process's STOMP connections; the broker kills one
by ending its AMQP connection process (``rabbitmqctl close_connection`` only
closes network AMQP connections: on a STOMP connection's pid it does nothing),
after which the plugin sends an ERROR frame and closes the socket. The test of
what a stopped listener held runs on CoilMQ as well.
"""

from __future__ import annotations

import collections
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
from tests.drivers.coilmq_support import running_coilmq
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


def kill_stomp_connection(pid: str) -> None:
    """Have the broker kill one STOMP connection (by its AMQP connection's pid)."""
    _ctl("eval", f'exit(rabbit_misc:string_to_pid("{pid}"), kill).')


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
        (pid,) = stomp_connection_pids()
        kill_stomp_connection(pid)
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


class Gate:
    """Notification endpoint that records each payload and holds every call until opened."""

    def __init__(self) -> None:
        self.handled: queue.Queue[Any] = queue.Queue()
        self.opened = threading.Event()
        self.entered = threading.Event()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.entered.set()
        assert self.opened.wait(30), "the gate was never opened"
        self.handled.put(payload["n"])


def drained(inbox: queue.Queue[Any]) -> list[Any]:
    items = []
    while True:
        try:
            items.append(inbox.get_nowait())
        except queue.Empty:
            return items


@pytest.fixture(params=["rabbitmq", "coilmq"])
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A STOMP broker: RabbitMQ (its own virtual host) or a CoilMQ started for the test."""
    if request.param == "rabbitmq":
        require_service(STOMP_HOST, STOMP_PORT, "RabbitMQ's STOMP plugin")
        with rabbit_vhost("messaging-stomp-give-back") as name:
            yield stomp_url(name)
    else:
        with running_coilmq() as coilmq:
            yield coilmq.url(coilmq.fqdn)


def test_what_a_stopped_listener_held_reaches_the_next_one(broker_url: str) -> None:
    # The connection stays open throughout (RabbitMQ gives back unacknowledged
    # messages of a closed subscription only when the connection closes).
    total = 40
    transport = messaging.get_notification_transport(cfg.ConfigOpts(), broker_url)
    try:
        target = messaging.Target(topic="give-back")
        notifier = messaging.Notifier(
            transport, "p", driver="messagingv2", topics=["give-back"], raise_errors=True
        )
        for n in range(total):
            notifier.info({}, "test.give_back", {"n": n})
        gate = Gate()
        first = messaging.get_notification_listener(
            transport, [target], [gate], executor="threading", allow_requeue=True
        )
        first.start()
        assert gate.entered.wait(15), "the first listener got nothing"
        first.stop()
        gate.opened.set()
        first.wait()
        handled_first = set(drained(gate.handled))
        assert len(handled_first) < total, "the first listener handled everything"
        inbox = Inbox()
        second = messaging.get_notification_listener(
            transport, [target], [inbox], executor="threading"
        )
        second.start()
        try:
            seen = set(handled_first)
            deadline = time.monotonic() + 15
            while len(seen) < total and time.monotonic() < deadline:
                with contextlib.suppress(queue.Empty):
                    seen.add(inbox.received.get(timeout=0.5)["n"])
            assert seen == set(range(total)), f"never came again: {set(range(total)) - seen}"
        finally:
            second.stop()
            second.wait()
    finally:
        transport.cleanup()


def set_connection_limit(vhost: str, limit: int) -> None:
    """Limit the connections to ``vhost`` (-1: no limit)."""
    _ctl("set_vhost_limits", "-p", vhost, f'{{"max-connections": {limit}}}')


class Slow:
    """RPC endpoint whose call kills the caller's connection and keeps it out before replying."""

    def __init__(self, vhost: str, caller_pid: str) -> None:
        self.vhost = vhost
        self.caller_pid = caller_pid
        self.replying = threading.Event()

    def late(self, ctxt: Any) -> str:
        # Only the server's connection stays: the caller cannot reconnect.
        set_connection_limit(self.vhost, 1)
        kill_stomp_connection(self.caller_pid)
        self.replying.set()
        return "late but here"


def reply_queue_depth(vhost: str, name: str) -> int:
    for line in _ctl("-s", "list_queues", "-p", vhost, "name", "messages").splitlines():
        queue_name, _, messages = line.partition("\t")
        if queue_name == name:
            return int(messages)
    return 0


def test_a_reply_sent_while_the_caller_is_disconnected_arrives(vhost: str) -> None:
    caller = messaging.get_rpc_transport(cfg.ConfigOpts(), stomp_url(vhost, FAST_RECONNECT))
    serving: messaging.Transport | None = None
    server = None
    calling = None
    try:
        client = messaging.get_rpc_client(caller, messaging.Target(topic="late"), timeout=60)
        with pytest.raises(messaging.MessagingTimeout):
            client.prepare(timeout=0.5).call({}, "nobody_yet")  # opens the reply queue
        (caller_pid,) = stomp_connection_pids()
        # Another broker key (heartbeat_send), so a connection of its own, that stays up.
        serving = messaging.get_rpc_transport(
            cfg.ConfigOpts(), stomp_url(vhost, FAST_RECONNECT + "&heartbeat_send=9000")
        )
        endpoint = Slow(vhost, caller_pid)
        server = messaging.get_rpc_server(
            serving, messaging.Target(topic="late", server="s1"), [endpoint], executor="threading"
        )
        server.start()
        result: queue.Queue[Any] = queue.Queue()
        calling = threading.Thread(
            target=lambda: result.put(client.call({}, "late")), name="stomp-test-caller"
        )
        calling.start()
        assert endpoint.replying.wait(30), "the call never reached the server"
        connection = caller.driver.connection  # type: ignore[attr-defined]
        _, reply_to = connection.replies(lambda: ("", {}, ""))
        name = reply_to.removeprefix("/topic/")
        wait_until(lambda: reply_queue_depth(vhost, name) == 1, "the reply to wait in its queue")
        assert not connection.connected
        set_connection_limit(vhost, -1)
        calling.join(timeout=30)
        assert result.get(timeout=1) == "late but here"
        assert connection.generation == 2
    finally:
        set_connection_limit(vhost, -1)
        if server is not None:
            server.stop()
            server.wait()
        if calling is not None:
            calling.join(timeout=30)
        if serving is not None:
            serving.cleanup()
        caller.cleanup()


def test_what_an_rpc_server_holds_unhandled_is_bounded_by_prefetch_fanout_included(
    vhost: str,
) -> None:
    # No server polls the listener: what RabbitMQ sends it waits in its inbox.
    transport = messaging.get_rpc_transport(cfg.ConfigOpts(), stomp_url(vhost, "?prefetch_count=4"))
    listener = transport._driver.listen(messaging.Target(topic="held", server="s1"), 1, None)
    try:
        for target in (
            messaging.Target(topic="held", fanout=True),
            messaging.Target(topic="held"),
            messaging.Target(topic="held", server="s1"),
        ):
            client = messaging.get_rpc_client(transport, target)
            for n in range(40):
                client.cast({}, "m", n=n, blob="x" * 1000)

        def unacknowledged() -> list[int]:
            rows = _ctl("list_queues", "-p", vhost, "messages_unacknowledged").split()
            return sorted(int(row) for row in rows if row.isdigit())

        wait_until(lambda: unacknowledged() == [4, 4, 4], "4 unacknowledged in each queue", 30.0)
        inbox = listener.source._inbox  # type: ignore[attr-defined]
        destinations = collections.Counter(
            delivery.destination for delivery in list(inbox.queue) if delivery
        )
        assert sorted(destinations.values()) == [4, 4, 4], destinations
    finally:
        listener.cleanup()
        transport.cleanup()
