"""The floor: what kombu alone does with the same messages, one role per process.

Run by the runner as::

    python -m benchmarks.bench.raw_kombu ROLE --url amqp://... --queue NAME [options]

Roles (same stdout protocol as :mod:`.worker`):

``publish``
    publish ``--count`` messages to a queue through the default exchange, with
    ``--confirms`` waiting for the broker's confirm of each (kombu's
    ``confirm_publish``), as oslo.messaging does for every message;
``consume``
    consume ``--count`` messages from a prefilled queue, decoding each as the
    libraries must (kombu decodes the JSON envelope, then the ``oslo.message``
    JSON inside) and acknowledging it;
``rr-server`` / ``rr-client``
    request/reply round trips: the client publishes a request carrying the
    payload, with ``reply_to`` its own exclusive queue, and waits for the
    reply; the server answers each request from its queue (both publish with
    confirms under ``--confirms``).

Messages have the oslo.messaging envelope and size (the payload of
:mod:`.payload` inside ``oslo.message``), so that the floor moves the same
bytes. Queues made here expire on the broker after 10 idle minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from typing import Any

import kombu as _kombu

from benchmarks.bench.payload import make_payload
from benchmarks.bench.stats import cpu_seconds, latency_summary, peak_rss_mib
from benchmarks.bench.worker import emit

#: kombu is only partly typed; used through ``Any``.
kombu: Any = _kombu

QUEUE_EXPIRES_MS = 600_000
CALL_TIMEOUT = 60.0


def envelope(inner: dict[str, Any]) -> dict[str, Any]:
    """The oslo.messaging 2.0 envelope around ``inner``."""
    return {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}


def notification(seq: int) -> dict[str, Any]:
    """A notification as oslo.messaging sends it, with payload number ``seq``."""
    return envelope(
        {
            "message_id": str(uuid.uuid4()),
            "publisher_id": "bench.raw",
            "event_type": "bench.n",
            "priority": "INFO",
            "payload": make_payload(seq),
            "timestamp": "2026-11-23 10:15:42.123456",
        }
    )


def _queue(name: str, **kwargs: Any) -> Any:
    return kombu.Queue(
        name,
        exchange=kombu.Exchange(""),
        routing_key=name,
        durable=False,  # as oslo.messaging's queues with its defaults: no disk writes
        queue_arguments={"x-expires": QUEUE_EXPIRES_MS},
        **kwargs,
    )


def _connection(url: str, confirms: bool) -> Any:
    conn = kombu.Connection(url, transport_options={"confirm_publish": confirms})
    conn.connect()
    return conn


def publish(url: str, queue: str, count: int, confirms: bool) -> dict[str, Any]:
    """Publish ``count`` notifications to ``queue`` (declared first)."""
    with _connection(url, confirms) as conn:
        channel = conn.channel()
        _queue(queue)(channel).declare()
        producer = kombu.Producer(
            channel, exchange=kombu.Exchange(""), routing_key=queue, serializer="json"
        )
        cpu0 = cpu_seconds()
        started = time.perf_counter()
        for seq in range(count):
            producer.publish(notification(seq))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds() - cpu0
    return {
        "count": count,
        "confirms": confirms,
        "rate": count / elapsed,
        "cpu_us": cpu / count * 1e6,
    }


def consume(url: str, queue: str, count: int, timeout: float) -> dict[str, Any]:
    """Consume ``count`` messages from ``queue``, decoding and acknowledging each."""
    received = 0
    last = 0.0

    def on_message(body: Any, message: Any) -> None:
        nonlocal received, last
        now = time.perf_counter()
        json.loads(body["oslo.message"])
        message.ack()
        received += 1
        last = now

    deadline = time.monotonic() + timeout
    with _connection(url, False) as conn:
        channel = conn.channel()
        started = time.perf_counter()
        consumer = kombu.Consumer(channel, [_queue(queue)], callbacks=[on_message], accept=["json"])
        cpu0 = cpu_seconds()
        with consumer:
            emit("ready")
            while received < count and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=1.0)
                except TimeoutError:
                    continue
        cpu = cpu_seconds() - cpu0
    return {
        "count": count,
        "received": received,
        # From the consumer's start, as the libraries' drain rates.
        "rate": count / (last - started) if received == count and last > started else None,
        "cpu_us": cpu / max(received, 1) * 1e6,
        "peak_rss_mib": peak_rss_mib(),
    }


def rr_server(url: str, queue: str, confirms: bool, stop: threading.Event) -> dict[str, Any]:
    """Answer requests on ``queue`` until ``stop`` is set."""
    served = 0
    with _connection(url, confirms) as conn:
        channel = conn.channel()
        producer = kombu.Producer(channel, exchange=kombu.Exchange(""), serializer="json")

        def on_request(body: Any, message: Any) -> None:
            nonlocal served
            request = json.loads(body["oslo.message"])
            payload = request["args"]["payload"]
            reply = {
                "result": {"seq": payload["seq"], "fields": len(payload)},
                "failure": None,
                "ending": True,
                "_msg_id": request["_msg_id"],
            }
            producer.publish(
                envelope(reply),
                routing_key=message.properties["reply_to"],
                correlation_id=message.properties["correlation_id"],
            )
            message.ack()
            served += 1

        consumer = kombu.Consumer(channel, [_queue(queue)], callbacks=[on_request], accept=["json"])
        with consumer:
            emit("ready")
            while not stop.is_set():
                try:
                    conn.drain_events(timeout=0.5)
                except TimeoutError:
                    continue
    return {"served": served, "peak_rss_mib": peak_rss_mib()}


def rr_client(url: str, queue: str, calls: int, warmup: int, confirms: bool) -> dict[str, Any]:
    """Make ``calls`` request/reply round trips to ``queue``, one at a time."""
    replies: dict[str, Any] = {}
    reply_queue = f"bench-raw-reply-{uuid.uuid4().hex}"

    def on_reply(body: Any, message: Any) -> None:
        replies[message.properties["correlation_id"]] = json.loads(body["oslo.message"])
        message.ack()

    with _connection(url, confirms) as conn:
        channel = conn.channel()
        producer = kombu.Producer(
            channel, exchange=kombu.Exchange(""), routing_key=queue, serializer="json"
        )
        consumer = kombu.Consumer(
            channel,
            [_queue(reply_queue, exclusive=True, auto_delete=True)],
            callbacks=[on_reply],
            accept=["json"],
        )

        def round_trip(seq: int) -> None:
            msg_id = uuid.uuid4().hex
            request = {
                "method": "echo",
                "args": {"payload": make_payload(seq)},
                "namespace": None,
                "version": "1.0",
                "_msg_id": msg_id,
                "_reply_q": reply_queue,
                "_unique_id": uuid.uuid4().hex,
                "_timeout": None,
            }
            producer.publish(envelope(request), reply_to=reply_queue, correlation_id=msg_id)
            deadline = time.monotonic() + CALL_TIMEOUT
            while msg_id not in replies:
                conn.drain_events(timeout=max(0.0, deadline - time.monotonic()))
            reply = replies.pop(msg_id)
            if reply["result"] != {"seq": seq, "fields": 10}:
                raise RuntimeError(f"round trip {seq} returned {reply!r}")

        with consumer:
            for seq in range(warmup):
                round_trip(seq)
            latencies = []
            cpu0 = cpu_seconds()
            for seq in range(calls):
                before = time.perf_counter()
                round_trip(seq)
                latencies.append(time.perf_counter() - before)
            cpu = cpu_seconds() - cpu0
    return {
        "calls": calls,
        "confirms": confirms,
        "cpu_us": cpu / calls * 1e6,
        **latency_summary(latencies),
    }


def main(argv: list[str] | None = None) -> int:
    """Run one role; print its figures as the last JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench.raw_kombu")
    parser.add_argument("role", choices=["publish", "consume", "rr-server", "rr-client"])
    parser.add_argument("--url", required=True, help="kombu URL (amqp://user:pass@host:port/vhost)")
    parser.add_argument("--queue", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--confirms", action="store_true", help="publisher confirms")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.role == "publish":
            figures = publish(args.url, args.queue, args.count, args.confirms)
        elif args.role == "consume":
            figures = consume(args.url, args.queue, args.count, args.timeout)
        elif args.role == "rr-server":
            stop = threading.Event()

            def wait_for_eof() -> None:
                sys.stdin.read()
                stop.set()

            threading.Thread(target=wait_for_eof, daemon=True, name="stdin-eof").start()
            figures = rr_server(args.url, args.queue, args.confirms, stop)
        else:
            figures = rr_client(args.url, args.queue, args.count, args.warmup, args.confirms)
    except Exception as exc:
        emit("error", error=f"{type(exc).__name__}: {exc}")
        raise
    emit("result", **figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
