"""``oslo-messaging-send-notification``: oslo.messaging's command, with its arguments.

``oslo-messaging-send-notification --config-file f.conf --event-type e
--priority info 'payload'`` sends one notification whose payload is the string
given. ``--transport-url`` overrides the configuration; ``--topic`` may be
repeated (the configuration's topics otherwise); ``--driver`` defaults to
``messagingv2``. Unlike oslo.messaging's, a notification that cannot be sent is
an error (exit status 1, the reason on stderr), not a log line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]

PRIORITIES = ("info", "audit", "warn", "error", "critical", "sample")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oslo-messaging-send-notification", description="Send one notification."
    )
    parser.add_argument("--config-file", action="append", default=[], help="configuration file")
    parser.add_argument("--transport-url", help="transport URL (default: the configuration's)")
    parser.add_argument("--publisher-id", help="publisher id of the notification")
    parser.add_argument("--event-type", default="test", help="event type (default: test)")
    parser.add_argument("--topic", nargs="*", help="topics (default: the configuration's)")
    parser.add_argument("--priority", default="info", choices=PRIORITIES, help="priority")
    parser.add_argument("--driver", default="messagingv2", help="notification driver")
    parser.add_argument("payload", help="the payload, sent as a string")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Send the notification the arguments describe; return the exit status."""
    from oslo_config import cfg

    from messaging.notify.notifier import Notifier
    from messaging.transport import get_notification_transport

    args = _parser().parse_args(argv)
    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=args.config_file)
    try:
        transport = get_notification_transport(conf, url=args.transport_url)
        try:
            notifier = Notifier(
                transport,
                publisher_id=args.publisher_id,
                driver=args.driver,
                topics=args.topic or None,
                raise_errors=True,
            )
            getattr(notifier, args.priority)({}, args.event_type, args.payload)
            notifier.flush()
        finally:
            transport.cleanup()
    except Exception as exc:
        print(f"oslo-messaging-send-notification: {exc}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())
