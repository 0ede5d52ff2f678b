"""``Notifier``: emits notifications through the configured notification drivers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from messaging import _plugins, wire
from messaging.conf import NOTIFICATIONS_GROUP, register_notification_opts
from messaging.exceptions import DriverLoadFailure
from messaging.excerpt import excerpt
from messaging.notify.drivers.base import Driver
from messaging.notify.outbox import OutboxSettings
from messaging.serializer import NoOpSerializer, Serializer
from messaging.transport import (
    RPC_TRANSPORT_FOR_NOTIFICATIONS,
    RPCTransport,
    Transport,
    get_notification_transport,
)

__all__ = ["Driver", "Notifier", "get_notification_transport"]

# oslo.messaging's name for this logger, which tests patch.
_LOG = logging.getLogger(__name__)
NAMESPACE = "messaging.notify.drivers"
#: oslo.messaging's namespace, where third-party drivers written for it register.
OSLO_NAMESPACE = "oslo.messaging.notify.drivers"
_marker: Any = object()


def _load_drivers(
    transport: Transport, names: Sequence[str], topics: Sequence[str]
) -> list[Driver]:
    drivers = []
    for name in names:
        drivers.append(
            _driver_class(name)(transport.conf, topics=list(topics), transport=transport)
        )
    return drivers


def _driver_class(name: str) -> type[Driver]:
    # Ours first: oslo.messaging's namespace also lists oslo's own drivers, under
    # the same names, when oslo.messaging is installed.
    try:
        cls: type[Driver] = _plugins.load_plugin(NAMESPACE, name)
        return cls
    except ImportError as exc:
        raise DriverLoadFailure(name, str(exc)) from exc
    except LookupError:
        pass
    try:
        cls = _plugins.load_plugin(OSLO_NAMESPACE, name)
        return cls
    except LookupError:
        known = sorted(
            {*_plugins.known_plugins(NAMESPACE), *_plugins.known_plugins(OSLO_NAMESPACE)}
        )
        raise DriverLoadFailure(
            name,
            f"no notification driver named {name!r} in {NAMESPACE} or {OSLO_NAMESPACE}; "
            f"known names: {', '.join(known)}",
        ) from None
    except ImportError as exc:
        raise DriverLoadFailure(name, str(exc)) from exc


def _utcnow() -> Any:
    # oslo_utils' clock, so that its time overrides (timeutils.set_time_override,
    # patches of utcnow) apply to notification timestamps, as in oslo.messaging.
    from oslo_utils import timeutils

    return timeutils.utcnow()


def _safe_context(ctxt: Any) -> Any:
    # As oslo.messaging: a plain dict cannot be redacted, so it is not sent;
    # context objects are sent as their redacted copy.
    if ctxt is None or isinstance(ctxt, dict):
        return {}
    redacted_copy = getattr(ctxt, "redacted_copy", None)
    if not callable(redacted_copy):
        _LOG.warning(
            "The context %s has no redacted_copy(); it is not sent with the notification",
            type(ctxt).__name__,
        )
        return {}
    return redacted_copy()


class Notifier:
    """Sends notifications.

    ``notifier.info(ctxt, 'compute.instance.create.end', payload)`` builds the
    notification (a dashed ``message_id``, ``publisher_id``, ``event_type``, the
    upper-case ``priority``, the serialised ``payload`` and a UTC ``timestamp``)
    and hands it to every driver.

    A driver that fails is logged with the event type and message id, and the
    other drivers still get the notification. With ``raise_errors=True`` the
    first failure is raised to the caller afterwards.

    Args:
        transport: the notification transport.
        publisher_id: who sends, e.g. ``compute.host1``.
        driver: a driver name or a list of names; None reads
            ``[oslo_messaging_notifications] driver``.
        serializer: converts payloads and contexts.
        retry: connection retries: None reads the config (default -1, forever);
            0 none; N times.
        topics: topics to send on; None reads the config (``['notifications']``).
        raise_errors: raise a send failure to the caller (after logging it).

    Raises:
        DriverLoadFailure: a driver name is unknown; the message lists the known ones.
    """

    def __init__(
        self,
        transport: Transport,
        publisher_id: str | None = None,
        driver: str | Sequence[str] | None = None,
        serializer: Serializer | None = None,
        retry: int | None = None,
        topics: Sequence[str] | None = None,
        *,
        raise_errors: bool = False,
    ) -> None:
        conf = transport.conf
        register_notification_opts(conf)
        group = conf[NOTIFICATIONS_GROUP]
        self.transport = transport
        self.publisher_id = publisher_id
        self.retry = group.retry if retry is None else retry
        self.raise_errors = raise_errors
        if driver is None:
            names = list(group.driver)
        elif isinstance(driver, str):
            names = [driver]
        else:
            names = list(driver)
        # A driver named in both [oslo_messaging_notifications] and the deprecated
        # [messaging_notifications] comes twice from oslo.config (multi-valued
        # options merge): send once.
        names = list(dict.fromkeys(names))
        self._driver_names = names
        self._topics = list(group.topics if topics is None else topics)
        self._serializer: Serializer = serializer or NoOpSerializer()
        if isinstance(transport, RPCTransport):
            _LOG.warning(RPC_TRANSPORT_FOR_NOTIFICATIONS)
        self._drivers = _load_drivers(transport, names, self._topics) if names else []
        outbox = OutboxSettings.from_group(group)
        if outbox is not None:
            transport.use_outbox(outbox)
        # Shared with prepare()'s copies: the first discarded notification is logged.
        self._discard_logged = threading.Event()

    def prepare(
        self, publisher_id: str | None = _marker, retry: int | None = _marker, **kwargs: Any
    ) -> Notifier:
        """Return a notifier sharing this one's drivers, with other defaults.

        Args:
            publisher_id: the new publisher id.
            retry: the new retry count.
            **kwargs: ``raise_errors`` may be changed too.
        """
        sub = object.__new__(_SubNotifier)
        sub.__dict__.update(self.__dict__)
        if publisher_id is not _marker:
            sub.publisher_id = publisher_id
        if retry is not _marker:
            sub.retry = retry
        if "raise_errors" in kwargs:
            sub.raise_errors = bool(kwargs.pop("raise_errors"))
        if kwargs:
            raise TypeError(f"prepare() got unexpected arguments: {', '.join(sorted(kwargs))}")
        return sub

    def flush(self, timeout: float | None = None) -> int:
        """Wait until the notifications sent so far are confirmed by the broker.

        Some drivers (RabbitMQ, with the default ``retry``) hand notifications over
        without waiting for each confirm, so that a stream of them flows; this
        waits for those confirms.

        Returns:
            How many notifications are still unconfirmed after ``timeout``.
        """
        return self.transport.flush(timeout)

    def is_enabled(self) -> bool:
        """False when the only driver is ``noop`` (callers may skip building payloads)."""
        return self._driver_names != ["noop"]

    def _notify(
        self,
        ctxt: Any,
        event_type: str,
        payload: Any,
        priority: str,
        publisher_id: str | None = None,
        retry: int | None = None,
    ) -> None:
        message_id = wire.new_message_id()
        if not self._drivers:
            if not self._discard_logged.is_set():
                self._discard_logged.set()
                _LOG.warning(
                    "The Notifier of %s has no driver (set [%s] driver): notifications are "
                    "discarded, %s the first",
                    self.publisher_id,
                    NOTIFICATIONS_GROUP,
                    excerpt(event_type, 100),
                )
            return
        try:
            payload = self._serializer.serialize_entity(ctxt, payload)
            ctxt = self._serializer.serialize_context(_safe_context(ctxt))
        except Exception:
            _LOG.exception(
                "Could not serialise notification %s (%s, message_id %s)",
                event_type,
                priority,
                message_id,
            )
            if self.raise_errors:
                raise
            return
        message = {
            "message_id": message_id,
            "publisher_id": publisher_id or self.publisher_id,
            "event_type": event_type,
            "priority": priority,
            "payload": payload,
            "timestamp": wire.timestamp(_utcnow()),
        }
        retry = self.retry if retry is None else retry
        first_error: Exception | None = None
        for name, driver in zip(self._driver_names, self._drivers, strict=True):
            try:
                driver.notify(ctxt, message, priority, retry)
            except Exception as exc:
                _LOG.error(
                    "Could not send notification %s (%s, message_id %s) with driver %s: %s",
                    event_type,
                    priority,
                    message_id,
                    name,
                    exc,
                    exc_info=True,
                )
                first_error = first_error or exc
        if first_error is not None and self.raise_errors:
            raise first_error

    def audit(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at AUDIT priority."""
        self._notify(ctxt, event_type, payload, "AUDIT")

    def debug(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at DEBUG priority."""
        self._notify(ctxt, event_type, payload, "DEBUG")

    def info(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at INFO priority."""
        self._notify(ctxt, event_type, payload, "INFO")

    def warn(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at WARN priority."""
        self._notify(ctxt, event_type, payload, "WARN")

    warning = warn

    def error(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at ERROR priority."""
        self._notify(ctxt, event_type, payload, "ERROR")

    def critical(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at CRITICAL priority."""
        self._notify(ctxt, event_type, payload, "CRITICAL")

    def sample(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at SAMPLE priority (metering samples)."""
        self._notify(ctxt, event_type, payload, "SAMPLE")


class _SubNotifier(Notifier):
    """What :meth:`Notifier.prepare` returns: the same drivers, other defaults."""
