"""The ``log`` notification driver: writes each notification to the Python log.

The logger is ``oslo.messaging.notification.<event_type>`` (oslo.messaging's
name, so existing logging configurations keep matching); the level follows the
priority. Values under keys that look like secrets are masked.

A line is bounded: a notification whose JSON is longer than
:data:`LOG_LINE_CHARS` characters is logged as its first ``LOG_LINE_CHARS``
characters followed by ``... (N characters in all)`` (then no longer valid
JSON), and an event type longer than :data:`EVENT_TYPE_CHARS` is cut in the
logger's name (every logger name stays in memory for the life of the process).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from messaging.excerpt import shortened
from messaging.notify.drivers.base import Driver

__all__ = ["EVENT_TYPE_CHARS", "LOG_LINE_CHARS", "LogDriver", "mask_secrets"]

LOGGER_PREFIX = "oslo.messaging.notification"
#: The longest notification logged whole, in characters of JSON.
LOG_LINE_CHARS = 64 * 1024
#: The longest event type put whole in a logger's name, in characters.
EVENT_TYPE_CHARS = 255
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "audit": logging.INFO,
    "sample": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_SECRET_WORDS = ("password", "secret", "token", "credential", "private_key")


def mask_secrets(value: Any) -> Any:
    """Return a copy of ``value`` with the values of secret-looking keys replaced by ``***``."""
    if isinstance(value, dict):
        return {
            k: "***" if any(w in str(k).lower() for w in _SECRET_WORDS) else mask_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    return value


class LogDriver(Driver):
    """Logs notifications as JSON."""

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str, retry: int | None) -> None:
        """Log the notification at the level of its priority."""
        event_type = str(message.get("event_type"))[:EVENT_TYPE_CHARS]
        logger = logging.getLogger(f"{LOGGER_PREFIX}.{event_type}")
        level = _LEVELS.get(priority.lower(), logging.INFO)
        if logger.isEnabledFor(level):
            text = json.dumps(mask_secrets(message), default=str)
            logger.log(level, shortened(text, LOG_LINE_CHARS))
