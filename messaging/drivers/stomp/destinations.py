"""How targets map to STOMP destinations, per broker flavor.

``rabbitmq`` (RabbitMQ's STOMP plugin):

- notification ``<topic>.<priority>`` in exchange ``<ex>``: sent to
  ``/topic/<ex>.<topic>.<priority>`` (the ``amq.topic`` exchange); the default
  queue is the durable queue ``<ex>.<topic>.<priority>`` (a ``/topic/``
  subscription with ``x-queue-name``, declared by the publisher too, so nothing
  sent before a listener exists is lost); a pool is the durable queue ``<pool>``
  bound to each of its keys; listeners of one queue share it.
- RPC: ``/queue/<ex>.<topic>`` and ``/queue/<ex>.<topic>.<server>``; fanout
  ``/topic/<ex>.<topic>_fanout`` (each server's subscription gets its own
  exclusive queue); replies ``/topic/reply_<hex>``, consumed from the queue
  ``reply_<hex>``, which outlives a reconnection (and expires unused after
  ``reply_queue_expiry``). Acknowledgements are individual
  (``client-individual``).

``generic`` (any STOMP broker; only ``/queue/`` and ``/topic/``): notifications on
``/queue/<ex>.<topic>.<priority>``; no pools (a STOMP broker has no standard way
to give each named group of subscribers one copy); RPC as above; replies on the
plain topic ``/topic/reply_<hex>`` (what is sent to it while the connection is
down is lost). Acknowledgements are cumulative (``client`` mode, see
:mod:`.acks`): the only mode in which some brokers (CoilMQ) track them.
"""

from __future__ import annotations

from messaging.drivers import names

__all__ = ["Destinations", "give_back_destination"]


def give_back_destination(destination: str, headers: dict[str, str]) -> str | None:
    """Where a message of a subscription is sent again to give it back, if anywhere.

    The queue it came from: RabbitMQ's named queue (``x-queue-name``) through
    ``/amq/queue/`` (sending to the ``/topic/`` would copy it to every queue bound
    there), or the ``/queue/`` itself. None for a subscriber's copy of a topic
    (fanout, replies): that copy is nobody else's.
    """
    if "x-queue-name" in headers:
        return f"/amq/queue/{headers['x-queue-name']}"
    if destination.startswith("/queue/"):
        return destination
    return None


class Destinations:
    """Destination names and subscription headers for one broker flavor.

    Args:
        flavor: ``rabbitmq`` or ``generic``.
        prefetch: RabbitMQ's ``prefetch-count`` for consuming subscriptions.
        reply_expiry: seconds a RabbitMQ reply queue outlives its last consumer.
    """

    def __init__(self, flavor: str, prefetch: int, reply_expiry: float = 1800.0) -> None:
        self.flavor = flavor
        self.prefetch = prefetch
        self.reply_expiry = reply_expiry

    @property
    def rabbit(self) -> bool:
        """Whether RabbitMQ's destinations and headers are used."""
        return self.flavor == "rabbitmq"

    @property
    def ack_mode(self) -> str:
        """The ack mode of listeners' subscriptions."""
        return "client-individual" if self.rabbit else "client"

    def _consume(self) -> dict[str, str]:
        return {"prefetch-count": str(self.prefetch)} if self.rabbit else {}

    def _durable_queue(self, name: str) -> dict[str, str]:
        return {"x-queue-name": name, "durable": "true", "auto-delete": "false"}

    def notification_send(self, exchange: str, key: str) -> str:
        """Where a notification to ``key`` (``<topic>.<priority>``) is sent."""
        prefix = "/topic/" if self.rabbit else "/queue/"
        return f"{prefix}{exchange}.{key}"

    def notification_default(self, exchange: str, key: str) -> tuple[str, dict[str, str]]:
        """The subscription of the default queue of ``key``."""
        destination = self.notification_send(exchange, key)
        if not self.rabbit:
            return destination, {}
        return destination, {**self._durable_queue(f"{exchange}.{key}"), **self._consume()}

    def notification_declaration(self, exchange: str, key: str) -> tuple[str, dict[str, str]]:
        """The subscription that declares (and binds) the default queue of ``key``."""
        destination, headers = self.notification_default(exchange, key)
        return destination, {**headers, "prefetch-count": "1"}

    def notification_pool(
        self, exchange: str, key: str, pool: str, temporary: bool = False
    ) -> tuple[str, dict[str, str]]:
        """The subscription of ``pool``'s queue for ``key`` (RabbitMQ only).

        A temporary pool's queue is auto-delete: RabbitMQ removes it when its
        last subscription ends.
        """
        queue = self._durable_queue(pool)
        if temporary:
            queue["auto-delete"] = "true"
        return self.notification_send(exchange, key), {**queue, **self._consume()}

    def rpc_queue(self, exchange: str, name: str) -> str:
        """The queue of topic (or ``topic.server``) ``name``."""
        return f"/queue/{exchange}.{name}"

    def rpc_subscription(self, exchange: str, name: str) -> tuple[str, dict[str, str]]:
        """The subscription of an RPC queue."""
        return self.rpc_queue(exchange, name), self._consume()

    def fanout(self, exchange: str, topic: str) -> str:
        """Where fanout casts to ``topic`` go; every subscriber gets a copy."""
        return f"/topic/{exchange}.{topic}_fanout"

    def fanout_subscription(self, exchange: str, topic: str) -> tuple[str, dict[str, str]]:
        """The subscription of a server to the fanout of ``topic``.

        It carries ``prefetch-count`` too: without it, RabbitMQ's plugin gives the
        subscription the prefetch of the channel's previous one, or none.
        """
        return self.fanout(exchange, topic), self._consume()

    def new_reply(self) -> tuple[str, dict[str, str], str]:
        """A fresh reply destination for one connection: where, SUBSCRIBE headers, ack mode."""
        name = names.reply_queue(names.new_id())
        if not self.rabbit:
            return f"/topic/{name}", {}, "client"
        expiry = str(max(1, int(self.reply_expiry * 1000)))
        headers = {
            "x-queue-name": name,
            "durable": "false",
            "auto-delete": "false",
            "x-expires": expiry,
        }
        return f"/topic/{name}", headers, "auto"
