"""``messaging listen``: print notifications as they arrive."""

from __future__ import annotations

import argparse
import fnmatch
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from messaging.cli.errors import CliError, ExitCode
from messaging.notify.dispatcher import PRIORITIES

if TYPE_CHECKING:
    from messaging.cli.commands import Commands
    from messaging.cli.session import Session

__all__ = [
    "TAP_POOL_PREFIX",
    "NotificationPrinter",
    "add_parser",
    "format_line",
    "run",
    "stop_signals",
]

_STOP_JOIN_TIMEOUT = 30.0

#: The start of the name of the queue a tap gets its copies through.
TAP_POOL_PREFIX = "messaging-listen"


def add_parser(commands: Commands) -> None:
    """Add ``listen`` to the ``messaging`` command."""
    parser = commands.add(
        "listen",
        run,
        long_running=True,
        summary="print notifications as they arrive",
        description="Print one line per notification received. By default the command "
        "taps: it gets its own copy of each notification sent while it runs, through a "
        "queue of its own that goes away with it, and takes nothing from the services' "
        "listeners. --pool NAME takes notifications from the pool NAME instead (each goes "
        "to one member of the pool); --shared-queues takes them from the default "
        "<topic>.<priority> queues that listeners without a pool share.",
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=None,
        help="topic to listen on; repeat for several (default: [oslo_messaging_notifications] "
        "topics, that is notifications)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--pool",
        metavar="NAME",
        default=None,
        help="take notifications as a member of the pool NAME; its queue is removed on "
        "exit (on RabbitMQ: when its last member leaves) unless --keep-queue",
    )
    source.add_argument(
        "--shared-queues",
        action="store_true",
        help="take notifications from the default <topic>.<priority> queues, away from the "
        "services' listeners without a pool (for transports without pools)",
    )
    parser.add_argument(
        "--keep-queue",
        action="store_true",
        help="with --pool: leave the pool's queue (and what collects in it) when leaving, "
        "as a service's pool does; needed to join a pool a service uses",
    )
    parser.add_argument(
        "--event-type",
        metavar="GLOB",
        default=None,
        help="print only notifications whose event type matches this shell pattern "
        "(compute.instance.*); the others are skipped in this command's own copy "
        "(not allowed with --pool or --shared-queues, where skipping would take them "
        "away from the other listeners)",
    )
    parser.add_argument(
        "--priority",
        action="append",
        type=str.lower,
        choices=(*PRIORITIES, "warning"),
        default=None,
        help="subscribe only to this priority; repeat for several (default: all)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        metavar="N",
        help="exit 0 after printing N notifications",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after SECONDS: exit 4 when --count was given and not reached, else 0",
    )
    parser.add_argument(
        "--json", action="store_true", help="print each notification as a JSON object"
    )


def format_line(record: dict[str, Any], as_json: bool) -> str:
    """One output line for a received notification.

    Args:
        record: ``priority``, ``event_type``, ``publisher_id``, ``payload``,
            ``message_id``, ``timestamp`` and ``context``.
        as_json: print ``record`` as one JSON object instead of text.
    """
    if as_json:
        return json.dumps(record, sort_keys=True, default=str)
    payload = json.dumps(record["payload"], sort_keys=True, default=str)
    return (
        f"{record['timestamp']} {record['priority']} {record['event_type']} "
        f"{record['publisher_id']} {payload}"
    )


class NotificationPrinter:
    """A notification endpoint that prints what it receives and counts it.

    It has a method per subscribed priority. Past ``count`` notifications it
    asks for a requeue (when the transport can requeue) so that nothing it did
    not print is taken from the queue.

    Args:
        priorities: the priorities to receive.
        out: where lines go.
        as_json: one JSON object per line.
        event_glob: a shell pattern event types must match to be printed.
        count: how many to print before :attr:`done` is set; None for no limit.
        can_requeue: whether notifications past ``count`` can be put back.
    """

    def __init__(
        self,
        priorities: list[str],
        out: TextIO,
        as_json: bool = False,
        event_glob: str | None = None,
        count: int | None = None,
        can_requeue: bool = False,
    ) -> None:
        self._out = out
        self._as_json = as_json
        self._glob = event_glob
        self._count = count
        self._can_requeue = can_requeue
        self._lock = threading.Lock()
        self.printed = 0
        self.skipped = 0
        self.reader_gone = False
        self.done = threading.Event()
        for priority in priorities:
            setattr(self, priority, self._handler(priority.upper()))

    def _handler(self, priority: str) -> Callable[..., Any]:
        def handle(
            ctxt: Any, publisher_id: Any, event_type: Any, payload: Any, metadata: Any
        ) -> Any:
            return self._receive(priority, ctxt, publisher_id, event_type, payload, metadata)

        return handle

    def _receive(
        self,
        priority: str,
        ctxt: Any,
        publisher_id: Any,
        event_type: Any,
        payload: Any,
        metadata: Any,
    ) -> Any:
        from messaging.notify import NotificationResult

        with self._lock:
            if self.done.is_set():
                return NotificationResult.REQUEUE if self._can_requeue else None
            if self._glob is not None and not fnmatch.fnmatchcase(str(event_type), self._glob):
                self.skipped += 1
                return None
            record = {
                "priority": priority,
                "event_type": event_type,
                "publisher_id": publisher_id,
                "payload": payload,
                "message_id": metadata.get("message_id"),
                "timestamp": metadata.get("timestamp"),
                "context": ctxt if isinstance(ctxt, dict) else str(ctxt),
            }
            try:
                print(format_line(record, self._as_json), file=self._out, flush=True)
            except BrokenPipeError:
                # The reader went away (`messaging listen | head -3`): stop, and
                # leave this notification to whoever listens next.
                self.reader_gone = True
                self.done.set()
                return NotificationResult.REQUEUE if self._can_requeue else None
            self.printed += 1
            if self._count is not None and self.printed >= self._count:
                self.done.set()
        return None


