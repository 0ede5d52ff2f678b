"""Serializers: NoOp, JsonPayloadSerializer and RequestContextSerializer."""

from __future__ import annotations

import datetime
import json
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_context import context as oslo_context

from messaging.serializer import (
    JsonPayloadSerializer,
    NoOpSerializer,
    RequestContextSerializer,
    Serializer,
    to_primitive,
)


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y


class Model:
    def to_dict(self) -> dict[str, Any]:
        return {"id": 7, "created": datetime.datetime(2024, 1, 2, 3, 4, 5, 6)}


class Row:
    """Not a Mapping, but has items() like a database row."""

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter([("a", 1), ("b", {2})])


def test_serializer_is_abstract() -> None:
    with pytest.raises(TypeError):
        Serializer()  # type: ignore[abstract]


def test_noop_is_identity() -> None:
    serializer = NoOpSerializer()
    entity: dict[str, Any] = {"obj": object()}
    ctxt: dict[str, Any] = {"user": "u"}
    assert serializer.serialize_entity(ctxt, entity) is entity
    assert serializer.deserialize_entity(ctxt, entity) is entity
    assert serializer.serialize_context(ctxt) is ctxt
    assert serializer.deserialize_context(ctxt) is ctxt


def test_json_payload_serializer_converts_to_primitives() -> None:
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    entity = {
        "when": when,
        "day": datetime.date(2024, 5, 6),
        "tags": {"only"},
        "pair": (1, 2),
        "point": Point(1, 2),
        "model": Model(),
        "row": Row(),
        "id": ident,
        "raw": b"bytes",
        "n": None,
        "nested": [{"p": Point(3, 4)}],
        "numbers": range(3),
    }
    out = JsonPayloadSerializer().serialize_entity({}, entity)
    assert out == {
        "when": "2024-05-06T07:08:09.123456",
        "day": "2024-05-06",
        "tags": ["only"],
        "pair": [1, 2],
        "point": {"x": 1, "y": 2},
        "model": {"id": 7, "created": "2024-01-02T03:04:05.000006"},
        "row": {"a": 1, "b": [2]},
        "id": "12345678-1234-5678-1234-567812345678",
        "raw": "bytes",
        "n": None,
        "nested": [{"p": {"x": 3, "y": 4}}],
        "numbers": [0, 1, 2],
    }
    json.dumps(out)  # really primitives


def test_json_payload_serializer_leaves_contexts_alone() -> None:
    serializer = JsonPayloadSerializer()
    ctxt = {"user": "u"}
    assert serializer.serialize_context(ctxt) is ctxt
    assert serializer.deserialize_entity(ctxt, {"a": 1}) == {"a": 1}


def test_to_primitive_survives_cycles() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    out = to_primitive(loop)
    json.dumps(out)  # bounded depth, ends in a string


def test_request_context_serializer_round_trip() -> None:
    serializer = RequestContextSerializer()
    ctxt = oslo_context.RequestContext(
        user_id="u1", project_id="p1", request_id="req-1", roles=["admin"]
    )
    wire_form = serializer.serialize_context(ctxt)
    assert isinstance(wire_form, dict)
    assert wire_form["user"] == "u1"
    assert wire_form["project_id"] == "p1"
    json.dumps(wire_form)

    # What a receiver gets has extra keys (client_timeout); they are ignored.
    back = serializer.deserialize_context({**wire_form, "client_timeout": None})
    assert isinstance(back, oslo_context.RequestContext)
    assert (back.user_id, back.project_id, back.request_id, back.roles) == (
        "u1",
        "p1",
        "req-1",
        ["admin"],
    )


def test_request_context_serializer_plain_dicts() -> None:
    serializer = RequestContextSerializer()
    ctxt = {"user": "u1", "request_id": "req-9"}
    assert serializer.serialize_context(ctxt) is ctxt
    assert serializer.serialize_context(None) is None
    back = serializer.deserialize_context(ctxt)
    assert isinstance(back, oslo_context.RequestContext)
    assert back.user_id == "u1" and back.request_id == "req-9"
    assert serializer.deserialize_context(None) is None


def test_request_context_serializer_without_oslo_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "oslo_context", None)
    ctxt = {"user": "u1"}
    assert RequestContextSerializer().deserialize_context(ctxt) is ctxt


def test_request_context_serializer_delegates_entities() -> None:
    plain = RequestContextSerializer()
    entity = {"p": Point(1, 2)}
    assert plain.serialize_entity({}, entity) is entity
    assert plain.deserialize_entity({}, entity) is entity
    json_based = RequestContextSerializer(JsonPayloadSerializer())
    assert json_based.serialize_entity({}, entity) == {"p": {"x": 1, "y": 2}}
