"""Poison notifications on the in-memory transport, and the pieces of messaging.poison.

The same protocol runs on every transport (tests on RabbitMQ: tests/drivers/test_rabbit_poison.py).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

import messaging
from messaging.conf import NOTIFICATIONS_GROUP
from messaging.delayed import DelayedCalls
from messaging.drivers import memory
from messaging.poison import HandlingFailure, LocalAttempts, PoisonPolicy
from tests.unit.listener_support import TIMEOUT, make_conf, notifier, transport

TOPIC = "poison"


@pytest.fixture(autouse=True)
def fresh_brokers() -> None:
    memory.reset_brokers()


def conf(max_attempts: int, backoff: float) -> Any:
    config = make_conf()
    for name, value in (
        ("max_delivery_attempts", max_attempts),
        ("requeue_backoff", backoff),
        ("requeue_backoff_max", backoff),
    ):
        config.set_override(name, value, group=NOTIFICATIONS_GROUP)
    return config


class Failing:
    def __init__(self, requeue: bool = False, batch: bool = False) -> None:
        self.calls: list[float] = []
        self.requeue = requeue
        self.changed = threading.Condition()
        if batch:
            self.info = self._batch

    def _note(self) -> None:
        with self.changed:
            self.calls.append(time.monotonic())
            self.changed.notify_all()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> Any:
        self._note()
        if self.requeue:
            return messaging.NotificationResult.REQUEUE
        raise RuntimeError("always")

    def _batch(self, messages: list[dict[str, Any]]) -> Any:
        self._note()
        raise RuntimeError("the batch always fails")


def wait_dead_letters(count: int) -> list[tuple[str, str, str]]:
    broker = memory.get_broker()
    deadline = time.monotonic() + TIMEOUT
    while len(broker.dead_letters) < count and time.monotonic() < deadline:
        time.sleep(0.01)  # the broker has no event for parking
    return list(broker.dead_letters)


def run_listener(config: Any, endpoint: Any, batch: bool = False) -> Any:
    t = transport(config)
    target = [messaging.Target(topic=TOPIC)]
    if batch:
        server = messaging.get_batch_notification_listener(
            t, target, [endpoint], allow_requeue=True, batch_size=5, batch_timeout=0.05
        )
    else:
        server = messaging.get_notification_listener(t, target, [endpoint], allow_requeue=True)
    server.start()
    return t, server


def test_a_failing_notification_is_tried_max_attempts_times_then_parked() -> None:
    endpoint = Failing()
    t, server = run_listener(conf(3, 0.05), endpoint)
    try:
        notifier(t, topics=[TOPIC]).info({}, "poison.event", {"n": 1})
        (parked,) = wait_dead_letters(1)
    finally:
        server.stop()
        server.wait()
    assert len(endpoint.calls) == 3
    gaps = [b - a for a, b in zip(endpoint.calls, endpoint.calls[1:], strict=False)]
    assert min(gaps) >= 0.04
    queue, body, reason = parked
    assert queue == f"{TOPIC}.info" and "poison.event" in body
    assert reason == "the endpoint raised: builtins.RuntimeError: always (3 attempts)"


def test_an_endpoint_asking_for_requeue_forever_is_parked() -> None:
    endpoint = Failing(requeue=True)
    t, server = run_listener(conf(2, 0.0), endpoint)
    try:
        notifier(t, topics=[TOPIC]).info({}, "poison.event", {})
        (parked,) = wait_dead_letters(1)
    finally:
        server.stop()
        server.wait()
    assert len(endpoint.calls) == 2
    assert "asked to requeue" in parked[2]


def test_a_failing_batch_is_parked_message_by_message() -> None:
    endpoint = Failing(batch=True)
    t, server = run_listener(conf(2, 0.0), endpoint, batch=True)
    try:
        n = notifier(t, topics=[TOPIC])
        for i in range(3):
            n.info({}, "poison.event", {"n": i})
        parked = wait_dead_letters(3)
    finally:
        server.stop()
        server.wait()
    assert len(parked) == 3
    assert all("the batch always fails (2 attempts)" in reason for _q, _b, reason in parked)


def test_stopping_gives_back_what_waits_for_its_requeue() -> None:
    endpoint = Failing()
    t, server = run_listener(conf(5, 30.0), endpoint)
    notifier(t, topics=[TOPIC]).info({}, "poison.event", {})
    with endpoint.changed:
        assert endpoint.changed.wait_for(lambda: endpoint.calls, TIMEOUT)
    started = time.monotonic()
    server.stop()
    server.wait()
    assert time.monotonic() - started < 5.0  # not the 30 s of the backoff
    assert memory.get_broker().dead_letters == []


def test_a_transport_that_cannot_park_logs_the_message_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = Failing()
    config = conf(2, 0.0)
    t = transport(config, "kombu+memory://")
    server = messaging.get_notification_listener(
        t, [messaging.Target(topic=TOPIC)], [endpoint], allow_requeue=True
    )
    server.start()
    try:
        with caplog.at_level(logging.ERROR, logger="messaging.notify.listener"):
            notifier(t, topics=[TOPIC]).info({}, "poison.event", {"secret_key": "hidden"})
            with endpoint.changed:
                assert endpoint.changed.wait_for(lambda: len(endpoint.calls) >= 2, TIMEOUT)
            deadline = time.monotonic() + TIMEOUT
            while not any("cannot park" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline
                time.sleep(0.01)  # the log has no event to wait on
    finally:
        server.stop()
        server.wait()
        t.cleanup()
    (record,) = [r for r in caplog.records if "cannot park" in r.getMessage()]
    assert "poison.event" in record.getMessage() and "hidden" not in record.getMessage()
    assert len(endpoint.calls) == 2  # counted by the listener itself: not a loop


def test_policy_delays_double_up_to_the_maximum() -> None:
    policy = PoisonPolicy(max_attempts=8, backoff=1.0, backoff_max=5.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_failure_of_an_exception_keeps_class_message_and_traceback() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        failure = HandlingFailure.of(exc, 3)
    assert failure.exception == "builtins.KeyError"
    assert "raise KeyError" in failure.traceback
    assert failure.as_headers()["x-messaging-attempts"] == 3
    assert failure.summary() == "the endpoint raised: builtins.KeyError: 'missing' (3 attempts)"


def test_local_attempts_forget_the_oldest() -> None:
    attempts = LocalAttempts(size=2)
    messages = [type("M", (), {"msg_id": f"id{i}", "message": {}})() for i in range(3)]
    for n, message in enumerate(messages):
        attempts.set(message, n + 1)
    assert [attempts.get(m) for m in messages] == [0, 2, 3]


def test_delayed_calls_run_in_order_and_stop_drops_the_rest() -> None:
    calls: list[int] = []
    done = threading.Event()
    delayed = DelayedCalls("messaging-test-delayed")
    delayed.call_later(0.02, lambda: calls.append(2))
    delayed.call_later(0.01, lambda: calls.append(1))
    delayed.call_later(0.03, done.set)
    delayed.call_later(30, lambda: calls.append(3))
    assert done.wait(TIMEOUT)
    assert delayed.stop() == 1
    assert calls == [1, 2]


def test_sqlite_counts_takes_and_parks_in_its_dead_letters(tmp_path: Any) -> None:
    endpoint = Failing()
    t = transport(conf(2, 0.0), f"sqlite:///{tmp_path / 'bus.db'}")
    server = messaging.get_notification_listener(
        t, [messaging.Target(topic=TOPIC)], [endpoint], allow_requeue=True
    )
    server.start()
    try:
        notifier(t, topics=[TOPIC]).info({}, "poison.event", {})
        store = t.driver.bus.store  # type: ignore[attr-defined]
        deadline = time.monotonic() + TIMEOUT
        while not store.dead_letters() and time.monotonic() < deadline:
            time.sleep(0.01)  # the file has no event for parking
        (parked,) = store.dead_letters()
    finally:
        server.stop()
        server.wait()
        t.cleanup()
    assert len(endpoint.calls) == 2
    assert parked[0] == f"{TOPIC}.info"
    assert parked[2].startswith("the endpoint raised: builtins.RuntimeError: always (2 attempts)")
    assert "raise RuntimeError" in parked[2]
