"""``messaging status``: the servers of a topic, who answered and how fast, and its queues.

See :mod:`messaging.status` for how servers are asked and queues counted.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from messaging.cli.errors import CliError, ExitCode
from messaging.cli.notify import bounded_retry
from messaging.cli.rpc import DEFAULT_TOPIC

if TYPE_CHECKING:
    from messaging.cli.commands import Commands
    from messaging.cli.session import Session

__all__ = ["STATUS_TIMEOUT", "add_parser", "describe", "run"]

#: Seconds to gather answers unless ``--timeout`` says otherwise.
STATUS_TIMEOUT = 3.0


def add_parser(commands: Commands) -> None:
    """Add ``status`` to the ``messaging`` command."""
    parser = commands.add(
        "status",
        run,
        summary="show the servers of a topic (who answers, how fast) and its queues",
        description="Ask every server of --topic at once who it is and how it is, print who "
        "answered within --timeout and how fast, and, on RabbitMQ, the messages and consumers "
        "of the topic's queues. Exit code 0 when at least one server answered and nothing is "
        "wrong, 1 when a server is not ready or did not answer (--server), or a queue has no "
        "consumer or is missing, 4 when no server answered, 5 when the broker cannot be reached.",
    )
    parser.add_argument(
        "--topic", default=DEFAULT_TOPIC, help=f"the servers' topic (default: {DEFAULT_TOPIC})"
    )
    parser.add_argument(
        "--exchange",
        default=None,
        help="the servers' exchange (default: [DEFAULT] control_exchange)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=STATUS_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to gather answers (default: {STATUS_TIMEOUT:g})",
    )
    parser.add_argument(
        "--server",
        dest="servers",
        action="append",
        default=[],
        metavar="NAME",
        help="a server expected to answer (repeat for several): one that does not is a "
        "problem, and its queue is counted all the same",
    )
    parser.add_argument(
        "--expect",
        type=int,
        default=None,
        metavar="N",
        help="stop waiting as soon as N servers answered",
    )
    parser.add_argument(
        "--retry",
        type=int,
        default=None,
        help=f"connection retries (default: {bounded_retry(None)})",
    )
    parser.add_argument("--json", action="store_true", help="print everything as JSON")


def run(args: argparse.Namespace, session: Session) -> int:
    """Ask the servers, count the queues, print; the exit code says whether all is well."""
    from messaging.status import topic_status
    from messaging.target import Target

    if args.timeout <= 0:
        raise CliError("--timeout must be more than 0 seconds", ExitCode.USAGE)
    if args.expect is not None and args.expect <= 0:
        raise CliError("--expect must be at least 1", ExitCode.USAGE)
    transport = session.rpc_transport()
    if not (transport.capabilities.rpc and transport.capabilities.fanout):
        raise CliError(
            f"the transport {session.describe_url()} cannot reach every server of a topic",
            ExitCode.CONFIG,
        )
    with session.waiting(f"the servers of topic {args.topic!r} to answer", transport):
        found = topic_status(
            transport,
            Target(topic=args.topic, exchange=args.exchange),
            timeout=args.timeout,
            expect=args.expect,
            retry=bounded_retry(args.retry),
            servers=args.servers,
        )
    report = found.as_dict()
    print(json.dumps(report, indent=1) if args.json else describe(report), flush=True)
    if not found.answers:
        return ExitCode.TIMEOUT
    return ExitCode.OK if found.ok else ExitCode.FAILED


def describe(report: dict[str, Any]) -> str:
    """The report of :meth:`TopicStatus.as_dict <messaging.status.TopicStatus.as_dict>` as text.

    A line on the topic, a table of the servers that answered (fastest
    first), a table of the queues, then the problems.
    """
    answers = report["answers"]
    where = f"topic {report['topic']!r}"
    if report.get("exchange"):
        where += f", exchange {report['exchange']!r}"
    lines = [
        f"{where}: {len(answers)} server(s) answered within {report['timeout']:g} s "
        f"({'ok' if report['ok'] else 'PROBLEMS'})"
    ]
    if answers:
        lines += ["", *_table(["SERVER", "HOST", "PID", "TIME", "STATE", *_HEALTH], _rows(answers))]
    queues = report.get("queues")
    if queues is None:
        lines += ["", f"queues: not available ({report.get('queues_unavailable')})"]
    else:
        rows = [
            [q["name"], *(("-", "-", "MISSING") if not q["exists"] else _counts(q))] for q in queues
        ]
        lines += ["", *_table(["QUEUE", "MESSAGES", "CONSUMERS", ""], rows)]
    if report["problems"]:
        lines += ["", "problems:", *(f"- {p}" for p in report["problems"])]
    return "\n".join(lines)


_HEALTH = ["CONSUMING", "LAST MESSAGE", "BUSY", "RECONNECTS"]


def _counts(queue: dict[str, Any]) -> tuple[str, str, str]:
    return str(queue["messages"]), str(queue["consumers"]), "" if queue["consumers"] else "UNUSED"


def _rows(answers: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for answer in answers:
        took = f"{answer['elapsed'] * 1000:.1f} ms"
        if not answer["known"]:
            note = f"anonymous: replied {answer['failure']}"
            rows.append(["?", "?", "?", took, note, "", "", "", ""])
            continue
        status = answer["status"]
        age = status.get("last_message_age")
        state = str(status.get("state", "?"))
        if status.get("ready") is False:
            state += " NOT READY"
        rows.append(
            [
                str(answer["server"]),
                str(answer["host"]),
                str(answer["pid"]),
                took,
                state,
                "yes" if status.get("consuming") else "NO",
                "never" if age is None else f"{age:.1f} s ago",
                f"{status.get('in_flight', 0)}/{status.get('max_workers', 0)}",
                str(status.get("reconnects", 0)),
            ]
        )
    return rows


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    # The last column is free text: it sets no width.
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines
