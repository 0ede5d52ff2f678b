"""``messaging notify``: send one notification."""

from __future__ import annotations

import argparse
import socket
from typing import TYPE_CHECKING

from messaging.cli.errors import CliError, ExitCode
from messaging.cli.jsonargs import parse_json

if TYPE_CHECKING:
    from messaging.cli.commands import Commands
    from messaging.cli.session import Session

__all__ = ["PRIORITIES", "add_parser", "bounded_retry", "run"]

#: Priorities accepted by ``--priority`` (``warning`` is an alias of ``warn``).
PRIORITIES = ("audit", "debug", "info", "warn", "warning", "error", "critical", "sample")
#: Connection retries when neither ``--retry`` nor the configuration bounds them.
DEFAULT_RETRY = 2
#: Seconds to wait for the broker to confirm the notification.
CONFIRM_TIMEOUT = 30.0


def bounded_retry(option: int | None, configured: int | None = None) -> int:
    """The connection retries of a one-shot command.

    ``--retry`` when given; else the configured value, unless it means "forever"
    (-1, oslo's default), which would leave a command hanging while the broker
    is down: then :data:`DEFAULT_RETRY`.
    """
    if option is not None:
        return option
    if configured is not None and configured >= 0:
        return configured
    return DEFAULT_RETRY


def add_parser(commands: Commands) -> None:
    """Add ``notify`` to the ``messaging`` command."""
    parser = commands.add(
        "notify",
        run,
        summary="send a notification",
        description="Send one notification, as Notifier.<priority>(ctxt, EVENT_TYPE, payload) "
        "does, and wait until the transport has taken it.",
    )
    parser.add_argument(
        "--priority",
        default="info",
        type=str.lower,
        choices=PRIORITIES,
        help="the notification's priority (default: info)",
    )
    parser.add_argument(
        "--publisher-id",
        default=None,
        help="who sends it (default: messaging-cli.<host name>)",
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=None,
        help="topic to send on; repeat for several (default: [oslo_messaging_notifications] "
        "topics, that is notifications)",
    )
    parser.add_argument(
        "--retry",
        type=int,
        default=None,
        help="connection retries (default: the configured retry, or "
        f"{DEFAULT_RETRY} when that is -1, forever)",
    )
    parser.add_argument("event_type", metavar="EVENT_TYPE", help="e.g. compute.instance.create.end")
    parser.add_argument(
        "payload",
        metavar="PAYLOAD_JSON",
        nargs="?",
        default="{}",
        help="the payload, as JSON (default: {})",
    )


def run(args: argparse.Namespace, session: Session) -> int:
    """Send the notification; return the exit code."""
    from messaging.conf import NOTIFICATIONS_GROUP
    from messaging.notify import Notifier

    payload = parse_json(args.payload, "PAYLOAD_JSON")
    if not args.event_type.strip():
        raise CliError("EVENT_TYPE must not be empty", ExitCode.USAGE)
    group = session.conf[NOTIFICATIONS_GROUP]
    transport = session.notification_transport()
    # A configuration file's drivers are used as a service would use them; with
    # none configured a service would discard the notification, which is never
    # what this command is for.
    drivers = list(dict.fromkeys(group.driver)) or ["messagingv2"]
    notifier = Notifier(
        transport,
        publisher_id=args.publisher_id or f"messaging-cli.{socket.gethostname()}",
        driver=drivers,
        topics=args.topic,
        retry=bounded_retry(args.retry, group.retry),
        raise_errors=True,
    )
    method = "warn" if args.priority == "warning" else args.priority
    with session.waiting(f"the broker to take {args.event_type}", transport):
        getattr(notifier, method)({}, args.event_type, payload)
        unconfirmed = notifier.flush(CONFIRM_TIMEOUT)
    if unconfirmed:
        raise CliError(
            f"the broker did not confirm the notification within {CONFIRM_TIMEOUT:g}s",
            ExitCode.UNREACHABLE,
        )
    return ExitCode.OK
