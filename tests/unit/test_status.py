"""The status of a topic (messaging.status) on the in-memory transport.

Several servers on one topic, some stopped: who answers the census, what they
say of themselves, how an anonymous server (one without the control endpoint,
as an oslo.messaging server) is counted, and what the broker counts on the
topic's queues.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

import messaging
from messaging import status
from messaging.drivers.base import QueueStats
from messaging.exceptions import InvalidTarget
from messaging.rpc.control import CONTROL_NAMESPACE
from tests.unit.rpc_support import TIMEOUT, Echo, make_conf, rpc_transport, serving

TOPIC = "census"


@pytest.fixture
def bus() -> Iterator[messaging.Transport]:
    transport = rpc_transport(make_conf())
    yield transport
    transport.cleanup()


def server_of(bus: messaging.Transport, name: str, **kwargs: object) -> messaging.rpc.RPCServer:
    target = messaging.Target(topic=TOPIC, server=name)
    return messaging.get_rpc_server(bus, target, [Echo(name)], executor="threading", **kwargs)


def test_every_running_server_answers_who_it_is(bus: messaging.Transport) -> None:
    client_side = rpc_transport(make_conf())
    servers = [server_of(bus, name) for name in ("s1", "s2", "s3")]
    for server in servers:
        server.start(timeout=TIMEOUT)
    servers[2].stop(timeout=TIMEOUT)
    servers[2].wait(timeout=TIMEOUT)
    try:
        started = time.monotonic()
        answers = status.census(client_side, messaging.Target(topic=TOPIC), timeout=TIMEOUT)
        took = time.monotonic() - started
    finally:
        for server in servers[:2]:
            server.stop(timeout=TIMEOUT)
            server.wait(timeout=TIMEOUT)
        client_side.cleanup()
    assert sorted(a.server for a in answers) == ["s1", "s2"]
    # Every queue the request reached answered: no wait for the timeout.
    assert took < TIMEOUT / 2
    for answer in answers:
        assert answer.known and answer.failure is None
        assert (answer.host, answer.pid, answer.library) == (
            socket.gethostname(),
            os.getpid(),
            "messaging",
        )
        assert 0 < answer.elapsed < took + 0.001
        assert answer.status["topic"] == TOPIC
        assert answer.status["exchange"] == "openstack"
        assert answer.status["state"] == "running"
        assert answer.status["ready"] is True and answer.problems == []
        queues = answer.status["queues"]
        assert queues[:2] == [TOPIC, f"{TOPIC}.{answer.server}"]
        assert queues[2].startswith(f"{TOPIC}_fanout_")
    assert [a.elapsed for a in answers] == sorted(a.elapsed for a in answers)


def test_a_status_request_is_not_counted_as_traffic(bus: messaging.Transport) -> None:
    with serving(bus, messaging.Target(topic=TOPIC, server="s1"), [Echo("s1")]) as server:
        client = messaging.get_rpc_client(bus, messaging.Target(topic=TOPIC))
        assert client.call({}, "echo", value=1) == 1
        (first,) = status.census(bus, messaging.Target(topic=TOPIC), timeout=TIMEOUT)
        (second,) = status.census(bus, messaging.Target(topic=TOPIC), timeout=TIMEOUT)
        assert server.health().received == 1
    assert first.status["received"] == second.status["received"] == 1
    assert first.status["in_flight"] == 0


def test_a_server_without_the_control_endpoint_answers_anonymously(
    bus: messaging.Transport,
) -> None:
    ours = server_of(bus, "ours")
    other = server_of(bus, "other")
    # What an oslo.messaging server is: nothing answers the control namespace.
    other.dispatcher.builtin_endpoints.clear()
    with serving_all(ours, other):
        answers = status.census(bus, messaging.Target(topic=TOPIC), timeout=TIMEOUT)
    assert len(answers) == 2
    (anonymous,) = [a for a in answers if not a.known]
    assert anonymous.server is None and anonymous.status == {}
    assert anonymous.failure is not None
    assert anonymous.failure.startswith("UnsupportedVersion: ")
    assert [a.server for a in answers if a.known] == ["ours"]


def test_the_control_endpoint_is_not_one_of_the_service_endpoints(
    bus: messaging.Transport,
) -> None:
    echo = Echo("s1")
    endpoints = [echo]
    server = messaging.get_rpc_server(bus, messaging.Target(topic=TOPIC, server="s1"), endpoints)
    assert server.dispatcher.endpoints == [echo]
    client = messaging.get_rpc_client(
        bus, messaging.Target(topic=TOPIC, namespace=CONTROL_NAMESPACE, version="1.0")
    )
    server.start(timeout=TIMEOUT)
    try:
        # A direct call reaches it too; it answers nothing but its methods.
        assert client.call({}, "status")["server"] == "s1"
        with pytest.raises(messaging.rpc.RemoteError, match="NoSuchMethod"):
            client.call({}, "stop_everything")
    finally:
        server.stop(timeout=TIMEOUT)
        server.wait(timeout=TIMEOUT)


def test_the_explicit_access_policy_still_answers_status(bus: messaging.Transport) -> None:
    server = server_of(bus, "strict", access_policy=messaging.rpc.ExplicitRPCAccessPolicy)
    with serving_all(server):
        (answer,) = status.census(bus, messaging.Target(topic=TOPIC), timeout=TIMEOUT)
    assert answer.server == "strict"


def test_a_call_to_a_fanout_target_is_still_refused(bus: messaging.Transport) -> None:
    with serving(bus, messaging.Target(topic=TOPIC, server="s1"), [Echo("s1")]):
        fanout = messaging.Target(topic=TOPIC, fanout=True)
        with pytest.raises(InvalidTarget):
            bus.send(fanout, {}, {"method": "echo", "args": {}}, wait_for_reply=True, timeout=1)
        client = messaging.get_rpc_client(bus, fanout)
        with pytest.raises(InvalidTarget):
            client.call({}, "echo")


def test_nobody_answers_on_a_topic_without_servers(bus: messaging.Transport) -> None:
    found = status.topic_status(bus, messaging.Target(topic="nobody"), timeout=TIMEOUT)
    assert found.answers == ()
    assert not found.ok
    assert found.problems == [
        f"no server of topic 'nobody' answered within {TIMEOUT:g} s",
        "queue 'nobody' does not exist",
    ]
    assert found.elapsed < TIMEOUT / 2  # no queue got the request: nothing to wait for


def test_the_topic_queues_with_depth_and_consumers(bus: messaging.Transport) -> None:
    first, second, gone = (server_of(bus, name) for name in ("s1", "s2", "gone"))
    gone.start(timeout=TIMEOUT)
    gone.stop(timeout=TIMEOUT)
    gone.wait(timeout=TIMEOUT)
    # Two casts wait in the queue of the server that went away.
    caster = messaging.get_rpc_client(bus, messaging.Target(topic=TOPIC, server="gone"))
    caster.cast({}, "note", value=1)
    caster.cast({}, "note", value=2)
    with serving_all(first, second):
        found = status.topic_status(bus, messaging.Target(topic=TOPIC), timeout=TIMEOUT)
        more = status.queue_stats(bus, [f"{TOPIC}.gone", f"{TOPIC}.never"])
    assert found.ok, found.problems
    assert sorted(a.server for a in found.answers) == ["s1", "s2"]
    assert found.queues is not None
    by_name = {q.name: q for q in found.queues}
    assert by_name[TOPIC] == QueueStats(TOPIC, True, 0, 2)
    assert by_name[f"{TOPIC}.s1"] == QueueStats(f"{TOPIC}.s1", True, 0, 1)
    fanout = [q for q in found.queues if q.name.startswith(f"{TOPIC}_fanout_")]
    assert len(fanout) == 2 and all(q.consumers == 1 for q in fanout)
    assert more == [
        QueueStats(f"{TOPIC}.gone", True, 2, 0),
        QueueStats(f"{TOPIC}.never", False),
    ]


def test_a_queue_without_consumers_is_a_problem() -> None:
    found = status.TopicStatus(
        topic="t",
        exchange=None,
        timeout=1.0,
        answers=(status.Answer(0.01, server="s1", library="messaging", status={"ready": True}),),
        queues=(QueueStats("t", True, 0, 1), QueueStats("t.s1", True, 5, 0)),
    )
    assert found.problems == ["queue 't.s1' has no consumer (5 message(s) waiting)"]
    assert not found.ok
    assert found.as_dict()["ok"] is False


def test_a_server_that_is_not_ready_is_a_problem() -> None:
    unready = status.Answer(
        0.01,
        server="s1",
        host="h1",
        library="messaging",
        status={"ready": False, "problems": ["not connected to the broker"]},
    )
    found = status.TopicStatus("t", None, 1.0, (unready,), None, "cannot tell")
    assert found.problems == ["server 's1' on h1: not connected to the broker"]


class serving_all:  # noqa: N801 - used as a context manager, like contextlib's
    """Start servers for a block; stop and wait for each after it."""

    def __init__(self, *servers: messaging.rpc.RPCServer) -> None:
        self.servers = servers

    def __enter__(self) -> None:
        for server in self.servers:
            server.start(timeout=TIMEOUT)

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.stop(timeout=TIMEOUT)
            server.wait(timeout=TIMEOUT)


def test_more_consumers_than_answers_is_a_problem() -> None:
    answer = status.Answer(0.01, server="s1", library="messaging", status={"ready": True})
    found = status.TopicStatus(
        "t", None, 2.0, (answer,), (QueueStats("t", True, 0, 3), QueueStats("t.s1", True, 0, 1))
    )
    assert found.problems == [
        "queue 't' has 3 consumers but 1 server(s) answered: a server is too busy to answer "
        "within 2 s, stuck, or no longer receives fanout requests"
    ]


def test_an_expected_server_that_does_not_answer_is_a_problem() -> None:
    ours = status.Answer(0.01, server="s1", library="messaging", status={"ready": True})
    anonymous = status.Answer(0.02, failure="UnsupportedVersion: ...")
    alone = status.TopicStatus("t", None, 2.0, (ours,), None, expected=("s1", "s2"))
    assert alone.missing == ["s2"]
    assert alone.problems == ["server 's2' did not answer within 2 s"]
    # An anonymous answer may be s2 (an oslo.messaging server cannot say who it is).
    with_other = status.TopicStatus("t", None, 2.0, (ours, anonymous), None, expected=("s1", "s2"))
    assert with_other.missing == ["s2"] and with_other.problems == []
    two_missing = status.TopicStatus("t", None, 2.0, (anonymous,), None, expected=("s1", "s2"))
    assert two_missing.problems == [
        "server 's1' did not answer within 2 s (or is one of the 1 anonymous servers)",
        "server 's2' did not answer within 2 s (or is one of the 1 anonymous servers)",
    ]
