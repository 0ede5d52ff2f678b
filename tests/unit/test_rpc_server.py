"""RPC servers on fake://: lifecycle with calls in flight, ping endpoint, logging of failures."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.memory import reset_brokers
from tests.unit.rpc_support import (
    TIMEOUT,
    Echo,
    Gate,
    Outcome,
    broker,
    join,
    make_conf,
    rpc_transport,
    serving,
)

SERVER_LOG = "messaging.rpc.server"


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
def client(conf: cfg.ConfigOpts) -> Iterator[messaging.RPCClient]:
    transport = rpc_transport(conf)
    yield messaging.get_rpc_client(transport, messaging.Target(topic="t"), timeout=TIMEOUT)
    transport.cleanup()


TARGET = messaging.Target(topic="t", server="s1")


class Held(Echo):
    """An endpoint whose ``slow`` method waits at a gate."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    def slow(self, ctxt: Any, value: Any) -> Any:
        self.gate.hold(value)
        self.calls.put(("server", "slow", value))
        return value


def test_get_rpc_server_builds_an_rpc_server_on_its_target(
    server_transport: messaging.Transport,
) -> None:
    class MyServer(messaging.rpc.RPCServer):
        pass

    endpoint = Echo()
    server = messaging.get_rpc_server(server_transport, TARGET, [endpoint], server_cls=MyServer)
    assert isinstance(server, MyServer)
    assert server.target is TARGET
    assert isinstance(server.dispatcher, messaging.RPCDispatcher)
    assert server.dispatcher.endpoints == [endpoint]


def test_a_server_needs_topic_and_server_name(server_transport: messaging.Transport) -> None:
    server = messaging.get_rpc_server(server_transport, messaging.Target(topic="t"), [Echo()])
    with pytest.raises(messaging.InvalidTarget, match="topic and server"):
        server.start()


def test_an_endpoint_target_that_is_not_a_target_is_a_type_error(
    server_transport: messaging.Transport,
) -> None:
    class Confused:
        def target(self, ctxt: Any) -> None:
            """A method named 'target' shadows the reserved attribute."""

    with pytest.raises(TypeError, match=r"must be a messaging\.Target"):
        messaging.get_rpc_server(server_transport, TARGET, [Confused()])


