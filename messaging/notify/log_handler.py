"""``LoggingErrorNotificationHandler``: publishes ERROR log records as notifications."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oslo_config import cfg

__all__ = ["LoggingErrorNotificationHandler", "PublishErrorsHandler"]

_guard = threading.local()


class LoggingErrorNotificationHandler(logging.Handler):
    """Sends each record at ERROR or above as an ``error_notification``.

    The publisher id is ``error.publisher`` and the payload ``{'error': message}``.
    Nothing is sent when the ``log`` notification driver is configured, which
    would log the notification and loop.

    Args:
        *args: passed to ``logging.Handler``.
        conf: the configuration holding the transport URL (a private, empty one
            when None, which reads nothing from files).
        **kwargs: passed to ``logging.Handler``.
    """

    def __init__(self, *args: Any, conf: cfg.ConfigOpts | None = None, **kwargs: Any) -> None:
        from oslo_config import cfg

        from messaging.conf import NOTIFICATIONS_GROUP
        from messaging.notify.notifier import Notifier
        from messaging.transport import get_notification_transport

        if not args:  # oslo.log passes the level positionally: (logging.ERROR,)
            kwargs.setdefault("level", logging.ERROR)
        super().__init__(*args, **kwargs)
        self._conf = conf if conf is not None else cfg.ConfigOpts()
        transport = get_notification_transport(self._conf)
        self._notifier = Notifier(transport, publisher_id="error.publisher")
        self._group = NOTIFICATIONS_GROUP

    def emit(self, record: logging.LogRecord) -> None:
        """Send the record as an error notification."""
        # Read at each record, as the driver option may change after construction.
        if "log" in self._conf[self._group].driver or getattr(_guard, "active", False):
            return
        _guard.active = True
        try:
            self._notifier.error({}, "error_notification", {"error": record.getMessage()})
        except Exception:
            self.handleError(record)
        finally:
            _guard.active = False


PublishErrorsHandler = LoggingErrorNotificationHandler
