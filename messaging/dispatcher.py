"""The base class of dispatchers, at oslo.messaging's path (``oslo_messaging.dispatcher``).

A dispatcher takes what a server's listener received and hands it to the
endpoints: :class:`~messaging.rpc.RPCDispatcher` for RPC servers,
:class:`~messaging.notify.dispatcher.NotificationDispatcher` for notification
listeners.
"""

from __future__ import annotations

import abc
from typing import Any

__all__ = ["DispatcherBase"]


class DispatcherBase(abc.ABC):
    """Routes one received message to the endpoints.

    Attributes:
        endpoints: the endpoint objects, the very list the caller gave.
    """

    endpoints: list[Any]

    @abc.abstractmethod
    def dispatch(self, incoming: Any) -> Any:
        """Handle one received message.

        Args:
            incoming: the message the listener received.

        Returns:
            What the server does with the message next (the RPC result, or a
            :class:`~messaging.notify.NotificationResult` value).
        """
