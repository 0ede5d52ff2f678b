"""Batch notification listeners: batch size and timeout, grouping, requeue of whole groups."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import messaging
from messaging.notify.listener import BatchNotificationServer
from messaging.transport import Transport
from tests.unit.listener_support import Recorder, broker, make_conf, notifier, running, transport

TOPIC = messaging.Target(topic="notifications")
KEYS = {"ctxt", "publisher_id", "event_type", "payload", "metadata"}


@pytest.fixture
def bus() -> Transport:
    return transport(make_conf())


class BatchRecorder(Recorder):
    """Records batches as ``(priority, [payload n, ...], messages)``; returns scripted results."""

    def __init__(self, *results: Any) -> None:
        super().__init__()
        self.results = list(results)

    def _handle(self, priority: str, messages: list[dict[str, Any]]) -> Any:
        self.record(priority, [m["payload"]["n"] for m in messages], messages)
        result = self.results.pop(0) if self.results else None
        if isinstance(result, BaseException):
            raise result
        return result

    def info(self, messages: list[dict[str, Any]]) -> Any:
        return self._handle("info", messages)

    def error(self, messages: list[dict[str, Any]]) -> Any:
        return self._handle("error", messages)


def send(bus: Transport, count: int, priority: str = "info", first: int = 0) -> None:
    sender = notifier(bus)
    for n in range(first, first + count):
        getattr(sender, priority)({}, f"ev.{n}", {"n": n})


def batch_listener(bus: Transport, endpoint: Any, **kwargs: Any) -> BatchNotificationServer:
    kwargs.setdefault("batch_size", 10)
    kwargs.setdefault("batch_timeout", 0.2)
    return messaging.get_batch_notification_listener(bus, [TOPIC], [endpoint], **kwargs)


def test_batches_fill_to_batch_size_and_the_rest_comes_after_the_timeout(bus: Transport) -> None:
    endpoint = BatchRecorder()
    send(bus, 25)
    with running(batch_listener(bus, endpoint)):
        batches = endpoint.take(3)
    sizes = sorted((len(numbers) for _p, numbers, _m in batches), reverse=True)
    assert sizes == [10, 10, 5]
    numbers = sorted(n for _p, batch, _m in batches for n in batch)
    assert numbers == list(range(25))
    assert endpoint.pending() == []
    assert broker().queue_depth("notifications.info") == 0


def test_batch_elements_carry_the_notification(bus: Transport) -> None:
    endpoint = BatchRecorder()
    with running(batch_listener(bus, endpoint, batch_size=2)):
        notifier(bus, "compute.host9").info({}, "compute.start", {"n": 7})
        notifier(bus, "compute.host9").info({}, "compute.end", {"n": 8})
        [(priority, numbers, messages)] = endpoint.take(1)
    assert priority == "info" and numbers == [7, 8]
    for message in messages:
        assert set(message) == KEYS
        assert message["publisher_id"] == "compute.host9"
        assert set(message["metadata"]) == {"message_id", "timestamp"}
        assert "client_timeout" in message["ctxt"]
    assert [m["event_type"] for m in messages] == ["compute.start", "compute.end"]


def test_without_batch_size_each_batch_holds_one_notification(bus: Transport) -> None:
    endpoint = BatchRecorder()
    server = messaging.get_batch_notification_listener(bus, [TOPIC], [endpoint])
    with running(server):
        send(bus, 3)
        batches = endpoint.take(3)
    assert sorted(numbers for _p, numbers, _m in batches) == [[0], [1], [2]]


def test_a_batch_is_split_by_priority(bus: Transport) -> None:
    endpoint = BatchRecorder()
    send(bus, 3, "info")
    send(bus, 2, "error", first=100)
    with running(batch_listener(bus, endpoint, batch_size=5, batch_timeout=5)):
        calls = endpoint.take(2)
    by_priority = {priority: sorted(numbers) for priority, numbers, _m in calls}
    assert by_priority == {"info": [0, 1, 2], "error": [100, 101]}


def test_requeue_requeues_the_whole_group(bus: Transport) -> None:
    endpoint = BatchRecorder(messaging.NotificationResult.REQUEUE)
    send(bus, 4)
    server = batch_listener(bus, endpoint, batch_size=4, allow_requeue=True, executor="blocking")
    with running(server):
        first, second = endpoint.take(2)
    assert sorted(first[1]) == [0, 1, 2, 3]
    assert sorted(second[1]) == [0, 1, 2, 3]
    assert endpoint.pending() == []
    assert broker().queue_depth("notifications.info") == 0


def test_requeue_of_one_priority_leaves_the_other_handled(bus: Transport) -> None:
    class InfoRequeuesOnce(BatchRecorder):
        def __init__(self) -> None:
            super().__init__()
            self.info_calls = 0

        def info(self, messages: list[dict[str, Any]]) -> Any:
            self.info_calls += 1
            super().info(messages)
            return messaging.NotificationResult.REQUEUE if self.info_calls == 1 else None

    endpoint = InfoRequeuesOnce()
    send(bus, 2, "info")
    send(bus, 2, "error", first=10)
    server = batch_listener(
        bus, endpoint, batch_size=4, batch_timeout=0.2, allow_requeue=True, executor="blocking"
    )
    with running(server):
        calls = endpoint.take(3)
    got = sorted((priority, sorted(numbers)) for priority, numbers, _m in calls)
    assert got == [("error", [10, 11]), ("info", [0, 1]), ("info", [0, 1])]
    assert endpoint.pending() == []


def test_an_exception_requeues_the_batch_and_is_logged(
    bus: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = BatchRecorder(RuntimeError("batch store down"))
    send(bus, 3)
    server = batch_listener(
        bus, endpoint, batch_size=3, batch_timeout=5, allow_requeue=True, executor="blocking"
    )
    with running(server):
        first, second = endpoint.take(2)
    assert sorted(first[1]) == sorted(second[1]) == [0, 1, 2]
    assert broker().queue_depth("notifications.info") == 0
    failed = [r for r in caplog.records if r.exc_info and "batch store down" in str(r.exc_info[1])]
    assert failed and failed[0].levelno == logging.ERROR


def test_an_exception_without_allow_requeue_acknowledges_with_an_error(
    bus: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = BatchRecorder(RuntimeError("nope"))
    send(bus, 2)
    with running(batch_listener(bus, endpoint, batch_size=2, batch_timeout=5)):
        [(_p, numbers, _m)] = endpoint.take(1)
    assert sorted(numbers) == [0, 1]
    assert broker().queue_depth("notifications.info") == 0
    lost = [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and "will not come again" in r.getMessage()
    ]
    assert len(lost) == 2


def test_filtered_batches_hold_only_matching_notifications(bus: Transport) -> None:
    endpoint = BatchRecorder()
    endpoint.filter_rule = messaging.NotificationFilter(  # type: ignore[attr-defined]
        event_type=r"^ev\.[02]$"
    )
    send(bus, 4)
    with running(batch_listener(bus, endpoint, batch_size=4, batch_timeout=5)):
        [(_p, numbers, _m)] = endpoint.take(1)
    assert sorted(numbers) == [0, 2]
    # The two filtered out were acknowledged with the batch.
    assert broker().queue_depth("notifications.info") == 0


def test_batch_listener_pool_gets_its_copy(bus: Transport) -> None:
    endpoint = BatchRecorder()
    server = batch_listener(bus, endpoint, batch_size=3, batch_timeout=5, pool="batchers")
    with running(server):
        send(bus, 3)
        [(_p, numbers, _m)] = endpoint.take(1)
    assert sorted(numbers) == [0, 1, 2]
    assert broker().queue_depth("batchers") == 0
    assert broker().queue_depth("notifications.info") == 3
