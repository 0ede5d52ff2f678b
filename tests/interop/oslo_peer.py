"""A peer that speaks through the real oslo.messaging; run with the oslo venv's python.

Never imported by the test process: ``oslo_env.OsloPeers`` runs it as a script
with the interpreter of the oslo virtualenv, so ``oslo_messaging`` here is the
release from PyPI, and this directory (the script's) is on ``sys.path``, which
makes ``interop_errors`` importable under the same name as in the tests.

Every output line on stdout is either ``READY`` (the peer is consuming) or one
JSON object with an ``event`` key. Logs go to stderr. Modes::

    notify      send notifications (one per element of --payloads)
    listen      print each received notification; exit after --count or --timeout
    rpc-server  serve PeerEndpoint on --topic/--server until SIGTERM or --timeout
    rpc-client  perform the calls and casts of --ops, print each outcome

With ``--trace`` (rpc-server, rpc-client), oslo's tracing is on, its spans go
to an OpenTelemetry SDK provider with an in-memory exporter, and the peer
prints one ``span`` line per finished span before it ends (``stopped`` or
``done``).

Configuration: oslo 18.3.1 registers its metrics and tracing options on the
global ``cfg.CONF`` only, and its RPC client reads them from the conf it is
given, so a private ``cfg.ConfigOpts()`` fails on the first call. The peer
therefore uses ``cfg.CONF``, parsed with no arguments and no config files so
that nothing on the machine leaks in; ``control_exchange`` is set with
``oslo_messaging.set_transport_defaults`` before the transport is created.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import interop_errors  # type: ignore[import-not-found,unused-ignore]  # the script directory
import oslo_messaging  # type: ignore[import-not-found]
from oslo_config import cfg  # type: ignore[import-not-found,unused-ignore]
from oslo_context import context as oslo_context  # type: ignore[import-not-found,unused-ignore]

PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")
EXIT_TIMEOUT = 3

_print_lock = threading.Lock()


class PeerPrivateError(Exception):
    """An exception of a module (``__main__``) that no client allows: it becomes RemoteError."""


def emit(event: str, **fields: Any) -> None:
    """Print one JSON line on stdout (thread-safe, flushed)."""
    line = json.dumps({"event": event, **fields}, sort_keys=True, default=str)
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def say_ready() -> None:
    with _print_lock:
        sys.stdout.write("READY\n")
        sys.stdout.flush()


def context_dict(ctxt: Any) -> Any:
    if ctxt is None or isinstance(ctxt, dict):
        return ctxt
    return ctxt.to_dict()


def make_context(raw: str | None, default: Any) -> Any:
    """A RequestContext built from the JSON keyword arguments, or ``default``."""
    if raw is None:
        return default
    return oslo_context.RequestContext(**json.loads(raw))


def setup_conf(exchange: str, config_file: str | None = None) -> Any:
    oslo_messaging.set_transport_defaults(control_exchange=exchange)
    argv = ["--config-file", config_file] if config_file else []
    cfg.CONF(argv, project="messaging-interop", default_config_files=[], default_config_dirs=[])
    return cfg.CONF


class NotificationPrinter:
    """A notification endpoint printing each notification, counting them."""

    def __init__(self, name: str, count: int | None, done: threading.Event) -> None:
        self._name = name
        self._count = count
        self._done = done
        self._seen = 0
        self._lock = threading.Lock()
        for priority in PRIORITIES:
            setattr(self, priority, self._make_handler(priority))

    def _make_handler(self, priority: str) -> Callable[..., None]:
        def handler(
            ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any
        ) -> None:
            emit(
                "notification",
                listener=self._name,
                priority=priority,
                ctxt=context_dict(ctxt),
                publisher_id=publisher_id,
                event_type=event_type,
                payload=payload,
                metadata=metadata,
            )
            with self._lock:
                self._seen += 1
                if self._count is not None and self._seen >= self._count:
                    self._done.set()

        return handler


class PeerEndpoint:
    """The RPC endpoint served by ``rpc-server``; the tests' own server mirrors it."""

    def __init__(self, server: str) -> None:
        self._server = server

    def _record(self, method: str, ctxt: Any, args: dict[str, Any]) -> None:
        emit("invoked", method=method, args=args, ctxt=context_dict(ctxt), server=self._server)

    def echo(self, ctxt: Any, **kwargs: Any) -> dict[str, Any]:
        self._record("echo", ctxt, kwargs)
        return {"args": kwargs, "ctxt": context_dict(ctxt), "server": self._server}

    def add(self, ctxt: Any, a: Any, b: Any) -> Any:
        self._record("add", ctxt, {"a": a, "b": b})
        return a + b

    def record(self, ctxt: Any, **kwargs: Any) -> None:
        self._record("record", ctxt, kwargs)

    def raise_value_error(self, ctxt: Any, msg: str) -> None:
        self._record("raise_value_error", ctxt, {"msg": msg})
        raise ValueError(msg)

    def raise_custom(self, ctxt: Any, msg: str, code: int = 0) -> None:
        self._record("raise_custom", ctxt, {"msg": msg, "code": code})
        raise interop_errors.InteropError(msg, code=code)

    def raise_disallowed(self, ctxt: Any, msg: str) -> None:
        self._record("raise_disallowed", ctxt, {"msg": msg})
        raise PeerPrivateError(msg)

    def slow(self, ctxt: Any, seconds: float) -> dict[str, Any]:
        self._record("slow", ctxt, {"seconds": seconds})
        time.sleep(seconds)  # the point of the method: a call outliving call_monitor_timeout
        return {"slept": seconds, "server": self._server}


