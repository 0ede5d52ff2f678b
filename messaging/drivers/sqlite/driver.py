"""``SqliteDriver``: notifications and RPC through a sqlite file shared by the processes of a host.

The topology is the one the other drivers use (oslo.messaging's on RabbitMQ),
so pools and competing consumers behave the same:

- a notification to ``<topic>.<priority>`` goes to the default queue of that
  name (declared by the publisher too, so nothing sent before a listener exists
  is lost) and to every pool queue bound to that key; each pool is one queue,
  so one copy per pool, shared by the pool's listeners;
- an RPC cast or call goes to queue ``<topic>`` or ``<topic>.<server>``; a
  fanout cast to every live server's own queue bound to ``<topic>_fanout``;
  requests are taken at most once; a call's request expires after its timeout;
- replies go to the calling process's ``reply_<hex>`` queue.

Notifications are at-least-once (see :mod:`~messaging.drivers.sqlite.store`
for claims and the visibility timeout). Bodies are encoded by
:mod:`messaging.wire`, as on RabbitMQ. The protocol is the driver core's
(:mod:`messaging.drivers.core`); this module fills in its primitives.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from messaging.drivers import base, names
from messaging.drivers.core import Outgoing, TransportCore
from messaging.drivers.replies import ReplyWaiters
from messaging.drivers.sqlite.bus import Bus, close_bus, open_bus
from messaging.drivers.sqlite.listener import SqliteSource
from messaging.drivers.sqlite.options import SqliteSettings, database_path
from messaging.drivers.sqlite.store import Declaration, Limits, StoreError
from messaging.exceptions import MessageDeliveryFailure

if TYPE_CHECKING:
    pass

__all__ = ["SqliteDriver"]

LOG = logging.getLogger(__name__)

#: Pauses between attempts to write when the database fails (seconds).
RETRY_PAUSES = (0.05, 0.1, 0.2, 0.5, 1.0)


class SqliteDriver(TransportCore):
    """The ``sqlite://`` driver: a durable bus in one file, for the processes of one host.

    URL: ``sqlite:///relative/bus.db`` or ``sqlite:////absolute/bus.db``, with
    ``[oslo_messaging_sqlite]`` options in the query
    (:mod:`~messaging.drivers.sqlite.options`).

    Attributes:
        settings: the options, read once.
        path: the absolute path of the database file.
        bus: the process's shared handle on the file.
    """

    capabilities = base.Capabilities(requeue=True, pools=True, fanout=True, rpc=True)

    def open(self) -> None:
        """Read the options and open the bus file (a file that is not a usable bus fails now)."""
        self.settings = SqliteSettings.from_conf(self.conf, self.url)
        self.path = database_path(self.url, self.settings)
        self.disk_limits = Limits(self.settings.max_bytes, self.settings.max_messages)
        self._bus = self.process_local(
            lambda: open_bus(self.path, self.settings, self.limits),
            lambda _bus: close_bus(self.path),
        )
        self._bus.get()  # now, so that a file that is not a usable bus is reported at once

    def __repr__(self) -> str:
        return f"<SqliteDriver {self.path}>"

    @property
    def bus(self) -> Bus:
        """This process's handle on the file (opened again after use of a cleaned-up driver)."""
        return self._bus.get()

    def publish(self, out: Outgoing) -> int:
        """Store a message, trying again as ``retry`` and ``publish_timeout`` allow.

        Every message but a reply is held to the disk bound (replies are small
        and taken at once; refusing one would leave its caller waiting for
        nothing). A call's request expires after the call's timeout, and its
        tries end at the call's deadline.

        Returns:
            How many queues got a copy.

        Raises:
            MessageDeliveryFailure: the tries allowed failed, ``publish_timeout`` (or
                the call's deadline) passed, the file cannot be written (at once), or
                the disk bound was reached (at once: waiting would not make room).
        """
        kind, route, body, retry = out.kind, out.route, out.body, out.retry
        declare, call = out.declare, out.call
        exchange, routing_key = route.exchange, route.routing_key
        expires_at = None
        deadline = base.Deadline(None)
        if call is not None:
            deadline = call.deadline
            left = deadline.remaining()
            if left is not None:
                expires_at = time.time() + left
        bound = deadline.within(self.settings.publish_timeout)
        tries = base.Attempts(retry, bound)
        while True:
            tries.begin()
            try:
                return self.bus.store.publish(
                    exchange,
                    routing_key,
                    body,
                    fanout=route.fanout,
                    declare=None if declare is None else self._declaration(declare),
                    expires_at=expires_at,
                    limits=None if kind == "reply" else self.disk_limits,
                    busy=bound.remaining(),
                )
            except StoreError as exc:
                if exc.lasting or not tries.another():
                    raise MessageDeliveryFailure(
                        f"Unable to store a message for exchange {exchange!r}, routing key "
                        f"{routing_key!r} {tries.spent()}: {exc}"
                    ) from exc
                LOG.warning("%s (attempt %d); trying again", exc, tries.tries)
                time.sleep(tries.pause(RETRY_PAUSES[min(tries.tries, len(RETRY_PAUSES)) - 1]))

    @staticmethod
    def _declaration(bound: names.QueueBinding) -> Declaration:
        return Declaration(bound.queue, bound.exchange, bound.routing_key)

    def consume(self, queues: names.ListenerQueues, batch_size: int) -> SqliteSource:
        """Declare the queues (the listener's own one leased) and take from them."""
        shared = [self._declaration(b) for b in queues.bindings if b.queue != queues.own_queue]
        own = [self._declaration(b) for b in queues.bindings if b.queue == queues.own_queue]
        bus = self.bus
        bus.store.declare(shared, None)
        return SqliteSource(bus, self.settings, queues.queues, rpc=queues.rpc, own_queue=own)

    def reply_source(self, deadline: base.Deadline) -> ReplyWaiters:
        """The process's reply queue on this file."""
        return self.bus.replies(deadline.remaining())

    def release(self) -> None:
        """Let go of the bus file (the last driver of the process closes it)."""
        self._bus.release()
