"""A 3-node RabbitMQ 4 cluster under faults: a node killed, a rolling restart, a dead peer.

The cluster is the one of ``tests/rabbitmq_nodes.py`` (three nodes of the
RabbitMQ 4 chroot, joined; quorum queues on all three). The transport URL
names every node; with default options the driver declares quorum queues on
RabbitMQ 4, so that what a node held survives it. Each test runs a notifier
(10,000 notifications, the default retry) and a caller (calls with a
timeout) in threads while the fault happens, then checks that every
notification the notifier reported as sent arrived at least once and that no
call waited past its timeout. Each prints its figures (run with ``-s``).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

import messaging
from tests import rabbitmq_nodes
from tests.brokers import cluster_url, cluster_vhost
from tests.drivers.test_rabbit_faults import Echo
from tests.drivers.test_rabbit_resilience import Counter, make_conf
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.broker
NOTIFICATIONS = 10_000
CALLS = 1_000
CALL_TIMEOUT = 10.0
#: How long a call may overrun its timeout (the time to raise, a busy machine).
OVERRUN = 2.0
TIMEOUT = 180.0
#: How long the load may go on after the fault is over before it stops short
#: of its counts (calls that keep failing would otherwise take their timeout
#: each, 1,000 times).
LOAD_GRACE = 60.0


@pytest.fixture
def vhost() -> Iterator[str]:
    with cluster_vhost() as name:
        try:
            yield name
        finally:
            # Whatever a test did to a node, the next one starts with the whole
            # cluster; the node is back before its virtual host is deleted.
            for node in rabbitmq_nodes.CLUSTER:
                if not rabbitmq_nodes.port_open(node.amqp_port):
                    rabbitmq_nodes.restart_node(node, graceful=False)
            rabbitmq_nodes.ensure_cluster()


class Reported(logging.Handler):
    """Counts notifications the library reported as not delivered."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failures = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "could not be delivered" in text or "Could not send notification" in text:
            self.failures += 1


@dataclass
class Load:
    """A notifier and a caller in threads, and what each saw.

    Each goes on past its count until the fault is over, so that the whole
    fault happens under load, and stops short of its count
    :data:`LOAD_GRACE` seconds after the fault is over: what it did by then is
    what the test reports.
    """

    notifier: messaging.Notifier
    client: messaging.RPCClient
    notifications: int = NOTIFICATIONS
    calls: int = CALLS
    fault_at: int = 2_000  # the notification after which the fault starts
    sent: int = 0
    #: (start, duration, outcome) of each call.
    call_results: list[tuple[float, float, str]] = field(default_factory=list)
    fault_due: threading.Event = field(default_factory=threading.Event)
    fault_over: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    stop_at: float = float("inf")

    def _going_on(self, n: int, count: int) -> bool:
        if time.monotonic() > self.stop_at:
            return False
        return n < count or not self.fault_over.is_set()

    def _notify(self) -> None:
        try:
            n = 0
            while self._going_on(n, self.notifications):
                self.notifier.info({}, "cluster.test", {"n": n})
                n = self.sent = n + 1
                if n == self.fault_at:
                    self.fault_due.set()
                elif n >= self.notifications:
                    self.fault_over.wait(0.001)  # past the count: a trickle until the end
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def _call(self) -> None:
        n = 0
        while self._going_on(n, self.calls):
            started = time.monotonic()
            try:
                assert self.client.call({}, "echo", value=n) == n
                outcome = "ok"
            except messaging.MessagingException as exc:
                outcome = type(exc).__name__
            self.call_results.append((started, time.monotonic() - started, outcome))
            n += 1

    def run(self, fault: Callable[[], None]) -> float:
        """Run the load, call ``fault()`` once it is under way; return when the fault began."""
        threads = [threading.Thread(target=t, daemon=True) for t in (self._notify, self._call)]
        for thread in threads:
            thread.start()
        assert self.fault_due.wait(TIMEOUT)
        fault_started = time.monotonic()
        try:
            fault()
        finally:
            self.stop_at = time.monotonic() + LOAD_GRACE
            self.fault_over.set()
        for thread in threads:
            # One more notification or call may be under way at stop_at.
            thread.join(LOAD_GRACE + CALL_TIMEOUT + OVERRUN)
            assert not thread.is_alive(), "the load did not stop: " + self.calls_summary(
                fault_started
            )
        assert not self.errors, self.errors
        return fault_started

    def calls_summary(self, fault_started: float) -> str:
        results = list(self.call_results)
        outcomes = collections.Counter(outcome for _, _, outcome in results)
        longest = max((took for _, took, _ in results), default=float("nan"))
        after = [s + t for s, t, o in results if o == "ok" and s >= fault_started]
        recovered = (min(after) - fault_started) if after else float("nan")
        last_ok = (max(after) - fault_started) if after else float("nan")
        return (
            f"calls {dict(outcomes)}, longest {longest:.2f} s, first call answered "
            f"{recovered:.2f} s and the last {last_ok:.2f} s after the fault began; "
            f"{self.sent} notifications sent"
        )


