"""``messaging parked list|replay``: the notifications that listeners parked after failing.

A notification whose handling failed ``max_delivery_attempts`` times is parked
with its failure (see :mod:`messaging.poison`); on RabbitMQ in the queue
``messaging.parked`` of the virtual host. ``list`` shows them (they stay
parked); ``replay`` sends them again to the queue each came from, once the
cause is fixed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import TYPE_CHECKING

from messaging.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from messaging.cli.commands import Commands
    from messaging.cli.session import Session
    from messaging.poison import ParkedMessage

__all__ = ["add_parser", "run"]

#: How many parked messages a command handles when ``--limit`` is not given.
DEFAULT_LIMIT = 1000


def add_parser(commands: Commands) -> None:
    """Add ``parked`` to the ``messaging`` command."""
    parser = commands.add(
        "parked",
        run,
        summary="list or replay the notifications that listeners parked",
        description="List, or replay to the queue they came from, the notifications that "
        "listeners parked after max_delivery_attempts failed attempts.",
    )
    parser.add_argument("action", choices=["list", "replay"], help="what to do")
    parser.add_argument("--queue", help="only those parked from this queue")
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"at most this many (default: {DEFAULT_LIMIT})",
    )
    parser.add_argument(
        "--json", action="store_true", help="list as JSON, one parked message per line"
    )
    parser.add_argument(
        "--traceback", action="store_true", help="list with each failure's traceback"
    )


def _show(parked: ParkedMessage, with_traceback: bool) -> str:
    lines = [
        f"queue {parked.queue} (exchange {parked.exchange!r}, routing key {parked.routing_key!r})",
        f"  parked at {parked.parked_at} by {parked.parked_by} after {parked.attempts} attempts",
        f"  failure: {parked.failure}",
        f"  body: {parked.body}",
    ]
    if with_traceback and parked.traceback:
        lines.append("  " + parked.traceback.rstrip().replace("\n", "\n  "))
    return "\n".join(lines)


def run(args: argparse.Namespace, session: Session) -> int:
    """List or replay; return the exit code."""
    if args.limit < 1:
        raise CliError("--limit must be at least 1", ExitCode.USAGE)
    transport = session.notification_transport()
    try:
        selected, failed = transport.driver.parked(
            args.limit, args.queue, replay=args.action == "replay"
        )
    except NotImplementedError as exc:
        raise CliError(str(exc), ExitCode.CONFIG) from exc
    out = sys.stdout
    if args.action == "list":
        for parked in selected:
            if args.json:
                print(json.dumps(dataclasses.asdict(parked)), file=out)
            else:
                print(_show(parked, args.traceback), file=out)
        print(f"{len(selected)} parked", file=sys.stderr)
        return ExitCode.OK
    replayed = len(selected) - len(failed)
    print(f"{replayed} replayed", file=sys.stderr)
    for parked in failed:
        print(f"not replayed (queue {parked.queue!r} is gone): {parked.failure}", file=sys.stderr)
    return ExitCode.OK if not failed else ExitCode.FAILED
