"""The harness itself: real oslo.messaging talking to itself over the local RabbitMQ.

If these fail, the interop tests against this project mean nothing; they also
pin down what oslo does, which the oslo <-> ours tests then expect of us.
"""

from __future__ import annotations

import re
import uuid

import pytest

from tests.interop.oslo_env import (
    TIMESTAMP_PATTERN,
    InteropNames,
    OsloPeers,
    context_kwargs,
    expected_wire_context,
    subset,
)

pytestmark = pytest.mark.broker


def test_notifier_to_listener_v2_with_context(oslo_peers: OsloPeers, names: InteropNames) -> None:
    topic = names.topic("notif")
    listener = oslo_peers.listen([topic], count=1)
    ctxt = context_kwargs()
    payload = {"instance_id": "abc", "state": "active", "nested": {"n": [1, 2.5, None]}}

    sent = oslo_peers.notify(
        [topic],
        [payload],
        event_type="compute.instance.create.end",
        publisher_id="compute.host1",
        priority="info",
        context=ctxt,
    )

    assert len(sent) == 1, oslo_peers.env.describe()
    got = listener.wait_event("notification", timeout=20)
    assert got["priority"] == "info"
    assert got["publisher_id"] == "compute.host1"
    assert got["event_type"] == "compute.instance.create.end"
    assert got["payload"] == payload
    want = expected_wire_context(ctxt, redacted=True)
    assert subset(got["ctxt"], want) == want, oslo_peers.env.describe()
    assert str(uuid.UUID(got["metadata"]["message_id"])) == got["metadata"]["message_id"]
    assert re.fullmatch(TIMESTAMP_PATTERN, got["metadata"]["timestamp"])
    assert listener.wait_exit(timeout=20) == 0


def test_notifier_v1_to_listener(oslo_peers: OsloPeers, names: InteropNames) -> None:
    topic = names.topic("notif1")
    listener = oslo_peers.listen([topic], count=1)

    oslo_peers.notify(
        [topic],
        [{"volume": 7}],
        event_type="volume.delete.start",
        publisher_id="volume.host2",
        priority="warn",
        driver="messaging",
    )

    got = listener.wait_event("notification", timeout=20)
    assert (got["priority"], got["publisher_id"], got["event_type"], got["payload"]) == (
        "warn",
        "volume.host2",
        "volume.delete.start",
        {"volume": 7},
    )
    # A notification sent without a context carries none.
    assert subset(got["ctxt"], ["user", "request_id"]) == {
        "user": "<missing>",
        "request_id": "<missing>",
    }


def test_every_pool_gets_every_notification(oslo_peers: OsloPeers, names: InteropNames) -> None:
    topic = names.topic("pools")
    pool_a, pool_b = names.pool("a"), names.pool("b")
    listener_a = oslo_peers.listen([topic], pool=pool_a, count=3, name="pool-a")
    listener_b = oslo_peers.listen([topic], pool=pool_b, count=3, name="pool-b")

    oslo_peers.notify(
        [topic],
        [{"seq": seq} for seq in range(3)],
        event_type="pool.test",
        publisher_id="pooled",
        context=context_kwargs(),
    )

    for listener in (listener_a, listener_b):
        got = listener.collect("notification", 3, timeout=20)
        assert sorted(n["payload"]["seq"] for n in got) == [0, 1, 2], listener.name
        assert listener.wait_exit(timeout=20) == 0


def test_rpc_call_cast_and_directed_call(oslo_peers: OsloPeers, names: InteropNames) -> None:
    topic = names.topic("rpc")
    server_name = names.server("srv1")
    server = oslo_peers.rpc_server(topic, server_name)
    ctxt = context_kwargs()

    outcomes = oslo_peers.rpc_client(
        topic,
        [
            {"kind": "call", "method": "echo", "args": {"x": 1, "text": "héllo", "l": [1, None]}},
            {"kind": "call", "method": "add", "args": {"a": 2, "b": 40}},
            {"kind": "call", "method": "add", "args": {"a": 1, "b": 2}, "server": server_name},
            {"kind": "cast", "method": "record", "args": {"cast": "one"}},
        ],
        context=ctxt,
    )

    echo, add, directed, cast = outcomes
    assert echo["event"] == "result", echo
    assert echo["result"]["args"] == {"x": 1, "text": "héllo", "l": [1, None]}
    want = expected_wire_context(ctxt, redacted=False)
    assert subset(echo["result"]["ctxt"], want) == want
    assert (add["result"], directed["result"]) == (42, 3)
    assert cast == {
        "event": "result",
        "index": 3,
        "kind": "cast",
        "method": "record",
        "result": None,
    }
    recorded = server.wait_event("invoked", timeout=20, method="record")
    assert recorded["args"] == {"cast": "one"}
    assert subset(recorded["ctxt"], want) == want


def test_rpc_fanout_reaches_every_server(oslo_peers: OsloPeers, names: InteropNames) -> None:
    topic = names.topic("fan")
    servers = [oslo_peers.rpc_server(topic, names.server(f"fan{i}")) for i in range(2)]

    (outcome,) = oslo_peers.rpc_client(
        topic, [{"kind": "cast", "method": "record", "args": {"n": 7}, "fanout": True}]
    )

    assert outcome["event"] == "result", outcome
    for server in servers:
        assert server.wait_event("invoked", timeout=20, method="record")["args"] == {"n": 7}


def test_rpc_remote_exceptions(oslo_peers: OsloPeers, names: InteropNames) -> None:
    topic = names.topic("exc")
    oslo_peers.rpc_server(topic, names.server("exc"))

    custom, builtin, private = oslo_peers.rpc_client(
        topic,
        [
            {"kind": "call", "method": "raise_custom", "args": {"msg": "quota", "code": 7}},
            {"kind": "call", "method": "raise_value_error", "args": {"msg": "bad value"}},
            {"kind": "call", "method": "raise_disallowed", "args": {"msg": "secret"}},
        ],
    )

    # Allowed module: a subclass of the original, rebuilt with its kwargs.
    assert custom["event"] == "error"
    assert (custom["class"], custom["module"]) == ("InteropError_Remote", "interop_errors_Remote")
    assert "interop_errors.InteropError" in custom["mro"]
    assert custom["code"] == 7
    assert custom["message"].startswith("quota\n")
    # Builtins are always rebuilt as themselves.
    assert (builtin["class"], builtin["module"]) == ("ValueError", "builtins")
    assert builtin["message"].startswith("bad value\n")
    # Any other module: RemoteError naming the remote class.
    assert (private["class"], private["module"]) == ("RemoteError", "oslo_messaging.rpc.client")
    assert (private["exc_type"], private["value"]) == ("PeerPrivateError", "secret")


def test_rpc_call_monitoring_keeps_a_long_call_alive(
    oslo_peers: OsloPeers, names: InteropNames
) -> None:
    topic = names.topic("slow")
    oslo_peers.rpc_server(topic, names.server("slow"))

    (outcome,) = oslo_peers.rpc_client(
        topic,
        [
            {
                "kind": "call",
                "method": "slow",
                "args": {"seconds": 5},
                "call_monitor_timeout": 2,
                "timeout": 30,
            }
        ],
    )

    # Without the server's heartbeats the client gives up after 2 s.
    assert outcome["event"] == "result", outcome
    assert outcome["result"]["slept"] == 5
