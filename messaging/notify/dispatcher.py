"""Routing of received notifications to endpoint methods named like their priority."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from messaging.dispatcher import DispatcherBase
from messaging.excerpt import excerpt, log_exception
from messaging.executors import settle
from messaging.serializer import NoOpSerializer, Serializer

if TYPE_CHECKING:
    from messaging.drivers.base import IncomingMessage
    from messaging.notify.filter import NotificationFilter

__all__ = [
    "PRIORITIES",
    "BatchNotificationDispatcher",
    "NotificationDispatcher",
    "NotificationResult",
]

LOG = logging.getLogger(__name__)

#: Notification priorities, in the lower-case form of endpoint method names.
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")


class NotificationResult:
    """What an endpoint method may return."""

    #: The notification was handled; it is acknowledged (as is returning None).
    HANDLED = "handled"
    #: The notification should come again; requeued when the listener allows it.
    REQUEUE = "requeue"


Callback = tuple["NotificationFilter | None", Callable[..., Any]]


def describe(message: IncomingMessage) -> str:
    """Identify a notification in a log line without its payload (each field bounded)."""
    body = message.message
    return (
        f"{excerpt(body.get('event_type'), 200)} ({excerpt(body.get('priority'), 50)}, "
        f"message_id {excerpt(body.get('message_id'), 80)}, "
        f"publisher {excerpt(body.get('publisher_id'), 200)})"
    )


class NotificationDispatcher(DispatcherBase):
    """Calls, for each notification, the endpoints implementing its priority.

    Endpoint methods are called as ``method(ctxt, publisher_id, event_type,
    payload, metadata)``; ``metadata`` holds ``message_id`` and ``timestamp``.
    An endpoint's ``filter_rule`` (a :class:`NotificationFilter`) skips what
    does not match. The first endpoint returning REQUEUE (or raising) stops the
    others and the notification is requeued.

    Args:
        endpoints: objects with priority-named methods; kept as given, the
            caller's list.
        serializer: converts contexts and payloads back.
    """

    def __init__(self, endpoints: Sequence[Any], serializer: Serializer | None = None) -> None:
        self.endpoints = endpoints if isinstance(endpoints, list) else list(endpoints)
        self.serializer: Serializer = serializer or NoOpSerializer()
        self._callbacks: dict[str, list[Callback]] = {}
        for priority in PRIORITIES:
            for endpoint in self.endpoints:
                method = getattr(endpoint, priority, None)
                if callable(method):
                    rule = getattr(endpoint, "filter_rule", None)
                    self._callbacks.setdefault(priority, []).append((rule, method))

    @property
    def supported_priorities(self) -> list[str]:
        """The priorities some endpoint implements, which the listener subscribes to."""
        return [p for p in PRIORITIES if p in self._callbacks]

    def _extract(self, incoming: IncomingMessage) -> tuple[str, dict[str, Any]]:
        body = incoming.message
        ctxt = self.serializer.deserialize_context(incoming.ctxt)
        metadata = {"message_id": body.get("message_id"), "timestamp": body.get("timestamp")}
        user = {
            "ctxt": ctxt,
            "publisher_id": body.get("publisher_id"),
            "event_type": body.get("event_type"),
            "payload": self.serializer.deserialize_entity(ctxt, body.get("payload")),
            "metadata": metadata,
        }
        return str(body.get("priority", "")).lower(), user

    @staticmethod
    def _accepts(rule: NotificationFilter | None, user: dict[str, Any]) -> bool:
        return rule is None or rule.match(
            user["ctxt"],
            user["publisher_id"],
            user["event_type"],
            user["metadata"],
            user["payload"],
        )

    def dispatch(self, incoming: IncomingMessage) -> str | None:
        """Hand one notification to the endpoints; return HANDLED or REQUEUE.

        An endpoint that raises is logged and the notification is requeued (as
        REQUEUE). A priority that is not one of :data:`PRIORITIES` is logged
        (oslo.messaging's words) and None is returned, which counts as handled.
        """
        return self.dispatch_failure(incoming)[0]

    def dispatch_failure(
        self, incoming: IncomingMessage
    ) -> tuple[str | None, BaseException | None]:
        """As :meth:`dispatch`, also returning the exception an endpoint raised, if any."""
        priority, user = self._extract(incoming)
        if priority not in PRIORITIES:
            LOG.warning('Unknown priority "%s"', priority[:50])
            return None, None
        callbacks = self._callbacks.get(priority)
        if callbacks is None:
            LOG.warning(
                "No endpoint handles priority %s; acknowledging %s",
                excerpt(priority, 50),
                describe(incoming),
            )
            return NotificationResult.HANDLED, None
        for rule, method in callbacks:
            if not self._accepts(rule, user):
                continue
            try:
                result = settle(
                    method(
                        user["ctxt"],
                        user["publisher_id"],
                        user["event_type"],
                        user["payload"],
                        user["metadata"],
                    )
                )
            except Exception as exc:
                log_exception(
                    LOG, "An endpoint failed to handle notification %s", describe(incoming)
                )
                return NotificationResult.REQUEUE, exc
            if result == NotificationResult.REQUEUE:
                return NotificationResult.REQUEUE, None
        return NotificationResult.HANDLED, None


class BatchNotificationDispatcher(NotificationDispatcher):
    """Calls endpoints with lists of notifications, grouped by priority.

    Each element is a dict with ``ctxt``, ``publisher_id``, ``event_type``,
    ``payload`` and ``metadata``. REQUEUE (or an exception) requeues the whole
    group of that priority.
    """

    def dispatch_batch(self, incoming: Iterable[IncomingMessage]) -> set[IncomingMessage]:
        """Hand a batch to the endpoints; return the messages to requeue."""
        return set(self.dispatch_batch_failures(incoming))

    def dispatch_batch_failures(
        self, incoming: Iterable[IncomingMessage]
    ) -> dict[IncomingMessage, BaseException | None]:
        """Hand a batch to the endpoints; return the messages to requeue, each with its error.

        The error is the exception the endpoint raised, None where it returned REQUEUE.
        """
        groups: dict[str, list[tuple[IncomingMessage, dict[str, Any]]]] = {}
        for message in incoming:
            priority, user = self._extract(message)
            if priority not in self._callbacks:
                LOG.warning(
                    "No endpoint handles priority %s; acknowledging %s",
                    excerpt(priority, 50),
                    describe(message),
                )
                continue
            groups.setdefault(priority, []).append((message, user))
        requeue: dict[IncomingMessage, BaseException | None] = {}
        for priority, members in groups.items():
            for rule, method in self._callbacks[priority]:
                selected = [user for _m, user in members if self._accepts(rule, user)]
                if not selected:
                    continue
                error: BaseException | None = None
                try:
                    result = settle(method(selected))
                except Exception as exc:
                    log_exception(
                        LOG,
                        "An endpoint failed on a batch of %d %s notifications; requeueing them",
                        len(members),
                        priority,
                    )
                    result = NotificationResult.REQUEUE
                    error = exc
                if result == NotificationResult.REQUEUE:
                    requeue.update((m, error) for m, _u in members)
                    break
        return requeue