def stop_event_on_sigterm() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def run_notify(args: argparse.Namespace) -> int:
    conf = setup_conf(args.exchange, args.config_file)
    transport = oslo_messaging.get_notification_transport(conf, url=args.url)
    try:
        notifier = oslo_messaging.Notifier(
            transport,
            publisher_id=args.publisher_id,
            driver=args.driver,
            topics=args.topic,
        )
        ctxt = make_context(args.context, None)
        send = getattr(notifier, args.priority)
        for index, payload in enumerate(json.loads(args.payloads)):
            send(ctxt, args.event_type, payload)
            emit("sent", index=index, priority=args.priority)
    finally:
        transport.cleanup()
    emit("done")
    return 0


def run_listen(args: argparse.Namespace) -> int:
    conf = setup_conf(args.exchange, args.config_file)
    transport = oslo_messaging.get_notification_transport(conf, url=args.url)
    done = stop_event_on_sigterm()
    endpoint = NotificationPrinter(args.name, args.count, done)
    targets = [oslo_messaging.Target(topic=topic, exchange=args.exchange) for topic in args.topic]
    listener = oslo_messaging.get_notification_listener(
        transport, targets, [endpoint], pool=args.pool
    )
    listener.start()
    say_ready()
    finished = done.wait(args.timeout)
    listener.stop()
    listener.wait()
    transport.cleanup()
    emit("done" if finished else "timeout")
    return 0 if finished else EXIT_TIMEOUT


