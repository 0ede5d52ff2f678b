"""The ``log`` notification driver: writes each notification to the Python log.

The logger is ``oslo.messaging.notification.<event_type>`` (oslo.messaging's
name, so existing logging configurations keep matching), and the notification
is logged as JSON with the logger's method of the priority's name: ``debug``,
``info``, ``warn`` (as ``warning``), ``error``, ``critical``. ``audit`` and
``sample`` have no such method and, as in oslo.messaging, are not logged (a
``UserWarning`` says so). Secrets are masked: everything oslo_utils'
``strutils.mask_dict_password`` masks (``password``, ``admin_pass``, ``token``...
keys, and ``password=...`` inside strings), and the values of any key naming a
password, secret, token, credential or private key, at any depth, lists included.

A line is bounded: a notification whose JSON is longer than
:data:`LOG_LINE_CHARS` characters is logged as its first ``LOG_LINE_CHARS``
characters followed by ``... (N characters in all)`` (then no longer valid
JSON), and an event type longer than :data:`EVENT_TYPE_CHARS` is cut in the
logger's name (every logger name stays in memory for the life of the process).
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

from messaging.excerpt import shortened
from messaging.notify.drivers.base import Driver

__all__ = ["EVENT_TYPE_CHARS", "LOG_LINE_CHARS", "LogDriver", "mask_secrets"]

LOGGER_PREFIX = "oslo.messaging.notification"
#: The longest notification logged whole, in characters of JSON.
LOG_LINE_CHARS = 64 * 1024
#: The longest event type put whole in a logger's name, in characters.
EVENT_TYPE_CHARS = 255
_METHODS = {
    "debug": ("debug", logging.DEBUG),
    "info": ("info", logging.INFO),
    "warn": ("warning", logging.WARNING),
    "warning": ("warning", logging.WARNING),
    "error": ("error", logging.ERROR),
    "critical": ("critical", logging.CRITICAL),
}
_SECRET_WORDS = ("password", "secret", "token", "credential", "private_key")
_MASK = "***"


def _secret_key(key: object) -> bool:
    lowered = str(key).lower()
    return any(word in lowered for word in _SECRET_WORDS)


def mask_secrets(value: Any) -> Any:
    """Return a copy of ``value`` with secrets replaced by ``***`` (see the module)."""
    from oslo_utils import strutils

    if isinstance(value, dict):
        masked = strutils.mask_dict_password(value, secret=_MASK)
        return {k: _MASK if _secret_key(k) else mask_secrets(v) for k, v in masked.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return strutils.mask_password(value, secret=_MASK)
    return value


class LogDriver(Driver):
    """Logs notifications as JSON."""

    LOGGER_BASE = LOGGER_PREFIX

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str, retry: int | None) -> None:
        """Log the notification with the logger method of its priority, if there is one."""
        event_type = str(message.get("event_type"))[:EVENT_TYPE_CHARS]
        logger = logging.getLogger(f"{self.LOGGER_BASE}.{event_type}")
        method_level = _METHODS.get(priority.lower())
        if method_level is None:
            warnings.warn(
                f"The log notification driver does not log {priority.lower()!r} notifications: "
                "no logger method has that name",
                stacklevel=2,
            )
            return
        name, level = method_level
        if logger.isEnabledFor(level):
            text = json.dumps(mask_secrets(message), default=str)
            getattr(logger, name)(shortened(text, LOG_LINE_CHARS))
