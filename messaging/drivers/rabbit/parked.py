"""Reading and replaying the parked messages of a RabbitMQ virtual host (``messaging parked``).

Parked messages wait in the durable queue ``messaging.parked`` (see
:mod:`messaging.drivers.rabbit.parking`). Listing fetches them and gives them
back (the queue is a classic one, so looking does not count against any
delivery limit). Replaying publishes each one again, with publisher confirms,
to the queue it was parked from, through the default exchange so that it
reaches that queue only, without its failure headers and with its attempt
count at zero; the parked copy is acknowledged only once the broker confirmed
the replayed one. A message whose queue no longer exists stays parked.

The work runs on the connection's I/O thread, on a channel of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import amqp
import amqp.exceptions

from messaging.drivers.rabbit.parking import (
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_QUEUE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
)
from messaging.poison import PARKING_QUEUE, ParkedMessage

if TYPE_CHECKING:
    from messaging.drivers.rabbit.connection import AmqpConnection

__all__ = ["browse"]

#: Seconds a listing or a replay may take.
BROWSE_TIMEOUT = 120.0


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _describe(message: amqp.Message) -> ParkedMessage:
    headers = message.headers or {}
    body = message.body
    attempts = headers.get("x-messaging-attempts")
    return ParkedMessage(
        queue=_text(headers.get(ORIGINAL_QUEUE_HEADER)),
        exchange=_text(headers.get(ORIGINAL_EXCHANGE_HEADER)),
        routing_key=_text(headers.get(ORIGINAL_ROUTING_KEY_HEADER)),
        failure=_text(headers.get("x-messaging-failure")),
        exception=_text(headers.get("x-messaging-exception")),
        traceback=_text(headers.get("x-messaging-traceback")),
        attempts=int(attempts) if isinstance(attempts, int) else 0,
        parked_at=_text(headers.get("x-messaging-parked-at")),
        parked_by=_text(headers.get("x-messaging-parked-by")),
        body=body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body),
    )


def _fresh_copy(message: amqp.Message) -> amqp.Message:
    headers = {
        k: v
        for k, v in (message.headers or {}).items()
        if not str(k).startswith("x-messaging-") or k in _KEPT
    }
    properties = {k: v for k, v in message.properties.items() if k != "application_headers"}
    return amqp.Message(message.body, application_headers=headers, **properties)


_KEPT = (ORIGINAL_EXCHANGE_HEADER, ORIGINAL_ROUTING_KEY_HEADER, ORIGINAL_QUEUE_HEADER)


def browse(
    connection: AmqpConnection, limit: int, queue: str | None, replay: bool
) -> tuple[list[ParkedMessage], list[ParkedMessage]]:
    """List (and with ``replay``, replay) up to ``limit`` parked messages.

    Args:
        connection: a connection to the virtual host.
        limit: how many messages at most.
        queue: only messages parked from this queue; None for all.
        replay: publish them again to their queue and remove them from the parking queue.

    Returns:
        The messages selected, and those of them that could not be replayed
        (their queue is gone); both empty when nothing was ever parked.

    Raises:
        MessageDeliveryFailure: the broker could not be reached, or the work
            did not finish, within :data:`BROWSE_TIMEOUT`.
    """

    def work(conn: amqp.Connection) -> tuple[list[ParkedMessage], list[ParkedMessage]]:
        channel = conn.channel()
        try:
            try:
                channel.queue_declare(PARKING_QUEUE, passive=True)
            except amqp.exceptions.NotFound:
                return [], []
            returned: list[str] = []
            if replay:
                channel.confirm_select()
                channel.events["basic_return"].add(
                    lambda exc, exchange, routing_key, message: returned.append(routing_key)
                )
            selected: list[ParkedMessage] = []
            failed: list[ParkedMessage] = []
            while len(selected) < limit:
                message = channel.basic_get(PARKING_QUEUE)
                if message is None:
                    break
                parked = _describe(message)
                if queue is not None and parked.queue != queue:
                    continue  # left unacknowledged: back to the queue when the channel closes
                selected.append(parked)
                if not replay:
                    continue
                before = len(returned)
                channel.basic_publish_confirm(
                    _fresh_copy(message), exchange="", routing_key=parked.queue, mandatory=True
                )
                if len(returned) > before or not parked.queue:
                    failed.append(parked)
                else:
                    channel.basic_ack(message.delivery_tag)
            return selected, failed
        finally:
            channel.close()  # what was fetched and not acknowledged goes back

    return connection.run_connected(work, BROWSE_TIMEOUT, "read the parked messages")
