"""RabbitMQ faults that used to stop a process for good, on RabbitMQ 3.10 and 4.

Each case ends with the process still sending and receiving: a message above
the broker's size limit (a notification, a cast, an RPC reply), the broker's
consumer timeout closing a consuming channel, an acknowledgement the broker
does not know, and an exception thrown by the driver's own I/O code.

RabbitMQ 4 keeps its default limit (16 MiB); on 3.10, whose default is
128 MiB, the test lowers ``max_message_size`` to 1 MiB for its duration. The
consumer timeout is lowered the same way on both (``consumer_timeout`` and the
channel tick that checks it), and every setting is put back as it was.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import messaging
from messaging.drivers.rabbit import frames
from messaging.exceptions import MessageTooLarge
from tests.brokers import (
    rabbit4_url,
    rabbit4_vhost,
    rabbit_url,
    rabbit_vhost,
    require_rabbitmq4,
    unavailable,
)
from tests.drivers.test_rabbit_resilience import Counter, make_conf
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.broker
TIMEOUT = 30.0
MiB = 1024 * 1024


@dataclass
class Broker:
    """A RabbitMQ under test: its URL (on a fresh virtual host) and its rabbitmqctl."""

    name: str
    url: str
    ctl: Callable[..., str]
    size_limit: int  # what the broker refuses above, during the test

    def evaluate(self, expression: str) -> str:
        return self.ctl("eval", expression).strip()

    @contextlib.contextmanager
    def setting(self, key: str, value: int) -> Iterator[None]:
        """``application:set_env(rabbit, key, value)`` for the block, then the broker's default.

        The default, not the value found: a run killed in the middle (or one
        beside it) must not leave a test's value behind as the broker's.
        """
        self.evaluate(f"application:set_env(rabbit, {key}, {value}).")
        try:
            yield
        finally:
            self.evaluate(f"application:set_env(rabbit, {key}, {self.defaults[key]}).")

    @property
    def defaults(self) -> dict[str, int]:
        """The settings the tests change, as each broker ships them."""
        size = 128 * MiB if self.name == "rabbitmq3" else 16 * MiB
        return {
            "consumer_timeout": 1_800_000,
            "channel_tick_interval": 60_000,
            "max_message_size": size,
        }


def _ctl3(*args: str) -> str:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        unavailable("rabbitmqctl is not installed")
    return subprocess.run(
        [ctl, *args], capture_output=True, text=True, timeout=60, check=True
    ).stdout


def _ctl4(*args: str) -> str:
    from tests import rabbitmq_nodes

    return rabbitmq_nodes.rabbitmqctl(*args)


@pytest.fixture(params=["rabbitmq3", "rabbitmq4"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    if request.param == "rabbitmq3":
        with rabbit_vhost("messaging-faults") as vhost:
            found = Broker("rabbitmq3", rabbit_url(vhost), _ctl3, 1 * MiB)
            with found.setting("max_message_size", found.size_limit):
                yield found
    else:
        require_rabbitmq4()
        with rabbit4_vhost("messaging-faults") as vhost:
            yield Broker("rabbitmq4", rabbit4_url(vhost), _ctl4, 16 * MiB)


@contextlib.contextmanager
def notification_listener(
    transport: messaging.Transport, topic: str, endpoint: Any
) -> Iterator[None]:
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [endpoint], executor="threading"
    )
    listener.start()
    try:
        yield
    finally:
        listener.stop()
        listener.wait()


class Echo:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def sized(self, ctxt: Any, size: int) -> str:
        return "x" * size


@contextlib.contextmanager
def rpc_server(transport: messaging.Transport, topic: str) -> Iterator[messaging.RPCClient]:
    server = messaging.get_rpc_server(
        transport, messaging.Target(topic=topic, server="s1"), [Echo()], executor="threading"
    )
    server.start()
    try:
        yield messaging.RPCClient(transport, messaging.Target(topic=topic), timeout=TIMEOUT)
    finally:
        server.stop()
        server.wait()


def test_an_oversized_notification_is_reported_and_the_others_still_go(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"faults-{uuid.uuid4().hex[:8]}"
    transport = messaging.get_notification_transport(make_conf(), broker.url)
    counter = Counter()
    try:
        with notification_listener(transport, topic, counter):
            notifier = messaging.Notifier(transport, "faults", driver="messagingv2", topics=[topic])
            with caplog.at_level(logging.ERROR):
                for n in range(50):
                    payload = {"n": n}
                    if n == 10:
                        payload["big"] = "x" * (broker.size_limit + 1)
                    notifier.info({}, "faults.test", payload)
                # Everything ends: the refused one as a failure, the rest confirmed.
                assert notifier.flush(TIMEOUT) == 0
            counter.wait_distinct(49, TIMEOUT)
            assert 10 not in counter.seen
            refused = [r.getMessage() for r in caplog.records if "broker's limit" in r.getMessage()]
            assert refused, "the refused notification was not reported"
            assert f"of {broker.size_limit} bytes" in refused[0]
            # Sending goes on, and a sender that asks for errors gets this one at once.
            for n in range(100, 150):
                notifier.info({}, "faults.test", {"n": n})
            assert notifier.flush(TIMEOUT) == 0
            counter.wait_distinct(99, TIMEOUT)
            strict = messaging.Notifier(
                transport, "faults", driver="messagingv2", topics=[topic], retry=1
            ).prepare(raise_errors=True)
            with pytest.raises(MessageTooLarge, match="broker's limit"):
                strict.info({}, "faults.test", {"n": 999, "big": "x" * (broker.size_limit + 1)})
    finally:
        transport.cleanup()


def test_an_oversized_cast_fails_its_caller_and_calls_go_on(broker: Broker) -> None:
    transport = messaging.get_rpc_transport(make_conf(), broker.url)
    try:
        with rpc_server(transport, f"faults-{uuid.uuid4().hex[:8]}") as client:
            assert client.call({}, "echo", value=1) == 1
            with pytest.raises(MessageTooLarge) as caught:
                client.cast({}, "echo", value="x" * (broker.size_limit + 1))
            assert caught.value.limit == broker.size_limit
            assert client.call({}, "echo", value=2) == 2
            # Known now: the next one fails before it reaches the broker.
            with pytest.raises(MessageTooLarge):
                client.cast({}, "echo", value="y" * (broker.size_limit + 1))
            assert client.call({}, "echo", value=3) == 3
    finally:
        transport.cleanup()


def test_an_oversized_reply_becomes_an_error_for_the_caller(broker: Broker) -> None:
    transport = messaging.get_rpc_transport(make_conf(), broker.url)
    try:
        with rpc_server(transport, f"faults-{uuid.uuid4().hex[:8]}") as client:
            started = time.monotonic()
            with pytest.raises(messaging.MessagingException, match="broker's limit") as caught:
                client.call({}, "sized", size=broker.size_limit + 1)
            # The caller hears of it from the server, not from its own timeout.
            assert not isinstance(caught.value, messaging.MessagingTimeout)
            assert time.monotonic() - started < TIMEOUT
            assert client.call({}, "echo", value="still here") == "still here"
            assert client.call({}, "sized", size=10) == "x" * 10
    finally:
        transport.cleanup()


class SlowFirst:
    """Holds the first delivery of n=0 until released; counts everything."""

    def __init__(self) -> None:
        self.counter = Counter()
        self.release = threading.Event()
        self.held = threading.Event()
        self.redelivered = threading.Event()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        if payload["n"] == 0:
            if not self.held.is_set():
                self.held.set()
                self.release.wait(TIMEOUT)
                return
            self.redelivered.set()
        self.counter.info(ctxt, publisher_id, event_type, payload, md)


def test_the_consumer_timeout_closes_a_channel_and_consuming_goes_on(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"faults-{uuid.uuid4().hex[:8]}"
    transport = messaging.get_notification_transport(make_conf(), broker.url)
    endpoint = SlowFirst()
    try:
        with (
            broker.setting("consumer_timeout", 1000),
            broker.setting("channel_tick_interval", 200),
            caplog.at_level(logging.ERROR),
            notification_listener(transport, topic, endpoint),
        ):
            notifier = messaging.Notifier(transport, "faults", driver="messagingv2", topics=[topic])
            notifier.info({}, "faults.test", {"n": 0})
            assert endpoint.held.wait(TIMEOUT)
            # The broker gives up on the held delivery, closes the channel and
            # sends the message again: consuming went on, on a new channel.
            assert endpoint.redelivered.wait(TIMEOUT), "consuming stopped after the timeout"
            endpoint.release.set()
            for n in range(1, 21):
                notifier.info({}, "faults.test", {"n": n})
            assert notifier.flush(TIMEOUT) == 0
            endpoint.counter.wait_distinct(21, TIMEOUT)
        closed = [
            r.getMessage()
            for r in caplog.records
            if "closed the channel consuming" in r.getMessage()
        ]
        assert closed and "consumer_timeout" in closed[0]
    finally:
        endpoint.release.set()
        transport.cleanup()


def test_an_unknown_delivery_tag_closes_only_a_channel(broker: Broker) -> None:
    topic = f"faults-{uuid.uuid4().hex[:8]}"
    transport = messaging.get_notification_transport(make_conf(), broker.url)
    counter = Counter()
    try:
        with notification_listener(transport, topic, counter):
            notifier = messaging.Notifier(transport, "faults", driver="messagingv2", topics=[topic])
            notifier.info({}, "faults.test", {"n": 0})
            counter.wait_distinct(1, TIMEOUT)
            connection = transport.driver.broker.consuming  # type: ignore[attr-defined]
            generation = connection.generation
            (subscription,) = [
                o
                for o in connection._observers
                if any(q.name.startswith(topic) for q in getattr(o, "queues", ()))
            ]
            done = connection.submit_raw(lambda: subscription._channel.basic_ack(987654))
            done.result(TIMEOUT)
            for n in range(1, 21):
                notifier.info({}, "faults.test", {"n": n})
            assert notifier.flush(TIMEOUT) == 0
            counter.wait_distinct(21, TIMEOUT)
            assert connection.generation == generation, "the whole connection was replaced"
    finally:
        transport.cleanup()


def test_an_exception_in_the_io_code_ends_in_a_reconnect(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"faults-{uuid.uuid4().hex[:8]}"
    transport = messaging.get_notification_transport(make_conf(), broker.url)
    counter = Counter()
    original = frames.FrameReader.read_available
    thrown = threading.Event()

    def faulty(self: frames.FrameReader) -> Any:
        if not thrown.is_set():
            thrown.set()
            raise RuntimeError("injected fault")
        return original(self)

    try:
        with notification_listener(transport, topic, counter), caplog.at_level(logging.ERROR):
            notifier = messaging.Notifier(transport, "faults", driver="messagingv2", topics=[topic])
            notifier.info({}, "faults.test", {"n": 0})
            counter.wait_distinct(1, TIMEOUT)
            monkeypatch.setattr(frames.FrameReader, "read_available", faulty)
            for n in range(1, 101):
                notifier.info({}, "faults.test", {"n": n})
            assert notifier.flush(TIMEOUT) == 0
            counter.wait_distinct(101, TIMEOUT)
            assert thrown.is_set()
            assert any(
                "Unexpected error on the AMQP connection" in r.getMessage() for r in caplog.records
            )
    finally:
        transport.cleanup()


def test_a_silent_broker_holds_no_sender_past_its_timeout(broker: Broker) -> None:
    """A broker that stops answering (socket open): a cast that must declare fails in time."""
    port = int(broker.url.split("@127.0.0.1:")[1].split("/")[0])
    vhost = broker.url.rsplit("/", 1)[1]
    with FaultProxy(port) as proxy:
        url = proxy.url(vhost) + "?publish_confirm_timeout=1&heartbeat_timeout_threshold=4"
        transport = messaging.get_rpc_transport(make_conf(), url)
        try:
            with rpc_server(transport, f"faults-{uuid.uuid4().hex[:8]}") as client:
                assert client.call({}, "echo", value=1) == 1
                proxy.freeze()
                started = time.monotonic()
                new_topic = messaging.RPCClient(
                    transport, messaging.Target(topic=f"new-{uuid.uuid4().hex[:8]}")
                )
                with pytest.raises(messaging.MessageDeliveryFailure):
                    new_topic.cast({}, "echo", value=2)  # declares: waits for the broker
                assert time.monotonic() - started < 1 + 2
                proxy.thaw()
                assert client.call({}, "echo", value=3) == 3
        finally:
            transport.cleanup()
