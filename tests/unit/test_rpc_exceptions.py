"""Remote exceptions on fake://, exactly as on the wire (§4.5), and @expected_exceptions."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.memory import reset_brokers
from tests.unit.rpc_support import (
    THIS_MODULE,
    TIMEOUT,
    InstanceNotFound,
    QuotaError,
    make_conf,
    rpc_transport,
    serving,
)

SERVER_LOG = "messaging.rpc.server"
TARGET = messaging.Target(topic="t", server="s1")


class NeedsTwo(Exception):
    """Cannot be rebuilt from the single argument it keeps."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first}+{second}")


class Raiser:
    """Raises what it is asked to."""

    def key_error(self, ctxt: Any) -> None:
        raise KeyError("missing-key")

    def value_error(self, ctxt: Any) -> None:
        raise ValueError("bad value", 42)

    def quota(self, ctxt: Any) -> None:
        raise QuotaError("over quota", resource="cores", limit=8)

    def needs_two(self, ctxt: Any) -> None:
        raise NeedsTwo("a", "b")

    def unjsonable(self, ctxt: Any) -> None:
        raise RuntimeError(object())

    @messaging.expected_exceptions(InstanceNotFound, ValueError)
    def find(self, ctxt: Any, kind: str) -> str:
        if kind == "missing":
            raise InstanceNotFound("instance vm1 not found")
        if kind == "subclass":
            raise UnicodeError("a ValueError subclass")
        if kind == "other":
            raise RuntimeError("not declared")
        return "found"


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


def call_error(
    conf: cfg.ConfigOpts,
    method: str,
    allowed: Sequence[str] = (),
    version: str | None = None,
    **kwargs: Any,
) -> Any:
    """Call ``method`` from a client whose transport allows ``allowed``; return what it raised."""
    transport = messaging.get_rpc_transport(conf, "fake://", allowed_remote_exmods=list(allowed))
    try:
        target = messaging.Target(topic="t", version=version)
        client = messaging.get_rpc_client(transport, target, timeout=TIMEOUT)
        with pytest.raises(Exception) as info:
            client.call({}, method, **kwargs)
        return info.value
    finally:
        transport.cleanup()


# Builtins, allowed and disallowed modules


def test_builtin_exceptions_keep_their_class_and_carry_the_remote_traceback(
    conf: cfg.ConfigOpts, server_transport: messaging.Transport
) -> None:
    with serving(server_transport, TARGET, [Raiser()]):
        key = call_error(conf, "key_error")
        value = call_error(conf, "value_error")
    assert type(key) is KeyError
    assert type(value) is ValueError
    # The first argument becomes message + remote traceback, the others stay.
    assert key.args[0].startswith("'missing-key'\nTraceback")
    assert "in key_error" in key.args[0]
    assert value.args[0].startswith("('bad value', 42)\nTraceback")
    assert value.args[1:] == (42,)


def test_an_allowed_module_gives_a_remote_subclass_of_the_original(
    conf: cfg.ConfigOpts, server_transport: messaging.Transport
) -> None:
    with serving(server_transport, TARGET, [Raiser()]):
        err = call_error(conf, "quota", allowed=[THIS_MODULE])
    assert isinstance(err, QuotaError)
    assert type(err).__name__ == "QuotaError_Remote"
    assert type(err).__module__ == THIS_MODULE + "_Remote"
    assert err.kwargs == {"resource": "cores", "limit": 8}
    text = str(err)
    assert text.startswith("over quota\nTraceback")
    assert "in quota" in text  # the server's frame


def test_a_module_not_allowed_gives_remote_error(
    conf: cfg.ConfigOpts, server_transport: messaging.Transport
) -> None:
    with serving(server_transport, TARGET, [Raiser()]):
        err = call_error(conf, "quota", allowed=["some.other.module"])
    assert type(err) is messaging.RemoteError
    assert not isinstance(err, QuotaError)
    assert err.exc_type == "QuotaError"
    assert err.value == "over quota"
    assert err.traceback is not None and "in quota" in "".join(err.traceback)
    assert str(err).startswith("Remote error: QuotaError over quota\n")


def test_dispatcher_errors_arrive_as_remote_error_because_messaging_is_not_allowed(
    conf: cfg.ConfigOpts, server_transport: messaging.Transport
) -> None:
    with serving(server_transport, TARGET, [Raiser()]):
        no_such = call_error(conf, "nothing_like_it")
        # Raiser has no target: it implements 1.0 only.
        unsupported = call_error(conf, "quota", version="3.0")
    assert type(no_such) is messaging.RemoteError
    assert no_such.exc_type == "NoSuchMethod"
    assert "nothing_like_it" in str(no_such.value)
    assert type(unsupported) is messaging.RemoteError
    assert unsupported.exc_type == "UnsupportedVersion"
    assert "3.0" in str(unsupported.value)


def test_allowing_messaging_exceptions_rebuilds_no_such_method(
    conf: cfg.ConfigOpts, server_transport: messaging.Transport
) -> None:
    with serving(server_transport, TARGET, [Raiser()]):
        err = call_error(conf, "nothing_like_it", allowed=["messaging.exceptions"])
    assert isinstance(err, messaging.NoSuchMethod)
    assert type(err).__name__ == "NoSuchMethod_Remote"
    # As with oslo, the class is rebuilt from its args (the message), so .method
    # holds the message rather than the bare name; the name is still there.
    assert "nothing_like_it" in err.method


