"""The STOMP driver: notifications and RPC over STOMP brokers.

URL: ``stomp://user:pass@host:61613[,host2:61613]/vhost?<[oslo_messaging_stomp] options>``.
Hosts are tried in order (failover); the virtual host is sent as STOMP's
``host`` header (RabbitMQ's virtual host; without one, see :mod:`.handshake`).
Options: :mod:`.options`; how targets map to destinations: :mod:`.destinations`;
the one connection per broker and process, reconnection and re-subscription:
:mod:`.connection`; cumulative acknowledgements: :mod:`.acks`.
"""

from __future__ import annotations

from typing import Any

from messaging.drivers.stomp.options import list_opts

__all__ = ["StompDriver", "list_opts"]


def __getattr__(name: str) -> Any:
    # Lazy, so that listing the options (oslo-config-generator) does not need stomp.py.
    if name == "StompDriver":
        from messaging.drivers.stomp.driver import StompDriver

        return StompDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
