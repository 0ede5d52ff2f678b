"""The RabbitMQ driver's refusals: which py-amqp errors retrying cannot heal, and the fixes.

A declaration the broker refuses for good (see :mod:`messaging.drivers.refusals`)
is raised by the declarer as :class:`DeclarationRefused`, which says whether the
broker closed the whole connection with it (``541``, ``530``: connection-level
errors) or only the channel. A subscription fails with it (its listener's
``start()`` raises) and a publication fails with it; neither is declared again
on the next connection, so nothing reconnects in a loop. A refused login
(``403``, or ``530`` for a virtual host) fails what waits for the connection
instead of keeping it waiting; the connection still tries again at the slow
pace of its backoff, so that it recovers once an operator has fixed it.
"""

from __future__ import annotations

import amqp.exceptions

from messaging.drivers import refusals
from messaging.exceptions import BrokerRefusal

__all__ = ["RABBIT_FIXES", "DeclarationRefused", "login_refusal", "refusal_of"]

_TRANSIENT_FIX = (
    "leave rabbit_auto_quorum at true (the default), which declares quorum queues on "
    "RabbitMQ 4; or set rabbit_quorum_queue and rabbit_transient_quorum_queue (or "
    "amqp_durable_queues) in [oslo_messaging_rabbit]; or permit the feature on the broker "
    "(deprecated_features.permit.transient_nonexcl_queues = true)"
)
_DURABLE_FIX = (
    "declare as the services that created it do: amqp_durable_queues and rabbit_quorum_queue "
    "(RPC and notification queues, topic exchanges) or rabbit_transient_quorum_queue (reply "
    "and fanout queues) in [oslo_messaging_rabbit], or delete the entity so that it is "
    "declared anew"
)
#: What fixes a refusal, by the argument it names or by its name.
RABBIT_FIXES = {
    "transient_nonexcl_queues": _TRANSIENT_FIX,
    "global_qos": "permit global_qos on the broker; this driver never asks for global QoS",
    "queue_master_locator": "remove the x-queue-master-locator policy or argument",
    "durable": _DURABLE_FIX,
    "auto-delete": (
        "set amqp_auto_delete = false: quorum queues cannot be auto-delete "
        "(rabbit_quorum_queue, rabbit_transient_quorum_queue, rabbit_auto_quorum)"
    ),
    "auto_delete": "make amqp_auto_delete agree with the services that declared it",
    "exclusive": "use another name: the entity exists as exclusive to another connection",
    "x-queue-type": (
        "make rabbit_quorum_queue, rabbit_transient_quorum_queue and rabbit_stream_fanout "
        "agree with the services that declared it, or delete the queue"
    ),
    "x-expires": "make rabbit_transient_queues_ttl agree with the queue's x-expires",
    "x-delivery-limit": "make rabbit_quorum_delivery_limit agree with the queue",
    "x-max-in-memory-length": "make rabbit_quorum_max_memory_length agree with the queue",
    "x-max-in-memory-bytes": "make rabbit_quorum_max_memory_bytes agree with the queue",
    "x-ha-policy": "set rabbit_ha_queues = false (classic mirroring is gone in RabbitMQ 4)",
    "x-max-age": "make rabbit_transient_queues_ttl agree with the fanout stream",
    "ACCESS_REFUSED": (
        "grant the user of transport_url the permissions it needs on the virtual host "
        "(rabbitmqctl set_permissions), or use other credentials in transport_url"
    ),
    "NOT_ALLOWED": (
        "create the virtual host of transport_url and let its user in (rabbitmqctl "
        "add_vhost, set_permissions), or fix the virtual host in transport_url"
    ),
}
_OTHERWISE = "change the options in [oslo_messaging_rabbit] that shape this entity"


class DeclarationRefused(Exception):
    """A declaration (or subscription) the broker refused for good.

    Attributes:
        refusal: the error for the caller.
        closes_connection: the broker closed the connection with it (not only the
            channel): the connection must reconnect, without declaring this again.
    """

    def __init__(self, refusal: BrokerRefusal, closes_connection: bool) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal
        self.closes_connection = closes_connection


def refusal_of(entity: str, error: BaseException) -> BrokerRefusal | None:
    """The refusal ``error`` is, if retrying cannot heal it; None for transient faults."""
    if not isinstance(error, amqp.exceptions.AMQPError):
        return None
    text = str(error)
    code = getattr(error, "reply_code", None) or getattr(error, "code", None)
    if not refusals.is_refusal(text, code):
        return None
    return refusals.refusal(entity, text, RABBIT_FIXES, _OTHERWISE, code)


def declaration_refused(entity: str, error: BaseException) -> DeclarationRefused | None:
    """``error`` as a :class:`DeclarationRefused`, or None if it may heal."""
    refusal = refusal_of(entity, error)
    if refusal is None:
        return None
    closes = isinstance(error, amqp.exceptions.ConnectionError)
    refused = DeclarationRefused(refusal, closes)
    refused.__cause__ = error
    return refused


def login_refusal(error: BaseException, where: str) -> BrokerRefusal | None:
    """A refused login (credentials, virtual host) as a refusal; None for other failures."""
    if not isinstance(error, amqp.exceptions.AMQPError):
        return None
    return refusal_of(f"the connection to {where}", error)