def test_an_allowed_exception_that_cannot_be_rebuilt_gives_remote_error(
    conf: cfg.ConfigOpts, server_transport: messaging.Transport
) -> None:
    with serving(server_transport, TARGET, [Raiser()]):
        err = call_error(conf, "needs_two", allowed=[__name__])
    assert type(err) is messaging.RemoteError
    assert err.exc_type == "NeedsTwo"
    assert err.value == "a+b"


def test_an_exception_with_arguments_that_are_not_json_still_arrives(
    conf: cfg.ConfigOpts, server_transport: messaging.Transport
) -> None:
    with serving(server_transport, TARGET, [Raiser()]):
        err = call_error(conf, "unjsonable")
    assert type(err) is RuntimeError
    assert err.args[0].startswith("<object object at")


def test_a_remote_exception_raised_again_by_a_server_keeps_its_original_name(
    conf: cfg.ConfigOpts, server_transport: messaging.Transport
) -> None:
    """Server A calls server B and lets B's QuotaError propagate to A's caller."""
    relay_transport = messaging.get_rpc_transport(
        conf, "fake://", allowed_remote_exmods=[THIS_MODULE]
    )

    class Relay:
        def relay(self, ctxt: Any) -> None:
            client = messaging.get_rpc_client(
                relay_transport, messaging.Target(topic="t"), timeout=TIMEOUT
            )
            client.call({}, "quota")  # raises QuotaError_Remote here

    try:
        with (
            serving(server_transport, TARGET, [Raiser()]),
            serving(server_transport, messaging.Target(topic="relay", server="a"), [Relay()]),
        ):
            transport = messaging.get_rpc_transport(
                conf, "fake://", allowed_remote_exmods=[THIS_MODULE]
            )
            try:
                client = messaging.get_rpc_client(
                    transport, messaging.Target(topic="relay"), timeout=TIMEOUT
                )
                with pytest.raises(QuotaError) as info:
                    client.call({}, "relay")
            finally:
                transport.cleanup()
    finally:
        relay_transport.cleanup()
    # The _Remote suffix is stripped before the failure is sent on: one level only.
    assert type(info.value).__name__ == "QuotaError_Remote"
    assert type(info.value).__module__ == THIS_MODULE + "_Remote"


# @expected_exceptions


def _server_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == SERVER_LOG and r.levelno == level]


def test_expected_exceptions_reach_the_caller_as_the_original(
    conf: cfg.ConfigOpts,
    server_transport: messaging.Transport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOG)
    with serving(server_transport, TARGET, [Raiser()]):
        allowed = call_error(conf, "find", allowed=[THIS_MODULE], kind="missing")
        remote = call_error(conf, "find", kind="missing")
        subclass = call_error(conf, "find", kind="subclass")
    assert isinstance(allowed, InstanceNotFound)
    assert "instance vm1 not found" in str(allowed)
    # The remote traceback is the endpoint's, not the wrapper's.
    assert "in find" in str(allowed)
    assert isinstance(remote, messaging.RemoteError)
    assert remote.exc_type == "InstanceNotFound"
    assert type(subclass) is UnicodeError
    # Logged at debug only, never as an error.
    assert _server_records(caplog, logging.ERROR) == []
    debug = [r.getMessage() for r in _server_records(caplog, logging.DEBUG)]
    assert sum("instance vm1 not found" in m for m in debug) == 2
    assert any("a ValueError subclass" in m for m in debug)


def test_an_undeclared_exception_of_a_decorated_method_is_logged_as_error(
    conf: cfg.ConfigOpts,
    server_transport: messaging.Transport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serving(server_transport, TARGET, [Raiser()]):
        err = call_error(conf, "find", kind="other")
    assert type(err) is RuntimeError
    [record] = _server_records(caplog, logging.ERROR)
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


def test_expected_exceptions_wraps_in_expected_exception_with_the_original_exc_info() -> None:
    @messaging.expected_exceptions(KeyError)
    def lookup(key: str) -> str:
        """Looks a key up."""
        return {"a": "1"}[key]

    assert lookup("a") == "1"
    assert lookup.__name__ == "lookup" and lookup.__doc__ == "Looks a key up."
    with pytest.raises(messaging.ExpectedException) as info:
        lookup("b")
    exc_type, exc_value, tb = info.value.exc_info
    assert exc_type is KeyError and isinstance(exc_value, KeyError) and tb is not None


def test_expected_exceptions_lets_other_exceptions_through() -> None:
    @messaging.expected_exceptions(KeyError)
    def fail() -> None:
        raise ZeroDivisionError("no")

    with pytest.raises(ZeroDivisionError):
        fail()


def test_expected_exceptions_decorators_nest() -> None:
    @messaging.expected_exceptions(KeyError)
    @messaging.expected_exceptions(ValueError)
    def fail() -> None:
        raise ValueError("inner")

    with pytest.raises(messaging.ExpectedException) as info:
        fail()
    assert isinstance(info.value.exc_info[1], ValueError)
