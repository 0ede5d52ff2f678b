"""Listeners over a driver's raw deliveries: decode, de-duplicate, settle, reply.

A driver that receives raw message bodies (RabbitMQ, kombu transports, the
in-memory broker) hands them over through a :class:`DeliverySource`;
:class:`DecodingListener` turns each into the incoming message the server
dispatches, with the oslo rules: a body that cannot be decoded, whatever the
reason (not JSON, too large, nested too deep: :func:`messaging.wire.loads`), is
logged with a bounded excerpt and discarded by the source (acknowledged, or
parked where the broker can keep it; never silently dropped, never left to
block the listener), a repeated ``_unique_id`` is acknowledged without being
handled, a notification counts as seen once it is acknowledged, an RPC request
as soon as it is received. A reply larger than ``max_message_size`` is replaced
by the error saying so, which the caller then gets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from messaging import wire
from messaging.drivers import base
from messaging.exceptions import MessageTooLarge
from messaging.excerpt import excerpt

if TYPE_CHECKING:
    from messaging.poison import HandlingFailure

__all__ = [
    "DecodingListener",
    "Delivered",
    "DeliveredNotification",
    "DeliveredRequest",
    "DeliverySource",
    "ParkingSource",
    "ReplyPublisher",
    "encode_reply",
    "undecodable",
]

LOG = logging.getLogger(__name__)


class Delivered(Protocol):
    """What a raw delivery has: its body, where it came from, whether it came before."""

    @property
    def body(self) -> bytes | str:
        """The raw body."""

    @property
    def queue(self) -> str:
        """The queue (or routing key) it came from, for logs."""

    @property
    def redelivered(self) -> bool:
        """Whether the broker delivered it before."""


D = TypeVar("D", bound=Delivered)


class DeliverySource(Protocol[D]):
    """Where a listener takes raw deliveries from, and settles them."""

    def take(self, timeout: float | None) -> D | None:
        """The next delivery; None after ``timeout`` or once stopped."""

    def ack(self, delivery: D) -> None:
        """Acknowledge a delivery."""

    def requeue(self, delivery: D) -> None:
        """Give a delivery back for another delivery."""

    def discard(self, delivery: D, reason: str) -> None:
        """Settle a delivery that cannot be decoded (already logged): acknowledge or park it."""

    def stop(self) -> None:
        """Wake a blocked :meth:`take`."""

    def close(self) -> None:
        """Stop consuming; unacknowledged deliveries go back to the broker."""


D_contra = TypeVar("D_contra", contravariant=True)


@runtime_checkable
class ParkingSource(Protocol[D_contra]):
    """A source that counts attempts and parks deliveries (see :mod:`messaging.poison`).

    Its ``requeue`` counts the attempt, so that the next delivery's count includes it.
    """

    def attempts(self, delivery: D_contra) -> int:
        """How many times the delivery was delivered before and not handled."""

    def park(self, delivery: D_contra, failure: HandlingFailure) -> bool:
        """Move the delivery, with ``failure``, to the parking place; False if that failed."""


def undecodable(error: BaseException, body: bytes | str, where: str) -> str:
    """Log a body that cannot be decoded (with a bounded excerpt); return the reason.

    Args:
        error: what decoding raised.
        body: the raw body.
        where: where it came from, for the log (``queue notifications.info``).
    """
    text = str(error)
    reason = f"{type(error).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"
    LOG.error(
        "Cannot decode a message from %s (%s); it is discarded. Its start: %s",
        where,
        reason,
        excerpt(body),
    )
    return reason


def encode_reply(
    msg_id: str,
    method: Any,
    limits: wire.Limits,
    result: Any = None,
    failure: BaseException | None = None,
    ending: bool = True,
) -> str:
    """Encode a reply; one that cannot be encoded or is too large becomes that error.

    Args:
        msg_id: the call's ``_msg_id``.
        method: the method called, for logs.
        limits: the bounds of the replying transport.
        result: the result.
        failure: the exception the method raised, if it did.
        ending: False for a call-monitor heartbeat.
    """
    try:
        text = wire.serialize_failure(failure) if failure is not None else None
        body = wire.encode_reply(msg_id, result, text, ending)
        wire.check_size(body, limits, f"The reply to {excerpt(method, 100)}")
    except MessageTooLarge as exc:
        LOG.error("%s; replying with that error", exc)
        body = wire.encode_reply(msg_id, failure=wire.serialize_failure(exc.with_traceback(None)))
    except Exception as exc:
        LOG.exception(
            "The reply to %s cannot be encoded; replying with the error", excerpt(method, 100)
        )
        body = wire.encode_reply(msg_id, failure=wire.serialize_failure(exc))
    return body


class ReplyPublisher(Protocol):
    """What sends RPC replies for a listener (its driver).

    Attributes:
        limits: the bounds on what it sends and what its listeners decode.
    """

    limits: wire.Limits

    def send_reply(self, reply_q: str, msg_id: str, body: str, heartbeat: bool) -> None:
        """Publish an encoded reply (or heartbeat) to ``reply_q``; never raises."""


class DeliveredNotification(base.IncomingMessage, Generic[D]):
    """A notification taken from a :class:`DeliverySource`.

    Attributes:
        redelivered: whether the broker delivered it before.
        queue: the queue it came from.
    """

    def __init__(self, listener: DecodingListener[D], delivery: D, decoded: wire.Decoded) -> None:
        super().__init__(decoded.ctxt, decoded.message, decoded.unique_id, decoded.client_timeout)
        self.redelivered = delivery.redelivered
        self.queue = delivery.queue
        self._listener = listener
        self._delivery = delivery
        self._unique_id = decoded.unique_id
        self._settled = False
        parking = listener.parking
        if parking is not None:
            self.previous_attempts = parking.attempts(delivery)

    def acknowledge(self) -> None:
        """Acknowledge once; the notification now counts as seen."""
        if self._settled:
            return
        self._settled = True
        self._listener.dedup.add(self._unique_id)
        self._listener.source.ack(self._delivery)

    def requeue(self) -> None:
        """Requeue once."""
        if self._settled:
            return
        self._settled = True
        self._listener.source.requeue(self._delivery)

    def park(self, failure: HandlingFailure) -> bool:
        """Park once, where the source can."""
        source = self._listener.parking
        if self._settled or source is None:
            return False
        if not source.park(self._delivery, failure):
            return False
        self._settled = True
        self._listener.dedup.add(self._unique_id)
        return True


class DeliveredRequest(base.RpcIncomingMessage, Generic[D]):
    """An RPC request taken from a :class:`DeliverySource`."""

    def __init__(self, listener: DecodingListener[D], delivery: D, decoded: wire.Decoded) -> None:
        super().__init__(decoded.ctxt, decoded.message, decoded.msg_id, decoded.client_timeout)
        self._listener = listener
        self._delivery = delivery
        self.reply_q = decoded.reply_q
        self._settled = False

    def acknowledge(self) -> None:
        """Acknowledge once."""
        if not self._settled:
            self._settled = True
            self._listener.source.ack(self._delivery)

    def requeue(self) -> None:
        """Requeue once."""
        if not self._settled:
            self._settled = True
            self._listener.source.requeue(self._delivery)

    def reply(self, reply: Any = None, failure: BaseException | None = None) -> None:
        """Send the result or the failure to the caller (nothing for a cast); never raises."""
        if not self.msg_id or not self.reply_q:
            return
        replies = self._listener.replies
        body = encode_reply(self.msg_id, self.message.get("method"), replies.limits, reply, failure)
        replies.send_reply(self.reply_q, self.msg_id, body, heartbeat=False)

    def heartbeat(self) -> None:
        """Tell a monitoring caller the call is still being worked on."""
        if not self.msg_id or not self.reply_q:
            return
        body = wire.encode_reply(self.msg_id, ending=False)
        self._listener.replies.send_reply(self.reply_q, self.msg_id, body, heartbeat=True)


class DecodingListener(base.Listener, Generic[D]):
    """A listener that decodes what a :class:`DeliverySource` delivers.

    Args:
        source: where deliveries come from.
        replies: what sends RPC replies.
        batch_size: how many messages a poll may return.
        batch_timeout: how long a batch may take to fill.
        rpc: whether the deliveries are RPC requests (else notifications).
        on_cleanup: called with the listener once it is cleaned up.
    """

    concurrent_poll = True  # every source's take() is thread-safe

    def __init__(
        self,
        source: DeliverySource[D],
        replies: ReplyPublisher,
        batch_size: int,
        batch_timeout: float | None,
        rpc: bool,
        on_cleanup: Callable[[DecodingListener[D]], None] | None = None,
    ) -> None:
        super().__init__(batch_size, batch_timeout)
        self.source = source
        # Whether the source can park, found once (a protocol check costs every message).
        self.parking: ParkingSource[D] | None = (
            source if isinstance(source, ParkingSource) else None
        )
        self.replies = replies
        self.rpc = rpc
        self.dedup = base.DuplicateFilter()
        self._on_cleanup = on_cleanup

    def poll_one(self, timeout: float | None) -> base.IncomingMessage | None:
        """Take, decode and de-duplicate the next delivery."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            delivery = self.source.take(remaining)
            if delivery is None:
                return None
            try:
                decoded = wire.decode(delivery.body, self.replies.limits)
            except Exception as exc:  # RecursionError, MemoryError...: nothing may stall here
                reason = undecodable(exc, delivery.body, f"queue {delivery.queue}")
                self.source.discard(delivery, reason)
                continue
            if self.rpc:
                if self.dedup.seen(decoded.unique_id):
                    LOG.warning(
                        "Dropping a duplicate request %s from %s", decoded.unique_id, delivery.queue
                    )
                    self.source.ack(delivery)
                    continue
                return DeliveredRequest(self, delivery, decoded)
            if decoded.unique_id is not None and decoded.unique_id in self.dedup:
                LOG.warning(
                    "Dropping a duplicate notification %s from %s",
                    decoded.unique_id,
                    delivery.queue,
                )
                self.source.ack(delivery)
                continue
            return DeliveredNotification(self, delivery, decoded)

    def consuming(self) -> bool:
        """Whether the source says it is consuming (sources that do not say are)."""
        consuming = getattr(self.source, "consuming", None)
        return True if consuming is None else bool(consuming())

    def stop(self) -> None:
        """Wake a blocked poll."""
        self.source.stop()

    def cleanup(self) -> None:
        """Stop consuming and tell the owner."""
        self.source.close()
        if self._on_cleanup is not None:
            self._on_cleanup(self)
