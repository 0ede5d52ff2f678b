"""Run by test_eventlet_executor.py in a fresh interpreter: a listener under eventlet.

Usage: ``python eventlet_listener_script.py COUNT``. Monkey-patches first, then, for
``executor=None`` and ``executor="eventlet"``, starts a listener on ``fake://``,
sends COUNT notifications (the first two must be handled concurrently) and prints
``<label> executor=<class> received=<n>``.
Exits 0 when every listener received all COUNT notifications, 1 otherwise.
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402
import threading  # noqa: E402
from typing import Any  # noqa: E402

from oslo_config import cfg  # noqa: E402

import messaging  # noqa: E402
from messaging.drivers.memory import reset_brokers  # noqa: E402

WAIT = 30.0


def run(label: str, executor: str | None, count: int) -> bool:
    reset_brokers()
    conf = cfg.ConfigOpts()
    conf([], project="messaging-eventlet-test", default_config_files=[], default_config_dirs=[])
    bus = messaging.get_notification_transport(conf, "fake://")
    received: list[int] = []
    done = threading.Event()
    # The first two notifications are handled at the same time, or not at all.
    meeting = threading.Barrier(2, timeout=WAIT)

    class Endpoint:
        def info(
            self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any
        ) -> None:
            if payload["n"] < 2:
                meeting.wait()
            received.append(payload["n"])
            if len(received) >= count:
                done.set()

    server = messaging.get_notification_listener(
        bus, [messaging.Target(topic="notifications")], [Endpoint()], executor=executor
    )
    server.start()
    notifier = messaging.Notifier(
        bus, "script.host", driver="messagingv2", topics=["notifications"]
    )
    for n in range(count):
        notifier.info({}, "script.event", {"n": n})
    complete = done.wait(WAIT)
    server.stop(timeout=WAIT)
    server.wait(timeout=WAIT)
    bus.cleanup()
    executor_cls = server._executor_cls.__name__
    print(f"{label} executor={executor_cls} received={len(received)}", flush=True)
    return complete and sorted(received) == list(range(count))


def main() -> int:
    count = int(sys.argv[1])
    results = [run("default", None, count), run("explicit", "eventlet", count)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
