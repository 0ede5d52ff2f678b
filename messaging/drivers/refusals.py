"""RabbitMQ's refusals that retrying cannot heal, whatever the protocol that carried them.

RabbitMQ words its refusals the same way over AMQP and STOMP::

    PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'pool' in vhost '/':
        received 'true' but current is 'false'
    INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated. ...
    ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'guest'

Such a refusal comes back however often the driver reconnects and tries again,
so the drivers turn it into a :class:`~messaging.exceptions.BrokerRefusal` that
names the entity, the argument in conflict and what fixes it, instead of
reconnecting forever. Transient faults (a lost connection, a queue not there
yet, a queue locked by another connection) are not refusals and are retried.
Each driver says which of its options fixes which argument.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from messaging.exceptions import BrokerRefusal

__all__ = ["argument_of", "is_refusal", "refusal", "refusal_code"]

_CODES = {
    "PRECONDITION_FAILED": 406,
    "ACCESS_REFUSED": 403,
    "NOT_ALLOWED": 530,
    "INTERNAL_ERROR": 541,
}
_ARGUMENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)'"
    r"|invalid (?:property|arg) '(?P<prop>[^']+)'"
    r"|Feature `(?P<feature>[^`]+)` is deprecated"
)
#: Longest part of the broker's text kept in an error (RabbitMQ's 541 runs long).
REASON_MAX = 400


def refusal_code(text: str, code: int | None = None) -> str | None:
    """The refusal's name (``PRECONDITION_FAILED``...) if ``text`` is one that retrying cannot heal.

    ``INTERNAL_ERROR`` counts only when it is a denied deprecated feature.

    Args:
        text: the broker's reply text.
        code: the AMQP reply code, when known.
    """
    for name, number in _CODES.items():
        if name in text or (code is not None and code == number):
            if name == "INTERNAL_ERROR" and "deprecated" not in text:
                return None
            return name
    return None


def is_refusal(text: str, code: int | None = None) -> bool:
    """Whether ``text`` (with ``code``) is a refusal that retrying cannot heal."""
    return refusal_code(text, code) is not None


def argument_of(text: str) -> str | None:
    """The argument or feature a refusal names (``durable``, ``transient_nonexcl_queues``...)."""
    match = _ARGUMENT.search(text)
    if match is None:
        return None
    return match.group("arg") or match.group("prop") or match.group("feature")


def _reason(text: str) -> str:
    reason = " ".join(text.split())
    return reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 3] + "..."


def refusal(
    entity: str,
    text: str,
    fixes: Mapping[str, str],
    otherwise: str,
    code: int | None = None,
) -> BrokerRefusal:
    """A :class:`BrokerRefusal` for the broker's ``text`` about ``entity``.

    Args:
        entity: what was refused (``queue 'pool'``, ``the login of user 'nova'``...).
        text: the broker's reply text.
        fixes: what fixes it, by argument (``durable``...) or refusal name
            (``ACCESS_REFUSED``...); the argument is looked up first.
        otherwise: what fixes it when ``fixes`` has nothing more precise.
        code: the AMQP reply code, when known.
    """
    argument = argument_of(text)
    name = refusal_code(text, code)
    fix = fixes.get(argument or "") or fixes.get(name or "") or otherwise
    return BrokerRefusal(entity, argument, fix, _reason(text))
