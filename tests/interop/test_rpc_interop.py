"""RPC between the real oslo.messaging and this project, both ways, over RabbitMQ.

Our side is used exactly as a service uses it: ``get_rpc_transport`` with
``allowed_remote_exmods``, ``get_rpc_client`` and ``get_rpc_server``. Our
endpoint mirrors the oslo peer's ``PeerEndpoint`` method for method.
"""

from __future__ import annotations

import contextlib
import queue
import time
from typing import Any

import interop_errors  # type: ignore[import-not-found,unused-ignore]  # top-level, see conftest
import pytest
from oslo_config import cfg
from oslo_context.context import RequestContext

import messaging
from tests.interop.oslo_env import (
    InteropNames,
    OsloPeers,
    context_kwargs,
    expected_wire_context,
    subset,
)

pytestmark = pytest.mark.broker

ALLOWED = [interop_errors.ALLOWED_MODULE]
Invocation = dict[str, Any]


class OurPrivateError(Exception):
    """Raised by our endpoint from a module no client allows: oslo sees RemoteError."""


def as_dict(ctxt: Any) -> Any:
    return ctxt.to_dict() if hasattr(ctxt, "to_dict") else ctxt


class OurEndpoint:
    """Our RPC endpoint; every invocation is also put in ``invocations``."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.invocations: queue.Queue[Invocation] = queue.Queue()

    def _record(self, method: str, ctxt: Any, args: dict[str, Any]) -> None:
        self.invocations.put(
            {"method": method, "args": args, "ctxt": as_dict(ctxt), "server": self.server}
        )

    def echo(self, ctxt: Any, **kwargs: Any) -> dict[str, Any]:
        self._record("echo", ctxt, kwargs)
        return {"args": kwargs, "ctxt": as_dict(ctxt), "server": self.server}

    def add(self, ctxt: Any, a: Any, b: Any) -> Any:
        self._record("add", ctxt, {"a": a, "b": b})
        return a + b

    def record(self, ctxt: Any, **kwargs: Any) -> None:
        self._record("record", ctxt, kwargs)

    def raise_value_error(self, ctxt: Any, msg: str) -> None:
        self._record("raise_value_error", ctxt, {"msg": msg})
        raise ValueError(msg)

    def raise_custom(self, ctxt: Any, msg: str, code: int = 0) -> None:
        self._record("raise_custom", ctxt, {"msg": msg, "code": code})
        raise interop_errors.InteropError(msg, code=code)

    def raise_disallowed(self, ctxt: Any, msg: str) -> None:
        self._record("raise_disallowed", ctxt, {"msg": msg})
        raise OurPrivateError(msg)

    def slow(self, ctxt: Any, seconds: float) -> dict[str, Any]:
        self._record("slow", ctxt, {"seconds": seconds})
        time.sleep(seconds)  # the point of the method: a call outliving call_monitor_timeout
        return {"slept": seconds, "server": self.server}

    def wait_for(self, method: str, timeout: float) -> Invocation:
        """The next invocation of ``method`` (others are skipped) within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self.invocations.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"{self.server}: no {method!r} invocation in {timeout} s")
            if got["method"] == method:
                return got


def our_transport(stack: contextlib.ExitStack, conf: cfg.ConfigOpts, url: str) -> Any:
    transport = messaging.get_rpc_transport(conf, url, allowed_remote_exmods=ALLOWED)
    stack.callback(transport.cleanup)
    return transport


def start_our_server(
    stack: contextlib.ExitStack, conf: cfg.ConfigOpts, url: str, topic: str, server: str
) -> OurEndpoint:
    endpoint = OurEndpoint(server)
    rpc_server = messaging.get_rpc_server(
        our_transport(stack, conf, url),
        messaging.Target(topic=topic, server=server),
        [endpoint],
        executor="threading",
    )
    rpc_server.start()
    stack.callback(rpc_server.wait)
    stack.callback(rpc_server.stop)
    return endpoint


def our_client(
    stack: contextlib.ExitStack, conf: cfg.ConfigOpts, url: str, topic: str
) -> messaging.RPCClient:
    return messaging.get_rpc_client(
        our_transport(stack, conf, url), messaging.Target(topic=topic), timeout=30
    )


# oslo RPCClient -> our server


