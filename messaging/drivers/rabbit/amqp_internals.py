"""The parts of py-amqp that the RabbitMQ driver uses beyond its public API, checked once.

For speed and bounded waits the driver reaches into py-amqp (versions 5.x):
the transport's ``_read``, ``_read_buffer``, ``_quick_recv`` and ``_write``
(the bulk frame reader, the bound on blocking reads, the connection's write
hold), the connection's ``on_inbound_frame`` and
``frame_writer``, and the channel's ``_on_close`` handler
(:class:`~messaging.drivers.rabbit.sockets.ReportingChannel`). :func:`missing`
says which of them a transport or connection lacks; the driver then falls
back to py-amqp's own way for that part, slower or unbounded, and says so
once in the log. ``tests/unit/test_amqp_internals.py`` fails loudly when an
upgrade of py-amqp removes any of them.
"""

from __future__ import annotations

import logging
from typing import Any

import amqp

__all__ = ["CONNECTION_INTERNALS", "TRANSPORT_INTERNALS", "missing", "warn_once"]

LOG = logging.getLogger(__name__)
#: What the driver uses of a connected py-amqp transport.
TRANSPORT_INTERNALS = ("_read", "_read_buffer", "_quick_recv", "_write")
#: What the driver uses of a py-amqp connection.
CONNECTION_INTERNALS = ("on_inbound_frame", "frame_writer")
_warned: set[str] = set()


def missing(obj: Any, names: tuple[str, ...]) -> list[str]:
    """The attributes of ``names`` that ``obj`` lacks."""
    return [name for name in names if not hasattr(obj, name)]


def warn_once(part: str, lacking: list[str]) -> None:
    """Log once per part that py-amqp lacks what it needs, and what is used instead."""
    if part in _warned:
        return
    _warned.add(part)
    LOG.warning(
        "py-amqp %s has no %s: %s falls back to py-amqp's own way (see "
        "messaging.drivers.rabbit.amqp_internals)",
        getattr(amqp, "__version__", "?"),
        ", ".join(lacking),
        part,
    )
