"""The exception tree drawn in messaging.exceptions' docstring is the real one."""

from __future__ import annotations

import builtins
import re
import sys

import pytest

from messaging import exceptions
from messaging.target import Target

NODE = re.compile(r"^(?P<indent>[ │]*)(?:[├└]── )?(?P<name>\w+)(?: \(also (?P<also>\w+)\))?$")


def drawn_tree() -> dict[str, tuple[str | None, str | None]]:
    """Parse the docstring drawing into ``{name: (parent, also)}``."""
    doc = exceptions.__doc__ or ""
    body = doc.split("::\n", 1)[1]
    lines = [line[4:] for line in body.splitlines()]
    tree: dict[str, tuple[str | None, str | None]] = {}
    stack: list[tuple[int, str]] = []
    for line in lines:
        if not line.strip():
            if tree:
                break
            continue
        match = NODE.match(line)
        assert match, f"cannot read tree line {line!r}"
        depth = len(match["indent"]) // 4 + (1 if line.lstrip(" │").startswith(("├", "└")) else 0)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1][1] if stack else None
        tree[match["name"]] = (parent, match["also"])
        stack.append((depth, match["name"]))
    return tree


def test_tree_parser_reads_the_drawing() -> None:
    tree = drawn_tree()
    assert tree["Exception"] == (None, None)
    assert tree["MessagingException"] == ("Exception", None)
    assert tree["NoSuchMethod"] == ("RPCDispatcherError", "AttributeError")
    assert tree["ExpectedException"] == ("Exception", None)
    assert len(tree) == len(exceptions.__all__) + 1


@pytest.mark.parametrize("name", exceptions.__all__)
def test_every_public_exception_is_drawn_with_its_real_bases(name: str) -> None:
    tree = drawn_tree()
    assert name in tree, f"{name} is missing from the docstring tree"
    parent, also = tree[name]
    cls = getattr(exceptions, name)
    expected = [parent, also] if also else [parent]
    assert [base.__name__ for base in cls.__bases__] == expected
    for base_name in expected:
        assert base_name is not None
        base = getattr(exceptions, base_name, None) or getattr(builtins, base_name)
        assert base in cls.__bases__


def test_every_drawn_exception_is_public() -> None:
    drawn = set(drawn_tree()) - {"Exception"}
    assert drawn == set(exceptions.__all__)


def test_no_such_method_is_an_attribute_error() -> None:
    err = exceptions.NoSuchMethod("frobnicate")
    assert isinstance(err, AttributeError)
    assert isinstance(err, exceptions.RPCDispatcherError)
    assert isinstance(err, exceptions.MessagingServerError)
    assert err.method == "frobnicate"
    assert "frobnicate" in str(err)


def test_invalid_target_is_a_value_error_naming_the_target() -> None:
    target = Target(topic="compute", server="host1")
    err = exceptions.InvalidTarget("A server is required", target)
    assert isinstance(err, ValueError)
    assert isinstance(err, exceptions.MessagingException)
    assert err.target is target
    assert str(err) == f"A server is required: {target}"
    assert "topic=compute" in str(err)


def test_message_undeliverable_is_outside_messaging_exception() -> None:
    cause = RuntimeError("NO_ROUTE")
    err = exceptions.MessageUndeliverable(cause, "openstack", "compute.host1", {"m": 1})
    assert not isinstance(err, exceptions.MessagingException)
    assert isinstance(err, Exception)
    assert (err.exception, err.exchange, err.routing_key) == (cause, "openstack", "compute.host1")
    assert err.message == {"m": 1}
    assert "compute.host1" in str(err)


def test_configuration_and_expected_exceptions_are_outside_messaging_exception() -> None:
    assert not issubclass(exceptions.ConfigurationError, exceptions.MessagingException)
    assert not issubclass(exceptions.ExpectedException, exceptions.MessagingException)


def test_expected_exception_captures_the_exception_being_handled() -> None:
    try:
        raise KeyError("k")
    except KeyError:
        wrapped = exceptions.ExpectedException()
        current = sys.exc_info()
    assert wrapped.exc_info == current
    assert isinstance(wrapped.exc_info[1], KeyError)


def test_message_serialization_error_is_a_type_error() -> None:
    err = exceptions.MessageSerializationError("payload['when']", "datetime")
    assert isinstance(err, TypeError)
    assert (err.path, err.value_type) == ("payload['when']", "datetime")
    assert str(err).startswith("payload['when'] is of type datetime")


def test_oslo_compatible_messages_and_attributes() -> None:
    remote = exceptions.RemoteError("KeyError", "'k'", "Traceback...")
    assert str(remote) == "Remote error: KeyError 'k'\nTraceback...."
    assert (remote.exc_type, remote.value, remote.traceback) == (
        "KeyError",
        "'k'",
        ["Traceback..."],
    )
    load = exceptions.DriverLoadFailure("zmq", "no plugin")
    assert str(load) == 'Failed to load transport driver "zmq": no plugin'
    assert (load.driver, load.ex) == ("zmq", "no plugin")
    url = exceptions.InvalidTransportURL("bad://", "No scheme specified")
    assert (url.url, str(url)) == ("bad://", "No scheme specified")
    cap = exceptions.RPCVersionCapError("2.0", "1.5")
    assert (cap.version, cap.version_cap) == ("2.0", "1.5")
    assert "version cap 1.5" in str(cap)
    unsupported = exceptions.UnsupportedVersion("3.0", method="add")
    assert (unsupported.version, unsupported.method) == ("3.0", "add")
    assert "3.0" in str(unsupported)
    assert "add" in str(unsupported)
    executor = exceptions.ExecutorLoadFailure("nosuch", "known: threading")
    assert (executor.executor, executor.ex) == ("nosuch", "known: threading")
    target = Target(topic="t")
    cause = OSError("down")
    for cls in (exceptions.ClientSendError, exceptions.ServerListenError):
        err = cls(target, cause)
        assert (err.target, err.ex) == (target, cause)
        assert "down" in str(err)
