"""What OpenTelemetry tracing costs per message: tracing off against on, in one process.

    python -m benchmarks.tracing_cost [--url fake://] [--rounds 5] [--calls 2000] [--count 5000]

Tracing on means ``[oslo_messaging_tracing] tracing_enabled`` with the SDK's
TracerProvider and a BatchSpanProcessor whose exporter drops the spans (the
cost of making and exporting spans, not of a collector). Each round measures,
off then on (the order alternating): RPC calls made one after the other (two
spans each) and notifications sent (one span each). It prints each rate's
median, and the microseconds tracing adds per message.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from oslo_config import cfg

import messaging
from messaging.conf import TRACING_GROUP, register_tracing_opts


class Dropping(SpanExporter):
    """Exports nowhere."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Drop ``spans``."""
        return SpanExportResult.SUCCESS


class Echo:
    """Returns what it is given."""

    def echo(self, ctxt: Any, value: Any) -> Any:
        """Return ``value``."""
        return value


def measure(url: str, traced: bool, calls: int, count: int) -> dict[str, float]:
    """One round; rates per second."""
    conf = cfg.ConfigOpts()
    conf([], project="tracing-cost", default_config_files=[], default_config_dirs=[])
    register_tracing_opts(conf)
    conf.set_override("tracing_enabled", traced, group=TRACING_GROUP)
    rpc = messaging.get_rpc_transport(conf, url)
    notifications = messaging.get_notification_transport(conf, url)
    topic = f"cost-{uuid.uuid4().hex[:8]}"
    server = messaging.get_rpc_server(
        rpc, messaging.Target(topic=topic, server="s"), [Echo()], executor="threading"
    )
    server.start()
    try:
        client = messaging.get_rpc_client(rpc, messaging.Target(topic=topic), timeout=30)
        ctxt = {"request_id": "req-cost", "user": "u"}
        client.call(ctxt, "echo", value=0)
        started = time.perf_counter()
        for n in range(calls):
            client.call(ctxt, "echo", value=n)
        called = calls / (time.perf_counter() - started)
        # Nobody listens: the notifications are sent and dropped by the broker.
        notifier = messaging.Notifier(notifications, "cost", driver="messagingv2", topics=[topic])
        started = time.perf_counter()
        for n in range(count):
            notifier.info(ctxt, "cost.event", {"n": n})
        notifier.flush(60)
        sent = count / (time.perf_counter() - started)
    finally:
        server.stop()
        server.wait()
        rpc.cleanup()
        notifications.cleanup()
    return {"calls/s": called, "notifications sent/s": sent}


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tracing_cost")
    parser.add_argument("--url", default="fake://")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2_000, help="calls per round")
    parser.add_argument("--count", type=int, default=5_000, help="notifications per round")
    args = parser.parse_args()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping()))
    trace.set_tracer_provider(provider)
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for traced in (False, True) if round_ % 2 == 0 else (True, False):
            results[traced].append(measure(args.url, traced, args.calls, args.count))
    print(f"{args.url}: {args.rounds} rounds, {args.calls} calls, {args.count} notifications each")
    print(f"{'measure':24} {'off':>10} {'on':>10} {'on/off':>8} {'added µs/message':>18}")
    for name in results[False][0]:
        off = statistics.median(r[name] for r in results[False])
        on = statistics.median(r[name] for r in results[True])
        added = (1 / on - 1 / off) * 1e6
        print(f"{name:24} {off:10.0f} {on:10.0f} {on / off:8.3f} {added:18.1f}")


if __name__ == "__main__":
    main()
