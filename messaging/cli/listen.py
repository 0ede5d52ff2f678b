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

__all__ = ["NotificationPrinter", "add_parser", "format_line", "run", "stop_signals"]

_STOP_JOIN_TIMEOUT = 30.0


def add_parser(commands: Commands) -> None:
    """Add ``listen`` to the ``messaging`` command."""
    parser = commands.add(
        "listen",
        run,
        long_running=True,
        summary="print notifications as they arrive",
        description="Print one line per notification received. Without --pool the listener "
        "shares the default queue of each <topic>.<priority> with the other listeners that "
        "have no pool (each notification goes to one of them, and notifications sent while "
        "nobody listened wait there); with --pool it receives its own copy of each.",
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=None,
        help="topic to listen on; repeat for several (default: [oslo_messaging_notifications] "
        "topics, that is notifications)",
    )
    parser.add_argument("--pool", default=None, help="listen as a member of this pool")
    parser.add_argument(
        "--event-type",
        metavar="GLOB",
        default=None,
        help="print only notifications whose event type matches this shell pattern "
        "(compute.instance.*); the others are consumed, counted, and not printed",
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
    topics = args.topic or list(session.conf[NOTIFICATIONS_GROUP].topics)
    transport = session.notification_transport()
    capabilities = transport.capabilities
    if args.pool is not None and not capabilities.pools:
        raise CliError(
            f"the transport {session.describe_url(notifications=True)} has no listener pools",
            ExitCode.USAGE,
        )
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
        pool=args.pool,
    )
    stop = threading.Event()
    with stop_signals(stop):
        listener.start()
        try:
            where = ", ".join(f"{t}.{p}" for t in topics for p in priorities)
            pool = f" in pool {args.pool!r}" if args.pool else ""
            session.ready(f"listening on {where}{pool}")
            _wait(printer.done, stop, args.timeout)
        finally:
            listener.stop()
            listener.wait(timeout=_STOP_JOIN_TIMEOUT)
    if printer.reader_gone:
        raise BrokenPipeError("stdout was closed")
    if printer.skipped:
        print(
            f"messaging listen: {printer.skipped} notification(s) whose event type did not "
            f"match {args.event_type!r} were consumed and not printed",
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
