"""The ``test`` notification driver: keeps notifications in memory for tests to read."""

from __future__ import annotations

from typing import Any

from messaging.notify.drivers.base import Driver

__all__ = ["NOTIFICATIONS", "TestDriver", "reset"]

#: Every notification sent through a ``test`` driver: ``(ctxt, message, priority, retry)``.
NOTIFICATIONS: list[tuple[Any, dict[str, Any], str, int | None]] = []


def reset() -> None:
    """Forget the captured notifications."""
    del NOTIFICATIONS[:]


class TestDriver(Driver):
    """Appends each notification to :data:`NOTIFICATIONS`."""

    __test__ = False  # not a pytest test class

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str, retry: int | None) -> None:
        """Capture the notification."""
        NOTIFICATIONS.append((ctxt, message, priority, retry))