def run_under_fault(vhost: str, fault: Callable[[messaging.Transport], None], label: str) -> None:
    topic = f"cluster-{uuid.uuid4().hex[:8]}"
    conf = make_conf()
    transport = messaging.get_notification_transport(conf, cluster_url(vhost))
    rpc = messaging.get_rpc_transport(conf, cluster_url(vhost))
    counter = Counter()
    reported = Reported()
    logging.getLogger("messaging").addHandler(reported)
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [counter], executor="threading"
    )
    server = messaging.get_rpc_server(
        rpc, messaging.Target(topic=topic, server="s1"), [Echo()], executor="threading"
    )
    listener.start()
    server.start()
    try:
        assert_replicated_on_all_nodes(vhost, f"{topic}.info")
        load = Load(
            messaging.Notifier(transport, "cluster", driver="messagingv2", topics=[topic]),
            messaging.RPCClient(rpc, messaging.Target(topic=topic), timeout=CALL_TIMEOUT),
        )
        fault_started = load.run(lambda: fault(transport))
        assert load.notifier.flush(TIMEOUT) == 0
        expected = load.sent - reported.failures
        counter.wait_distinct(expected, TIMEOUT)
        duplicates = sum(counter.seen.values()) - counter.distinct()
        print(
            f"\n[{label}] notifications: {load.sent} sent, {reported.failures} reported failed, "
            f"{counter.distinct()} distinct received, {duplicates} duplicates; "
            + load.calls_summary(fault_started)
        )
        assert load.sent >= NOTIFICATIONS, load.calls_summary(fault_started)
        assert counter.distinct() >= expected
        longest = max(took for _, took, _ in load.call_results)
        assert longest <= CALL_TIMEOUT + OVERRUN, f"a call waited {longest:.1f} s"
        assert len(load.call_results) >= CALLS, load.calls_summary(fault_started)
        assert load.call_results[-1][2] == "ok", "calls did not recover: " + load.calls_summary(
            fault_started
        )
    finally:
        logging.getLogger("messaging").removeHandler(reported)
        for stopping in (listener, server):
            stopping.stop()
            stopping.wait()
        transport.cleanup()
        rpc.cleanup()


def assert_replicated_on_all_nodes(vhost: str, queue: str) -> None:
    listed = rabbitmq_nodes.rabbitmqctl(
        "list_queues", "-q", "-p", vhost, "name", "type", "members", node=rabbitmq_nodes.CLUSTER[0]
    )
    (line,) = [row for row in listed.splitlines() if row.split("\t")[0] == queue]
    assert "quorum" in line, line
    for node in rabbitmq_nodes.CLUSTER:
        assert node.nodename in line, f"{queue} has no replica on {node.nodename}: {line}"


def node_in_use(transport: messaging.Transport) -> rabbitmq_nodes.Node:
    """The node both connections of the process (sending, consuming) are on."""
    broker = transport.driver.broker  # type: ignore[attr-defined]
    ports = {broker.publishing.current_host.port, broker.consuming.current_host.port}
    assert len(ports) == 1, f"the notifier and the listener are on different nodes: {ports}"
    (node,) = [n for n in rabbitmq_nodes.CLUSTER if n.amqp_port in ports]
    return node


def test_killing_the_node_in_use_moves_everyone_to_another(vhost: str) -> None:
    def kill(transport: messaging.Transport) -> None:
        rabbitmq_nodes.kill_node(node_in_use(transport))

    run_under_fault(vhost, kill, "kill -9")


def test_a_rolling_restart_loses_nothing(vhost: str) -> None:
    def roll(transport: messaging.Transport) -> None:
        for node in rabbitmq_nodes.CLUSTER:
            rabbitmq_nodes.restart_node(node)
            rabbitmq_nodes.ensure_cluster()

    run_under_fault(vhost, roll, "rolling restart")


class LostSeen(logging.Handler):
    """Notes when a connection was first given up as lost."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.at: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.at is None and "AMQP connection lost" in record.getMessage():
            self.at = time.monotonic()


def test_a_peer_that_stops_answering_is_left_within_twice_the_heartbeat(vhost: str) -> None:
    """Through a proxy that freezes (sockets open, nothing forwarded), then the other nodes."""
    heartbeat = 4
    first, *others = rabbitmq_nodes.CLUSTER
    lost = LostSeen()
    logger = logging.getLogger("messaging.drivers.rabbit.connection")
    with FaultProxy(first.amqp_port) as proxy:
        url = cluster_url(vhost, [proxy.port, *(n.amqp_port for n in others)])
        url += f"?heartbeat_timeout_threshold={heartbeat}"
        transport = messaging.get_rpc_transport(make_conf(), url)
        topic = f"cluster-{uuid.uuid4().hex[:8]}"
        server = messaging.get_rpc_server(
            transport, messaging.Target(topic=topic, server="s1"), [Echo()], executor="threading"
        )
        server.start()
        logger.addHandler(lost)
        try:
            client = messaging.RPCClient(transport, messaging.Target(topic=topic), timeout=2)
            assert client.call({}, "echo", value=0) == 0
            proxy.freeze()
            frozen = time.monotonic()
            answered = None
            while time.monotonic() - frozen < 4 * heartbeat:
                started = time.monotonic()
                try:
                    client.call({}, "echo", value=1)
                except messaging.MessagingTimeout:
                    assert time.monotonic() - started <= 2 + OVERRUN
                    continue
                answered = time.monotonic() - frozen
                break
            detected = lost.at - frozen if lost.at else None
            print(
                f"\n[dead peer] connection given up {detected} s and calls answered again "
                f"{answered} s after the proxy froze (heartbeat {heartbeat} s, call timeout 2 s)"
            )
            assert detected is not None and detected <= 2 * heartbeat + 1, detected
            assert answered is not None and answered <= detected + 2 * 2 + OVERRUN, answered
        finally:
            logger.removeHandler(lost)
            server.stop()
            server.wait()
            transport.cleanup()
