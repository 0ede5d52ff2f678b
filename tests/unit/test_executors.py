"""Executors: loading by name, and how a listener runs its endpoints with each of them."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pytest

import messaging
from messaging import executors
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


class Feed:
    """What :meth:`ThreadingExecutor.serve` receives from: items, then None at close."""

    def __init__(self) -> None:
        self.items: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    def receive(self) -> int | None:
        item = self.items.get(timeout=TIMEOUT)
        if item is None:
            self.items.put(None)  # every worker sees the end
        return item


def test_serving_workers_grow_only_while_all_are_busy_and_up_to_the_limit() -> None:
    executor = executors.ThreadingExecutor(3)
    feed = Feed()
    release = threading.Event()
    busy = threading.Semaphore(0)
    handled: list[int] = []

    def handle(item: int) -> None:
        busy.release()
        release.wait(TIMEOUT)
        handled.append(item)

    assert executor.serve(feed.receive, handle)
    for n in range(5):
        feed.items.put(n)
    for _ in range(3):
        assert busy.acquire(timeout=TIMEOUT)  # three handled at once...
    assert len(executor._workers) == 3  # ...by three workers, and no fourth
    assert not busy.acquire(timeout=0.05)  # the other two wait on the feed, unreceived
    release.set()
    feed.items.put(None)
    executor.shutdown(wait=True)
    assert sorted(handled) == [0, 1, 2, 3, 4]
    assert not any(thread.is_alive() for thread in executor._workers)


def test_serving_workers_stay_few_when_messages_come_one_at_a_time() -> None:
    executor = executors.ThreadingExecutor(64)
    feed = Feed()
    done: queue.SimpleQueue[int] = queue.SimpleQueue()
    executor.serve(feed.receive, done.put)
    for n in range(50):
        feed.items.put(n)
        assert done.get(timeout=TIMEOUT) == n
    # One receiving while another handles is all a sequential load ever needs.
    assert len(executor._workers) <= 2
    feed.items.put(None)
    executor.shutdown(wait=True)


def test_a_serving_worker_survives_a_failing_handler(caplog: pytest.LogCaptureFixture) -> None:
    executor = executors.ThreadingExecutor(1)
    feed = Feed()
    done: queue.SimpleQueue[int] = queue.SimpleQueue()

    def handle(item: int) -> None:
        if item == 0:
            raise RuntimeError("handler bug")
        done.put(item)

    executor.serve(feed.receive, handle)
    feed.items.put(0)
    feed.items.put(1)
    assert done.get(timeout=TIMEOUT) == 1
    assert "handler bug" in caplog.text
    feed.items.put(None)
    executor.shutdown(wait=True)


def test_executors_that_cannot_serve_say_so() -> None:
    for executor in (executors.BlockingExecutor(1),):
        assert not executor.serve(lambda: pytest.fail("called"), lambda _b: None)


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
        # The only worker is busy handling and receives nothing more meanwhile, so
        # the other two stay on the broker, where another consumer could take them.
        assert broker().queue_depth("notifications.info") == 2
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
