"""Bounds on messages: size and nesting checked before parsing, poison never stalls a receiver.

The bounds are ``[DEFAULT] max_message_size`` and ``max_message_depth``
(:class:`messaging.wire.Limits`). A body past them is refused before the JSON
parser sees it; whatever decoding raises (RecursionError, MemoryError, anything),
the listener or the reply queue logs a bounded excerpt, settles the body and goes
on. These run on the in-memory driver and on the shared pieces directly; the
conformance suite runs the same cases on every real broker.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging import wire
from messaging.conf import message_limits, register_transport_opts
from messaging.drivers.base import Attempts, Deadline
from messaging.drivers.delivered import DecodingListener, encode_reply
from messaging.drivers.memory import get_broker, reset_brokers
from messaging.drivers.replies import ReplyWaiters
from messaging.exceptions import MessageTooLarge, RemoteError

DEEP = "[" * 100_000 + "]" * 100_000


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def _random_value(rng: random.Random, level: int) -> Any:
    alphabet = '[]{}"\\ab\u00e9'
    roll = rng.random()
    if level > 7 or roll < 0.3:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
    if roll < 0.65:
        return [_random_value(rng, level + 1) for _ in range(rng.randint(0, 3))]
    return {
        "".join(rng.choice(alphabet) for _ in range(3)): _random_value(rng, level + 1)
        for _ in range(rng.randint(0, 3))
    }


# --- wire.loads: bounded before parsing ---------------------------------------------------------


def test_the_nesting_scan_agrees_with_the_parsed_depth() -> None:
    rng = random.Random(13)
    for _ in range(3000):
        value = _random_value(rng, 0)
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
        depth = _depth(value)
        for limit in (1, 2, 3, 5):
            if depth > limit:
                with pytest.raises(wire.UndecodableBody, match="max_message_depth"):
                    wire.loads(text, wire.Limits(max_depth=limit))
            else:
                assert wire.loads(text.encode(), wire.Limits(max_depth=limit)) == value


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"log": "[[[[{{{{" * 1000, "quote": '\\"[[[', "end": "]]]]"})
    assert wire.loads(text, wire.Limits(max_depth=1))["quote"] == '\\"[[['


def test_a_100000_deep_body_is_refused_before_the_parser_recurses() -> None:
    with pytest.raises(RecursionError):
        json.loads(DEEP)  # what the bound protects against
    started = time.monotonic()
    with pytest.raises(wire.UndecodableBody, match="max_message_depth = 128"):
        wire.loads(DEEP)
    assert time.monotonic() - started < 1.0


def test_the_depth_bound_is_exact() -> None:
    limits = wire.Limits(max_depth=128)
    assert wire.loads("[" * 128 + "]" * 128, limits) is not None
    with pytest.raises(wire.UndecodableBody):
        wire.loads("[" * 129 + "]" * 129, limits)
    # Many shallow arrays in a row are not deep.
    assert len(wire.loads("[" + ",".join(["[[1]]"] * 5000) + "]", limits)) == 5000


def test_a_body_past_max_size_is_refused_in_bytes_before_parsing() -> None:
    limits = wire.Limits(max_size=100)
    assert wire.loads(json.dumps("x" * 98), limits) == "x" * 98
    with pytest.raises(wire.UndecodableBody, match="101 bytes, more than max_message_size = 100"):
        wire.loads(json.dumps("x" * 99).encode(), limits)
    # 40 characters, 80 bytes of UTF-8 plus the quotes: counted in bytes.
    with pytest.raises(wire.UndecodableBody, match="82 bytes"):
        wire.loads(json.dumps("é" * 40, ensure_ascii=False), wire.Limits(max_size=81))


def test_zero_means_no_bound() -> None:
    assert wire.loads("[" * 500 + "]" * 500, wire.Limits(max_size=0, max_depth=0)) is not None


def test_the_inner_envelope_is_bounded_too() -> None:
    body = json.dumps({"oslo.version": "2.0", "oslo.message": DEEP})
    with pytest.raises(wire.UndecodableBody, match="max_message_depth"):
        wire.decode(body)


def test_an_unreadable_failure_becomes_a_remote_error() -> None:
    error = wire.deserialize_failure(DEEP)
    assert isinstance(error, RemoteError)
    assert error.exc_type == "UnreadableFailure"
    assert "max_message_depth" in str(error.value)
    assert isinstance(wire.deserialize_failure("[1]"), RemoteError)


# --- wire.check_size: refused to the sender -----------------------------------------------------


def test_check_size_names_the_bound_and_describes_lazily() -> None:
    calls: list[int] = []

    def what() -> str:
        calls.append(1)
        return "The notification to 'x.info'"

    wire.check_size("x" * 100, wire.Limits(max_size=100), what)
    assert calls == []
    with pytest.raises(MessageTooLarge) as caught:
        wire.check_size("é" * 60, wire.Limits(max_size=100), what)
    assert caught.value.size == 120
    assert caught.value.limit == 100
    assert str(caught.value) == (
        "The notification to 'x.info' is 120 bytes, more than max_message_size = 100 bytes "
        "([DEFAULT] option); it was not sent"
    )
    assert isinstance(caught.value, messaging.MessageDeliveryFailure)


def test_the_options_give_the_limits() -> None:
    conf = cfg.ConfigOpts()
    assert message_limits(conf) == wire.DEFAULT_LIMITS == wire.Limits(128 * 1024 * 1024, 128)
    register_transport_opts(conf)
    conf.set_override("max_message_size", 1000)
    conf.set_override("max_message_depth", 7)
    assert message_limits(conf) == wire.Limits(1000, 7)


# --- a decoding listener never stalls -----------------------------------------------------------


@dataclass(eq=False)
class RawDelivery:
    body: str
    queue: str = "q"
    redelivered: bool = False


class ListSource:
    """A delivery source over a list, recording how each delivery was settled."""

    def __init__(self, bodies: list[str]) -> None:
        self.pending: queue.Queue[RawDelivery] = queue.Queue()
        for body in bodies:
            self.pending.put(RawDelivery(body))
        self.settled: list[tuple[str, str]] = []

    def take(self, timeout: float | None) -> RawDelivery | None:
        try:
            return self.pending.get(timeout=timeout)
        except queue.Empty:
            return None

    def ack(self, delivery: RawDelivery) -> None:
        self.settled.append(("ack", delivery.body))

    def requeue(self, delivery: RawDelivery) -> None:
        self.settled.append(("requeue", delivery.body))

    def discard(self, delivery: RawDelivery, reason: str) -> None:
        self.settled.append(("discard", reason))

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


class Replies:
    limits = wire.Limits(max_size=10_000)

    def send_reply(self, reply_q: str, msg_id: str, body: str, heartbeat: bool) -> None:
        raise AssertionError("no reply expected")


@pytest.mark.parametrize(
    "error", [RecursionError("deep"), MemoryError(), KeyError("k"), RuntimeError("anything")]
)
def test_whatever_decoding_raises_the_body_is_discarded_and_the_next_handled(
    error: BaseException, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good = wire.encode_notification({}, {"event_type": "ok"}, 2.0)
    source = ListSource(["poison" * 10_000, good])
    real_decode = wire.decode

    def decode(body: Any, limits: wire.Limits = wire.DEFAULT_LIMITS) -> wire.Decoded:
        if isinstance(body, str) and body.startswith("poison"):
            raise error
        return real_decode(body, limits)

    monkeypatch.setattr(wire, "decode", decode)
    listener = DecodingListener(source, Replies(), 1, None, rpc=False)
    message = listener.poll_one(timeout=1)
    assert message is not None and message.message == {"event_type": "ok"}
    assert source.settled == [("discard", f"{type(error).__name__}: {error}")]
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "(60000 characters in all)" in line
    assert len(line) < 1000


def test_a_listener_refuses_what_is_past_its_transport_bound() -> None:
    too_large = wire.encode_notification({}, {"event_type": "big", "payload": "x" * 20_000}, 2.0)
    source = ListSource([too_large, "[" * 1000 + "]" * 1000])
    listener = DecodingListener(source, Replies(), 1, None, rpc=False)
    assert listener.poll_one(timeout=0.2) is None
    reasons = [reason for how, reason in source.settled if how == "discard"]
    assert len(reasons) == 2
    assert "max_message_size = 10000" in reasons[0]
    assert "max_message_depth = 128" in reasons[1]


def test_a_reply_past_the_bound_becomes_the_error_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = encode_reply("a" * 32, "blob", wire.Limits(max_size=1000), result="x" * 2000)
    reply = wire.decode(body).message
    assert reply["result"] is None
    failure = json.loads(reply["failure"])
    assert failure["class"] == "MessageTooLarge"
    assert "The reply to 'blob' is " in failure["message"]
    assert "max_message_size = 1000 bytes" in failure["message"]
    assert len(body) < 1000


# --- replies ------------------------------------------------------------------------------------


def test_an_unreadable_reply_fails_its_call_at_once() -> None:
    waiters = ReplyWaiters("reply_test", wire.Limits(max_size=5000))
    msg_id = wire.new_msg_id()
    box = waiters.register(msg_id)
    waiters.deliver(wire.encode_reply(msg_id, result="x" * 10_000))
    started = time.monotonic()
    with pytest.raises(RemoteError) as caught:
        waiters.wait(box, 30, None, [], "the call")
    assert time.monotonic() - started < 1
    assert caught.value.exc_type == "UnreadableReply"
    assert "max_message_size = 5000" in str(caught.value.value)


@pytest.mark.parametrize("body", [DEEP, b"\xff\xfe", "{", '"text"'])
def test_a_reply_nobody_can_read_is_logged_and_dropped(
    body: str | bytes, caplog: pytest.LogCaptureFixture
) -> None:
    waiters = ReplyWaiters("reply_test")
    waiters.deliver(body)
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "reply queue reply_test" in line
    assert len(line) < 1000


# --- on the in-memory driver --------------------------------------------------------------------


@pytest.fixture
def bounded_conf() -> Iterator[cfg.ConfigOpts]:
    reset_brokers()
    conf = cfg.ConfigOpts()
    register_transport_opts(conf)
    conf.set_override("max_message_size", 4096)
    yield conf
    reset_brokers()


class Inbox:
    def __init__(self) -> None:
        self.received: queue.Queue[Any] = queue.Queue()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.received.put(payload)


def test_a_listener_goes_on_after_256_deep_bodies(bounded_conf: cfg.ConfigOpts) -> None:
    transport = messaging.get_notification_transport(bounded_conf, "fake://")
    inbox = Inbox()
    server = messaging.get_notification_listener(
        transport, [messaging.Target(topic="t")], [inbox], executor="threading"
    )
    server.start()
    try:
        for _ in range(256):
            get_broker().publish("", "t.info", DEEP)
        notifier = messaging.Notifier(transport, "p", driver="messagingv2", topics=["t"])
        notifier.info({}, "after", {"n": 1})
        assert inbox.received.get(timeout=10) == {"n": 1}
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
    assert len(get_broker().dead_letters) == 256


def test_sending_past_the_bound_fails_and_the_transport_goes_on(
    bounded_conf: cfg.ConfigOpts,
) -> None:
    transport = messaging.get_notification_transport(bounded_conf, "fake://")
    notifier = messaging.Notifier(
        transport, "p", driver="messagingv2", topics=["t"], raise_errors=True
    )
    try:
        with pytest.raises(MessageTooLarge, match="max_message_size = 4096 bytes"):
            notifier.info({}, "big", {"blob": "x" * 4096})
        notifier.info({}, "small", {})
        assert len(get_broker().messages("t.info")) == 1
    finally:
        transport.cleanup()


# --- a call never waits past its timeout --------------------------------------------------------


def test_the_time_a_send_takes_counts_against_the_calls_timeout() -> None:
    waiters = ReplyWaiters("reply_test")
    slow_broker = threading.Event()

    def send(body: str, box: Any) -> None:
        slow_broker.wait(0.6)  # a send that takes 0.6 s (nothing sets it)

    target = messaging.Target(topic="t")
    started = time.monotonic()
    with pytest.raises(messaging.MessagingTimeout, match=r"no reply within 1\.0s"):
        waiters.call(target, {}, {"method": "m"}, send, 1.0, None, [])
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.3, f"call(timeout=1) took {elapsed:.2f} s"


def test_attempts_stop_at_the_retry_count_or_the_deadline() -> None:
    counted = Attempts(2, Deadline(None))
    for _ in range(3):
        counted.begin()
    assert not counted.another()
    assert counted.spent() == "after 3 tries"
    forever = Attempts(-1, Deadline(0.0))
    forever.begin()
    assert not forever.another()
    assert forever.spent() == "after 1 tries within 0 s"
    assert forever.pause(5.0) == 0.0
    assert Attempts(None, Deadline(None)).pause(5.0) == 5.0


def test_a_deadline_takes_the_earlier_bound() -> None:
    call = Deadline(1.0)
    assert call.within(30.0) is call
    shorter = call.within(0.5)
    assert shorter.seconds == 0.5
    remaining = shorter.remaining()
    assert remaining is not None and remaining <= 0.5
    assert Deadline(None).remaining() is None
    assert Deadline(None).remaining(3.0) == 3.0


# --- log lines carry bounded excerpts -----------------------------------------------------------


class FailingEndpoint:
    def __init__(self) -> None:
        self.called: queue.Queue[str] = queue.Queue()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.called.put(event_type[:10])
        raise RuntimeError(f"cannot handle {payload['blob']}")

    def fail(self, ctxt: Any, blob: str) -> None:
        raise ValueError(blob)


def test_an_endpoint_failing_on_a_large_message_logs_bounded_lines(
    bounded_conf: cfg.ConfigOpts, caplog: pytest.LogCaptureFixture
) -> None:
    bounded_conf.set_override("max_message_size", 0)
    blob = "x" * 1_000_000
    transport = messaging.get_rpc_transport(bounded_conf, "fake://")
    endpoint = FailingEndpoint()
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic="t")], [endpoint], executor="threading"
    )
    server = messaging.get_rpc_server(
        transport, messaging.Target(topic="r", server="s"), [endpoint], executor="threading"
    )
    listener.start()
    server.start()
    try:
        notifier = messaging.Notifier(transport, "p", driver="messagingv2", topics=["t"])
        notifier.info({}, "e" * 100_000, {"blob": blob})
        assert endpoint.called.get(timeout=10) == "eeeeeeeeee"
        client = messaging.get_rpc_client(transport, messaging.Target(topic="r"), timeout=10)
        with pytest.raises(ValueError):
            client.call({}, "fail", blob=blob)
    finally:
        listener.stop()
        server.stop()
        listener.wait()
        server.wait()
        transport.cleanup()
    logged = [caplog.handler.format(record) for record in caplog.records]
    assert any("was not handled" in line for line in logged)
    assert any("Exception during message handling" in line for line in logged)
    assert max(len(line) for line in logged) < 5000
    cut = [line for line in logged if re.search(r"\(10000\d\d characters in all\)", line)]
    assert len(cut) == 2, "the two tracebacks were not cut"
