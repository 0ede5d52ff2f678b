"""Durability of the sqlite driver across processes: crashes, reopening, concurrency, disk bound.

Listeners, producers and RPC servers run as separate processes
(:mod:`tests.drivers.sqlite_worker`, started with ``sys.executable``); their
output is read by a thread per process and waited for with a bound. A
consumer that dies is killed with SIGKILL, so it cannot clean up: what it had
taken must come back by the visibility timeout alone.
"""

from __future__ import annotations

import collections
import multiprocessing
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.sqlite.bus import open_buses
from messaging.drivers.sqlite.store import Declaration, Store

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The bound of every wait, in seconds.
WAIT = 30.0


def make_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="sqlite-durability", default_config_files=[], default_config_dirs=[])
    return conf


class Worker:
    """A process of :mod:`tests.drivers.sqlite_worker`; its stdout lines go to :attr:`lines`."""

    def __init__(self, name: str, *args: str, lines: queue.Queue[tuple[str, str]]) -> None:
        self.name = name
        self.lines = lines
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.drivers.sqlite_worker", *args],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"test-reader-{name}")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((self.name, line.strip()))
        self.lines.put((self.name, "<eof>"))

    def stop(self) -> None:
        """Close its stdin (it stops and cleans up) and wait for it to exit."""
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        assert self.proc.wait(WAIT) == 0, f"{self.name} exited with {self.proc.returncode}"
        self._reader.join(WAIT)

    def kill(self) -> None:
        """SIGKILL it: no cleanup, no acknowledgement, nothing released."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(WAIT)
        self._reader.join(WAIT)

    def reap(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()


class Workers:
    """Starts workers whose lines share one queue; kills the ones left at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.started: list[Worker] = []

    def start(self, name: str, role: str, topic: str, *args: str, ready: bool = True) -> Worker:
        worker = Worker(name, role, self.url, topic, *args, lines=self.lines)
        self.started.append(worker)
        if ready:
            self.expect(name, "ready")
        return worker

    def next(self, deadline: float) -> tuple[str, str]:
        try:
            return self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no output from the workers within {WAIT}s") from None

    def expect(self, name: str, prefix: str, ignore: tuple[str, ...] = ()) -> str:
        """The next line of ``name`` not in ``ignore``; it must start with ``prefix``.

        Lines of other workers are kept for later.
        """
        deadline = time.monotonic() + WAIT
        skipped = []
        try:
            while True:
                who, line = self.next(deadline)
                if who != name:
                    skipped.append((who, line))
                    continue
                if line in ignore:
                    continue
                assert line.startswith(prefix), f"{name} said {line!r}, expected {prefix!r}"
                return line
        finally:
            for item in skipped:
                self.lines.put(item)

    def reap(self) -> None:
        for worker in self.started:
            worker.reap()


@pytest.fixture
def bus_file(tmp_path: Path) -> Path:
    return tmp_path / "bus.db"


@pytest.fixture
def transports() -> Iterator[Callable[[str], messaging.Transport]]:
    made: list[messaging.Transport] = []

    def make(url: str) -> messaging.Transport:
        transport = messaging.get_notification_transport(make_conf(), url)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.cleanup()


@pytest.fixture
def workers(bus_file: Path) -> Iterator[Callable[[str], Workers]]:
    made: list[Workers] = []

    def make(query: str = "") -> Workers:
        group = Workers(f"sqlite:///{bus_file}{query}")
        made.append(group)
        return group

    yield make
    for group in made:
        group.reap()


def notifier(transport: messaging.Transport, topic: str) -> messaging.Notifier:
    return messaging.Notifier(
        transport, "durability", driver="messagingv2", topics=[topic], raise_errors=True
    )


def stored(path: Path) -> tuple[int, int]:
    """How many messages and bytes the file holds, read with a connection of its own."""
    store = Store(str(path), busy_timeout=5.0)
    try:
        return store.usage()
    finally:
        store.close()


def wait_until(check: Callable[[], bool], what: str) -> None:
    # For state that changes in another process with no event to wait on.
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT}s"
        time.sleep(0.05)


