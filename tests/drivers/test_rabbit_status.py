"""The status of a topic on the real RabbitMQ: servers that answer, queues the broker counts.

Two servers run, a third has gone and left its queue with messages in it; the
status names the two, counts every queue with a passive declaration, and
reports the third as missing with its waiting messages.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import messaging
from messaging import status
from messaging.drivers.base import QueueStats
from tests.brokers import rabbit_url, rabbit_vhost
from tests.unit.rpc_support import make_conf

pytestmark = pytest.mark.broker
#: The bound of every wait, in seconds.
TIMEOUT = 30.0
#: How long a census gathers answers when it waits for its timeout.
CENSUS_TIMEOUT = 2.0


class Echo:
    def echo(self, ctxt: Any, value: Any = None) -> Any:
        return value


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    with rabbit_vhost("messaging-status") as name:
        yield name


@pytest.fixture
def rpc(vhost: str) -> Iterator[messaging.Transport]:
    transport = messaging.get_rpc_transport(make_conf(), rabbit_url(vhost))
    yield transport
    transport.cleanup()


@pytest.fixture
def topic() -> str:
    return f"status-{uuid.uuid4().hex[:8]}"


def start(rpc: messaging.Transport, topic: str, name: str) -> messaging.rpc.RPCServer:
    target = messaging.Target(topic=topic, server=name)
    server = messaging.get_rpc_server(rpc, target, [Echo()], executor="threading")
    server.start(timeout=TIMEOUT)
    return server


def stop(server: messaging.rpc.RPCServer) -> None:
    server.stop(timeout=TIMEOUT)
    server.wait(timeout=TIMEOUT)


def test_servers_answer_and_the_broker_counts_the_queues(
    rpc: messaging.Transport, topic: str
) -> None:
    gone = start(rpc, topic, "s3")
    stop(gone)
    caster = messaging.get_rpc_client(rpc, messaging.Target(topic=topic, server="s3"))
    for n in range(3):
        caster.cast({}, "echo", value=n)
    servers = [start(rpc, topic, name) for name in ("s1", "s2")]
    try:
        found = status.topic_status(
            rpc,
            messaging.Target(topic=topic),
            timeout=CENSUS_TIMEOUT,
            servers=["s1", "s2", "s3"],
        )
        # The reply queue still serves ordinary calls after gathering several replies.
        client = messaging.get_rpc_client(rpc, messaging.Target(topic=topic), timeout=TIMEOUT)
        assert client.call({}, "echo", value="after") == "after"
    finally:
        for server in servers:
            stop(server)
    assert sorted(str(a.server) for a in found.answers) == ["s1", "s2"]
    assert all(a.known and a.status["connected"] and a.status["consuming"] for a in found.answers)
    assert all(0 < a.elapsed < CENSUS_TIMEOUT for a in found.answers)
    # No transport says how many fanout queues got the request: the census waits it out.
    assert found.elapsed >= CENSUS_TIMEOUT
    assert found.queues is not None
    by_name = {q.name: q for q in found.queues}
    assert by_name[topic] == QueueStats(topic, True, 0, 2)
    assert by_name[f"{topic}.s1"] == QueueStats(f"{topic}.s1", True, 0, 1)
    assert by_name[f"{topic}.s3"] == QueueStats(f"{topic}.s3", True, 3, 0)
    fanout = [q for q in found.queues if q.name.startswith(f"{topic}_fanout_")]
    assert [q.consumers for q in fanout] == [1, 1]
    assert found.problems == [
        f"server 's3' did not answer within {CENSUS_TIMEOUT:g} s",
        f"queue '{topic}.s3' has no consumer (3 message(s) waiting)",
    ]


def test_expect_ends_the_census_once_that_many_answered(
    rpc: messaging.Transport, topic: str
) -> None:
    servers = [start(rpc, topic, name) for name in ("s1", "s2")]
    try:
        started = time.monotonic()
        answers = status.census(rpc, messaging.Target(topic=topic), timeout=TIMEOUT, expect=2)
        took = time.monotonic() - started
    finally:
        for server in servers:
            stop(server)
    assert sorted(str(a.server) for a in answers) == ["s1", "s2"]
    assert took < TIMEOUT / 3


def test_a_missing_queue_is_reported_and_the_next_one_still_counted(
    rpc: messaging.Transport, topic: str
) -> None:
    server = start(rpc, topic, "s1")
    try:
        found = status.queue_stats(rpc, [f"{topic}.nobody", topic, f"{topic}.nobody2"])
    finally:
        stop(server)
    assert found == [
        QueueStats(f"{topic}.nobody", False),
        QueueStats(topic, True, 0, 1),
        QueueStats(f"{topic}.nobody2", False),
    ]


def test_nobody_answers_on_a_topic_nobody_serves(rpc: messaging.Transport, topic: str) -> None:
    found = status.topic_status(rpc, messaging.Target(topic=topic), timeout=0.5)
    assert found.answers == ()
    assert found.queues == (QueueStats(topic, False),)
    assert not found.ok
