"""RPCClient on fake://: calls, casts, fanout, prepare(), version caps, retry, delivery options."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging import wire
from messaging.drivers.memory import reset_brokers
from tests.unit.rpc_support import (
    TIMEOUT,
    Calls,
    Echo,
    broker,
    make_conf,
    rpc_transport,
    serving,
)


@pytest.fixture(autouse=True)
def fresh_broker() -> Iterator[None]:
    reset_brokers()
    yield
    reset_brokers()


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    return make_conf()


@pytest.fixture
def server_transport(conf: cfg.ConfigOpts) -> Iterator[messaging.Transport]:
    transport = rpc_transport(conf)
    yield transport
    transport.cleanup()


@pytest.fixture
def client_transport(conf: cfg.ConfigOpts) -> Iterator[messaging.Transport]:
    transport = rpc_transport(conf)
    yield transport
    transport.cleanup()


@pytest.fixture
def client(client_transport: messaging.Transport) -> messaging.RPCClient:
    return messaging.get_rpc_client(client_transport, messaging.Target(topic="t"), timeout=TIMEOUT)


def target(server: str = "s1", **kwargs: Any) -> messaging.Target:
    return messaging.Target(topic="t", server=server, **kwargs)


# Calls and casts


def test_call_returns_the_result_of_the_endpoint(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    value = {"name": "vm1", "sizes": [1, 2.5], "ok": True, "none": None}
    with serving(server_transport, target(), [Echo()]):
        assert client.call({"user": "u1"}, "echo", value=value) == value


def test_the_endpoint_gets_the_context_with_client_timeout_added(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    with serving(server_transport, target(), [Echo()]):
        seen = client.prepare(call_monitor_timeout=5).call({"user": "u1", "n": 2}, "context")
        plain = client.call({"user": "u1"}, "context")
    # As on oslo's wire: the caller's call-monitor timeout travels as client_timeout.
    assert seen == {"user": "u1", "n": 2, "client_timeout": 5}
    assert plain == {"user": "u1", "client_timeout": None}


def test_a_request_context_object_travels_as_its_dict(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    from oslo_context import context

    ctxt = context.RequestContext(user_id="u1", project_id="p1", request_id="req-42")
    with serving(server_transport, target(), [Echo()]):
        seen = client.call(ctxt, "context")
    assert seen["user"] == "u1"  # to_dict() names the user "user"
    assert seen["project_id"] == "p1"
    assert seen["request_id"] == "req-42"


def test_cast_returns_none_and_the_endpoint_runs(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    endpoint = Echo()
    with serving(server_transport, target(), [endpoint]):
        assert client.cast({}, "note", value=7) is None
        assert endpoint.calls.take(1) == [("server", "note", 7)]


def test_fanout_cast_reaches_every_server_of_the_topic_once(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    calls = Calls()
    endpoints = [Echo(name, calls) for name in ("s1", "s2", "s3")]
    with (
        serving(server_transport, target("s1"), [endpoints[0]]),
        serving(server_transport, target("s2"), [endpoints[1]]),
        serving(server_transport, target("s3"), [endpoints[2]]),
    ):
        client.prepare(fanout=True).cast({}, "note", value="all")
        received = calls.take(3)
        # A call afterwards is handled after the fanout copies were taken: none is left.
        client.call({}, "echo", value="sync")
        calls.take(1)
        assert calls.pending() == []
    assert sorted(received) == [("s1", "note", "all"), ("s2", "note", "all"), ("s3", "note", "all")]


def test_directed_call_goes_to_the_named_server_only(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    calls = Calls()
    with (
        serving(server_transport, target("s1"), [Echo("s1", calls)]),
        serving(server_transport, target("s2"), [Echo("s2", calls)]),
    ):
        answers = {client.prepare(server="s2").call({}, "whoami") for _ in range(10)}
    assert answers == {"s2"}
    assert {name for name, _method, _value in calls.pending()} == {"s2"}


def test_calls_to_a_topic_are_shared_between_its_servers(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    with (
        serving(server_transport, target("s1"), [Echo("s1")]),
        serving(server_transport, target("s2"), [Echo("s2")]),
    ):
        answers = [client.call({}, "whoami") for _ in range(20)]
    # Competing consumers on one queue, served in turn: both get work.
    assert sorted(set(answers)) == ["s1", "s2"]
    assert len(answers) == 20


def test_a_call_cannot_be_fanned_out(client: messaging.RPCClient) -> None:
    with pytest.raises(messaging.InvalidTarget, match="fanout"):
        client.prepare(fanout=True).call({}, "echo")


def test_a_target_without_topic_is_rejected(client_transport: messaging.Transport) -> None:
    client = messaging.get_rpc_client(client_transport, messaging.Target())
    with pytest.raises(messaging.InvalidTarget, match="topic"):
        client.cast({}, "note")


# What goes on the wire (§4.3)


def _queued_request(topic: str = "t") -> wire.Decoded:
    bodies = broker().messages(topic)
    assert len(bodies) == 1
    return wire.decode(bodies[0])


def test_request_on_the_wire_carries_namespace_and_version_only_when_set(
    client_transport: messaging.Transport,
) -> None:
    broker().declare_queue("t", "openstack", "t")
    client = messaging.get_rpc_client(client_transport, messaging.Target(topic="t"))
    client.cast({"user": "u1"}, "note", value=1)
    bare = _queued_request()
    broker().declare_queue("t2", "openstack", "t2")
    client.prepare(topic="t2", namespace="ns", version="1.4").cast({}, "note")
    full = _queued_request("t2")
    assert bare.message == {"method": "note", "args": {"value": 1}}
    assert bare.ctxt == {"user": "u1", "client_timeout": None}
    assert bare.msg_id is None and bare.reply_q is None
    assert full.message == {"method": "note", "args": {}, "namespace": "ns", "version": "1.4"}


# prepare()


def test_prepare_overrides_without_changing_the_original(
    client_transport: messaging.Transport,
) -> None:
    options = messaging.TransportOptions(at_least_once=True)
    client = messaging.get_rpc_client(
        client_transport, messaging.Target(topic="t", version="1.0"), timeout=3, retry=2
    )
    prepared = client.prepare(
        exchange="nova",
        topic="t2",
        namespace="ns",
        version="1.2",
        server="s1",
        fanout=False,
        timeout=7,
        version_cap="1.5",
        retry=0,
        call_monitor_timeout=4,
        transport_options=options,
    )
    assert prepared.target == messaging.Target(
        exchange="nova", topic="t2", namespace="ns", version="1.2", server="s1", fanout=False
    )
    assert (prepared.timeout, prepared.version_cap, prepared.retry) == (7, "1.5", 0)
    assert (prepared.call_monitor_timeout, prepared.transport_options) == (4, options)
    assert client.target == messaging.Target(topic="t", version="1.0")
    assert (client.timeout, client.retry, client.version_cap) == (3, 2, None)
    # A prepared context prepares further, inheriting what it does not override.
    again = prepared.prepare(server="s2")
    assert again.target.server == "s2" and again.target.topic == "t2"
    assert (again.timeout, again.retry, again.call_monitor_timeout) == (7, 0, 4)


def test_prepare_can_clear_an_attribute_with_none(client_transport: messaging.Transport) -> None:
    client = messaging.get_rpc_client(
        client_transport, messaging.Target(topic="t", server="s1"), timeout=3
    )
    prepared = client.prepare(server=None, timeout=None)
    assert prepared.target.server is None
    assert prepared.timeout is None


def test_prepare_exchange_selects_the_exchange(
    conf: cfg.ConfigOpts, server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    endpoint = Echo()
    with serving(server_transport, target(exchange="nova"), [endpoint]):
        assert client.prepare(exchange="nova").call({}, "echo", value=1) == 1
        # The default exchange (control_exchange) has nobody on this topic.
        with pytest.raises(messaging.MessagingTimeout):
            client.prepare(timeout=0.2).call({}, "echo", value=2)
    assert endpoint.calls.pending() == [("server", "echo", 1)]


def test_prepare_topic_selects_the_topic(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    with serving(server_transport, messaging.Target(topic="other", server="s1"), [Echo("o")]):
        assert client.prepare(topic="other").call({}, "whoami") == "o"


@pytest.mark.parametrize("bad", ["1", "one.two", "1.x", "", "1.2.3.4"])
def test_a_malformed_version_is_refused(client: messaging.RPCClient, bad: str) -> None:
    with pytest.raises(messaging.MessagingException, match="major and minor"):
        client.prepare(version=bad)
    # oslo raises a MessagingException; it is also a ValueError here.
    with pytest.raises(ValueError, match=repr(bad)):
        client.prepare(version=bad)


def test_a_malformed_version_cap_is_refused(client: messaging.RPCClient) -> None:
    with pytest.raises(ValueError, match="'five'"):
        client.prepare(version_cap="five")


# Version caps


@pytest.mark.parametrize(
    ("version", "allowed"),
    [("1.4", True), ("1.5", True), ("1.6", False), ("2.0", False), ("0.9", False), (None, False)],
)
def test_can_send_version_against_the_cap(
    client_transport: messaging.Transport, version: str | None, allowed: bool
) -> None:
    client = messaging.get_rpc_client(
        client_transport, messaging.Target(topic="t"), version_cap="1.5"
    )
    assert client.can_send_version(version) is allowed


def test_can_send_version_defaults_to_the_target_version(
    client_transport: messaging.Transport,
) -> None:
    client = messaging.get_rpc_client(
        client_transport, messaging.Target(topic="t", version="1.6"), version_cap="1.5"
    )
    assert client.can_send_version() is False
    assert client.prepare(version="1.3").can_send_version() is True
    # Without a cap every version can be sent.
    uncapped = messaging.get_rpc_client(client_transport, messaging.Target(topic="t"))
    assert uncapped.can_send_version("9.9") is True


def test_a_version_above_the_cap_is_not_sent(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    endpoint = Echo()
    capped = client.prepare(version_cap="1.5", version="1.6")
    with serving(server_transport, target(), [endpoint], executor="blocking"):
        with pytest.raises(messaging.RPCVersionCapError, match=r"1\.6") as info:
            capped.call({}, "echo", value=1)
        with pytest.raises(messaging.RPCVersionCapError):
            capped.cast({}, "note", value=2)
        assert client.call({}, "echo", value=3) == 3
    assert info.value.version == "1.6" and info.value.version_cap == "1.5"
    # The blocking executor handles in order: had the refused cast gone out,
    # it would have been handled before the last call.
    assert endpoint.calls.pending() == [("server", "echo", 3)]


# Timeouts


def test_rpc_response_timeout_comes_from_the_configuration(conf: cfg.ConfigOpts) -> None:
    conf.set_override("rpc_response_timeout", 1)
    transport = rpc_transport(conf)
    try:
        client = messaging.get_rpc_client(transport, messaging.Target(topic="nobody"))
        with pytest.raises(messaging.MessagingTimeout, match=r"no reply within 1s"):
            client.call({}, "echo")
    finally:
        transport.cleanup()


def test_an_explicit_timeout_wins_over_the_configuration(
    conf: cfg.ConfigOpts, client_transport: messaging.Transport
) -> None:
    conf.set_override("rpc_response_timeout", 600)
    client = messaging.get_rpc_client(
        client_transport, messaging.Target(topic="nobody"), timeout=0.2
    )
    with pytest.raises(messaging.MessagingTimeout, match=r"no reply within 0.2s"):
        client.call({}, "echo")
    with pytest.raises(messaging.MessagingTimeout, match=r"no reply within 0.1s"):
        client.prepare(timeout=0.1).call({}, "echo")


# Retry (the broker's injected connection failures stand for a broken connection)


def test_retry_zero_fails_at_once_with_message_delivery_failure(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    endpoint = Echo()
    with serving(server_transport, target(), [endpoint], executor="blocking"):
        broker().fail_next_sends(1)
        with pytest.raises(messaging.MessageDeliveryFailure, match="1 attempt"):
            client.prepare(retry=0).cast({}, "note", value="lost")
        broker().fail_next_sends(1)
        with pytest.raises(messaging.MessageDeliveryFailure):
            client.prepare(retry=0).call({}, "echo", value="lost")
        assert client.call({}, "echo", value="after") == "after"
    # Neither failed request reached the server (it handles in order).
    assert endpoint.calls.pending() == [("server", "echo", "after")]


@pytest.mark.parametrize("retries", [1, 3])
def test_retry_n_succeeds_after_n_failures_and_fails_after_n_plus_one(
    server_transport: messaging.Transport, client: messaging.RPCClient, retries: int
) -> None:
    endpoint = Echo()
    with serving(server_transport, target(), [endpoint], executor="blocking"):
        broker().fail_next_sends(retries)
        assert client.prepare(retry=retries).call({}, "echo", value="ok") == "ok"
        broker().fail_next_sends(retries + 1)
        with pytest.raises(messaging.MessageDeliveryFailure, match=f"{retries + 1} attempt"):
            client.prepare(retry=retries).cast({}, "note", value="lost")
        client.prepare(retry=retries).cast({}, "note", value="kept")
        assert client.call({}, "echo", value="sync") == "sync"
    assert [value for _n, _m, value in endpoint.calls.pending()] == ["ok", "kept", "sync"]


@pytest.mark.parametrize("retry", [None, -1])
def test_retry_none_or_minus_one_retries_until_it_gets_through(
    server_transport: messaging.Transport, client: messaging.RPCClient, retry: int | None
) -> None:
    with serving(server_transport, target(), [Echo()]):
        broker().fail_next_sends(25)
        assert client.prepare(retry=retry).call({}, "echo", value="through") == "through"


# Delivery options and driver errors


def test_at_least_once_raises_message_undeliverable_when_nobody_listens(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    sure = client.prepare(
        topic="nobody", timeout=TIMEOUT, transport_options=messaging.TransportOptions(True)
    )
    with pytest.raises(messaging.MessageUndeliverable, match="nobody") as info:
        sure.call({}, "echo")
    with pytest.raises(messaging.MessageUndeliverable):
        sure.cast({}, "note")
    assert info.value.routing_key == "nobody"
    assert info.value.message["method"] == "echo"
    # Where a server listens, the same options deliver.
    with serving(server_transport, target(), [Echo()]):
        sure = client.prepare(transport_options=messaging.TransportOptions(True))
        assert sure.call({}, "echo", value=1) == 1


def test_without_at_least_once_a_cast_to_nobody_is_dropped_quietly(
    client: messaging.RPCClient,
) -> None:
    assert client.prepare(topic="nobody").cast({}, "note") is None


def test_a_driver_error_reaches_the_caller_as_client_send_error(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    # 't_fanout' is the fanout exchange of topic 't'; using it as a topic
    # exchange is refused by the broker, as RabbitMQ refuses it.
    with (
        serving(server_transport, target(), [Echo()]),
        pytest.raises(messaging.ClientSendError, match="fanout") as info,
    ):
        client.prepare(exchange="t_fanout").cast({}, "note")
    assert isinstance(info.value.ex, messaging.exceptions.TransportDriverError)
    assert info.value.target.exchange == "t_fanout"


def test_an_argument_that_is_not_json_fails_before_sending(client: messaging.RPCClient) -> None:
    broker().declare_queue("t", "openstack", "t")
    with pytest.raises(messaging.MessageSerializationError, match="value"):
        client.cast({}, "note", value=object())
    assert broker().queue_depth("t") == 0


# Construction, serializers


def test_get_rpc_client_builds_quietly_and_direct_construction_warns(
    client_transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="messaging.rpc.client")
    built = messaging.get_rpc_client(client_transport, messaging.Target(topic="t"))
    assert caplog.records == []
    direct = messaging.RPCClient(client_transport, messaging.Target(topic="t"))
    assert ["get_rpc_client" in r.getMessage() for r in caplog.records] == [True]
    assert type(built) is type(direct) is messaging.RPCClient


def test_get_rpc_client_builds_the_given_class(client_transport: messaging.Transport) -> None:
    class MyClient(messaging.RPCClient):
        pass

    client = messaging.get_rpc_client(
        client_transport, messaging.Target(topic="t"), client_cls=MyClient, timeout=4
    )
    assert isinstance(client, MyClient) and client.timeout == 4


def test_a_notification_transport_works_for_rpc_with_a_warning(
    conf: cfg.ConfigOpts, server_transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    notification_transport = messaging.get_notification_transport(conf, "fake://")
    try:
        client = messaging.get_rpc_client(notification_transport, messaging.Target(topic="t"))
        assert any("get_rpc_transport" in r.getMessage() for r in caplog.records)
        with serving(server_transport, target(), [Echo()]):
            assert client.call({}, "echo", value=5) == 5
    finally:
        notification_transport.cleanup()


class TaggingSerializer(messaging.Serializer):
    """Marks entities and contexts so that each conversion can be seen."""

    def __init__(self, side: str) -> None:
        self.side = side

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return {"by": f"{self.side}-out", "value": entity}

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return {"by": f"{self.side}-in", "value": entity}

    def serialize_context(self, ctxt: Any) -> dict[str, Any]:
        return {"ctx": ctxt["name"], "via": self.side}

    def deserialize_context(self, ctxt: dict[str, Any]) -> Any:
        return {"name": ctxt["ctx"], "seen_by": self.side}


def test_serializers_convert_arguments_results_and_contexts_on_both_sides(
    server_transport: messaging.Transport, client_transport: messaging.Transport
) -> None:
    class Endpoint:
        def show(self, ctxt: Any, value: Any) -> Any:
            return {"ctxt": ctxt, "value": value}

    client = messaging.get_rpc_client(
        client_transport,
        messaging.Target(topic="t"),
        timeout=TIMEOUT,
        serializer=TaggingSerializer("client"),
    )
    with serving(server_transport, target(), [Endpoint()], serializer=TaggingSerializer("server")):
        result = client.call({"name": "req-1"}, "show", value=1)
    sent = {"by": "client-out", "value": 1}
    received = {"by": "server-in", "value": sent}
    returned = {
        "by": "server-out",
        "value": {"ctxt": {"name": "req-1", "seen_by": "server"}, "value": received},
    }
    assert result == {"by": "client-in", "value": returned}
