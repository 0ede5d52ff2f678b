"""How often a notification whose endpoint always raises comes back (``allow_requeue=True``).

A listener with one endpoint that raises on every notification receives one
notification; the script counts the deliveries over a window and the process's
CPU time meanwhile, on a virtual host of its own (local RabbitMQ 3.10, or the
RabbitMQ 4 node of tests/rabbitmq_nodes.py with ``--rabbitmq4``)::

    python -m benchmarks.poison_rate --seconds 15
    python -m benchmarks.poison_rate --rabbitmq4

Prints figures; asserts nothing. Before the poison handling it printed about
1,500 deliveries a second at about half a core; now the attempts are spaced out
(1, 2, 4... seconds by default) and the notification is parked after 8.
"""

from __future__ import annotations

import argparse
import logging
import resource
import subprocess
import time
import uuid
from typing import Any

from oslo_config import cfg

import messaging


def ctl(rabbitmq4: bool, *args: str) -> None:
    """Run rabbitmqctl on the chosen broker."""
    if rabbitmq4:
        from tests.rabbitmq_nodes import ensure_running, rabbitmqctl

        ensure_running()
        rabbitmqctl(*args)
    else:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def main() -> None:
    """Run the measurement and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rabbitmq4", action="store_true", help="the RabbitMQ 4 node (5682)")
    parser.add_argument("--query", default="", help="transport URL query, e.g. a=b&c=d")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    vhost = f"poison-rate-{uuid.uuid4().hex[:8]}"
    port = 5682 if args.rabbitmq4 else 5672
    ctl(args.rabbitmq4, "add_vhost", vhost)
    try:
        ctl(args.rabbitmq4, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        url = f"rabbit://guest:guest@127.0.0.1:{port}/{vhost}" + (
            f"?{args.query}" if args.query else ""
        )
        print(f"{messaging.__name__}: {measure(url, args.seconds)}")
    finally:
        ctl(args.rabbitmq4, "delete_vhost", vhost)


def measure(url: str, seconds: float) -> str:
    """Deliveries per second and CPU of an always-failing notification over ``seconds``."""
    calls: list[float] = []

    class AlwaysFails:
        def info(self, *args: Any) -> None:
            calls.append(time.monotonic())
            raise ValueError("always")

    conf = cfg.ConfigOpts()
    conf([], project="poison-rate", default_config_files=[], default_config_dirs=[])
    transport = messaging.get_notification_transport(conf, url)
    topic = f"rate-{uuid.uuid4().hex}"
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [AlwaysFails()], allow_requeue=True
    )
    listener.start()
    try:
        notifier = messaging.Notifier(transport, "rate", driver="messagingv2", topics=[topic])
        notifier.info({}, "poison.rate", {})
        notifier.flush(10)
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        time.sleep(seconds)
        after, ended = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    window = [c for c in calls if started <= c <= ended]
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / (ended - started)
    return (
        f"{len(calls)} deliveries in all, {len(window) / (ended - started):.1f} a second over "
        f"{ended - started:.0f} s, CPU {cpu * 100:.0f}% of a core"
    )


if __name__ == "__main__":
    main()
