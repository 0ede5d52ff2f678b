"""The control endpoint every RPC server of this library answers: who it is and how it is.

``messaging status`` sends one request, method :data:`STATUS_METHOD` in
namespace :data:`CONTROL_NAMESPACE`, to every server of a topic (see
:mod:`messaging.status`). Each server of this library answers with
:meth:`ControlEndpoint.status`: its name, host and process, its health (as
:mod:`messaging.health` reads it) and the queues it consumes. The endpoint is
not one of the service's endpoints (``server.dispatcher.endpoints`` stays the
caller's list): the dispatcher tries it only when no service endpoint takes
the request. A status request is not counted as a received message, so that
what a server reports is its service traffic, not the questions about it.

A server of oslo.messaging has no such endpoint: it replies with an
``UnsupportedVersion`` failure, which still proves that it receives and
replies.
"""

from __future__ import annotations

import os
import socket
import sys
import weakref
from typing import TYPE_CHECKING, Any, Protocol

from messaging.target import Target

if TYPE_CHECKING:
    from messaging.health import ServerHealth
    from messaging.transport import Transport

__all__ = [
    "CONTROL_NAMESPACE",
    "CONTROL_VERSION",
    "LIBRARY",
    "STATUS_METHOD",
    "ControlEndpoint",
    "Controlled",
]

#: The namespace of the control methods: no service endpoint answers in it.
CONTROL_NAMESPACE = "messaging.control"
#: The version of the control methods.
CONTROL_VERSION = "1.0"
#: The method that answers who a server is and how it is.
STATUS_METHOD = "status"
#: What ``library`` says in a status answer of this library.
LIBRARY = "messaging"


def _library_version() -> str:
    from importlib import metadata

    from messaging.version import DISTRIBUTION

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


class Controlled(Protocol):
    """What the control endpoint reads of its server (an RPC server)."""

    target: Target
    transport: Transport
    consumed_queues: tuple[str, ...]

    def health(self) -> ServerHealth:
        """The server's health now."""
        ...


class ControlEndpoint:
    """Answers the control methods for one RPC server.

    Args:
        server: the server it speaks for (held weakly).
    """

    target = Target(namespace=CONTROL_NAMESPACE, version=CONTROL_VERSION)

    def __init__(self, server: Controlled) -> None:
        self._server = weakref.ref(server)

    def status(self, ctxt: Any) -> dict[str, Any]:
        """Who the server is and how it is, as plain data.

        Returns:
            ``library``, ``version``, ``server``, ``topic``, ``exchange``,
            ``host``, ``pid``, ``process``; the health read now (``state``,
            ``ready``, ``live``, ``connected``, ``consuming``,
            ``last_message_age``, ``received``, ``in_flight``, ``max_workers``,
            ``unconfirmed``, ``reconnects``, ``problems``); and ``queues``, the
            queues it consumes (where the transport names them).
        """
        server = self._server()
        answer: dict[str, Any] = {
            "library": LIBRARY,
            "version": _library_version(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "process": os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "",
        }
        if server is None:  # collected while the request was on its way
            return answer
        health = server.health()
        target = server.target
        answer.update(
            server=target.server,
            topic=target.topic,
            exchange=target.exchange or server.transport.driver.default_exchange,
            state=health.state,
            ready=health.ready,
            live=health.live,
            connected=health.link.connected,
            consuming=health.consuming,
            last_message_age=health.last_message_age,
            received=health.received,
            in_flight=health.in_flight,
            max_workers=health.max_workers,
            unconfirmed=health.link.unconfirmed,
            reconnects=health.link.reconnects,
            problems=list(health.problems),
            queues=list(server.consumed_queues),
        )
        return answer

    status.exposed = True  # type: ignore[attr-defined]
