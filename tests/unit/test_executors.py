"""Executors: loading by name, and how a listener runs its endpoints with each of them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import messaging
from messaging import executors
from messaging.drivers.memory import reset_brokers
from messaging.transport import Transport
from tests.unit.listener_support import (
    TIMEOUT,
    Recorder,
    broker,
    join,
    make_conf,
    notifier,
    running,
    stop_and_wait,
    transport,
)

TOPIC = messaging.Target(topic="notifications")


@pytest.fixture(autouse=True)
def _fresh_broker() -> Iterator[None]:
    reset_brokers()
    yield
    reset_brokers()


@pytest.fixture
def bus() -> Transport:
    return transport(make_conf())


def send(bus: Transport, count: int) -> None:
    sender = notifier(bus)
    for n in range(count):
        sender.info({}, "ev", {"n": n})


class ThreadNoting(Recorder):
    """Records ``(n, thread)`` of each call."""

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.record(payload["n"], threading.current_thread())


# --- loading -------------------------------------------------------------------------------------


def test_known_executors_load_by_name() -> None:
    assert executors.load_executor("threading") is executors.ThreadingExecutor
    assert executors.load_executor("blocking") is executors.BlockingExecutor
    assert executors.load_executor("eventlet") is executors.EventletExecutor


def test_without_eventlet_patching_the_default_is_threading() -> None:
    assert executors.default_executor_name() == "threading"
    assert executors.load_executor(None) is executors.ThreadingExecutor


def test_an_unknown_executor_is_a_clear_error(bus: Transport) -> None:
    with pytest.raises(messaging.ExecutorLoadFailure) as caught:
        messaging.get_notification_listener(bus, [TOPIC], [Recorder()], executor="threadng")
    text = str(caught.value)
    assert caught.value.executor == "threadng"
    assert "threadng" in text
    for known in ("threading", "blocking", "eventlet"):
        assert known in text


# --- the executors themselves --------------------------------------------------------------------


def test_blocking_executor_runs_in_the_caller() -> None:
    ran: list[threading.Thread] = []
    executor = executors.BlockingExecutor(1)
    executor.submit(lambda: ran.append(threading.current_thread()))
    assert ran == [threading.current_thread()]
    executor.shutdown()


def test_threading_executor_shutdown_waits_for_running_tasks() -> None:
    executor = executors.ThreadingExecutor(2)
    started, finish = threading.Event(), threading.Event()
    done: list[str] = []

    def task() -> None:
        started.set()
        finish.wait(TIMEOUT)
        done.append("task")

    executor.submit(task)
    assert started.wait(TIMEOUT)
    closer = threading.Thread(target=executor.shutdown, kwargs={"wait": True}, daemon=True)
    closer.start()
    finish.set()
    join(closer)
    assert done == ["task"]


def test_threading_executor_submit_blocks_while_full() -> None:
    executor = executors.ThreadingExecutor(1)
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        release.wait(TIMEOUT)
        order.append("first")

    executor.submit(first)

    def second_submit() -> None:
        executor.submit(lambda: order.append("second"))
        order.append("submitted")

    submitter = threading.Thread(target=second_submit, daemon=True)
    submitter.start()
    release.set()
    join(submitter)
    executor.shutdown(wait=True)
    # "submitted" cannot precede "first": the submit waited for the worker to be free.
    assert order.index("first") < order.index("submitted")
    assert sorted(order) == ["first", "second", "submitted"]


# --- on a listener -------------------------------------------------------------------------------


def test_threading_is_the_default_and_handles_on_worker_threads(bus: Transport) -> None:
    endpoint = ThreadNoting()
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint])
    assert server._executor_cls is executors.ThreadingExecutor
    with running(server):
        send(bus, 3)
        calls = endpoint.take(3)
    for _n, thread in calls:
        assert thread is not threading.current_thread()
        assert thread.name.startswith("messaging-worker")


def test_threading_handles_notifications_concurrently(bus: Transport) -> None:
    # Both calls must be inside the endpoint at once for the barrier to open.
    barrier = threading.Barrier(2, timeout=TIMEOUT)

    class Meeting(Recorder):
        def info(self, ctxt: Any, pub: str, event_type: str, payload: Any, md: Any) -> None:
            self.record(barrier.wait())

    endpoint = Meeting()
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint], executor="threading")
    with running(server):
        send(bus, 2)
        arrivals = sorted(call[0] for call in endpoint.take(2))
    assert arrivals == [0, 1]
    assert not barrier.broken


def test_blocking_handles_in_order_on_one_thread(bus: Transport) -> None:
    endpoint = ThreadNoting()
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint], executor="blocking")
    assert server._executor_cls is executors.BlockingExecutor
    send(bus, 20)
    with running(server):
        calls = endpoint.take(20)
    assert [n for n, _t in calls] == list(range(20))
    threads = {thread for _n, thread in calls}
    assert len(threads) == 1
    [thread] = threads
    assert thread is not threading.current_thread()
    assert thread.name.startswith("messaging-poll")


def test_pool_size_comes_from_the_configuration() -> None:
    conf = make_conf(executor_thread_pool_size=3)
    server = messaging.get_notification_listener(transport(conf), [TOPIC], [ThreadNoting()])
    with running(server):
        assert server._executor is not None and server._executor.max_workers == 3


def test_override_pool_size_is_honoured(bus: Transport) -> None:
    active = 0
    peak = 0
    lock = threading.Lock()
    first_started, release = threading.Event(), threading.Event()

    class Slow(Recorder):
        def info(self, ctxt: Any, pub: str, event_type: str, payload: Any, md: Any) -> None:
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            first_started.set()
            release.wait(TIMEOUT)
            with lock:
                active -= 1
            self.record(payload["n"])

    endpoint = Slow()
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint])
    send(bus, 3)
    server.start(override_pool_size=1)
    try:
        assert first_started.wait(TIMEOUT)
        assert server._executor is not None and server._executor.max_workers == 1
        # The only worker is busy: the poll thread holds at most one more message, so
        # at least one stays on the broker, where another consumer could take it.
        assert broker().queue_depth("notifications.info") >= 1
        release.set()
        assert sorted(call[0] for call in endpoint.take(3)) == [0, 1, 2]
    finally:
        release.set()
        stop_and_wait(server)
    assert peak == 1


def test_override_pool_size_allows_that_many_at_once(bus: Transport) -> None:
    barrier = threading.Barrier(3, timeout=TIMEOUT)

    class Meeting(Recorder):
        def info(self, ctxt: Any, pub: str, event_type: str, payload: Any, md: Any) -> None:
            self.record(barrier.wait())

    conf = make_conf(executor_thread_pool_size=1)
    bus = transport(conf)
    endpoint = Meeting()
    server = messaging.get_notification_listener(bus, [TOPIC], [endpoint])
    with running(server, override_pool_size=3):
        send(bus, 3)
        assert sorted(call[0] for call in endpoint.take(3)) == [0, 1, 2]