def test_oslo_client_calls_and_casts_to_our_server(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic, server = names.topic("o2m"), names.server("ours")
    endpoint = start_our_server(stack, our_conf, rabbit_url, topic, server)
    ctxt = context_kwargs()

    echo, add, directed, cast = oslo_peers.rpc_client(
        topic,
        [
            {"kind": "call", "method": "echo", "args": {"x": 1, "text": "héllo", "l": [1, None]}},
            {"kind": "call", "method": "add", "args": {"a": 2, "b": 40}},
            {"kind": "call", "method": "add", "args": {"a": 1, "b": 2}, "server": server},
            {"kind": "cast", "method": "record", "args": {"cast": "one"}},
        ],
        context=ctxt,
    )

    assert echo["event"] == "result", (echo, oslo_peers.env.describe())
    assert echo["result"]["args"] == {"x": 1, "text": "héllo", "l": [1, None]}
    assert echo["result"]["server"] == server
    want = expected_wire_context(ctxt, redacted=False)
    assert subset(echo["result"]["ctxt"], want) == want
    assert (add["result"], directed["result"]) == (42, 3), (add, directed)
    assert cast["event"] == "result" and cast["result"] is None, cast
    recorded = endpoint.wait_for("record", timeout=20)
    assert recorded["args"] == {"cast": "one"}
    assert subset(recorded["ctxt"], want) == want


def test_oslo_fanout_reaches_all_our_servers(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic = names.topic("o2mfan")
    endpoints = [
        start_our_server(stack, our_conf, rabbit_url, topic, names.server(f"ours{i}"))
        for i in range(2)
    ]

    (outcome,) = oslo_peers.rpc_client(
        topic, [{"kind": "cast", "method": "record", "args": {"n": 7}, "fanout": True}]
    )

    assert outcome["event"] == "result", outcome
    for endpoint in endpoints:
        assert endpoint.wait_for("record", timeout=20)["args"] == {"n": 7}, endpoint.server


def test_oslo_client_gets_our_exceptions(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic = names.topic("o2mexc")
    start_our_server(stack, our_conf, rabbit_url, topic, names.server("ours"))

    custom, builtin, private = oslo_peers.rpc_client(
        topic,
        [
            {"kind": "call", "method": "raise_custom", "args": {"msg": "quota", "code": 7}},
            {"kind": "call", "method": "raise_value_error", "args": {"msg": "bad value"}},
            {"kind": "call", "method": "raise_disallowed", "args": {"msg": "secret"}},
        ],
    )

    assert (custom["class"], custom["module"]) == (
        "InteropError_Remote",
        "interop_errors_Remote",
    ), (custom, oslo_peers.env.describe())
    assert "interop_errors.InteropError" in custom["mro"]
    assert custom["code"] == 7
    assert custom["message"].startswith("quota\n")
    assert (builtin["class"], builtin["module"]) == ("ValueError", "builtins"), builtin
    assert builtin["message"].startswith("bad value\n")
    assert (private["class"], private["exc_type"], private["value"]) == (
        "RemoteError",
        "OurPrivateError",
        "secret",
    ), private


def test_oslo_call_monitoring_with_our_server(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic, server = names.topic("o2mslow"), names.server("ours")
    start_our_server(stack, our_conf, rabbit_url, topic, server)

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

    # oslo gives up after 2 s unless our server sends call-monitor heartbeats.
    assert outcome["event"] == "result", outcome
    assert outcome["result"] == {"slept": 5, "server": server}


# our RPCClient -> oslo server


def test_our_client_calls_and_casts_to_oslo_server(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic, server_name = names.topic("m2o"), names.server("oslo")
    server = oslo_peers.rpc_server(topic, server_name)
    client = our_client(stack, our_conf, rabbit_url, topic)
    kwargs = context_kwargs()
    ctxt = RequestContext(**kwargs)

    echo = client.call(ctxt, "echo", x=1, text="héllo", l=[1, None])
    added = client.call(ctxt, "add", a=2, b=40)
    directed = client.prepare(server=server_name).call(ctxt, "add", a=1, b=2)
    client.cast(ctxt, "record", cast="one")

    assert echo["args"] == {"x": 1, "text": "héllo", "l": [1, None]}, oslo_peers.env.describe()
    assert echo["server"] == server_name
    want = expected_wire_context(kwargs, redacted=False)
    assert subset(echo["ctxt"], want) == want
    assert (added, directed) == (42, 3)
    recorded = server.wait_event("invoked", timeout=20, method="record")
    assert recorded["args"] == {"cast": "one"}
    assert subset(recorded["ctxt"], want) == want


def test_our_fanout_reaches_all_oslo_servers(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic = names.topic("m2ofan")
    servers = [oslo_peers.rpc_server(topic, names.server(f"oslo{i}")) for i in range(2)]
    client = our_client(stack, our_conf, rabbit_url, topic)

    client.prepare(fanout=True).cast(RequestContext(**context_kwargs()), "record", n=7)

    for server in servers:
        got = server.wait_event("invoked", timeout=20, method="record")
        assert got["args"] == {"n": 7}, server.name


def test_our_client_gets_oslo_exceptions(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic = names.topic("m2oexc")
    oslo_peers.rpc_server(topic, names.server("oslo"))
    client = our_client(stack, our_conf, rabbit_url, topic)
    ctxt = RequestContext(**context_kwargs())

    with pytest.raises(interop_errors.InteropError) as custom:
        client.call(ctxt, "raise_custom", msg="quota", code=7)
    assert type(custom.value).__name__ == "InteropError_Remote", oslo_peers.env.describe()
    assert custom.value.code == 7
    assert str(custom.value).startswith("quota\n")

    with pytest.raises(ValueError) as builtin:
        client.call(ctxt, "raise_value_error", msg="bad value")
    assert type(builtin.value) is ValueError
    assert str(builtin.value).startswith("bad value\n")

    with pytest.raises(messaging.RemoteError) as private:
        client.call(ctxt, "raise_disallowed", msg="secret")
    assert (private.value.exc_type, private.value.value) == ("PeerPrivateError", "secret")


def test_our_call_monitoring_with_oslo_server(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic, server_name = names.topic("m2oslow"), names.server("oslo")
    oslo_peers.rpc_server(topic, server_name)
    client = our_client(stack, our_conf, rabbit_url, topic)

    # Our client gives up after 2 s unless the oslo server sends call-monitor heartbeats.
    result = client.prepare(call_monitor_timeout=2, timeout=30).call(
        RequestContext(**context_kwargs()), "slow", seconds=5
    )

    assert result == {"slept": 5, "server": server_name}
