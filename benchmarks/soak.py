"""A soak: a listener handles millions of notifications; does it leak memory, threads or files?

A sender process publishes notifications (``messagingv2``, the default retry)
while this process listens with the threading executor, both on a virtual
host of their own on RabbitMQ. Every ``--every`` notifications handled, the
listener's RSS, thread count and open file descriptors are sampled. After a
warm-up (``--warmup`` notifications), the growth of each is printed: the
goal is an RSS that grows by less than 5 MB and flat thread and descriptor
counts.

    python benchmarks/soak.py                       # 2,000,000 notifications (about 5 min)
    python benchmarks/soak.py --count 200000        # a shorter one

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

SENDER = """
import sys, messaging
from oslo_config import cfg
url, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
conf = cfg.ConfigOpts()
conf([], project="soak", default_config_files=[], default_config_dirs=[])
transport = messaging.get_notification_transport(conf, url)
notifier = messaging.Notifier(transport, "soak", driver="messagingv2", topics=[topic])
payload = {"instance": "x" * 200}
for n in range(count):
    notifier.info({}, "soak.test", payload)
transport.flush(120)
transport.cleanup()
"""


def rabbitmqctl(*args: str) -> None:
    """Run rabbitmqctl quietly."""
    subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, check=True, timeout=60)


def rss_kib() -> int:
    """This process's resident set size, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sample() -> tuple[int, int, int]:
    """RSS (KiB), threads, open file descriptors of this process."""
    return rss_kib(), threading.active_count(), len(os.listdir("/proc/self/fd"))


def main() -> None:
    """Run the soak and print the samples and the growth after warm-up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2_000_000)
    parser.add_argument("--warmup", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=100_000)
    args = parser.parse_args()
    from oslo_config import cfg

    import messaging

    vhost = f"soak-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    url = f"rabbit://guest:guest@127.0.0.1:5672/{vhost}"
    topic = "soak"
    handled = 0
    done = threading.Event()
    samples: list[tuple[int, float, int, int, int]] = []
    lock = threading.Lock()

    class Endpoint:
        def info(
            self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any
        ) -> None:
            nonlocal handled
            with lock:
                handled += 1
                n = handled
            if n % args.every == 0:
                samples.append((n, time.monotonic(), *sample()))
            if n == args.count:
                done.set()

    conf = cfg.ConfigOpts()
    conf([], project="soak", default_config_files=[], default_config_dirs=[])
    transport = messaging.get_notification_transport(conf, url)
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [Endpoint()], executor="threading"
    )
    listener.start()
    started = time.monotonic()
    sender = subprocess.Popen(
        [sys.executable, "-c", SENDER, url, topic, str(args.count)], stdin=subprocess.DEVNULL
    )
    try:
        finished = done.wait(args.count / 1000 + 300)
        sender.wait(120)
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
        rabbitmqctl("delete_vhost", vhost)
    elapsed = time.monotonic() - started
    print(
        f"handled {handled:,} of {args.count:,} notifications in {elapsed:.0f} s"
        f"{'' if finished else ' (not all: timed out)'}"
    )
    print(f"{'handled':>10} {'s':>7} {'RSS MiB':>8} {'threads':>8} {'fds':>5}")
    for n, when, rss, threads, fds in samples:
        print(f"{n:>10,} {when - started:>7.1f} {rss / 1024:>8.1f} {threads:>8} {fds:>5}")
    warm = [s for s in samples if s[0] >= args.warmup]
    if len(warm) >= 2:
        first, last = warm[0], warm[-1]
        print(
            f"after warm-up ({first[0]:,} -> {last[0]:,} handled): "
            f"RSS {last[2] - first[2]:+,} KiB, threads {last[3] - first[3]:+d}, "
            f"fds {last[4] - first[4]:+d}; "
            f"max RSS {max(s[2] for s in warm) / 1024:.1f} MiB"
        )


if __name__ == "__main__":
    main()
