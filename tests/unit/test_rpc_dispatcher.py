"""RPCDispatcher: versions, namespaces, access policies, endpoint rules; directly and on fake://."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.base import RpcIncomingMessage
from messaging.drivers.memory import reset_brokers
from messaging.rpc.versions import check_version, version_is_compatible
from tests.unit.rpc_support import TIMEOUT, make_conf, rpc_transport, serving


class Incoming(RpcIncomingMessage):
    """A request as a driver hands it to the dispatcher; records heartbeats."""

    def __init__(
        self, message: dict[str, Any], ctxt: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(ctxt or {}, message, "msg-1", **kwargs)
        self.heartbeats = 0

    def acknowledge(self) -> None:
        pass

    def requeue(self) -> None:
        pass

    def reply(self, reply: Any = None, failure: BaseException | None = None) -> None:
        raise AssertionError("the dispatcher does not reply; the server does")

    def heartbeat(self) -> None:
        self.heartbeats += 1


def request(
    method: str, namespace: str | None = None, version: str | None = None, **args: Any
) -> Incoming:
    message: dict[str, Any] = {"method": method, "args": args}
    if namespace is not None:
        message["namespace"] = namespace
    if version is not None:
        message["version"] = version
    return Incoming(message)


class V13:
    target = messaging.Target(version="1.3")

    def who(self, ctxt: Any) -> str:
        return "v1.3"

    def only_here(self, ctxt: Any, x: int) -> int:
        return x * 2


class V20:
    target = messaging.Target(version="2.0")

    def who(self, ctxt: Any) -> str:
        return "v2.0"


class Unversioned:
    def who(self, ctxt: Any) -> str:
        return "default"


class Renamed:
    target = messaging.Target(namespace="compute", legacy_namespaces=["nova"], version="1.1")

    def who(self, ctxt: Any) -> str:
        return "compute"


class Private:
    def public(self, ctxt: Any) -> str:
        return "public"

    def _private(self, ctxt: Any) -> str:
        return "private"

    @messaging.expose
    def exposed(self, ctxt: Any) -> str:
        return "exposed"


# Version compatibility (§1.5)


@pytest.mark.parametrize(
    ("implemented", "requested", "compatible"),
    [
        ("1.3", "1.0", True),
        ("1.3", "1.3", True),
        ("1.3", "1.4", False),
        ("1.3", "2.0", False),
        ("2.0", "1.9", False),
        ("1.2.3", "1.2.2", True),
        ("1.2.3", "1.2.3", True),
        ("1.2.3", "1.2.4", False),
        ("1.2", "1.2.1", False),
        ("1.2", "1.1.9", True),
        ("1.2.1", "1.2", True),
        (None, "7.0", True),
        ("1.0", None, False),
    ],
)
def test_version_is_compatible(
    implemented: str | None, requested: str | None, compatible: bool
) -> None:
    assert version_is_compatible(implemented, requested) is compatible


@pytest.mark.parametrize("bad", ["1", "a.b", "1.2.3.4", ""])
def test_check_version_names_the_bad_version(bad: str) -> None:
    with pytest.raises(ValueError, match="major and minor"):
        check_version(bad)


# Dispatch rules


def test_the_first_compatible_endpoint_wins() -> None:
    dispatcher = messaging.RPCDispatcher([V13(), V20(), Unversioned()])
    assert dispatcher.dispatch(request("who", version="1.2")) == "v1.3"
    assert dispatcher.dispatch(request("who", version="2.0")) == "v2.0"
    # No version in the request means 1.0.
    assert dispatcher.dispatch(request("who")) == "v1.3"


def test_an_endpoint_without_target_is_null_namespace_version_1_0() -> None:
    dispatcher = messaging.RPCDispatcher([Unversioned()])
    assert dispatcher.dispatch(request("who", version="1.0")) == "default"
    with pytest.raises(messaging.UnsupportedVersion):
        dispatcher.dispatch(request("who", version="1.1"))
    with pytest.raises(messaging.UnsupportedVersion):
        dispatcher.dispatch(request("who", namespace="compute"))


def test_unsupported_version_when_no_endpoint_is_compatible() -> None:
    dispatcher = messaging.RPCDispatcher([V13(), V20()])
    with pytest.raises(messaging.UnsupportedVersion, match=r"1\.4") as info:
        dispatcher.dispatch(request("who", version="1.4"))
    assert (info.value.version, info.value.method) == ("1.4", "who")
    with pytest.raises(messaging.UnsupportedVersion):
        dispatcher.dispatch(request("who", version="3.0"))


def test_no_such_method_when_a_compatible_endpoint_lacks_it() -> None:
    dispatcher = messaging.RPCDispatcher([V13(), V20()])
    # V20 is compatible but has no only_here; V13 has it but is not compatible.
    with pytest.raises(messaging.NoSuchMethod, match="only_here") as info:
        dispatcher.dispatch(request("only_here", version="2.0", x=1))
    assert info.value.method == "only_here"
    assert isinstance(info.value, AttributeError)
    assert dispatcher.dispatch(request("only_here", version="1.1", x=4)) == 8


def test_namespaces_and_legacy_namespaces() -> None:
    dispatcher = messaging.RPCDispatcher([Unversioned(), Renamed()])
    assert dispatcher.dispatch(request("who", namespace="compute")) == "compute"
    # Callers still on the old name reach the renamed endpoint.
    assert dispatcher.dispatch(request("who", namespace="nova", version="1.1")) == "compute"
    assert dispatcher.dispatch(request("who")) == "default"
    with pytest.raises(messaging.UnsupportedVersion):
        dispatcher.dispatch(request("who", namespace="cells"))


def test_arguments_are_passed_by_name_with_the_context() -> None:
    seen: list[Any] = []

    class Endpoint:
        def create(self, ctxt: Any, name: str, size: int = 1) -> dict[str, Any]:
            seen.append(ctxt)
            return {"name": name, "size": size}

    incoming = request("create", name="vm", size=3)
    incoming.ctxt = {"user": "u1"}
    dispatcher = messaging.RPCDispatcher([Endpoint()])
    assert dispatcher.dispatch(incoming) == {"name": "vm", "size": 3}
    assert seen == [{"user": "u1"}]
    assert dispatcher.dispatch(Incoming({"method": "create", "args": {"name": "x"}})) == {
        "name": "x",
        "size": 1,
    }


def test_an_attribute_that_is_not_callable_is_not_a_method() -> None:
    class WithData:
        version_name = "grizzly"

        def who(self, ctxt: Any) -> str:
            return "data"

    dispatcher = messaging.RPCDispatcher(
        [WithData()], access_policy=messaging.LegacyRPCAccessPolicy
    )
    with pytest.raises(messaging.NoSuchMethod, match="version_name"):
        dispatcher.dispatch(request("version_name"))
    assert dispatcher.dispatch(request("who")) == "data"
    # A Target is callable, but the reserved attribute is not a remote method.
    versioned = messaging.RPCDispatcher([V13()], access_policy=messaging.LegacyRPCAccessPolicy)
    with pytest.raises(messaging.NoSuchMethod, match="target"):
        versioned.dispatch(request("target"))


def test_an_endpoint_target_must_be_a_target() -> None:
    class Bad:
        target = "compute"

    with pytest.raises(TypeError, match="'target'"):
        messaging.RPCDispatcher([Bad()])


# Access policies


def test_default_policy_refuses_private_methods() -> None:
    dispatcher = messaging.RPCDispatcher([Private()])
    assert isinstance(dispatcher.access_policy, messaging.DefaultRPCAccessPolicy)
    assert dispatcher.dispatch(request("public")) == "public"
    assert dispatcher.dispatch(request("exposed")) == "exposed"
    with pytest.raises(messaging.NoSuchMethod):
        dispatcher.dispatch(request("_private"))
    with pytest.raises(messaging.NoSuchMethod):
        dispatcher.dispatch(request("__init__"))


def test_legacy_policy_allows_private_methods() -> None:
    dispatcher = messaging.RPCDispatcher([Private()], access_policy=messaging.LegacyRPCAccessPolicy)
    assert dispatcher.dispatch(request("_private")) == "private"
    assert dispatcher.dispatch(request("public")) == "public"


def test_explicit_policy_allows_only_exposed_methods() -> None:
    dispatcher = messaging.RPCDispatcher(
        [Private()], access_policy=messaging.ExplicitRPCAccessPolicy
    )
    assert dispatcher.dispatch(request("exposed")) == "exposed"
    with pytest.raises(messaging.NoSuchMethod):
        dispatcher.dispatch(request("public"))
    with pytest.raises(messaging.NoSuchMethod):
        dispatcher.dispatch(request("_private"))


def test_expose_marks_the_function_and_returns_it() -> None:
    def method(self: Any, ctxt: Any) -> None:
        pass

    assert messaging.expose(method) is method
    assert method.exposed is True  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "policy",
    [messaging.DefaultRPCAccessPolicy(), messaging.LegacyRPCAccessPolicy(), object, "default"],
)
def test_an_access_policy_must_be_a_policy_class(policy: Any) -> None:
    with pytest.raises(TypeError, match="access_policy"):
        messaging.RPCDispatcher([Private()], access_policy=policy)


def test_a_custom_policy_class_is_used() -> None:
    class OnlyP(messaging.RPCAccessPolicyBase):
        def is_allowed(self, endpoint: Any, method: str) -> bool:
            return method.startswith("p")

    dispatcher = messaging.RPCDispatcher([Private()], access_policy=OnlyP)
    assert dispatcher.dispatch(request("public")) == "public"
    with pytest.raises(messaging.NoSuchMethod):
        dispatcher.dispatch(request("exposed"))


# Call-monitor heartbeats from the dispatcher


def test_heartbeats_are_sent_while_a_monitored_method_runs() -> None:
    beats_seen = threading.Event()

    class Slow:
        def work(self, ctxt: Any) -> str:
            # Finish once the watchdog has beaten a few times (bounded).
            assert beats_seen.wait(TIMEOUT)
            return "done"

    incoming = request("work")
    incoming.client_timeout = 0.1

    original = incoming.heartbeat

    def counting() -> None:
        original()
        if incoming.heartbeats >= 3:
            beats_seen.set()

    incoming.heartbeat = counting  # type: ignore[method-assign]
    assert messaging.RPCDispatcher([Slow()]).dispatch(incoming) == "done"
    after = incoming.heartbeats
    assert after >= 3
    # The watchdog was joined before the result was returned: no heartbeat follows it.
    assert not [t for t in threading.enumerate() if t.name == "messaging-rpc-heartbeat"]
    assert incoming.heartbeats == after


def test_no_heartbeats_without_a_call_monitor_timeout() -> None:
    incoming = request("who")
    assert messaging.RPCDispatcher([Unversioned()]).dispatch(incoming) == "default"
    assert incoming.heartbeats == 0


def test_a_failing_heartbeat_stops_the_watchdog_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failed = threading.Event()

    class Slow:
        def work(self, ctxt: Any) -> str:
            assert failed.wait(TIMEOUT)
            return "done"

    incoming = request("work")
    incoming.client_timeout = 0.1
    attempts: list[int] = []

    def broken() -> None:
        attempts.append(1)
        failed.set()
        raise ConnectionError("broker gone")

    incoming.heartbeat = broken  # type: ignore[method-assign]
    assert messaging.RPCDispatcher([Slow()]).dispatch(incoming) == "done"
    assert attempts == [1]
    assert any("broker gone" in r.getMessage() for r in caplog.records)


# The same rules end to end on fake://: failures arrive as RemoteError (§4.5)


@pytest.fixture
def conf() -> Iterator[cfg.ConfigOpts]:
    reset_brokers()
    yield make_conf()
    reset_brokers()


def test_versions_namespaces_and_policies_over_the_transport(conf: cfg.ConfigOpts) -> None:
    server_transport, client_transport = rpc_transport(conf), rpc_transport(conf)
    try:
        client = messaging.get_rpc_client(
            client_transport, messaging.Target(topic="t"), timeout=TIMEOUT
        )
        endpoints = [V13(), V20(), Renamed(), Private()]
        with serving(server_transport, messaging.Target(topic="t", server="s1"), endpoints):
            assert client.prepare(version="1.2").call({}, "who") == "v1.3"
            assert client.prepare(version="2.0").call({}, "who") == "v2.0"
            assert client.prepare(namespace="nova", version="1.0").call({}, "who") == "compute"
            assert client.prepare(version="1.0").call({}, "only_here", x=5) == 10
            errors = {}
            for name, prepared, method in [
                ("unsupported", client.prepare(version="1.9"), "who"),
                ("no_such", client.prepare(version="2.0"), "only_here"),
                ("private", client, "_private"),
            ]:
                with pytest.raises(messaging.RemoteError) as info:
                    prepared.call({}, method)
                errors[name] = info.value
    finally:
        server_transport.cleanup()
        client_transport.cleanup()
    assert errors["unsupported"].exc_type == "UnsupportedVersion"
    assert "1.9" in str(errors["unsupported"].value)
    assert errors["no_such"].exc_type == "NoSuchMethod"
    assert errors["private"].exc_type == "NoSuchMethod"


@pytest.mark.parametrize(
    ("policy", "answers"),
    [
        (None, {"public": "public", "_private": None, "exposed": "exposed"}),
        (messaging.LegacyRPCAccessPolicy, {"public": "public", "_private": "private"}),
        (messaging.ExplicitRPCAccessPolicy, {"public": None, "exposed": "exposed"}),
    ],
)
def test_each_access_policy_on_a_server(
    conf: cfg.ConfigOpts, policy: Any, answers: dict[str, str | None]
) -> None:
    server_transport, client_transport = rpc_transport(conf), rpc_transport(conf)
    try:
        client = messaging.get_rpc_client(
            client_transport, messaging.Target(topic="t"), timeout=TIMEOUT
        )
        got: dict[str, str | None] = {}
        with serving(
            server_transport,
            messaging.Target(topic="t", server="s1"),
            [Private()],
            access_policy=policy,
        ):
            for method in answers:
                try:
                    got[method] = client.call({}, method)
                except messaging.RemoteError as exc:
                    assert exc.exc_type == "NoSuchMethod"
                    got[method] = None
    finally:
        server_transport.cleanup()
        client_transport.cleanup()
    assert got == answers


def test_get_rpc_server_refuses_a_policy_instance(conf: cfg.ConfigOpts) -> None:
    transport = rpc_transport(conf)
    try:
        with pytest.raises(TypeError, match="the class itself"):
            messaging.get_rpc_server(
                transport,
                messaging.Target(topic="t", server="s1"),
                [Private()],
                access_policy=messaging.ExplicitRPCAccessPolicy(),  # type: ignore[arg-type]
            )
    finally:
        transport.cleanup()
