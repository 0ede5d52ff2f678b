"""The workloads, written once against the API both libraries share.

Each function takes the library module (``messaging`` or ``oslo_messaging``)
and a transport URL, runs one role of one workload in the calling process, and
returns its figures as a dict of JSON values. :mod:`.worker` runs them, one
role per process; the runner starts the processes and pairs their figures.

Times that two processes compare (first send, last receive) are wall-clock
``time.time()`` values; durations inside one process use ``perf_counter``.
CPU is the process's CPU time, all threads, over the measured part only.

Standard library only (besides the library under test and oslo.config), so
this module runs under the oslo.messaging virtualenv as well.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.bench.payload import make_payload
from benchmarks.bench.stats import cpu_seconds, latency_summary, peak_rss_mib, rss_mib

Emit = Callable[..., None]

#: Event types of the measured notifications, and of the one sent first to
#: open the sender's connection (listeners do not count it).
EVENT = "bench.n"
WARMUP_EVENT = "bench.warmup"
CALL_TIMEOUT = 60


def configure(lib: Any, exchange: str) -> Any:
    """Set the control exchange and parse the global ``cfg.CONF`` with no files.

    oslo.messaging 18.3 registers some options on the global object only (a
    private ``ConfigOpts`` fails on tracing options), so both sides use it.
    Call it once per process.
    """
    from oslo_config import cfg

    lib.set_transport_defaults(control_exchange=exchange)
    cfg.CONF([], project="messaging-bench", default_config_files=[], default_config_dirs=[])
    return cfg.CONF


def notify_send(lib: Any, url: str, *, exchange: str, topic: str, count: int) -> dict[str, Any]:
    """Send ``count`` info notifications to ``topic``, each confirmed by the broker.

    One warm-up notification goes first (it opens the connection and declares
    the queue). The clock stops when every notification is confirmed: after
    the last ``info()`` returns and, for a notifier that sends without waiting
    for each confirm (``messaging``), after ``Notifier.flush()``.
    """
    conf = configure(lib, exchange)
    transport = lib.get_notification_transport(conf, url=url)
    try:
        notifier = lib.Notifier(
            transport, publisher_id="bench.sender", driver="messagingv2", topics=[topic]
        )
        flush = getattr(notifier, "flush", None)
        notifier.info({}, WARMUP_EVENT, make_payload(-1))
        if flush is not None:
            flush(CALL_TIMEOUT)
        cpu0 = cpu_seconds()
        started = time.time()
        for seq in range(count):
            notifier.info({}, EVENT, make_payload(seq))
        returned = time.time()
        unconfirmed = flush(CALL_TIMEOUT) if flush is not None else 0
        confirmed = time.time()
        cpu = cpu_seconds() - cpu0
    finally:
        transport.cleanup()
    return {
        "count": count,
        "started": started,
        "returned": returned,
        "confirmed": confirmed,
        "unconfirmed": unconfirmed,
        "send_rate": count / (confirmed - started),
        "return_rate": count / (returned - started),
        "cpu_us": cpu / count * 1e6,
    }


class _NotificationCounter:
    """A notification endpoint that counts the measured notifications exactly once."""

    def __init__(self, count: int) -> None:
        self._expected = count
        self._seen = bytearray(count)
        self._lock = threading.Lock()
        self.received = 0
        self.duplicates = 0
        self.unexpected = 0
        self.first: float | None = None
        self.last: float | None = None
        self.done = threading.Event()

    def info(
        self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any
    ) -> None:
        now = time.time()
        with self._lock:
            if self.first is None:
                self.first = now
            if event_type != EVENT:
                return
            seq = payload.get("seq") if isinstance(payload, dict) else None
            if not isinstance(seq, int) or not 0 <= seq < self._expected:
                self.unexpected += 1
                return
            if self._seen[seq]:
                self.duplicates += 1
                return
            self._seen[seq] = 1
            self.received += 1
            if self.received == self._expected:
                self.last = now
                self.done.set()


def notify_listen(
    lib: Any,
    url: str,
    *,
    exchange: str,
    topic: str,
    count: int,
    timeout: float,
    ready: Callable[[], None],
) -> dict[str, Any]:
    """Listen on ``topic`` until ``count`` notifications arrived (or ``timeout``).

    ``ready`` is called once the listener is started. The figures include the
    wall-clock times of the first message and of the last counted one, the CPU
    per message, and the memory when ready and at the peak (after the listener
    stopped and the transport was cleaned up).
    """
    conf = configure(lib, exchange)
    transport = lib.get_notification_transport(conf, url=url)
    counter = _NotificationCounter(count)
    listener = lib.get_notification_listener(transport, [lib.Target(topic=topic)], [counter])
    started = time.time()
    listener.start()
    ready_rss = rss_mib()
    cpu0 = cpu_seconds()
    ready()
    finished = counter.done.wait(timeout)
    cpu = cpu_seconds() - cpu0
    listener.stop()
    listener.wait()
    transport.cleanup()
    received = counter.received
    span = (counter.last or 0.0) - (counter.first or 0.0)
    return {
        "count": count,
        "received": received,
        "duplicates": counter.duplicates,
        "unexpected": counter.unexpected,
        "all_arrived": finished and counter.duplicates == 0 and counter.unexpected == 0,
        "first": counter.first,
        "last": counter.last,
        # From the listener's start: a listener that buffers the queue before
        # handling anything must not look faster for it.
        "drain_rate": count / (counter.last - started) if finished and counter.last else None,
        "handling_rate": count / span if finished and span > 0 else None,
        "cpu_us": cpu / max(received, 1) * 1e6,
        "ready_rss_mib": ready_rss,
        "peak_rss_mib": peak_rss_mib(),
    }


class _RpcEndpoint:
    """The benchmark's RPC endpoint: ``echo`` for calls, ``sink`` for casts."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._lock = threading.Lock()
        self._casts: dict[str, set[int]] = {}
        self.calls = 0
        self.duplicate_casts = 0

    def echo(self, ctxt: Any, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        return {"seq": payload["seq"], "fields": len(payload)}

    def sink(self, ctxt: Any, run: str, index: int, total: int, payload: dict[str, Any]) -> None:
        now = time.time()
        with self._lock:
            seen = self._casts.setdefault(run, set())
            if index in seen:
                self.duplicate_casts += 1
                return
            seen.add(index)
            complete = len(seen) == total
        if complete:
            self._emit("casts_done", run=run, handled=total, at=now)


def rpc_server(
    lib: Any,
    url: str,
    *,
    exchange: str,
    topic: str,
    server: str,
    stop: threading.Event,
    ready: Callable[[], None],
    emit: Emit,
) -> dict[str, Any]:
    """Serve the benchmark endpoint until ``stop`` is set.

    Emits ``casts_done`` (with the wall-clock time) when every cast of a run
    has been handled. Returns the calls served and the peak memory.
    """
    conf = configure(lib, exchange)
    transport = lib.get_rpc_transport(conf, url=url)
    endpoint = _RpcEndpoint(emit)
    rpc = lib.get_rpc_server(transport, lib.Target(topic=topic, server=server), [endpoint])
    rpc.start()
    ready()
    stop.wait()
    rpc.stop()
    rpc.wait()
    transport.cleanup()
    return {
        "calls": endpoint.calls,
        "duplicate_casts": endpoint.duplicate_casts,
        "peak_rss_mib": peak_rss_mib(),
    }


def _rpc_client(lib: Any, url: str, exchange: str, topic: str) -> tuple[Any, Any]:
    conf = configure(lib, exchange)
    transport = lib.get_rpc_transport(conf, url=url)
    client = lib.get_rpc_client(transport, lib.Target(topic=topic), timeout=CALL_TIMEOUT)
    return transport, client


def _call(client: Any, seq: int) -> None:
    result = client.call({}, "echo", payload=make_payload(seq))
    if result != {"seq": seq, "fields": 10}:
        raise RuntimeError(f"call {seq} returned {result!r}")


def rpc_calls_sequential(
    lib: Any, url: str, *, exchange: str, topic: str, calls: int, warmup: int
) -> dict[str, Any]:
    """Make ``calls`` calls one after the other (after ``warmup`` unmeasured ones)."""
    transport, client = _rpc_client(lib, url, exchange, topic)
    try:
        for seq in range(warmup):
            _call(client, seq)
        latencies = []
        cpu0 = cpu_seconds()
        for seq in range(calls):
            before = time.perf_counter()
            _call(client, seq)
            latencies.append(time.perf_counter() - before)
        cpu = cpu_seconds() - cpu0
    finally:
        transport.cleanup()
    return {"calls": calls, "cpu_us": cpu / calls * 1e6, **latency_summary(latencies)}


def rpc_calls_threads(
    lib: Any, url: str, *, exchange: str, topic: str, threads: int, calls_per_thread: int
) -> dict[str, Any]:
    """Make calls from ``threads`` threads at once, ``calls_per_thread`` each."""
    transport, client = _rpc_client(lib, url, exchange, topic)
    latencies: list[float] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def caller(offset: int) -> None:
        mine = []
        try:
            for seq in range(3):  # warm-up: connections of the pool, reply queue
                _call(client, offset + seq)
            barrier.wait(CALL_TIMEOUT)
            for seq in range(calls_per_thread):
                before = time.perf_counter()
                _call(client, offset + seq)
                mine.append(time.perf_counter() - before)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        latencies.extend(mine)

    workers = [
        threading.Thread(target=caller, args=(n * 1_000_000,), daemon=True) for n in range(threads)
    ]
    try:
        for worker in workers:
            worker.start()
        barrier.wait(CALL_TIMEOUT)
        cpu0 = cpu_seconds()
        started = time.perf_counter()
        for worker in workers:
            worker.join(CALL_TIMEOUT * calls_per_thread)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds() - cpu0
    finally:
        transport.cleanup()
    if errors:
        raise RuntimeError(f"{len(errors)} calling threads failed: {errors[0]!r}") from errors[0]
    total = threads * calls_per_thread
    return {
        "threads": threads,
        "calls": total,
        "rate": total / elapsed,
        "cpu_us": cpu / total * 1e6,
        **latency_summary(latencies),
    }


def rpc_casts(
    lib: Any, url: str, *, exchange: str, topic: str, casts: int, run: str
) -> dict[str, Any]:
    """Cast ``casts`` times to ``sink``; the server reports when it handled them all.

    One call goes first, unmeasured, so that the connection is open.
    """
    transport, client = _rpc_client(lib, url, exchange, topic)
    try:
        _call(client, 0)
        cpu0 = cpu_seconds()
        started = time.time()
        for index in range(casts):
            client.cast({}, "sink", run=run, index=index, total=casts, payload=make_payload(index))
        sent = time.time()
        cpu = cpu_seconds() - cpu0
    finally:
        transport.cleanup()
    return {
        "casts": casts,
        "started": started,
        "sent": sent,
        "send_rate": casts / (sent - started),
        "cpu_us": cpu / casts * 1e6,
    }


class _ServiceEndpoint:
    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b

    def info(
        self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any
    ) -> None:
        return None


def service(
    lib: Any,
    url: str,
    *,
    exchange: str,
    topic: str,
    stop: threading.Event,
    ready: Callable[[], None],
) -> dict[str, Any]:
    """Hold what a typical service holds, busy, until ``stop`` (to count its connections).

    One RPC server, one notification listener on two targets, a Notifier on
    both topics and an RPC client calling from 8 threads (20 calls each) while
    20 notifications go out; ``ready`` is called when all that is done and
    everything is still open (the scenario of ``benchmarks/connection_count.py``).
    """
    conf = configure(lib, exchange)
    rpc_transport = lib.get_rpc_transport(conf, url=url)
    notif_transport = lib.get_notification_transport(conf, url=url)
    topics = [f"{topic}-a", f"{topic}-b"]
    endpoint = _ServiceEndpoint()
    server = lib.get_rpc_server(rpc_transport, lib.Target(topic=topic, server="s1"), [endpoint])
    listener = lib.get_notification_listener(
        notif_transport, [lib.Target(topic=t) for t in topics], [endpoint]
    )
    server.start()
    listener.start()
    client = lib.get_rpc_client(rpc_transport, lib.Target(topic=topic), timeout=CALL_TIMEOUT)
    notifier = lib.Notifier(notif_transport, "bench.service", driver="messagingv2", topics=topics)
    failures: list[BaseException] = []

    def calls() -> None:
        try:
            for n in range(20):
                client.call({}, "add", a=n, b=1)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=calls, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for n in range(20):
        notifier.info({}, "bench.service", {"n": n})
    for thread in threads:
        thread.join(CALL_TIMEOUT)
    if failures:
        raise RuntimeError(f"service calls failed: {failures[0]!r}") from failures[0]
    ready()
    stop.wait()
    server.stop()
    listener.stop()
    server.wait()
    listener.wait()
    rpc_transport.cleanup()
    notif_transport.cleanup()
    return {"peak_rss_mib": peak_rss_mib()}