# -- at-least-once: a consumer that dies ---------------------------------------------------


def test_a_killed_listeners_claim_is_kept_while_it_lives_then_delivered_again(
    bus_file: Path,
    workers: Callable[[str], Workers],
    transports: Callable[[str], messaging.Transport],
) -> None:
    visibility = 2.0
    query = f"?visibility_timeout={visibility}"
    group = workers(query)
    transport = transports(group.url)
    notifier(transport, "held").info({}, "test.n", {"n": 7})
    holder = group.start("holder", "hold", "held", ready=False)
    # It may take the message before it says it is ready.
    assert group.expect("holder", "holding", ignore=("ready",)) == "holding 7"

    listener = transport.listen_for_notifications([(messaging.Target(topic="held"), "info")])
    # The holder is alive: its claim is extended past the visibility timeout.
    assert listener.poll_one(timeout=visibility * 1.25) is None
    holder.kill()
    killed = time.monotonic()
    message = listener.poll_one(timeout=WAIT)
    waited = time.monotonic() - killed
    assert message is not None, "the message taken by the killed listener never came back"
    assert message.message["payload"] == {"n": 7}
    assert message.redelivered  # type: ignore[attr-defined]
    message.acknowledge()
    print(f"delivered again {waited:.2f}s after SIGKILL (visibility_timeout {visibility}s)")
    listener.cleanup()
    assert stored(bus_file) == (0, 0)


def test_sigkill_in_the_middle_of_10000_notifications_loses_none(
    bus_file: Path, workers: Callable[[str], Workers]
) -> None:
    total, kill_after = 10_000, 3_000
    group = workers("?visibility_timeout=1")
    first = group.start("first", "listen", "tenk")
    group.start("producer", "produce", "tenk", "0", str(total), ready=False)
    received: collections.Counter[int] = collections.Counter()
    by_worker: collections.Counter[str] = collections.Counter()
    producer_done = False
    deadline = time.monotonic() + WAIT * 2

    def take_one() -> None:
        nonlocal producer_done
        who, line = group.next(deadline)
        if line.startswith("n "):
            received[int(line.split()[1])] += 1
            by_worker[who] += 1
        elif line.startswith("sent"):
            producer_done = True
        elif line == "ready" and who == "second":
            pass
        elif line != "<eof>":
            raise AssertionError(f"{who} said {line!r}")

    while by_worker["first"] < kill_after:
        take_one()
    first.kill()
    sent_when_killed = producer_done
    second = group.start("second", "listen", "tenk", ready=False)
    while len(received) < total or not producer_done:
        take_one()
    second.stop()
    while not group.lines.empty():
        take_one()

    lost = sorted(set(range(total)) - set(received))
    duplicates = {n: c - 1 for n, c in received.items() if c > 1}
    print(
        f"\n{total} notifications, first listener SIGKILLed after {by_worker['first']} "
        f"(producer {'done' if sent_when_killed else 'still sending'}); second listener got "
        f"{by_worker['second']}; lost {len(lost)}; duplicates {sum(duplicates.values())} "
        f"({sorted(duplicates)[:10]}{'...' if len(duplicates) > 10 else ''})"
    )
    assert lost == [], f"{len(lost)} notifications lost: {lost[:20]}"
    assert set(received) == set(range(total))
    assert stored(bus_file) == (0, 0), "messages were left in the file"


# -- the file outlives processes -----------------------------------------------------------


def test_messages_survive_their_producer_and_reopening_the_file(
    bus_file: Path,
    workers: Callable[[str], Workers],
    transports: Callable[[str], messaging.Transport],
) -> None:
    group = workers("")
    producer = group.start("producer", "produce", "kept", "0", "5", ready=False)
    assert group.expect("producer", "sent") == "sent 5"
    producer.stop()

    first = transports(group.url)
    listener = first.listen_for_notifications([(messaging.Target(topic="kept"), "info")])
    taken = [listener.poll_one(timeout=WAIT) for _ in range(2)]  # claimed, never acknowledged
    assert all(m is not None for m in taken)
    first.cleanup()  # the claims go back; cleaning up again after the test does nothing
    assert not [bus for bus in open_buses() if bus.path == str(bus_file)]

    second = transports(group.url)
    listener = second.listen_for_notifications([(messaging.Target(topic="kept"), "info")])
    again = []
    for _ in range(5):
        message = listener.poll_one(timeout=WAIT)
        assert message is not None
        again.append(message)
        message.acknowledge()
    assert sorted(m.message["payload"]["n"] for m in again) == list(range(5))
    assert listener.poll_one(timeout=0) is None
    listener.cleanup()
    assert stored(bus_file) == (0, 0)


