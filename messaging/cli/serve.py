"""``messaging serve``: host endpoint classes as an RPC server and notification listener."""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

from messaging import health
from messaging.cli.errors import CliError, ExitCode
from messaging.cli.listen import stop_signals
from messaging.cli.rpc import add_target_options
from messaging.notify.dispatcher import PRIORITIES

if TYPE_CHECKING:
    from messaging.cli.commands import Commands
    from messaging.cli.session import Session
    from messaging.server import MessageHandlingServer

__all__ = ["add_parser", "load_endpoint", "run"]

_STOP_TIMEOUT = 30.0


def add_parser(commands: Commands) -> None:
    """Add ``serve`` to the ``messaging`` command."""
    parser = commands.add(
        "serve",
        run,
        long_running=True,
        summary="serve endpoint classes of a module as an RPC server and notification listener",
        description="Import each MODULE:ENDPOINT (a class, made with no arguments, or an "
        "object), serve them as an RPC server on --topic and --server, with the ping "
        "endpoint enabled, and, when some have methods named like a priority (info, "
        "error...), as a notification listener too. Runs until SIGINT or SIGTERM. The "
        "current directory is searched for MODULE first.",
    )
    add_target_options(parser, "the RPC topic", "this server's name (default: the host name)")
    parser.add_argument(
        "--notification-topic",
        action="append",
        default=None,
        metavar="TOPIC",
        help="topic of the notifications to receive; repeat for several (default: "
        "[oslo_messaging_notifications] topics, that is notifications)",
    )
    parser.add_argument(
        "--pool", default=None, help="receive notifications as a member of this pool"
    )
    parser.add_argument(
        "--executor",
        default=None,
        help="how requests are run: threading, blocking, eventlet or asyncio (default: "
        "asyncio when an endpoint has async def methods, else threading)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=None,
        metavar="PORT",
        help="answer health probes on this port: /livez, /readyz, /health (0: any free "
        "port, said at start; default: none)",
    )
    parser.add_argument(
        "--health-host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="the address of the health endpoints (default: 127.0.0.1)",
    )
    parser.add_argument(
        "endpoints",
        metavar="MODULE:ENDPOINT",
        nargs="+",
        help="e.g. myservice.api:ComputeAPI",
    )


def load_endpoint(spec: str) -> Any:
    """Import ``MODULE:ENDPOINT`` and return the endpoint object.

    A class is instantiated with no arguments; anything else is used as it is.

    Raises:
        CliError: with :attr:`ExitCode.USAGE`, saying which part failed and why.
    """
    module_name, colon, attribute = spec.partition(":")
    if not (colon and module_name and attribute):
        raise CliError(
            f"{spec!r} is not MODULE:ENDPOINT (e.g. myservice.api:ComputeAPI)", ExitCode.USAGE
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(
            f"cannot import {module_name!r} for {spec!r}: {exc}", ExitCode.USAGE
        ) from exc
    except Exception as exc:
        raise CliError(
            f"importing {module_name!r} for {spec!r} failed: {type(exc).__name__}: {exc}",
            ExitCode.USAGE,
        ) from exc
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(
                f"module {module_name!r} has no {attribute!r} (for {spec!r})", ExitCode.USAGE
            ) from None
    if not isinstance(obj, type):
        return obj
    try:
        return obj()
    except Exception as exc:
        raise CliError(
            f"cannot make {spec} with no arguments: {type(exc).__name__}: {exc}", ExitCode.USAGE
        ) from exc


def _has_priority_methods(endpoint: Any) -> bool:
    return any(callable(getattr(endpoint, p, None)) for p in PRIORITIES)


def default_executor(endpoints: list[Any]) -> str:
    """``asyncio`` when some endpoint has an ``async def`` method, else ``threading``."""
    for endpoint in endpoints:
        for name in dir(endpoint):
            if not name.startswith("_") and inspect.iscoroutinefunction(
                getattr(endpoint, name, None)
            ):
                return "asyncio"
    return "threading"


def run(args: argparse.Namespace, session: Session) -> int:
    """Serve until a signal; return the exit code."""
    from messaging.conf import NOTIFICATIONS_GROUP
    from messaging.notify import get_notification_listener
    from messaging.rpc import get_rpc_server
    from messaging.target import Target

    # As `python -m` does, so that a module next to the user is found.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    endpoints = [load_endpoint(spec) for spec in args.endpoints]
    executor = args.executor or default_executor(endpoints)
    server_name = args.server or socket.gethostname()
    conf = session.conf
    conf.set_override("rpc_ping_enabled", True)

    servers: list[MessageHandlingServer] = []
    rpc_transport = session.rpc_transport()
    servers.append(
        get_rpc_server(
            rpc_transport,
            Target(topic=args.topic, server=server_name),
            endpoints,
            executor=executor,
        )
    )
    announced = [f"RPC on topic {args.topic!r} server {server_name!r} ({executor} executor)"]
    listening = [e for e in endpoints if _has_priority_methods(e)]
    if listening:
        topics = args.notification_topic or list(conf[NOTIFICATIONS_GROUP].topics)
        servers.append(
            get_notification_listener(
                session.notification_transport(),
                [Target(topic=topic) for topic in topics],
                listening,
                executor=executor,
                pool=args.pool,
            )
        )
        announced.append(f"notifications on {', '.join(topics)}")
    probes = None
    if args.health_port is not None:
        try:
            probes = health.serve_http(args.health_port, args.health_host)
        except OSError as exc:
            raise CliError(
                f"cannot answer health probes on {args.health_host}:{args.health_port}: {exc}",
                ExitCode.USAGE,
            ) from exc
        announced.append(f"health probes on {probes.url}/livez, /readyz and /health")
    stop = threading.Event()
    with stop_signals(stop):
        started: list[MessageHandlingServer] = []
        try:
            for server in servers:
                server.start()
                started.append(server)
            session.ready(f"serving {' '.join(args.endpoints)}: " + "; ".join(announced))
            while not stop.wait(0.5):
                pass
        finally:
            for server in started:
                server.stop()
            for server in started:
                server.wait(timeout=_STOP_TIMEOUT)
            if probes is not None:
                probes.close()
    return ExitCode.OK
