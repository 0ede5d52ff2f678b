"""The base class of notification drivers."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.transport import Transport

__all__ = ["Driver"]


class Driver(abc.ABC):
    """A notification driver: sends what a :class:`~messaging.notify.Notifier` emits.

    Built as ``Driver(conf, topics=..., transport=...)``, as oslo.messaging builds
    its drivers, so third-party drivers written for it fit.

    Args:
        conf: the caller's configuration.
        topics: the topics to send on.
        transport: the notification transport.
    """

    def __init__(
        self, conf: cfg.ConfigOpts, topics: Sequence[str] | None, transport: Transport
    ) -> None:
        self.conf = conf
        self.topics = list(topics or [])
        self.transport = transport

    @abc.abstractmethod
    def notify(self, ctxt: Any, message: dict[str, Any], priority: str, retry: int | None) -> None:
        """Send one notification.

        Args:
            ctxt: the serialised request context.
            message: the notification dict (message_id, publisher_id, event_type,
                priority, payload, timestamp).
            priority: the upper-case priority (``INFO``...).
            retry: connection retries: None or -1 forever, 0 none, N times.

        Raises:
            Exception: whatever prevented sending; the Notifier logs it.
        """