def _send_from_child(sender: messaging.Notifier, transport: messaging.Transport) -> None:
    sender.info({}, "test.n", {"n": 2})
    transport.cleanup()


def test_a_forked_child_opens_its_own_connection(
    bus_file: Path, transports: Callable[[str], messaging.Transport]
) -> None:
    transport = transports(f"sqlite:///{bus_file}")
    sender = notifier(transport, "forked")
    sender.info({}, "test.n", {"n": 1})  # the parent's connection and threads are in use
    child = multiprocessing.get_context("fork").Process(
        target=_send_from_child, args=(sender, transport)
    )
    child.start()
    child.join(WAIT)
    assert child.exitcode == 0
    listener = transport.listen_for_notifications([(messaging.Target(topic="forked"), "info")])
    got = []
    for _ in range(2):
        message = listener.poll_one(timeout=WAIT)
        assert message is not None
        got.append(message.message["payload"]["n"])
        message.acknowledge()
    assert sorted(got) == [1, 2]
    listener.cleanup()


# -- concurrency -----------------------------------------------------------------------------


def test_several_producer_and_consumer_processes(
    bus_file: Path, workers: Callable[[str], Workers]
) -> None:
    producers, each = 3, 1500
    total = producers * each
    group = workers("")
    for name in ("one", "two"):
        group.start(name, "listen", "busy")
    group.start("pool", "listen", "busy", "audit")
    for index in range(producers):
        group.start(
            f"producer{index}", "produce", "busy", str(index * each), str(each), ready=False
        )
    shares: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    done = 0
    deadline = time.monotonic() + WAIT * 2

    def competing() -> collections.Counter[int]:
        return shares["one"] + shares["two"]

    while done < producers or len(competing()) < total or len(shares["pool"]) < total:
        who, line = group.next(deadline)
        if line.startswith("n "):
            shares[who][int(line.split()[1])] += 1
        elif line.startswith("sent"):
            done += 1
    for worker in group.started:
        if worker.name in ("one", "two", "pool"):
            worker.stop()
    while not group.lines.empty():
        who, line = group.lines.get_nowait()
        if line.startswith("n "):
            shares[who][int(line.split()[1])] += 1

    print(
        f"\n{producers} producers x {each}: consumer one got {sum(shares['one'].values())}, "
        f"two got {sum(shares['two'].values())}, pool 'audit' got {sum(shares['pool'].values())}"
    )
    everything = collections.Counter(range(total))
    assert competing() == everything, "the competing consumers lost or repeated messages"
    assert shares["pool"] == everything, "the pool did not get one copy of each"
    assert shares["one"] and shares["two"], "one competing consumer got everything"
    assert stored(bus_file) == (0, 0)


def test_rpc_between_processes_and_fanout_to_live_servers_only(
    bus_file: Path, workers: Callable[[str], Workers]
) -> None:
    group = workers("?transient_queue_ttl=1")
    group.start("a", "serve", "rpc", "server-a")
    b = group.start("b", "serve", "rpc", "server-b")
    transport = messaging.get_rpc_transport(make_conf(), group.url)
    try:
        client = messaging.get_rpc_client(transport, messaging.Target(topic="rpc"), timeout=WAIT)
        assert client.prepare(server="server-b").call({}, "whoami") == "server-b"
        client.prepare(fanout=True).cast({}, "record", value="all")
        assert {group.expect("a", "record"), group.expect("b", "record")} == {
            "record server-a all",
            "record server-b all",
        }
        store = transport.driver.bus.store  # type: ignore[attr-defined]
        assert len([q for q in store.queue_names() if q.startswith("rpc_fanout_")]) == 2
        b.kill()
        wait_until(
            lambda: len([q for q in store.queue_names() if q.startswith("rpc_fanout_")]) == 1,
            "the killed server's fanout queue being collected",
        )
        client.prepare(fanout=True).cast({}, "record", value="live")
        assert group.expect("a", "record") == "record server-a live"
        assert client.call({}, "whoami") == "server-a"
    finally:
        transport.cleanup()


