"""A process that runs a transport's failure cases with every logger at DEBUG.

Run as ``python -m tests.drivers.secrets_probe <url> [--no-listeners]``. It prints, on stdout,
every log record of every library (DEBUG and up), and the ``str`` and ``repr`` of
every error, transport and driver it meets, while it: makes a notification
transport, sends with ``retry=0`` and with the default retry, flushes, starts a
listener, makes an RPC transport, calls, casts and starts a server. The test
greps the output for the URL's password. (``str(TransportURL)``, which holds the
password on purpose, is not printed.)
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

import messaging


def attempt(what: str, action: Callable[[], Any]) -> Any:
    """Run ``action``; print what it returned or raised, as ``str`` and ``repr``."""
    try:
        result = action()
    except Exception as exc:
        print(f"[{what}] {type(exc).__name__}: {exc} | {exc!r} | cause {exc.__cause__!r}")
        return None
    print(f"[{what}] returned {result!r}")
    return result


class Endpoint:
    def info(self, *args: Any) -> None:
        pass


def probe(url: str, listeners: bool = True) -> None:
    """Run the failure cases of ``url``'s driver (starting listeners and servers if asked)."""
    conf = cfg.ConfigOpts()
    transport = attempt(
        "notification transport", lambda: messaging.get_notification_transport(conf, url)
    )
    if transport is not None:
        print(f"[repr] {transport!r} {transport.driver!r} {transport.driver}")
        for retry in (0, None):
            notifier = messaging.Notifier(
                transport, "p", driver="messagingv2", topics=["t"], retry=retry, raise_errors=True
            )
            attempt(f"notify retry={retry}", lambda n=notifier: n.info({}, "x.y", {}))
        attempt("flush", lambda: transport.flush(2))
        if listeners:
            listener = messaging.get_notification_listener(
                transport, [messaging.Target(topic="t")], [Endpoint()], executor="threading"
            )
            attempt("listener start", listener.start)
            attempt("listener stop", lambda: (listener.stop(), listener.wait()))
        attempt("cleanup", transport.cleanup)
    rpc = attempt("rpc transport", lambda: messaging.get_rpc_transport(cfg.ConfigOpts(), url))
    if rpc is not None:
        client = messaging.get_rpc_client(rpc, messaging.Target(topic="x"), timeout=2)
        attempt("call", lambda: client.call({}, "m"))
        attempt("cast", lambda: client.cast({}, "m"))
        if listeners:
            server = messaging.get_rpc_server(
                rpc, messaging.Target(topic="x", server="s"), [], executor="threading"
            )
            attempt("server start", server.start)
            attempt("server stop", lambda: (server.stop(), server.wait()))
        attempt("cleanup", rpc.cleanup)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.DEBUG, stream=sys.stdout, format="%(levelname)s %(name)s %(message)s"
    )
    probe(sys.argv[1], listeners="--no-listeners" not in sys.argv[2:])
    sys.stdout.flush()
    os._exit(0)  # threads retrying in the background must not hold the process
