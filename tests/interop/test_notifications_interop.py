"""Notifications between the real oslo.messaging and this project, both ways, over RabbitMQ.

Our side is used exactly as a service uses it: a config file read by
oslo.config, ``get_notification_transport``, ``Notifier`` and
``get_notification_listener``.
"""

from __future__ import annotations

import contextlib
import queue
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from oslo_config import cfg
from oslo_context.context import RequestContext

import messaging
from tests.interop.oslo_env import (
    PRIORITIES,
    TIMESTAMP_PATTERN,
    InteropNames,
    OsloPeers,
    context_kwargs,
    expected_wire_context,
    subset,
)

pytestmark = pytest.mark.broker

Received = dict[str, Any]


class Collector:
    """Our notification endpoint: one method per priority, each puts what it got in a queue."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.received: queue.Queue[Received] = queue.Queue()
        for priority in PRIORITIES:
            setattr(self, priority, self._handler(priority))

    def _handler(self, priority: str) -> Callable[..., None]:
        def handle(
            ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any
        ) -> None:
            self.received.put(
                {
                    "priority": priority,
                    "ctxt": ctxt,
                    "publisher_id": publisher_id,
                    "event_type": event_type,
                    "payload": payload,
                    "metadata": metadata,
                }
            )

        return handle

    def take(self, count: int, timeout: float) -> list[Received]:
        """The next ``count`` notifications, all within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        got = []
        for _ in range(count):
            try:
                got.append(self.received.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"{self.label}: {len(got)} of {count} notifications in {timeout} s")
        return got


def start_our_listener(
    stack: contextlib.ExitStack,
    conf: cfg.ConfigOpts,
    url: str,
    names: InteropNames,
    topic: str,
    endpoint: Collector,
    pool: str | None = None,
    serializer: messaging.Serializer | None = None,
) -> None:
    transport = messaging.get_notification_transport(conf, url)
    stack.callback(transport.cleanup)
    listener = messaging.get_notification_listener(
        transport,
        [messaging.Target(topic=topic, exchange=names.exchange)],
        [endpoint],
        executor="threading",
        pool=pool,
        serializer=serializer,
    )
    listener.start()
    stack.callback(listener.wait)
    stack.callback(listener.stop)


def our_notifier(
    stack: contextlib.ExitStack, conf: cfg.ConfigOpts, url: str, topic: str, driver: str
) -> messaging.Notifier:
    transport = messaging.get_notification_transport(conf, url)
    stack.callback(transport.cleanup)
    return messaging.Notifier(transport, "our.publisher", driver=driver, topics=[topic])


def assert_metadata(metadata: dict[str, Any]) -> None:
    assert str(uuid.UUID(metadata["message_id"])) == metadata["message_id"]
    assert re.fullmatch(TIMESTAMP_PATTERN, metadata["timestamp"]), metadata


# oslo Notifier -> our listener


