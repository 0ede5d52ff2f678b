"""Target: copies, namespaces, equality and repr (reference §1.3)."""

from __future__ import annotations

from messaging.target import Target


def full_target() -> Target:
    return Target(
        exchange="ex",
        topic="compute",
        namespace="ns",
        version="1.2",
        server="host1",
        fanout=False,
        legacy_namespaces=["old_ns", "older_ns"],
    )


def test_attributes_and_accepted_namespaces() -> None:
    target = full_target()
    assert (target.exchange, target.topic, target.namespace) == ("ex", "compute", "ns")
    assert (target.version, target.server, target.fanout) == ("1.2", "host1", False)
    assert target.accepted_namespaces == ["ns", "old_ns", "older_ns"]


def test_defaults() -> None:
    target = Target()
    for name in ("exchange", "topic", "namespace", "version", "server", "fanout"):
        assert getattr(target, name) is None
    assert target.accepted_namespaces == [None]


def test_call_copies_with_overrides() -> None:
    target = full_target()
    copy = target(server="host2", version="1.3")
    assert copy is not target
    assert (copy.exchange, copy.topic, copy.namespace) == ("ex", "compute", "ns")
    assert (copy.server, copy.version, copy.fanout) == ("host2", "1.3", False)
    assert (target.server, target.version) == ("host1", "1.2"), "the original is unchanged"


def test_call_copy_drops_legacy_namespaces() -> None:
    copy = full_target()()
    assert copy.accepted_namespaces == ["ns"]
    assert copy != full_target()


def test_call_copy_can_take_legacy_namespaces_again() -> None:
    copy = full_target()(legacy_namespaces=["old_ns", "older_ns"])
    assert copy == full_target()
    renamed = full_target()(namespace="new_ns", legacy_namespaces=["ns"])
    assert renamed.accepted_namespaces == ["new_ns", "ns"]


def test_call_may_clear_an_attribute() -> None:
    assert full_target()(server=None).server is None


def test_equality() -> None:
    assert full_target() == full_target()
    assert (full_target() != full_target()) is False
    assert Target(topic="t") == Target(topic="t")
    assert Target(topic="t") != Target(topic="u")
    assert Target(topic="t") != Target(topic="t", server="s")
    assert Target(topic="t", namespace="a") != Target(
        topic="t", namespace="a", legacy_namespaces=["b"]
    )
    assert Target(topic="t") != "t"
    assert Target(topic="t") != {"topic": "t"}


def test_hash_is_identity_so_targets_can_be_dict_keys() -> None:
    first, second = Target(topic="t"), Target(topic="t")
    assert first == second
    seen = {first: 1, second: 2}
    assert len(seen) == 2
    assert hash(first) == hash(first)


def test_repr() -> None:
    assert repr(Target(topic="compute", server="host1")) == "<Target topic=compute, server=host1>"
    assert repr(full_target()) == (
        "<Target exchange=ex, topic=compute, namespace=ns, version=1.2, server=host1, fanout=False>"
    )
    assert repr(Target()) == "<Target >"
