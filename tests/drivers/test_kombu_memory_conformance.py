"""The driver conformance suite on kombu's in-memory transport (``kombu+memory://``).

kombu's memory transport keeps one set of queues and exchanges for the whole
process; the suite's names are unique per test, and after each test (once its
servers and transports are released) that state is emptied, so no test sees
what another left behind.

:class:`KombuGiveBackChecks` adds what the kombu driver does beyond kombu: a
message given back (a requeue, or a listener closing before handling it) goes
to its own queue only, where kombu's virtual transports would route it again
through its exchange to every queue bound with its key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import kombu
from kombu.transport import memory
from oslo_config import cfg

import messaging
from messaging.drivers.base import Capabilities
from tests.drivers.conformance import (
    Collector,
    DriverHarness,
    InfoEndpoint,
    Notification,
    NotificationConformance,
    RequeueFirstDelivery,
    RPCConformance,
)
from tests.drivers.conformance_asyncio import AsyncioConformance

KOMBU_MEMORY_CAPABILITIES = Capabilities(requeue=True, pools=True, fanout=True, rpc=True)


def kombu_publish_raw(transport: messaging.Transport, queue: str, bodies: Sequence[str]) -> None:
    """Publish ``bodies`` as they are to ``queue`` with a kombu producer of its own."""
    settings = transport.driver.settings  # type: ignore[attr-defined]
    with kombu.Connection(
        settings.url, transport_options=dict(settings.transport_options)
    ) as connection:
        producer = connection.Producer()
        for body in bodies:
            producer.publish(
                body,
                exchange="",
                routing_key=queue,
                content_type="application/json",
                content_encoding="utf-8",
                retry=False,
            )


def wait_for_closing_consumers(timeout: float) -> None:
    """Wait for closed kombu consumers to finish closing their connection (on their thread)."""
    for thread in threading.enumerate():
        if thread.name.startswith("messaging-kombu-"):
            thread.join(timeout)


class HoldFirst(InfoEndpoint):
    """Holds the notification ``n == 0`` until ``release`` is set (or the inbox's timeout)."""

    def __init__(self, inbox: Collector[Notification], release: threading.Event) -> None:
        super().__init__(inbox, "held")
        self.release = release

    def outcome(self, note: Notification, delivery: int) -> str | None:
        if note.payload["n"] == 0:
            self.release.wait(self.inbox.timeout)
        return None


class KombuGiveBackChecks(NotificationConformance):
    """Messages given back reach their own queue only (for the ``kombu+`` test modules)."""

    def test_requeue_in_a_pool_reaches_that_pool_only(self) -> None:
        transport = self.notification_transport()
        topic = self.unique("pool-requeue")
        requeued: Collector[Notification] = self.collector()
        other: Collector[Notification] = self.collector()
        servers = [
            self.listen(
                transport,
                [topic],
                [RequeueFirstDelivery(requeued, "a")],
                pool=topic + "-a",
                allow_requeue=True,
            ),
            self.listen(transport, [topic], [InfoEndpoint(other, "b")], pool=topic + "-b"),
        ]
        self.notifier(transport, topic).info({}, "test.requeue", {"n": 1})
        first, second = requeued.take(2)
        assert first.metadata["message_id"] == second.metadata["message_id"]
        other.take(1)
        self.stop(*servers)
        assert requeued.drain() == []
        assert other.drain() == []
        assert self.leftovers(transport, topic, topic + "-b") == []
        # The publisher's own queue for the topic got the one copy it should.
        assert [n.payload for n in self.leftovers(transport, topic)] == [{"n": 1}]

    def test_closing_gives_back_what_was_not_handled(self) -> None:
        transport = self.notification_transport()
        topic = self.unique("give-back")
        count = 5
        release = threading.Event()
        held: Collector[Notification] = self.collector()
        other: Collector[Notification] = self.collector()
        # The blocking executor handles one message at a time on the poll thread:
        # while n=0 is held, the others wait in the listener, taken but unsettled.
        holder = messaging.get_notification_listener(
            transport,
            [messaging.Target(topic=topic)],
            [HoldFirst(held, release)],
            executor="blocking",
            pool=topic + "-a",
        )
        self.start(holder)
        bystander = self.listen(transport, [topic], [InfoEndpoint(other, "b")], pool=topic + "-b")
        self.send_info(self.notifier(transport, topic), count)
        assert [n.payload["n"] for n in held.take(1)] == [0]
        assert sorted(n.payload["n"] for n in other.take(count)) == list(range(count))
        holder.stop()
        release.set()
        holder.wait(timeout=self.wait_timeout)
        self.stop(bystander)
        assert held.drain() == []
        assert other.drain() == []
        given_back = [n.payload["n"] for n in self.leftovers(transport, topic, topic + "-a")]
        assert sorted(given_back) == list(range(1, count))
        assert self.leftovers(transport, topic, topic + "-b") == []


class KombuMemoryBroker(DriverHarness):
    """kombu's in-process transport, emptied after each test."""

    capabilities: ClassVar[Capabilities | None] = KOMBU_MEMORY_CAPABILITIES

    def transport_url(self) -> str:
        return "kombu+memory://"

    def inject_raw(
        self, transport: messaging.Transport, topic: str, rpc: bool, bodies: Sequence[str]
    ) -> None:
        kombu_publish_raw(transport, topic if rpc else f"{topic}.info", bodies)

    def teardown_broker(self) -> None:
        wait_for_closing_consumers(self.wait_timeout)
        queues: dict[str, Any] = memory.Channel.queues
        queues.clear()
        memory.Channel.events.clear()
        memory.Transport.global_state.clear()


class TestKombuMemoryNotifications(KombuMemoryBroker, KombuGiveBackChecks):
    """Notifications on ``kombu+memory://``."""


class TestKombuMemoryRPC(KombuMemoryBroker, RPCConformance):
    """RPC on ``kombu+memory://``."""


class TestKombuMemoryAsyncio(KombuMemoryBroker, AsyncioConformance):
    """Async endpoints and clients on kombu's in-memory transport."""


def test_a_listener_holds_at_most_prefetch_bytes() -> None:
    transport = messaging.get_notification_transport(
        cfg.ConfigOpts(), "kombu+memory://?prefetch_count=64&prefetch_bytes=5000"
    )
    try:
        listener: Any = transport.listen_for_notifications(
            [(messaging.Target(topic="kombu-bytes"), "info")]
        )
        notifier = messaging.Notifier(transport, "p", driver="messagingv2", topics=["kombu-bytes"])
        for n in range(10):
            notifier.info({}, "e", {"n": n, "blob": "x" * 1500})
        first = listener.poll_one(timeout=10)
        assert first is not None
        consumer = listener.source
        # About 1.7 kB each: the consumer stops taking once it holds more than 5000 bytes.
        deadline = time.monotonic() + 10
        while consumer._buffered_bytes <= 5000 and time.monotonic() < deadline:
            time.sleep(0.01)  # the consumer's thread takes them: poll its buffer, bounded
        held = consumer._buffered_bytes
        time.sleep(0.3)  # it stays there: nothing more is taken
        assert held == consumer._buffered_bytes
        assert 5000 < held < 5000 + 2000
        assert memory.Channel.queues["kombu-bytes.info"].qsize() > 0
        first.acknowledge()
        listener.cleanup()
    finally:
        transport.cleanup()
        wait_for_closing_consumers(10)
        memory.Channel.queues.clear()
        memory.Channel.events.clear()
        memory.Transport.global_state.clear()
