"""Serializers: turn request contexts and entities into primitives and back.

A serializer passed to a Notifier, listener, client or server converts what the
application uses (context objects, model objects) into what travels as JSON,
and back on the other side.
"""

from __future__ import annotations

import abc
import datetime
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = ["JsonPayloadSerializer", "NoOpSerializer", "RequestContextSerializer", "Serializer"]


class Serializer(abc.ABC):
    """Base class of serializers."""

    @abc.abstractmethod
    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        """Turn an entity (a payload, an argument, a result) into primitives."""

    @abc.abstractmethod
    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        """Turn primitives back into an entity."""

    @abc.abstractmethod
    def serialize_context(self, ctxt: Any) -> Any:
        """Turn a request context into a dict."""

    @abc.abstractmethod
    def deserialize_context(self, ctxt: Any) -> Any:
        """Turn a dict back into a request context."""


class NoOpSerializer(Serializer):
    """Leaves everything as it is (the default everywhere)."""

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        """Return ``entity`` unchanged."""
        return entity

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        """Return ``entity`` unchanged."""
        return entity

    def serialize_context(self, ctxt: Any) -> Any:
        """Return ``ctxt`` unchanged."""
        return ctxt

    def deserialize_context(self, ctxt: Any) -> Any:
        """Return ``ctxt`` unchanged."""
        return ctxt


def to_primitive(value: Any, _depth: int = 0) -> Any:
    """Convert a value into JSON primitives, converting objects through their attributes.

    datetimes become ``%Y-%m-%dT%H:%M:%S.%f`` strings, sets, tuples and other
    iterables lists, UUIDs strings, objects with ``to_dict()``/``items()`` or a
    ``__dict__`` dicts.
    """
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if _depth > 32:
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return {str(k): to_primitive(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_primitive(v, _depth + 1) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_primitive(to_dict(), _depth + 1)
    items = getattr(value, "items", None)
    if callable(items):
        return to_primitive(dict(items()), _depth + 1)
    if hasattr(value, "__iter__"):
        return [to_primitive(v, _depth + 1) for v in value]
    if hasattr(value, "__dict__"):
        return to_primitive(vars(value), _depth + 1)
    return str(value)


class JsonPayloadSerializer(NoOpSerializer):
    """Converts entities into JSON primitives (objects through their attributes)."""

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        """Return ``entity`` as JSON primitives."""
        return to_primitive(entity)


class RequestContextSerializer(Serializer):
    """Carries request contexts as dicts; rebuilds oslo.context ``RequestContext`` objects.

    Entities go through ``base`` (a :class:`NoOpSerializer` by default). On the
    receiving side, contexts become ``oslo_context.context.RequestContext``
    objects when oslo.context is installed, and stay dicts otherwise.

    Args:
        base: the serializer for entities.
    """

    def __init__(self, base: Serializer | None = None) -> None:
        self._base = base or NoOpSerializer()

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        """Delegate to the base serializer."""
        return self._base.serialize_entity(ctxt, entity)

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        """Delegate to the base serializer."""
        return self._base.deserialize_entity(ctxt, entity)

    def serialize_context(self, ctxt: Any) -> Any:
        """Return the context as a dict (``to_dict()`` of context objects)."""
        if ctxt is None or isinstance(ctxt, dict):
            return ctxt
        to_dict = getattr(ctxt, "to_dict", None)
        return to_dict() if callable(to_dict) else dict(ctxt)

    def deserialize_context(self, ctxt: Any) -> Any:
        """Return a ``RequestContext`` when oslo.context is installed, else the dict."""
        if not isinstance(ctxt, dict):
            return ctxt
        try:
            from oslo_context import context
        except ImportError:
            return ctxt
        return context.RequestContext.from_dict(ctxt)
