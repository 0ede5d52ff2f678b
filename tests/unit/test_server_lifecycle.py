"""MessageHandlingServer lifecycle, through notification listeners on the in-memory transport.

start/stop/wait ordering across threads, handling of messages received before stop,
restart, hang warnings and timeouts, and what happens to unacknowledged messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import messaging
from messaging import executors
from messaging.drivers.base import IncomingMessage
from messaging.drivers.memory import MemoryDriver
from messaging.notify.listener import NotificationServer
from messaging.transport import Transport, TransportURL
from tests.unit.listener_support import (
    TIMEOUT,
    InfoRecorder,
    broker,
    in_thread,
    join,
    make_conf,
    notifier,
    running,
    start_bounded,
    stop_and_wait,
    transport,
)

TOPIC = messaging.Target(topic="notifications")
SERVER_LOGGER = "messaging.server"


@pytest.fixture
def bus() -> Transport:
    return transport(make_conf())


def listener(bus: Transport, endpoint: Any = None, **kwargs: Any) -> NotificationServer:
    return messaging.get_notification_listener(bus, [TOPIC], [endpoint or InfoRecorder()], **kwargs)


class LogSignal(logging.Handler):
    """Sets :attr:`seen` when a record containing ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.text in message:
            self.messages.append(message)
            self.seen.set()


@pytest.fixture
def hang_signal() -> Iterator[LogSignal]:
    handler = LogSignal("Possible hang")
    logger = logging.getLogger(SERVER_LOGGER)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


