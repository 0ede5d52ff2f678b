"""``NotificationFilter``: lets an endpoint receive only the notifications it wants."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["NotificationFilter"]


class NotificationFilter:
    """Matches notifications by regular expressions, set as an endpoint's ``filter_rule``.

    Each given expression must match (``re.match``: anchored at the start only).
    For ``context``, ``metadata`` and ``payload`` the filter is a dict of key to
    expression: each key must be present, and its value a string that matches.

    Args:
        context: expressions for keys of the request context.
        publisher_id: expression for the publisher id.
        event_type: expression for the event type.
        metadata: expressions for ``message_id`` / ``timestamp``.
        payload: expressions for keys of a dict payload.
    """

    def __init__(
        self,
        context: Mapping[str, str] | None = None,
        publisher_id: str | None = None,
        event_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        payload: Mapping[str, str] | None = None,
    ) -> None:
        self._publisher_id = re.compile(publisher_id) if publisher_id else None
        self._event_type = re.compile(event_type) if event_type else None
        self._context = self._compile(context)
        self._metadata = self._compile(metadata)
        self._payload = self._compile(payload)

    @staticmethod
    def _compile(rules: Mapping[str, str] | None) -> dict[str, re.Pattern[str]]:
        return {key: re.compile(expr) for key, expr in (rules or {}).items()}

    @staticmethod
    def _match_value(pattern: re.Pattern[str] | None, value: Any) -> bool:
        if pattern is None:
            return True
        return isinstance(value, str) and pattern.match(value) is not None

    @classmethod
    def _match_dict(cls, patterns: dict[str, re.Pattern[str]], data: Any) -> bool:
        if not patterns:
            return True
        if not isinstance(data, Mapping):
            to_dict = getattr(data, "to_dict", None)
            data = to_dict() if callable(to_dict) else getattr(data, "__dict__", {})
        return all(key in data and cls._match_value(p, data[key]) for key, p in patterns.items())

    def match(
        self, context: Any, publisher_id: Any, event_type: Any, metadata: Any, payload: Any
    ) -> bool:
        """Return True if the notification passes every rule."""
        return (
            self._match_value(self._publisher_id, publisher_id)
            and self._match_value(self._event_type, event_type)
            and self._match_dict(self._context, context)
            and self._match_dict(self._metadata, metadata)
            and self._match_dict(self._payload, payload)
        )
