"""The STOMP driver's refusals that retrying cannot heal, and what fixes them.

On RabbitMQ's STOMP plugin a SUBSCRIBE that declares a queue existing with
other properties gets an ERROR frame (``PRECONDITION_FAILED - inequivalent arg
'durable'...``) and the connection is closed; a login with wrong credentials
gets ``Access refused``. Subscribing or sending again after reconnecting gets
the same answer, so these fail the listener's start or the send at once (see
:mod:`messaging.drivers.refusals`) instead of reconnecting in a loop.
"""

from __future__ import annotations

from messaging.drivers import refusals
from messaging.exceptions import BrokerRefusal

__all__ = ["STOMP_FIXES", "login_refusal", "refusal_of"]

_QUEUE_FIX = (
    "this driver declares pool and default notification queues durable and not "
    "auto-delete; delete the queue so that it is declared anew, or listen with another pool"
)
_LOGIN_FIX = "fix the user, password or virtual host of the stomp:// transport URL"
#: What fixes a refusal, by the argument it names or by its name.
STOMP_FIXES = {
    "durable": _QUEUE_FIX,
    "auto-delete": _QUEUE_FIX,
    "auto_delete": _QUEUE_FIX,
    "exclusive": "use another pool name: the queue exists as exclusive to another connection",
    "x-queue-type": "delete the queue or listen with another pool: it exists of another type",
    "ACCESS_REFUSED": (
        "grant the user of the transport URL the permissions it needs on the virtual host "
        "(rabbitmqctl set_permissions)"
    ),
}
_OTHERWISE = "delete the queue so that it is declared anew, or use another name"


def refusal_of(entity: str, text: str) -> BrokerRefusal | None:
    """The refusal an ERROR frame's text is, if retrying cannot heal it."""
    if not refusals.is_refusal(text):
        return None
    return refusals.refusal(entity, text, STOMP_FIXES, _OTHERWISE)


def login_refusal(entity: str, text: str) -> BrokerRefusal | None:
    """A refused CONNECT (credentials, virtual host) as a refusal; None for other failures."""
    lowered = text.lower()
    if "access refused" not in lowered and "access denied" not in lowered:
        return None
    return BrokerRefusal(entity, None, _LOGIN_FIX, " ".join(text.split()))