class Gated(InfoRecorder):
    """An endpoint that signals ``entered`` and then waits for ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.entered.set()
        self.release.wait(TIMEOUT)
        super().info(ctxt, publisher_id, event_type, payload, md)


# --- ordering ------------------------------------------------------------------------------------


def test_start_stop_wait_handles_messages(bus: Transport) -> None:
    endpoint = InfoRecorder()
    server = listener(bus, endpoint)
    start_bounded(server)
    notifier(bus).info({}, "ev", {})
    assert endpoint.take(1)[0][3] == "ev"
    stop_and_wait(server)


def test_stop_before_start_waits_for_start(bus: Transport) -> None:
    endpoint = InfoRecorder()
    server = listener(bus, endpoint)
    stopper, outcome = in_thread(lambda: server.stop(timeout=TIMEOUT))
    # stop() cannot return before start(): nothing is in the outcome queue yet.
    assert outcome.empty()
    start_bounded(server)
    join(stopper)
    assert outcome.get_nowait() is None
    server.wait(timeout=TIMEOUT)
    # The server did start, then stopped: a message sent now stays queued.
    notifier(bus).info({}, "after", {})
    assert broker().queue_depth("notifications.info") == 1
    assert endpoint.pending() == []


def test_wait_blocks_until_stop(bus: Transport) -> None:
    server = listener(bus)
    start_bounded(server)
    waiter, outcome = in_thread(lambda: server.wait(timeout=TIMEOUT))
    assert outcome.empty()
    server.stop(timeout=TIMEOUT)
    join(waiter)
    assert outcome.get_nowait() is None


def test_wait_and_stop_called_before_start_run_in_order(bus: Transport) -> None:
    server = listener(bus)
    waiter, waited = in_thread(lambda: server.wait(timeout=TIMEOUT))
    stopper, stopped = in_thread(lambda: server.stop(timeout=TIMEOUT))
    assert waited.empty() and stopped.empty()
    start_bounded(server)
    join(stopper)
    join(waiter)
    assert stopped.get_nowait() is None
    assert waited.get_nowait() is None


def test_messages_received_before_stop_are_handled_by_the_end_of_wait(bus: Transport) -> None:
    endpoint = Gated()
    server = listener(bus, endpoint)
    start_bounded(server)
    notifier(bus).info({}, "in.flight", {})
    assert endpoint.entered.wait(TIMEOUT)
    server.stop(timeout=TIMEOUT)  # returns while the endpoint is still busy
    waiter, outcome = in_thread(lambda: server.wait(timeout=TIMEOUT))
    assert outcome.empty()  # the handling is not over, so neither is wait()
    endpoint.release.set()
    join(waiter)
    assert outcome.get_nowait() is None
    assert [call[3] for call in endpoint.pending()] == ["in.flight"]
    assert broker().queue_depth("notifications.info") == 0  # it was acknowledged


def test_nothing_is_handled_after_stop_and_a_new_listener_gets_it(bus: Transport) -> None:
    endpoint = InfoRecorder()
    server = listener(bus, endpoint)
    start_bounded(server)
    server.stop(timeout=TIMEOUT)
    notifier(bus).info({}, "late", {})
    server.wait(timeout=TIMEOUT)
    assert endpoint.pending() == []
    assert broker().queue_depth("notifications.info") == 1

    successor = InfoRecorder()
    with running(listener(bus, successor)):
        assert successor.take(1)[0][3] == "late"


def test_start_after_stop_and_wait_restarts(bus: Transport) -> None:
    endpoint = InfoRecorder()
    server = listener(bus, endpoint)
    sender = notifier(bus)
    with running(server):
        sender.info({}, "first.round", {})
        assert endpoint.take(1)[0][3] == "first.round"
    sender.info({}, "between", {})
    with running(server):
        sender.info({}, "second.round", {})
        # Two workers may handle them at once, in either order.
        assert sorted(call[3] for call in endpoint.take(2)) == ["between", "second.round"]
    assert broker().queue_depth("notifications.info") == 0


def test_start_after_stop_without_wait_restarts(bus: Transport) -> None:
    endpoint = InfoRecorder()
    server = listener(bus, endpoint)
    start_bounded(server)
    server.stop(timeout=TIMEOUT)
    start_bounded(server)
    notifier(bus).info({}, "again", {})
    assert endpoint.take(1)[0][3] == "again"
    stop_and_wait(server)


def test_redundant_start_warns(bus: Transport, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = InfoRecorder()
    server = listener(bus, endpoint)
    with running(server):
        server.start()
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert any("already been started" in r.getMessage() for r in warnings)
        notifier(bus).info({}, "still.one.consumer", {})
        assert endpoint.take(1)[0][3] == "still.one.consumer"


def test_repeated_stop_and_wait_return_at_once(bus: Transport) -> None:
    endpoint = InfoRecorder()
    server = listener(bus, endpoint)
    with running(server):
        pass
    server.stop(timeout=0.5)
    server.wait(timeout=0.5)
    server.reset()
    # Still stopped: nothing consumes what is sent now.
    notifier(bus).info({}, "nobody.listens", {})
    assert broker().queue_depth("notifications.info") == 1
    assert endpoint.pending() == []


# --- hangs and timeouts --------------------------------------------------------------------------


def test_stop_of_a_server_never_started_times_out(bus: Transport) -> None:
    server = listener(bus)
    with pytest.raises(messaging.TaskTimeout, match="stop"):
        server.stop(timeout=0.05)


def test_wait_of_a_server_never_stopped_times_out(bus: Transport) -> None:
    server = listener(bus)
    with running(server), pytest.raises(messaging.TaskTimeout, match="wait"):
        server.wait(timeout=0.05)


def test_stop_waiting_for_start_logs_possible_hang(bus: Transport, hang_signal: LogSignal) -> None:
    server = listener(bus)
    stopper, outcome = in_thread(lambda: server.stop(log_after=0.05, timeout=TIMEOUT))
    assert hang_signal.seen.wait(TIMEOUT)
    start_bounded(server)
    join(stopper)
    assert outcome.get_nowait() is None
    server.wait(timeout=TIMEOUT)
    assert "stop" in hang_signal.messages[0] and "start" in hang_signal.messages[0]


def test_wait_waiting_for_stop_logs_possible_hang(bus: Transport, hang_signal: LogSignal) -> None:
    server = listener(bus)
    start_bounded(server)
    waiter, outcome = in_thread(lambda: server.wait(log_after=0.05, timeout=TIMEOUT))
    assert hang_signal.seen.wait(TIMEOUT)
    server.stop(timeout=TIMEOUT)
    join(waiter)
    assert outcome.get_nowait() is None
    assert "wait" in hang_signal.messages[0]


def test_log_after_zero_never_warns(bus: Transport, hang_signal: LogSignal) -> None:
    server = listener(bus)
    with pytest.raises(messaging.TaskTimeout):
        server.stop(log_after=0, timeout=0.1)
    assert not hang_signal.seen.is_set()


# --- failures and cleanup ------------------------------------------------------------------------


class NoAckServer(NotificationServer):
    """Receives and records, but settles nothing (as if its handling were cut short)."""

    received: list[IncomingMessage]
    got_all: threading.Event

    def _process_incoming(self, incoming: list[IncomingMessage]) -> None:
        self.received.extend(incoming)
        if len(self.received) >= 3:
            self.got_all.set()


def test_wait_returns_unacknowledged_messages_to_the_queue(bus: Transport) -> None:
    server = messaging.get_notification_listener(
        bus, [TOPIC], [InfoRecorder()], server_cls=NoAckServer
    )
    assert isinstance(server, NoAckServer)
    server.received, server.got_all = [], threading.Event()
    sender = notifier(bus)
    for n in range(3):
        sender.info({}, f"ev.{n}", {})
    with running(server):
        assert server.got_all.wait(TIMEOUT)
        assert broker().queue_depth("notifications.info") == 0  # taken, not acknowledged
    assert broker().queue_depth("notifications.info") == 3

    endpoint = InfoRecorder()
    with running(listener(bus, endpoint)):
        assert sorted(call[3] for call in endpoint.take(3)) == ["ev.0", "ev.1", "ev.2"]


class BrokenListenDriver(MemoryDriver):
    def listen_for_notifications(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("broker unreachable")


def test_a_failure_to_subscribe_is_a_server_listen_error() -> None:
    conf = make_conf()
    bus = Transport(BrokenListenDriver(conf, TransportURL.parse(conf, "fake://")))
    server = listener(bus)
    with pytest.raises(messaging.ServerListenError, match="broker unreachable") as caught:
        server.start()
    assert isinstance(caught.value.ex, ConnectionRefusedError)
    # Nothing runs: stop() and wait() return at once (they used to wait forever for a
    # start that would not come), and start() may be tried again.
    started = time.monotonic()
    server.stop()
    server.wait()
    assert time.monotonic() - started < 1
    with pytest.raises(messaging.ServerListenError, match="broker unreachable"):
        server.start()


def test_a_receive_failure_is_logged_and_polling_goes_on(
    bus: Transport, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    the_broker = broker()
    real_get = the_broker.get
    failures = [ConnectionResetError("connection reset by peer")]

    def flaky_get(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real_get(*args, **kwargs)

    monkeypatch.setattr(the_broker, "get", flaky_get)
    endpoint = InfoRecorder()
    with running(listener(bus, endpoint)):
        notifier(bus).info({}, "survives", {})
        assert endpoint.take(1)[0][3] == "survives"
    logged = [r for r in caplog.records if r.exc_info and "reset by peer" in str(r.exc_info[1])]
    assert logged and logged[0].levelno == logging.ERROR


@pytest.mark.parametrize("executor", ["threading", "blocking"])
def test_an_endpoint_may_stop_its_own_server(bus: Transport, executor: str) -> None:
    stopped = threading.Event()
    holder: dict[str, Any] = {}

    class Stopper(InfoRecorder):
        def info(self, ctxt: Any, pub: str, event_type: str, payload: Any, md: Any) -> None:
            super().info(ctxt, pub, event_type, payload, md)
            holder["server"].stop(timeout=TIMEOUT)
            stopped.set()

    endpoint = Stopper()
    server = holder["server"] = listener(bus, endpoint, executor=executor)
    start_bounded(server)
    notifier(bus).info({}, "stop.please", {})
    assert stopped.wait(TIMEOUT)
    server.wait(timeout=TIMEOUT)
    assert endpoint.take(1)[0][3] == "stop.please"
    assert broker().queue_depth("notifications.info") == 0


def stop_from_the_first_endpoint_call(
    bus: Transport,
    before_stop: Callable[[], None] = lambda: None,
    executor_cls: type[executors.Executor] | None = None,
) -> tuple[list[str], int]:
    """Send three notifications to a one-worker listener whose endpoint stops it.

    Returns the event types handled and how many notifications are left queued.
    """
    stopped = threading.Event()
    holder: dict[str, Any] = {}

    class Stopper(InfoRecorder):
        def info(self, ctxt: Any, pub: str, event_type: str, payload: Any, md: Any) -> None:
            super().info(ctxt, pub, event_type, payload, md)
            if not stopped.is_set():
                before_stop()
                holder["server"].stop(timeout=TIMEOUT)
                stopped.set()

    endpoint = Stopper()
    server = holder["server"] = listener(bus, endpoint)
    if executor_cls is not None:
        server._executor_cls = executor_cls
    sender = notifier(bus)
    for n in range(3):
        sender.info({}, f"ev.{n}", {})
    server.start(override_pool_size=1)
    assert stopped.wait(TIMEOUT)
    server.wait(timeout=TIMEOUT)
    return [call[3] for call in endpoint.pending()], broker().queue_depth("notifications.info")


def test_an_endpoint_stopping_its_server_with_one_worker_does_not_deadlock(bus: Transport) -> None:
    # With a poll thread (an executor whose workers do not receive for themselves):
    # the poll thread is blocked handing the next message to the only worker, which
    # is the one calling stop(): stop() must not wait for the poll thread.
    second_submit = threading.Event()

    class SignallingExecutor(executors.ThreadingExecutor):
        submits = 0
        serve = executors.Executor.serve  # no receiving workers: a poll thread feeds it

        def submit(self, fn: Any, *args: Any) -> None:
            SignallingExecutor.submits += 1
            if SignallingExecutor.submits == 2:
                second_submit.set()
            super().submit(fn, *args)

    handled, queued = stop_from_the_first_endpoint_call(
        bus, lambda: assert_set(second_submit), SignallingExecutor
    )
    # What was received before stop() was handled; the rest is still queued. Nothing is lost.
    assert handled == ["ev.0", "ev.1"]
    assert queued == 1


def assert_set(event: threading.Event) -> None:
    assert event.wait(TIMEOUT)


def test_an_endpoint_stopping_its_server_from_a_receiving_worker(bus: Transport) -> None:
    # The only worker receives for itself: while it handles ev.0 nothing else is
    # received, so stop() from the endpoint leaves ev.1 and ev.2 on the queue.
    handled, queued = stop_from_the_first_endpoint_call(bus)
    assert handled == ["ev.0"]
    assert queued == 2


def test_a_listener_stopped_under_the_server_ends_polling_without_spinning(
    bus: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    server = listener(bus)
    start_bounded(server)
    assert server._poll_thread is None  # the workers receive for themselves
    executor = server._executor
    assert isinstance(executor, executors.ThreadingExecutor)
    receivers = list(executor._workers)
    assert receivers
    bus.cleanup()  # the transport goes away while the server still runs
    for thread in receivers:
        join(thread)  # before the fix receiving spun on empty polls and never ended
    assert "stopped by itself" in caplog.text
    stop_and_wait(server)
