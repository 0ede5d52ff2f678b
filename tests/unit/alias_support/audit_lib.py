"""A library written for oslo.messaging, as keystonemiddleware's audit middleware is.

It imports ``oslo_messaging`` (and a submodule) at its own import time and sends
notifications with oslo.messaging's API only.
"""

from __future__ import annotations

from typing import Any

import oslo_messaging  # type: ignore[import-not-found]
from oslo_messaging.notify import notifier as notifier_module  # type: ignore[import-not-found]


class AuditPublisher:
    """Sends one ``audit.http.request`` notification per call, as an audit library would."""

    def __init__(self, conf: Any) -> None:
        self.transport = oslo_messaging.get_notification_transport(conf)
        self.notifier = notifier_module.Notifier(
            self.transport, publisher_id="audit-lib", driver="messagingv2", topics=["audit"]
        )

    def emit(self, payload: dict[str, Any]) -> None:
        self.notifier.info({}, "audit.http.request", payload)