def test_a_listen_failure_is_server_listen_error(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    # The broker holds 'x_fanout' as a topic exchange; a server on topic 'x'
    # needs it as its fanout exchange, which RabbitMQ would refuse as well.
    broker().declare_queue("q", "x_fanout", "q")
    server = messaging.get_rpc_server(
        server_transport, messaging.Target(topic="x", server="s1"), [Echo()]
    )
    with pytest.raises(messaging.ServerListenError, match="x_fanout") as info:
        server.start()
    assert info.value.target == messaging.Target(topic="x", server="s1")


def test_a_reply_to_a_caller_that_went_away_is_dropped_with_a_warning(
    conf: cfg.ConfigOpts,
    server_transport: messaging.Transport,
    client: messaging.RPCClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = Gate()
    caller_transport = rpc_transport(conf)
    gone = messaging.get_rpc_client(caller_transport, messaging.Target(topic="t"), timeout=TIMEOUT)
    with serving(server_transport, TARGET, [Held(gate)], release=[gate.release]):
        call = Outcome(gone.call, {}, "slow", value="orphan")
        gate.wait_entered(1)
        caller_transport.cleanup()  # the caller's process ends: its reply queue goes
        error = call.error()
        gate.release.set()
        # The server carries on serving others.
        assert client.call({}, "echo", value="next") == "next"
    assert isinstance(error, messaging.MessagingTimeout)
    assert "cleaned up" in str(error)
    assert any(
        r.levelno == logging.WARNING and "drop reply" in r.getMessage() for r in caplog.records
    )


def test_stop_then_wait_finishes_calls_in_flight_and_takes_no_new_ones(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    gate = Gate()
    endpoint = Held(gate)
    server = messaging.get_rpc_server(server_transport, TARGET, [endpoint], executor="threading")
    server.start()
    try:
        in_flight = [Outcome(client.call, {}, "slow", value=n) for n in range(3)]
        assert sorted(gate.wait_entered(3)) == [0, 1, 2]
        server.stop(timeout=TIMEOUT)
        waiting = Outcome(server.wait, timeout=TIMEOUT)

        # Stopped: a new request is not taken, its caller times out.
        with pytest.raises(messaging.MessagingTimeout):
            client.prepare(timeout=0.3).call({}, "echo", value="late")
        with pytest.raises(messaging.MessagingTimeout):
            client.prepare(timeout=0.3, server="s1").call({}, "echo", value="late-direct")
        # wait() is still waiting for the calls in flight.
        assert not waiting.done()
        assert all(not call.done() for call in in_flight)
    finally:
        gate.release.set()
    assert waiting.get() is None
    assert [call.get() for call in in_flight] == [0, 1, 2]
    # The late requests expired unhandled: the stopped server never ran them.
    assert sorted(v for _n, _m, v in endpoint.calls.pending()) == [0, 1, 2]
    assert broker().queue_depth("t") == 0
    assert broker().queue_depth("t.s1") == 0


def test_a_stopped_server_can_be_started_again(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    server = messaging.get_rpc_server(server_transport, TARGET, [Echo()], executor="threading")
    server.start()
    assert client.call({}, "echo", value=1) == 1
    server.stop(timeout=TIMEOUT)
    server.wait(timeout=TIMEOUT)
    server.start()
    try:
        assert client.call({}, "echo", value=2) == 2
    finally:
        server.stop(timeout=TIMEOUT)
        server.wait(timeout=TIMEOUT)


def test_an_endpoint_may_stop_its_own_server(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    class Control:
        server: messaging.rpc.RPCServer | None = None

        def shutdown(self, ctxt: Any) -> str:
            assert self.server is not None
            self.server.stop(timeout=TIMEOUT)
            return "stopping"

    control = Control()
    server = messaging.get_rpc_server(server_transport, TARGET, [control], executor="threading")
    control.server = server
    server.start()
    assert client.call({}, "shutdown") == "stopping"
    waiter = Outcome(server.wait, timeout=TIMEOUT)
    assert waiter.get() is None
    with pytest.raises(messaging.MessagingTimeout):
        client.prepare(timeout=0.2).call({}, "shutdown")


def test_a_method_may_return_nothing(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    with serving(server_transport, TARGET, [Echo()]):
        assert client.call({}, "note", value=1) is None


def test_a_result_that_is_not_json_reaches_the_caller_as_an_error(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    class Bad:
        def thing(self, ctxt: Any) -> object:
            return object()

    with (
        serving(server_transport, TARGET, [Bad()]),
        pytest.raises(messaging.RemoteError) as info,
    ):
        client.call({}, "thing")
    # Instead of a silent timeout, the caller learns why.
    assert info.value.exc_type == "MessageSerializationError"


# Logging of failures


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == SERVER_LOG and r.levelno >= logging.ERROR]


def test_an_unexpected_exception_is_logged_as_an_error(
    server_transport: messaging.Transport,
    client: messaging.RPCClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing:
        def fail(self, ctxt: Any) -> None:
            raise RuntimeError("disk on fire")

    with (
        serving(server_transport, TARGET, [Failing()]),
        pytest.raises(RuntimeError, match="disk on fire"),
    ):
        client.call({}, "fail")
    [record] = _errors(caplog)
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


def test_no_such_method_is_logged_as_an_error_unless_ignore_errors(
    server_transport: messaging.Transport,
    client: messaging.RPCClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOG)
    with serving(server_transport, TARGET, [Echo()]):
        with pytest.raises(messaging.RemoteError, match="health_ignore_errors") as quiet:
            client.call({}, "health_ignore_errors")
        assert _errors(caplog) == []
        with pytest.raises(messaging.RemoteError, match="health"):
            client.call({}, "health")
    assert quiet.value.exc_type == "NoSuchMethod"
    assert [r.exc_info[1].method for r in _errors(caplog) if r.exc_info] == ["health"]  # type: ignore[union-attr]
    assert any(
        r.levelno == logging.DEBUG and "health_ignore_errors" in r.getMessage()
        for r in caplog.records
    )


# The ping endpoint


def test_ping_answers_pong_when_enabled(
    conf: cfg.ConfigOpts, server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    conf.set_override("rpc_ping_enabled", True)
    with serving(server_transport, TARGET, [Echo()]):
        assert client.call({}, "oslo_rpc_server_ping") == "pong"
        assert client.prepare(server="s1").call({}, "oslo_rpc_server_ping", extra=1) == "pong"


def test_ping_answers_under_the_explicit_access_policy_too(
    conf: cfg.ConfigOpts, server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    conf.set_override("rpc_ping_enabled", True)
    with serving(
        server_transport, TARGET, [Echo()], access_policy=messaging.ExplicitRPCAccessPolicy
    ):
        assert client.call({}, "oslo_rpc_server_ping") == "pong"


def test_ping_is_absent_by_default(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    with (
        serving(server_transport, TARGET, [Echo()]),
        pytest.raises(messaging.RemoteError) as info,
    ):
        client.call({}, "oslo_rpc_server_ping")
    assert info.value.exc_type == "NoSuchMethod"


def test_an_endpoint_of_its_own_named_ping_wins_with_a_warning(
    conf: cfg.ConfigOpts,
    server_transport: messaging.Transport,
    client: messaging.RPCClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class OwnPing:
        def oslo_rpc_server_ping(self, ctxt: Any) -> str:
            return "mine"

    conf.set_override("rpc_ping_enabled", True)
    with serving(server_transport, TARGET, [OwnPing()]) as server:
        assert client.call({}, "oslo_rpc_server_ping") == "mine"
    assert len(server.dispatcher.endpoints) == 1
    assert any(
        r.levelno == logging.WARNING and "oslo_rpc_server_ping" in r.getMessage()
        for r in caplog.records
    )


def test_many_servers_start_and_stop_within_bounds(
    server_transport: messaging.Transport, client: messaging.RPCClient
) -> None:
    servers = [
        messaging.get_rpc_server(
            server_transport, messaging.Target(topic="t", server=f"s{n}"), [Echo(f"s{n}")]
        )
        for n in range(5)
    ]
    for server in servers:
        server.start()
    try:
        names = {client.prepare(server=f"s{n}").call({}, "whoami") for n in range(5)}
    finally:
        stoppers = [Outcome(_stop_and_wait, server) for server in servers]
        for stopper in stoppers:
            stopper.get()
            join(stopper.thread)
    assert names == {f"s{n}" for n in range(5)}


def _stop_and_wait(server: messaging.rpc.RPCServer) -> None:
    server.stop(timeout=TIMEOUT)
    server.wait(timeout=TIMEOUT)
