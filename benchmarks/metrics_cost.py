"""What Prometheus metrics cost: rates with metrics on against off, in one process.

    python -m benchmarks.metrics_cost [--url rabbit://guest:guest@127.0.0.1:5672/] [--rounds 5]

Each round measures, with metrics off then on (the order alternating between
rounds): notifications sent (each confirmed by the broker), notifications
received by a listener, and RPC calls made one after the other, over the same
transport. It prints each rate's median over the rounds and the on/off ratio.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from typing import Any

from oslo_config import cfg
from prometheus_client import CollectorRegistry

import messaging
from messaging import metrics


class Sink:
    """Counts notifications; sets ``done`` at ``target``."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done = threading.Event()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        """Count one."""
        self.count += 1
        if self.count >= self.target:
            self.done.set()


class Echo:
    """Returns what it is given."""

    def echo(self, ctxt: Any, value: Any) -> Any:
        """Return ``value``."""
        return value


def measure(url: str, count: int, calls: int) -> dict[str, float]:
    """One round of each workload; rates per second."""
    conf = cfg.ConfigOpts()
    conf([])
    transport = messaging.get_notification_transport(conf, url)
    rpc = messaging.get_rpc_transport(conf, url)
    topic = f"cost-{uuid.uuid4().hex[:8]}"
    sink = Sink()
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [sink], executor="threading"
    )
    server = messaging.get_rpc_server(
        rpc, messaging.Target(topic=topic, server="s"), [Echo()], executor="threading"
    )
    listener.start()
    server.start()
    try:
        notifier = messaging.Notifier(transport, "cost", driver="messagingv2", topics=[topic])
        client = messaging.get_rpc_client(rpc, messaging.Target(topic=topic), timeout=30)
        client.call({}, "echo", value=0)
        sink.target = count
        started = time.perf_counter()
        for n in range(count):
            notifier.info({}, "cost.event", {"n": n})
        notifier.flush(60)  # every notification confirmed
        sent = count / (time.perf_counter() - started)
        if not sink.done.wait(120):
            raise RuntimeError(f"only {sink.count} of {count} notifications arrived")
        received = count / (time.perf_counter() - started)
        started = time.perf_counter()
        for n in range(calls):
            client.call({}, "echo", value=n)
        called = calls / (time.perf_counter() - started)
    finally:
        for running in (listener, server):
            running.stop()
            running.wait()
        transport.cleanup()
        rpc.cleanup()
    return {"notifications sent/s": sent, "notifications received/s": received, "calls/s": called}


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.metrics_cost")
    parser.add_argument("--url", default="rabbit://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=20_000, help="notifications per round")
    parser.add_argument("--calls", type=int, default=2_000, help="calls per round")
    args = parser.parse_args()
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for on in (False, True) if round_ % 2 == 0 else (True, False):
            if on:
                metrics.enable(registry=CollectorRegistry())
            try:
                results[on].append(measure(args.url, args.count, args.calls))
            finally:
                metrics.disable()
    print(f"{args.rounds} rounds, {args.count} notifications and {args.calls} calls each")
    print(f"{'measure':28} {'off':>10} {'on':>10} {'on/off':>8}   each round (off/on)")
    for name in results[False][0]:
        off = statistics.median(r[name] for r in results[False])
        on = statistics.median(r[name] for r in results[True])
        pairs = zip(results[False], results[True], strict=True)
        rounds = ", ".join(f"{a[name]:.0f}/{b[name]:.0f}" for a, b in pairs)
        print(f"{name:28} {off:10.0f} {on:10.0f} {on / off:8.3f}   {rounds}")


if __name__ == "__main__":
    main()
