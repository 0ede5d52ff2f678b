"""Cumulative acknowledgement (STOMP's ``client`` ack mode) without acknowledging too much.

In ``client`` mode an ACK acknowledges the message it names and every message
the subscription received before it. Messages are handled in any order (several
executor threads), so acknowledging each one when it is done would also
acknowledge earlier ones still being handled, and lose them if the process
died. :class:`AckLedger` keeps a subscription's messages in the order they
came and says which one to acknowledge once every message up to it is settled.

The generic flavor uses ``client`` mode because some brokers (CoilMQ) only keep
track of unacknowledged messages in that mode.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["AckLedger"]

D = TypeVar("D")


class AckLedger(Generic[D]):
    """The unsettled messages of one ``client``-mode subscription, in order of arrival.

    Not thread-safe: the connection calls it under its lock.
    """

    def __init__(self) -> None:
        self._messages: OrderedDict[int, tuple[D, bool]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._messages)

    def received(self, message: D) -> None:
        """Record a message as it arrives."""
        self._messages[id(message)] = (message, False)

    def settle(self, message: D) -> D | None:
        """Mark ``message`` settled (handled, or given back).

        Returns:
            The message whose ACK settles every message up to it, once all before
            ``message`` are settled too; None while one of them is not (or
            ``message`` is not in the ledger).
        """
        if id(message) not in self._messages:
            return None
        self._messages[id(message)] = (message, True)
        last: D | None = None
        while self._messages:
            first, settled = next(iter(self._messages.values()))
            if not settled:
                break
            self._messages.popitem(last=False)
            last = first
        return last
