"""The ``noop`` notification driver: sends nothing, on purpose."""

from __future__ import annotations

from typing import Any

from messaging.notify.drivers.base import Driver

__all__ = ["NoOpDriver"]


class NoOpDriver(Driver):
    """Discards notifications; ``Notifier.is_enabled()`` is False with only this driver."""

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str, retry: int | None) -> None:
        """Do nothing."""
