"""The ``messaging`` (v1, bare) and ``messagingv2`` (enveloped) notification drivers.

Each notification goes to ``<topic>.<priority>`` for every configured topic,
through the notification transport.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from messaging.notify.drivers.base import Driver
from messaging.target import Target

__all__ = ["MessagingDriver", "MessagingV2Driver"]

LOG = logging.getLogger(__name__)


class MessagingDriver(Driver):
    """Sends notifications in the 1.0 format: the bare dict, no envelope."""

    version: ClassVar[float] = 1.0

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str, retry: int | None) -> None:
        """Send to every topic; raise the first failure once every topic was tried."""
        failures: list[Exception] = []
        for topic in self.topics:
            target = Target(topic=f"{topic}.{priority.lower()}")
            try:
                self.transport.send_notification(
                    target, ctxt, message, version=self.version, retry=retry
                )
            except Exception as exc:
                LOG.debug("Could not send notification to %s: %s", target.topic, exc)
                exc.add_note(f"while sending to topic {target.topic!r}")
                failures.append(exc)
        if failures:
            for extra in failures[1:]:
                failures[0].add_note(f"also failed: {extra}")
            raise failures[0]


class MessagingV2Driver(MessagingDriver):
    """Sends notifications in the 2.0 format: inside the oslo envelope."""

    version: ClassVar[float] = 2.0
