"""The notification outbox, on its own and behind a Notifier on the in-memory transport."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging.conf import NOTIFICATIONS_GROUP
from messaging.exceptions import MessageDeliveryFailure
from messaging.notify.outbox import Outbox, OutboxFull, OutboxSettings

TIMEOUT = 10.0


class Broker:
    """Records what is sent; refuses while ``down`` is set."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.down = threading.Event()
        self.attempts = 0

    def send(self, topic: str, ctxt: Any, message: dict[str, Any], v: float, r: Any) -> None:
        self.attempts += 1
        if self.down.is_set():
            raise MessageDeliveryFailure("the broker is down")
        self.sent.append(message["n"])

    def flush(self, timeout: float) -> int:
        return 0


def settings(kind: str = "memory", **overrides: Any) -> OutboxSettings:
    values: dict[str, Any] = {
        "kind": kind,
        "path": "",
        "max_messages": 100,
        "max_bytes": 1_000_000,
        "when_full": "drop-newest",
        "retry_interval": 0.01,
    }
    values.update(overrides)
    return OutboxSettings(**values)


def put(outbox: Outbox, n: int) -> None:
    outbox.put("t.info", {}, {"n": n, "event_type": "e", "priority": "INFO"}, 2.0, None)


def test_what_waits_while_the_broker_is_down_drains_in_order() -> None:
    broker = Broker()
    broker.down.set()
    outbox = Outbox(settings(), broker.send, broker.flush, 1.0)
    try:
        for n in range(50):
            put(outbox, n)
        assert len(outbox) == 50
        broker.down.clear()
        assert outbox.drain(TIMEOUT) == 0
        assert broker.sent == list(range(50))
    finally:
        outbox.close(1.0)


def test_a_full_outbox_refuses_the_newest(caplog: pytest.LogCaptureFixture) -> None:
    broker = Broker()
    broker.down.set()
    outbox = Outbox(settings(max_messages=3), broker.send, broker.flush, 1.0)
    try:
        for n in range(3):
            put(outbox, n)
        with pytest.raises(OutboxFull, match="outbox_max_messages = 3"):
            put(outbox, 3)
        broker.down.clear()
        assert outbox.drain(TIMEOUT) == 0
        assert broker.sent == [0, 1, 2]
    finally:
        outbox.close(1.0)


def test_a_full_outbox_can_drop_the_oldest_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    broker = Broker()
    broker.down.set()
    outbox = Outbox(settings(max_messages=3, when_full="drop-oldest"), broker.send, broker.flush, 1)
    try:
        with caplog.at_level(logging.ERROR):
            for n in range(5):
                put(outbox, n)
        assert caplog.text.count("dropped its oldest notification") == 2
        broker.down.clear()
        assert outbox.drain(TIMEOUT) == 0
        assert broker.sent == [2, 3, 4]
    finally:
        outbox.close(1.0)


def test_the_outbox_is_bounded_in_bytes() -> None:
    broker = Broker()
    broker.down.set()
    outbox = Outbox(settings(max_bytes=300), broker.send, broker.flush, 1.0)
    try:
        put(outbox, 0)
        with pytest.raises(OutboxFull, match="outbox_max_bytes = 300"):
            for n in range(1, 10):
                put(outbox, n)
        assert 1 <= len(outbox) < 10
    finally:
        outbox.close(1.0)


def test_a_sqlite_outbox_keeps_what_waits_for_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.db"
    broker = Broker()
    broker.down.set()
    first = Outbox(settings("sqlite", path=str(path)), broker.send, broker.flush, 1.0)
    for n in range(20):
        put(first, n)
    assert first.close(0.05) == 20
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    broker.down.clear()
    second = Outbox(settings("sqlite", path=str(path)), broker.send, broker.flush, 1.0)
    try:
        assert second.drain(TIMEOUT) == 0
        assert broker.sent == list(range(20))
    finally:
        second.close(1.0)


def test_a_notifier_with_an_outbox_sends_through_it() -> None:
    conf = cfg.ConfigOpts()
    conf([], project="messaging-tests", default_config_files=[], default_config_dirs=[])
    transport = messaging.get_notification_transport(conf, "memory://")
    conf.set_override("outbox", "memory", group=NOTIFICATIONS_GROUP)
    received: list[int] = []
    done = threading.Event()

    class Endpoint:
        def info(
            self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any
        ) -> None:
            received.append(payload["n"])
            if len(received) == 20:
                done.set()

    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic="notifications")], [Endpoint()]
    )
    listener.start()
    try:
        notifier = messaging.Notifier(transport, "p", driver="messagingv2")
        for n in range(20):
            notifier.info({}, "outbox.test", {"n": n})
        assert transport.flush(TIMEOUT) == 0
        assert done.wait(TIMEOUT)
        assert sorted(received) == list(range(20))
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
