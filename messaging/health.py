"""Health of a process's RPC servers and notification listeners, from Python and over HTTP.

Every server and listener of the process is tracked (weakly) from its
creation. :func:`report` reads them all at one moment::

    report = messaging.health.report()
    report.ready      # every running server connected and consuming
    report.live       # no I/O thread or receiving thread has died
    report.as_dict()  # everything, for a log line or a JSON endpoint

:func:`serve_http` answers ``/livez``, ``/readyz`` (200 or 503, fit for
Kubernetes probes) and ``/health`` (the whole report as JSON) on a port of
its own; nothing listens unless it is called (``messaging serve
--health-port`` calls it). ``messaging health`` reads ``/health`` of a
running process.

What the report tells, per server: its state; whether its transport is
connected and the broker delivers to it (``consuming``); when it last
received a message; how many batches are being handled against the
executor's size (``saturation``); messages sent and not yet confirmed; how
many times its connections were made again. A problem is spelt out in
``problems`` so that an operator reads why a probe failed.

Drivers say how their connections are through
:meth:`Driver.link_health <messaging.drivers.base.Driver.link_health>`, which
returns a :class:`LinkHealth`; this module imports no driver.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = [
    "HealthServer",
    "LinkHealth",
    "ProcessHealth",
    "Reporting",
    "ServerHealth",
    "report",
    "serve_http",
    "track",
]


class Reporting(Protocol):
    """What reports its health: every RPC server and notification listener."""

    def health(self) -> ServerHealth:
        """Read its health now."""
        ...


_SERVERS: weakref.WeakSet[Reporting] = weakref.WeakSet()
_SERVERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class LinkHealth:
    """The state of a driver's connections to its broker, read at one moment.

    Attributes:
        connected: every connection the driver has opened is up (True for a
            driver without connections).
        alive: the driver's own I/O threads run (False when one died: nothing
            on it moves any more, whatever ``connected`` says).
        reconnects: how many times its connections were made again after a loss.
        unconfirmed: messages handed over and not yet confirmed by the broker.
        error: why the link is down, when it is (never with a secret in it).
    """

    connected: bool = True
    alive: bool = True
    reconnects: int = 0
    unconfirmed: int = 0
    error: str | None = None


def track(server: Reporting) -> None:
    """Count ``server`` in the process's reports (servers call this themselves)."""
    with _SERVERS_LOCK:
        _SERVERS.add(server)


def _servers() -> list[Reporting]:
    with _SERVERS_LOCK:
        return list(_SERVERS)


@dataclass(frozen=True)
class ServerHealth:
    """One RPC server or notification listener, read at one moment.

    Attributes:
        name: what it serves (kind, topics, server name).
        state: ``new``, ``running`` or ``stopped``.
        consuming: the broker delivers to it now.
        last_message_age: seconds since it last received a message (None: never).
        received: messages received since it was created.
        in_flight: batches being handled now.
        max_workers: the executor's size.
        saturation: ``in_flight / max_workers``; 1.0 means every worker is busy.
        link: its transport's connections (see :class:`LinkHealth`).
        problems: why it is not ready or not live, in words (empty when healthy).
        live: nothing it depends on has died.
        ready: it runs, connected and consuming (and its canary, if any, is answered).
        canary: what the RPC canary found (a
            :class:`~messaging.rpc.canary.CanaryHealth`), for an RPC server with
            ``rpc_canary_interval`` set; else None.
    """

    name: str
    state: str
    consuming: bool
    last_message_age: float | None
    received: int
    in_flight: int
    max_workers: int
    saturation: float
    link: LinkHealth
    problems: tuple[str, ...] = ()
    live: bool = True
    ready: bool = True
    canary: Any = None


@dataclass(frozen=True)
class ProcessHealth:
    """Every server and listener of the process, read at one moment.

    Attributes:
        servers: one entry per server or listener created and not yet collected.
        live: none of them has a dead thread (a restart is what would help).
        ready: every one not stopped runs, connected and consuming (True with none).
        at: when it was read (seconds since the epoch).
    """

    servers: tuple[ServerHealth, ...] = field(default_factory=tuple)
    live: bool = True
    ready: bool = True
    at: float = 0.0

    @property
    def problems(self) -> list[str]:
        """Every server's problems, each prefixed with the server's name."""
        return [f"{s.name}: {p}" for s in self.servers for p in s.problems]

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data (JSON-serialisable)."""
        return {
            "live": self.live,
            "ready": self.ready,
            "at": self.at,
            "problems": self.problems,
            "servers": [asdict(s) for s in self.servers],
        }


def report(servers: Iterable[Reporting] | None = None) -> ProcessHealth:
    """Read the health of ``servers`` (default: every one of the process).

    Returns:
        The report; reading it costs a few attribute reads per server.
    """
    found = tuple(s.health() for s in (_servers() if servers is None else servers))
    return ProcessHealth(
        servers=found,
        live=all(s.live for s in found),
        # A server stopped on purpose does not hold the process back; one not
        # started yet does (the process is still starting).
        ready=all(s.ready for s in found if s.state != "stopped"),
        at=time.time(),
    )


class HealthServer:
    """The HTTP endpoints of :func:`serve_http`; :meth:`close` stops them.

    Attributes:
        host: the address it listens on.
        port: the port it listens on (the one picked when 0 was asked).
    """

    def __init__(self, host: str, port: int) -> None:
        self._http = http.server.ThreadingHTTPServer((host, port), _Handler)
        self._http.daemon_threads = True
        self.host = host
        self.port = int(self._http.server_address[1])
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="messaging-health-http", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The base URL of the endpoints."""
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        """Stop answering and release the port."""
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_http(port: int = 0, host: str = "127.0.0.1") -> HealthServer:
    """Answer health probes over HTTP in a thread of their own.

    ``GET /livez``: 200 while :attr:`ProcessHealth.live`, else 503;
    ``GET /readyz``: 200 while :attr:`ProcessHealth.ready`, else 503;
    ``GET /health``: 200 and the whole report. Each body is the report as JSON.

    Args:
        port: the port (0: any free one; see :attr:`HealthServer.port`).
        host: the address to listen on (loopback by default: a probe runs on
            the same host or pod; give ``0.0.0.0`` to open it further).

    Returns:
        The running endpoints.
    """
    return HealthServer(host, port)


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "messaging-health"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in ("/livez", "/readyz", "/health"):
            self._answer(404, {"error": f"no such endpoint: {path or '/'}"})
            return
        current = report()
        ok = {"/livez": current.live, "/readyz": current.ready, "/health": True}[path]
        self._answer(200 if ok else 503, current.as_dict())

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, indent=1).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes come every few seconds: not worth a line each.
        pass