def setup_tracing(conf: Any) -> Any:
    """Turn oslo's tracing on, into an in-memory exporter set up before oslo's first span."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # oslo keeps a provider that is already set instead of making its own.
    trace.set_tracer_provider(provider)
    conf.set_override("tracing_enabled", True, group="oslo_messaging_tracing")
    return exporter


def report_spans(exporter: Any) -> None:
    """Print one ``span`` line per finished span."""
    for span in exporter.get_finished_spans():
        emit(
            "span",
            name=span.name,
            kind=span.kind.name,
            trace_id=f"{span.context.trace_id:032x}",
            span_id=f"{span.context.span_id:016x}",
            parent_id=None if span.parent is None else f"{span.parent.span_id:016x}",
            attributes=dict(span.attributes or {}),
            status=span.status.status_code.name,
        )


def run_rpc_server(args: argparse.Namespace) -> int:
    conf = setup_conf(args.exchange, args.config_file)
    exporter = setup_tracing(conf) if args.trace else None
    transport = oslo_messaging.get_rpc_transport(
        conf, url=args.url, allowed_remote_exmods=[interop_errors.ALLOWED_MODULE]
    )
    stop = stop_event_on_sigterm()
    target = oslo_messaging.Target(topic=args.topic, server=args.server)
    server = oslo_messaging.get_rpc_server(transport, target, [PeerEndpoint(args.server)])
    server.start()
    say_ready()
    stopped = stop.wait(args.timeout)
    server.stop()
    server.wait()
    transport.cleanup()
    if exporter is not None:
        report_spans(exporter)
    emit("stopped" if stopped else "timeout")
    return 0 if stopped else EXIT_TIMEOUT


def describe_exception(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    return {
        "class": cls.__name__,
        "module": cls.__module__,
        "mro": [f"{k.__module__}.{k.__qualname__}" for k in cls.__mro__],
        "message": str(exc),
        "exc_type": getattr(exc, "exc_type", None),
        "value": getattr(exc, "value", None),
        "code": getattr(exc, "code", None),
    }


def run_rpc_client(args: argparse.Namespace) -> int:
    conf = setup_conf(args.exchange, args.config_file)
    exporter = setup_tracing(conf) if args.trace else None
    transport = oslo_messaging.get_rpc_transport(
        conf, url=args.url, allowed_remote_exmods=[interop_errors.ALLOWED_MODULE]
    )
    try:
        client = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic=args.topic), timeout=args.call_timeout
        )
        # oslo's RPC client needs a dict or a context object: None fails in to_dict().
        ctxt = make_context(args.context, {})
        for index, op in enumerate(json.loads(args.ops)):
            prepare = {
                key: op[key]
                for key in ("server", "fanout", "timeout", "call_monitor_timeout")
                if key in op
            }
            prepared = client.prepare(**prepare) if prepare else client
            kind, method, kwargs = op["kind"], op["method"], op.get("args", {})
            try:
                if kind == "call":
                    result = prepared.call(ctxt, method, **kwargs)
                else:
                    result = prepared.cast(ctxt, method, **kwargs)
            except Exception as exc:
                emit("error", index=index, kind=kind, method=method, **describe_exception(exc))
            else:
                emit("result", index=index, kind=kind, method=method, result=result)
    finally:
        transport.cleanup()
    if exporter is not None:
        report_spans(exporter)
    emit("done")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", required=True, help="transport URL (rabbit://...)")
        p.add_argument("--exchange", required=True, help="control_exchange")
        p.add_argument("--config-file", help="an oslo.messaging configuration file to read")
        p.add_argument("--topic", action="append", required=True)
        p.add_argument("--timeout", type=float, default=60.0, help="upper bound on the run")
        p.add_argument("--debug", action="store_true")

    notify = sub.add_parser("notify")
    common(notify)
    notify.add_argument("--payloads", required=True, help="JSON list, one notification each")
    notify.add_argument("--event-type", required=True)
    notify.add_argument("--publisher-id", required=True)
    notify.add_argument("--priority", default="info", choices=PRIORITIES)
    notify.add_argument("--driver", default="messagingv2", choices=("messaging", "messagingv2"))
    notify.add_argument("--context", help="JSON keyword arguments of a RequestContext")

    listen = sub.add_parser("listen")
    common(listen)
    listen.add_argument("--pool")
    listen.add_argument("--count", type=int, help="exit after this many notifications")
    listen.add_argument("--name", default="oslo-listener", help="label in the output lines")

    server = sub.add_parser("rpc-server")
    common(server)
    server.add_argument("--server", required=True)
    server.add_argument("--trace", action="store_true", help="oslo's tracing on; print spans")

    client = sub.add_parser("rpc-client")
    common(client)
    client.add_argument("--ops", required=True, help="JSON list of {kind, method, args, ...}")
    client.add_argument("--context", help="JSON keyword arguments of a RequestContext")
    client.add_argument("--call-timeout", type=float, default=30.0, help="RPCClient timeout")
    client.add_argument("--trace", action="store_true", help="oslo's tracing on; print spans")

    args = parser.parse_args(argv)
    if args.mode in ("rpc-server", "rpc-client") and len(args.topic) != 1:
        parser.error(f"{args.mode} takes exactly one --topic")
    if args.mode in ("rpc-server", "rpc-client"):
        args.topic = args.topic[0]
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # A bound on every mode, whatever happens to the broker or the test process.
    watchdog = threading.Timer(args.timeout + 15.0, lambda: _hard_exit("watchdog"))
    watchdog.daemon = True
    watchdog.start()
    runner = {
        "notify": run_notify,
        "listen": run_listen,
        "rpc-server": run_rpc_server,
        "rpc-client": run_rpc_client,
    }[args.mode]
    return runner(args)


def _hard_exit(reason: str) -> None:
    emit("killed", reason=reason)
    logging.shutdown()
    os._exit(4)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
