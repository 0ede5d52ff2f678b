"""Poison messages: bounded, spaced-out retries, then parking with the failure attached.

A notification whose handling fails every time (an endpoint that raises, or
returns ``REQUEUE``) used to come back at once, forever: about 1,500
deliveries a second, or, on a RabbitMQ 4 quorum queue, silently dropped by the
broker after its 20th delivery. Here the notification listener decides, the
same way over every transport:

- Each failure is an *attempt*. Before the ``max_delivery_attempts``-th one,
  the notification is requeued after a delay that doubles from
  ``requeue_backoff`` up to ``requeue_backoff_max`` seconds (the message waits
  in the listener meanwhile, unacknowledged, instead of spinning).
- At the ``max_delivery_attempts``-th failure (8 by default, well under
  RabbitMQ 4's delivery limit of 20) it is *parked*: handed to the transport's
  parking place (RabbitMQ: the queue ``messaging.parked``) with a
  :class:`HandlingFailure` attached, then acknowledged. A transport with no
  parking place logs it whole at ``ERROR`` instead.
- A notification that arrives having been delivered that many times already
  (its handler crashed the process, say) is parked before it is handled.

How attempts are counted is up to the transport where it can do it across
processes (RabbitMQ counts in a header of the requeued copy, plus the broker's
own ``x-delivery-count`` or ``redelivered``); elsewhere the listener counts
them itself, per process (:class:`LocalAttempts`).

RPC requests are acknowledged when taken (at most once, as oslo.messaging):
a request whose method fails is answered with the failure and never comes back,
so there is nothing to count.
"""

from __future__ import annotations

import collections
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.drivers.base import IncomingMessage

__all__ = [
    "PARKING_QUEUE",
    "HandlingFailure",
    "LocalAttempts",
    "ParkedMessage",
    "PoisonPolicy",
]

#: Where RabbitMQ (and STOMP on RabbitMQ) park messages: one durable queue per virtual host.
PARKING_QUEUE = "messaging.parked"
#: Longest traceback kept with a parked message (AMQP headers must fit in a frame).
TRACEBACK_MAX = 8000
MESSAGE_MAX = 1000


@dataclass(frozen=True)
class PoisonPolicy:
    """How often and how fast a failing notification is tried again.

    Attributes:
        max_attempts: the attempt at which it is parked instead of requeued.
        backoff: seconds before the first requeue.
        backoff_max: the longest wait before a requeue.
    """

    max_attempts: int = 8
    backoff: float = 1.0
    backoff_max: float = 60.0

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, group: str) -> PoisonPolicy:
        """Read ``max_delivery_attempts`` and the ``requeue_backoff`` options from ``group``."""
        options = conf[group]
        return cls(
            options.max_delivery_attempts,
            options.requeue_backoff,
            options.requeue_backoff_max,
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before requeueing after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.backoff * 2 ** max(0, attempt - 1), self.backoff_max))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 20] + "\n... (cut)"


@dataclass(frozen=True)
class HandlingFailure:
    """Why a message failed, as parked with it.

    Attributes:
        reason: what happened, in words.
        attempts: how many attempts were made.
        exception: the exception's class (``module.Class``), empty when none was raised.
        message: ``str()`` of the exception.
        traceback: the formatted traceback, empty when none.
        when: when it was parked (seconds since the epoch).
        where: ``host:pid`` of the listener that parked it.
    """

    reason: str
    attempts: int
    exception: str = ""
    message: str = ""
    traceback: str = ""
    when: float = field(default_factory=time.time)
    where: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    @classmethod
    def of(cls, error: BaseException | None, attempts: int) -> HandlingFailure:
        """The failure of an attempt: an exception, or (None) the endpoint's REQUEUE."""
        if error is None:
            return cls("the endpoint asked to requeue it every time", attempts)
        kind = type(error)
        return cls(
            "the endpoint raised",
            attempts,
            f"{kind.__module__}.{kind.__qualname__}",
            _clip(str(error), MESSAGE_MAX),
            _clip("".join(traceback.format_exception(error)), TRACEBACK_MAX),
        )

    @classmethod
    def unsettled(cls, attempts: int) -> HandlingFailure:
        """A message delivered ``attempts`` times without being settled (crashed handlers...)."""
        return cls(
            f"delivered {attempts} times without being acknowledged (its handler may have "
            "crashed its process)",
            attempts,
        )

    def summary(self) -> str:
        """One line: the reason, the exception and the attempts."""
        raised = f": {self.exception}: {self.message}" if self.exception else ""
        return f"{self.reason}{raised} ({self.attempts} attempts)"

    def as_headers(self) -> dict[str, Any]:
        """The failure as ``x-messaging-*`` message headers."""
        return {
            "x-messaging-failure": self.summary(),
            "x-messaging-exception": self.exception,
            "x-messaging-exception-message": self.message,
            "x-messaging-traceback": self.traceback,
            "x-messaging-attempts": self.attempts,
            "x-messaging-parked-at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.when)),
            "x-messaging-parked-by": self.where,
        }


@dataclass(frozen=True)
class ParkedMessage:
    """A parked message as ``messaging parked`` shows it.

    Attributes:
        queue: the queue it was parked from (replayed to).
        exchange: the exchange it was first published to.
        routing_key: the routing key it was first published with.
        failure: the failure, in one line.
        exception: the exception's class, empty when none was raised.
        traceback: the traceback, empty when none.
        attempts: how many attempts were made.
        parked_at: when it was parked (ISO 8601, UTC).
        parked_by: ``host:pid`` of the listener that parked it.
        body: the message as it was sent.
    """

    queue: str
    exchange: str
    routing_key: str
    failure: str
    exception: str
    traceback: str
    attempts: int
    parked_at: str
    parked_by: str
    body: str


class LocalAttempts:
    """Failed attempts per message, counted by this process (for transports that cannot).

    Keyed by the message's unique id; the oldest entries go beyond ``size``.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._counts: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    @staticmethod
    def key(message: IncomingMessage) -> str | None:
        """What identifies ``message`` across its deliveries."""
        return message.msg_id or message.message.get("message_id")

    def get(self, message: IncomingMessage) -> int:
        """How many failed attempts were counted for ``message``."""
        key = self.key(message)
        with self._lock:
            return self._counts.get(key, 0) if key else 0

    def set(self, message: IncomingMessage, attempts: int) -> None:
        """Record ``attempts`` failed attempts for ``message``."""
        key = self.key(message)
        if key is None:
            return
        with self._lock:
            self._counts[key] = attempts
            self._counts.move_to_end(key)
            while len(self._counts) > self._size:
                self._counts.popitem(last=False)

    def forget(self, message: IncomingMessage) -> None:
        """Drop the count of a message that was handled or parked."""
        key = self.key(message)
        if key is not None:
            with self._lock:
                self._counts.pop(key, None)
