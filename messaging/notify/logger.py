"""``LoggingNotificationHandler``: a logging handler that turns log records into notifications."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.serializer import Serializer

__all__ = ["LoggingNotificationHandler"]

_guard = threading.local()


class LoggingNotificationHandler(logging.Handler):
    """Sends each log record as a ``logrecord`` notification at the record's level.

    Usable from a logging configuration file, where no configuration object can
    be passed: the class attribute ``CONF`` is used then; None (the default)
    means oslo.config's global ``cfg.CONF``, where a service parsed its files,
    as in oslo.messaging (the notification options are registered on it).

    Args:
        url: the notification transport URL.
        publisher_id: the publisher id of the notifications.
        driver: the notification driver (``messagingv2``...) or a list of them.
        topic: the topic; None uses the configured topics.
        serializer: the payload serializer.
        conf: the configuration; defaults to ``CONF``.
    """

    CONF: ClassVar[cfg.ConfigOpts | None] = None

    def __init__(
        self,
        url: str,
        publisher_id: str | None = None,
        driver: str | Sequence[str] | None = None,
        topic: str | None = None,
        serializer: Serializer | None = None,
        conf: cfg.ConfigOpts | None = None,
    ) -> None:
        from oslo_config import cfg

        from messaging.notify.notifier import Notifier
        from messaging.transport import get_notification_transport

        super().__init__()
        conf = conf or self.CONF or cfg.CONF
        transport = get_notification_transport(conf, url)
        self._notifier = Notifier(
            transport,
            publisher_id,
            driver=driver,
            serializer=serializer,
            topics=[topic] if topic else None,
        )

    def emit(self, record: logging.LogRecord) -> None:
        """Send the record; records logged while sending one are not sent (no recursion)."""
        if getattr(_guard, "active", False):
            return
        method = getattr(self._notifier, record.levelname.lower(), None)
        if method is None:
            return
        exc_text = None
        if record.exc_info and record.exc_info[0] is not None:
            exc_text = "".join(traceback.format_exception(*record.exc_info))
        payload: dict[str, Any] = {
            "name": record.name,
            "levelno": record.levelno,
            "levelname": record.levelname,
            "exc_info": exc_text,
            "pathname": record.pathname,
            "lineno": record.lineno,
            "msg": record.getMessage(),
            "funcName": record.funcName,
            "thread": record.thread,
            "processName": record.processName,
            "process": record.process,
            "extra": getattr(record, "extra", None),
        }
        _guard.active = True
        try:
            method(None, "logrecord", payload)
        except Exception:
            self.handleError(record)
        finally:
            _guard.active = False