def test_oslo_v2_notification_to_our_listener(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic = names.topic("o2m")
    collector = Collector("ours")
    start_our_listener(stack, our_conf, rabbit_url, names, topic, collector)
    ctxt = context_kwargs()
    payload = {"instance_id": "abc", "flavor": {"ram": 512, "disk": 1.5}, "tags": ["a", None]}

    oslo_peers.notify(
        [topic],
        [payload],
        event_type="compute.instance.create.end",
        publisher_id="compute.host1",
        priority="info",
        context=ctxt,
    )

    (got,) = collector.take(1, timeout=20)
    assert (got["priority"], got["publisher_id"], got["event_type"]) == (
        "info",
        "compute.host1",
        "compute.instance.create.end",
    ), oslo_peers.env.describe()
    assert got["payload"] == payload
    want = expected_wire_context(ctxt, redacted=True)
    assert subset(got["ctxt"], want) == want, oslo_peers.env.describe()
    assert_metadata(got["metadata"])


def test_oslo_v1_notification_to_our_listener(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic = names.topic("o1m")
    collector = Collector("ours")
    start_our_listener(stack, our_conf, rabbit_url, names, topic, collector)
    ctxt = context_kwargs()

    oslo_peers.notify(
        [topic],
        [{"volume": 7}, {"volume": 8}],
        event_type="volume.delete.start",
        publisher_id="volume.host2",
        priority="warn",
        driver="messaging",
        context=ctxt,
    )

    got = collector.take(2, timeout=20)
    assert [(n["priority"], n["publisher_id"], n["event_type"]) for n in got] == [
        ("warn", "volume.host2", "volume.delete.start")
    ] * 2
    assert sorted(n["payload"]["volume"] for n in got) == [7, 8]
    want = expected_wire_context(ctxt, redacted=True)
    assert all(subset(n["ctxt"], want) == want for n in got), got
    assert_metadata(got[0]["metadata"])


def test_oslo_notifications_to_our_pools_with_request_contexts(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic = names.topic("o2pools")
    pools = {"a": Collector("pool a"), "b": Collector("pool b")}
    for label, collector in pools.items():
        start_our_listener(
            stack,
            our_conf,
            rabbit_url,
            names,
            topic,
            collector,
            pool=names.pool(label),
            serializer=messaging.RequestContextSerializer(),
        )
    ctxt = context_kwargs()

    oslo_peers.notify(
        [topic],
        [{"seq": seq} for seq in range(3)],
        event_type="pool.test",
        publisher_id="pooled",
        priority="error",
        context=ctxt,
    )

    for collector in pools.values():
        got = collector.take(3, timeout=20)
        assert sorted(n["payload"]["seq"] for n in got) == [0, 1, 2], collector.label
        assert {n["priority"] for n in got} == {"error"}
        for n in got:
            assert isinstance(n["ctxt"], RequestContext), collector.label
            assert (n["ctxt"].user_id, n["ctxt"].project_id, n["ctxt"].request_id) == (
                ctxt["user_id"],
                ctxt["project_id"],
                ctxt["request_id"],
            )
            assert n["ctxt"].auth_token is None


# our Notifier -> oslo listener


def test_our_v2_notifications_to_oslo_listener(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic = names.topic("m2o")
    listener = oslo_peers.listen([topic], count=2)
    notifier = our_notifier(stack, our_conf, rabbit_url, topic, "messagingv2")
    ctxt = context_kwargs()

    notifier.info(RequestContext(**ctxt), "compute.instance.create.end", {"id": "i-1", "n": 1.5})
    notifier.error(RequestContext(**ctxt), "compute.instance.create.error", {"id": "i-2"})

    got = {n["priority"]: n for n in listener.collect("notification", 2, timeout=20)}
    assert sorted(got) == ["error", "info"], oslo_peers.env.describe()
    assert (got["info"]["event_type"], got["info"]["payload"]) == (
        "compute.instance.create.end",
        {"id": "i-1", "n": 1.5},
    )
    assert (got["error"]["event_type"], got["error"]["payload"]) == (
        "compute.instance.create.error",
        {"id": "i-2"},
    )
    want = expected_wire_context(ctxt, redacted=True)
    for n in got.values():
        assert n["publisher_id"] == "our.publisher"
        assert subset(n["ctxt"], want) == want, oslo_peers.env.describe()
        assert_metadata(n["metadata"])
    assert listener.wait_exit(timeout=20) == 0


def test_our_v1_notification_to_oslo_listener(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic = names.topic("m1o")
    listener = oslo_peers.listen([topic], count=1)
    notifier = our_notifier(stack, our_conf, rabbit_url, topic, "messaging")

    notifier.sample(None, "metric.cpu", [{"cpu": 0.25}])

    (got,) = listener.collect("notification", 1, timeout=20)
    assert (got["priority"], got["publisher_id"], got["event_type"], got["payload"]) == (
        "sample",
        "our.publisher",
        "metric.cpu",
        [{"cpu": 0.25}],
    ), oslo_peers.env.describe()
    assert subset(got["ctxt"], ["user", "request_id"]) == {
        "user": "<missing>",
        "request_id": "<missing>",
    }
    assert_metadata(got["metadata"])


def test_our_notifications_to_oslo_pools(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic = names.topic("m2pools")
    listeners = [
        oslo_peers.listen([topic], pool=names.pool(label), count=3, name=f"pool-{label}")
        for label in ("a", "b")
    ]
    notifier = our_notifier(stack, our_conf, rabbit_url, topic, "messagingv2")
    ctxt = context_kwargs()

    for seq in range(3):
        notifier.warn(RequestContext(**ctxt), "pool.test", {"seq": seq})

    want = expected_wire_context(ctxt, redacted=True)
    for listener in listeners:
        got = listener.collect("notification", 3, timeout=20)
        assert sorted(n["payload"]["seq"] for n in got) == [0, 1, 2], listener.name
        assert {n["priority"] for n in got} == {"warn"}
        assert all(subset(n["ctxt"], want) == want for n in got), got
        assert listener.wait_exit(timeout=20) == 0
