r"""One role of one workload, in a process of its own.

Run by the runner, with this repository on ``PYTHONPATH``, as::

    python -m benchmarks.bench.worker ROLE --lib messaging|oslo_messaging \
        --url URL --exchange EXCHANGE --topic TOPIC [role options]

The same file runs under this project's virtualenv (``--lib messaging``) and
under the oslo.messaging one (``--lib oslo_messaging``): it imports only the
standard library, oslo.config and the library named.

Protocol: every stdout line is one JSON object with an ``event`` key:
``ready`` (the role is set up; listeners and servers are consuming),
``casts_done`` (servers), then ``result`` with the figures, or ``error``.
With ``--metrics`` (messaging only), Prometheus metrics are counted into a
registry of the worker's own. Roles that serve (``rpc-server``, ``service``)
stop when stdin closes. Logs and warnings go to stderr. A watchdog ends the
process after ``--timeout`` seconds plus a grace period, whatever happens.

Roles: ``notify-send``, ``notify-listen``, ``rpc-server``, ``rpc-seq``,
``rpc-threads``, ``rpc-cast``, ``service``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import threading
import traceback
from typing import Any

from benchmarks.bench import workloads

_print_lock = threading.Lock()
WATCHDOG_GRACE = 30.0


def emit(event: str, **fields: Any) -> None:
    """Print one JSON line on stdout (thread-safe, flushed)."""
    line = json.dumps({"event": event, **fields})
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _ready() -> None:
    emit("ready")


def _stop_on_stdin_eof() -> threading.Event:
    stop = threading.Event()

    def reader() -> None:
        eventlet = sys.modules.get("eventlet")
        if eventlet is not None and eventlet.patcher.is_monkey_patched("thread"):
            # A green thread reading a pipe would block the hub: a native one reads.
            from eventlet import tpool

            tpool.execute(sys.stdin.read)
        else:
            sys.stdin.read()
        stop.set()

    threading.Thread(target=reader, name="stdin-eof", daemon=True).start()
    return stop


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the role the arguments name and return its figures."""
    lib = importlib.import_module(args.lib)
    if args.metrics:
        from prometheus_client import CollectorRegistry

        importlib.import_module(f"{args.lib}.metrics").enable(registry=CollectorRegistry())
    common = {"exchange": args.exchange, "topic": args.topic}
    if args.role == "notify-send":
        return workloads.notify_send(lib, args.url, count=args.count, **common)
    if args.role == "notify-listen":
        return workloads.notify_listen(
            lib, args.url, count=args.count, timeout=args.timeout, ready=_ready, **common
        )
    if args.role == "rpc-server":
        return workloads.rpc_server(
            lib,
            args.url,
            server="bench-server",
            stop=_stop_on_stdin_eof(),
            ready=_ready,
            emit=emit,
            **common,
        )
    if args.role == "rpc-seq":
        return workloads.rpc_calls_sequential(
            lib, args.url, calls=args.count, warmup=args.warmup, **common
        )
    if args.role == "rpc-threads":
        return workloads.rpc_calls_threads(
            lib, args.url, threads=args.threads, calls_per_thread=args.count, **common
        )
    if args.role == "rpc-cast":
        return workloads.rpc_casts(lib, args.url, casts=args.count, run=args.run, **common)
    if args.role == "service":
        return workloads.service(lib, args.url, stop=_stop_on_stdin_eof(), ready=_ready, **common)
    raise ValueError(f"unknown role {args.role!r}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line of a worker."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench.worker")
    parser.add_argument(
        "role",
        choices=[
            "notify-send",
            "notify-listen",
            "rpc-server",
            "rpc-seq",
            "rpc-threads",
            "rpc-cast",
            "service",
        ],
    )
    parser.add_argument("--lib", required=True, choices=["messaging", "oslo_messaging"])
    parser.add_argument("--url", required=True, help="transport URL")
    parser.add_argument("--exchange", required=True, help="control_exchange")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=1000, help="messages, calls or casts")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured calls first")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--run", default="run", help="label of a cast run")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on the role")
    parser.add_argument(
        "--metrics", action="store_true", help="count Prometheus metrics (messaging only)"
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run one role; print its figures as the last JSON line."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    watchdog = threading.Timer(args.timeout + WATCHDOG_GRACE, _hard_exit, args=("watchdog",))
    watchdog.daemon = True
    watchdog.start()
    try:
        figures = run(args)
    except Exception as exc:
        traceback.print_exc()
        emit("error", error=f"{type(exc).__name__}: {exc}")
        return 1
    emit("result", **figures)
    return 0


def _hard_exit(reason: str) -> None:
    emit("error", error=f"{reason}: still running after the timeout")
    logging.shutdown()
    os._exit(4)


if __name__ == "__main__":
    sys.exit(main())