def test_everything_works_under_eventlet(bus_file: Path) -> None:
    pytest.importorskip("eventlet")
    code = (
        "import eventlet; eventlet.monkey_patch()\n"
        "import sys; from tests.drivers import sqlite_worker\n"
        "sqlite_worker.main(sys.argv[1:])\n"
    )
    url = f"sqlite:///{bus_file}"
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, "roundtrip", url, "green", "eventlet"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "roundtrip 20 s []", proc.stdout + proc.stderr


# -- the disk bound --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "limit"),
    [("?max_messages=20", "max_messages = 20"), ("?max_bytes=6000", "max_bytes = 6000")],
)
def test_disk_bound_refuses_with_a_clear_error_and_drops_nothing(
    bus_file: Path, transports: Callable[[str], messaging.Transport], query: str, limit: str
) -> None:
    transport = transports(f"sqlite:///{bus_file}{query}")
    sender = notifier(transport, "bounded")
    accepted = 0
    with pytest.raises(messaging.MessageDeliveryFailure) as caught:
        for n in range(10_000):
            sender.info({}, "test.n", {"n": n, "pad": "x" * 100})
            accepted += 1
    assert limit in str(caught.value)
    assert str(bus_file) in str(caught.value)
    assert "not stored" in str(caught.value)
    assert 0 < accepted < 10_000

    listener = transport.listen_for_notifications([(messaging.Target(topic="bounded"), "info")])
    got = []
    while (message := listener.poll_one(timeout=0.5)) is not None:
        got.append(message.message["payload"]["n"])
        message.acknowledge()
    assert got == list(range(accepted)), "what was accepted is not what was stored"
    sender.info({}, "test.n", {"n": -1})  # room again
    message = listener.poll_one(timeout=WAIT)
    assert message is not None and message.message["payload"]["n"] == -1
    message.acknowledge()
    listener.cleanup()


# -- nothing lost silently -------------------------------------------------------------------


def test_an_undecodable_message_is_parked_with_its_reason(
    bus_file: Path, transports: Callable[[str], messaging.Transport]
) -> None:
    transport = transports(f"sqlite:///{bus_file}")
    listener = transport.listen_for_notifications([(messaging.Target(topic="junk"), "info")])
    store = transport.driver.bus.store  # type: ignore[attr-defined]
    assert store.publish("openstack", "junk.info", "{not json") == 1
    notifier(transport, "junk").info({}, "test.n", {"n": 1})
    message = listener.poll_one(timeout=WAIT)
    assert message is not None and message.message["payload"] == {"n": 1}
    message.acknowledge()
    listener.cleanup()
    ((queue_name, body, reason),) = store.dead_letters()
    assert (queue_name, body) == ("junk.info", "{not json")
    assert "JSONDecodeError" in reason
    assert store.usage() == (0, 0)


def test_a_call_request_expires_with_its_timeout(
    bus_file: Path, transports: Callable[[str], messaging.Transport]
) -> None:
    url = f"sqlite:///{bus_file}"
    transport = messaging.get_rpc_transport(make_conf(), url)
    try:
        client = messaging.get_rpc_client(transport, messaging.Target(topic="late"), timeout=0.5)
        transport.driver.bus.store.declare(  # type: ignore[attr-defined]
            [Declaration("late", "openstack", "late")], None
        )  # the server's queue exists, the server is not running yet
        with pytest.raises(messaging.MessagingTimeout):
            client.call({}, "record", value="expired")
        assert transport.driver.bus.store.bodies("late") == []  # type: ignore[attr-defined]
    finally:
        transport.cleanup()
