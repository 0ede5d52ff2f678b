"""How many messages and consumers RabbitMQ counts on some queues (``messaging status``).

A passive ``queue.declare`` answers with both counts and needs no
management plugin. For a queue that does not exist the broker closes the
channel with ``404 NOT_FOUND``, so every queue is asked on a channel of its
own: one missing queue is reported as missing and the others are still asked.
The work runs on the connection's I/O thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import amqp
import amqp.exceptions

from messaging.drivers.base import QueueStats

if TYPE_CHECKING:
    from messaging.drivers.rabbit.connection import AmqpConnection

__all__ = ["STATS_TIMEOUT", "passive_stats"]

#: Seconds the questions may take, the connection included.
STATS_TIMEOUT = 10.0


def _ask(conn: amqp.Connection, name: str) -> QueueStats:
    channel = conn.channel()
    try:
        ok = channel.queue_declare(name, passive=True)
    except amqp.exceptions.NotFound:
        return QueueStats(name, exists=False)  # the broker closed the channel
    # The answer is in; a channel that will not close is the connection's business.
    with contextlib.suppress(amqp.exceptions.AMQPError):
        channel.close()
    return QueueStats(name, True, int(ok.message_count), int(ok.consumer_count))


def passive_stats(
    connection: AmqpConnection, names: Sequence[str], timeout: float = STATS_TIMEOUT
) -> list[QueueStats]:
    """Count the ready messages and the consumers of each queue in ``names``.

    Args:
        connection: a connection to the virtual host.
        names: the queues, in the order to report them.
        timeout: seconds to wait for the connection and the answers.

    Returns:
        One entry per name; a queue that does not exist has ``exists`` False.

    Raises:
        MessageDeliveryFailure: the broker could not be reached, or did not
            answer, within ``timeout``.
    """
    return connection.run_connected(
        lambda conn: [_ask(conn, name) for name in names], timeout, "count the queues' messages"
    )
