"""asyncio against threads: RPC calls and notifications, in one run.

Usage::

    python benchmarks/asyncio_calls.py [--url fake://] [--calls 1000] [--threads 8]
                                       [--notifications 2000]

An RPC server (threading executor, ``executor_thread_pool_size`` workers)
serves a method that returns its argument. This process then makes
``--calls`` calls:

1. all at once from one event loop, through :class:`messaging.aio.AsyncRPCClient`
   (``asyncio.gather``);
2. from ``--threads`` threads of the threading API, each making its share in turn;

and sends ``--notifications`` notifications (to a topic nobody listens on):

3. from a coroutine, awaiting :class:`messaging.aio.AsyncNotifier` each time;
4. from a thread, with :class:`messaging.Notifier`.

It prints the wall time and rate of each. ``--url`` names the transport
(``rabbit://guest:guest@127.0.0.1:5672/`` for the local RabbitMQ).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any

from oslo_config import cfg

import messaging
from messaging import aio

TOPIC = "bench-asyncio"


class Echo:
    """The served endpoint."""

    def echo(self, ctxt: Any, value: int) -> int:
        """Return ``value``."""
        return value


def _report(label: str, count: int, seconds: float) -> None:
    print(f"{label:<46} {count:>6} in {seconds:7.3f} s  {count / seconds:9.0f} /s")


async def _async_calls(transport: messaging.Transport, count: int) -> float:
    client = aio.get_async_rpc_client(transport, messaging.Target(topic=TOPIC), timeout=60)
    started = time.perf_counter()
    results = await asyncio.gather(*(client.call({}, "echo", value=n) for n in range(count)))
    elapsed = time.perf_counter() - started
    assert results == list(range(count))
    return elapsed


def _threaded_calls(transport: messaging.Transport, count: int, threads: int) -> float:
    client = messaging.get_rpc_client(transport, messaging.Target(topic=TOPIC), timeout=60)
    share = [count // threads + (1 if n < count % threads else 0) for n in range(threads)]
    errors: list[BaseException] = []

    def work(calls: int) -> None:
        try:
            for n in range(calls):
                assert client.call({}, "echo", value=n) == n
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(calls,)) for calls in share]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


async def _async_notifications(notifier: messaging.Notifier, count: int) -> float:
    sender = aio.AsyncNotifier(notifier)
    started = time.perf_counter()
    for n in range(count):
        await sender.info({}, "bench.event", {"n": n})
    return time.perf_counter() - started


def _threaded_notifications(notifier: messaging.Notifier, count: int) -> float:
    elapsed: list[float] = []

    def work() -> None:
        started = time.perf_counter()
        for n in range(count):
            notifier.info({}, "bench.event", {"n": n})
        elapsed.append(time.perf_counter() - started)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    return elapsed[0]


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="fake://")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--notifications", type=int, default=2000)
    args = parser.parse_args()

    conf = cfg.ConfigOpts()
    conf([], project="bench-asyncio")
    server_transport = messaging.get_rpc_transport(conf, args.url)
    client_transport = messaging.get_rpc_transport(conf, args.url)
    notify_transport = messaging.get_notification_transport(conf, args.url)
    server = messaging.get_rpc_server(
        server_transport, messaging.Target(topic=TOPIC, server="bench"), [Echo()]
    )
    server.start()
    try:
        # Warm up: connections, reply queue, worker threads.
        asyncio.run(_async_calls(client_transport, 50))
        _threaded_calls(client_transport, 50, args.threads)
        print(f"transport {args.url.split('@')[-1]}, server pool {conf.executor_thread_pool_size}")
        bound = aio.bridge.DEFAULT_MAX_CONCURRENCY
        _report(
            f"calls, one event loop (bridge of {bound})",
            args.calls,
            asyncio.run(_async_calls(client_transport, args.calls)),
        )
        _report(
            f"calls, {args.threads} threads",
            args.calls,
            _threaded_calls(client_transport, args.calls, args.threads),
        )
        notifier = messaging.Notifier(
            notify_transport, "bench.host", driver="messagingv2", topics=["bench-unheard"]
        )
        _report(
            "notifications, from a coroutine",
            args.notifications,
            asyncio.run(_async_notifications(notifier, args.notifications)),
        )
        _report(
            "notifications, from a thread",
            args.notifications,
            _threaded_notifications(notifier, args.notifications),
        )
    finally:
        server.stop()
        server.wait()
        for transport in (server_transport, client_transport, notify_transport):
            transport.cleanup()


if __name__ == "__main__":
    main()