@contextmanager
def stop_signals(stop: threading.Event) -> Iterator[None]:
    """Turn SIGTERM and SIGINT into ``stop.set()`` while the block runs."""

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _wait(done: threading.Event, stop: threading.Event, timeout: float | None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    while not (done.is_set() or stop.is_set()):
        left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
        if left <= 0:
            return
        done.wait(left)


def _check_source(args: argparse.Namespace) -> None:
    if args.keep_queue and args.pool is None:
        raise CliError(
            "--keep-queue needs --pool NAME: without it the queue is this command's alone, "
            "and nobody could find it again",
            ExitCode.USAGE,
        )
    if args.event_type is not None and (args.pool is not None or args.shared_queues):
        raise CliError(
            "--event-type filters this command's own copy: with --pool or --shared-queues "
            "it would take the notifications that do not match away from the other listeners",
            ExitCode.USAGE,
        )


def _pool_of(args: argparse.Namespace) -> tuple[str | None, bool]:
    """The pool to listen in, and whether its queue goes away with the listener."""
    from messaging.drivers import names

    if args.shared_queues:
        return None, False
    if args.pool is None:
        return names.temporary_pool(TAP_POOL_PREFIX), True
    return args.pool, not args.keep_queue


def _source_text(args: argparse.Namespace) -> str:
    if args.shared_queues:
        return " (the shared default queues)"
    if args.pool is None:
        return " (a copy of its own)"
    kept = ", kept on exit" if args.keep_queue else ""
    return f" in pool {args.pool!r}{kept}"


def run(args: argparse.Namespace, session: Session) -> int:
    """Listen until ``--count``, ``--timeout`` or a signal; return the exit code."""
    from messaging.conf import NOTIFICATIONS_GROUP
    from messaging.notify import get_notification_listener
    from messaging.target import Target

    if args.count is not None and args.count < 1:
        raise CliError("--count must be at least 1", ExitCode.USAGE)
    if args.timeout is not None and args.timeout <= 0:
        raise CliError("--timeout must be more than 0 seconds", ExitCode.USAGE)
    priorities = sorted(
        {"warn" if p == "warning" else p for p in (args.priority or PRIORITIES)},
        key=PRIORITIES.index,
    )
    _check_source(args)
    topics = args.topic or list(session.conf[NOTIFICATIONS_GROUP].topics)
    transport = session.notification_transport()
    capabilities = transport.capabilities
    if not args.shared_queues and not capabilities.pools:
        url = session.describe_url(notifications=True)
        raise CliError(
            f"the transport {url} has no listener pools, so listen cannot get a copy of "
            "its own; --shared-queues takes notifications from the services' default queues",
            ExitCode.USAGE,
        )
    pool, temporary = _pool_of(args)
    printer = NotificationPrinter(
        priorities,
        sys.stdout,
        as_json=args.json,
        event_glob=args.event_type,
        count=args.count,
        can_requeue=capabilities.requeue,
    )
    listener = get_notification_listener(
        transport,
        [Target(topic=topic) for topic in topics],
        [printer],
        executor="blocking",
        allow_requeue=capabilities.requeue,
        pool=pool,
        temporary_pool=temporary,
    )
    stop = threading.Event()
    with stop_signals(stop):
        listener.start()
        try:
            where = ", ".join(f"{t}.{p}" for t in topics for p in priorities)
            session.ready(f"listening on {where}{_source_text(args)}")
            _wait(printer.done, stop, args.timeout)
        finally:
            listener.stop()
            listener.wait(timeout=_STOP_JOIN_TIMEOUT)
    if printer.reader_gone:
        raise BrokenPipeError("stdout was closed")
    if printer.skipped:
        print(
            f"messaging listen: {printer.skipped} notification(s) whose event type did not "
            f"match {args.event_type!r} were skipped",
            file=sys.stderr,
        )
    if args.count is not None and not printer.done.is_set():
        if stop.is_set():
            return ExitCode.INTERRUPTED
        raise CliError(
            f"received {printer.printed} of {args.count} notifications within {args.timeout:g}s",
            ExitCode.TIMEOUT,
        )
    return ExitCode.OK
