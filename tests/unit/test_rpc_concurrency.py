"""Concurrent RPC on fake://: many calling threads, one reply queue, no crossed replies."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.memory import reset_brokers
from tests.unit.rpc_support import (
    TIMEOUT,
    Calls,
    Echo,
    Gate,
    Outcome,
    join,
    make_conf,
    rpc_transport,
    serving,
)

THREADS = 8
CALLS_PER_THREAD = 125  # 1,000 calls in all


@pytest.fixture(autouse=True)
def fresh_broker() -> Iterator[None]:
    reset_brokers()
    yield
    reset_brokers()


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    return make_conf()


@pytest.fixture
def server_transport(conf: cfg.ConfigOpts) -> Iterator[messaging.Transport]:
    transport = rpc_transport(conf)
    yield transport
    transport.cleanup()


@pytest.fixture
def client_transport(conf: cfg.ConfigOpts) -> Iterator[messaging.Transport]:
    transport = rpc_transport(conf)
    yield transport
    transport.cleanup()


def run_callers(call: Any) -> dict[int, list[Any]]:
    """Run ``call(thread_index, call_index)`` CALLS_PER_THREAD times on each of THREADS threads,
    all released together; return each thread's results in order."""
    start = threading.Barrier(THREADS, timeout=TIMEOUT)
    results: dict[int, list[Any]] = {n: [] for n in range(THREADS)}

    def caller(n: int) -> None:
        start.wait()
        for i in range(CALLS_PER_THREAD):
            results[n].append(call(n, i))

    callers = [Outcome(caller, n) for n in range(THREADS)]
    for outcome in callers:
        outcome.get(timeout=60)
        join(outcome.thread)
    return results


def expected(n: int) -> list[Any]:
    return [{"thread": n, "call": i} for i in range(CALLS_PER_THREAD)]


def test_1000_calls_from_8_threads_on_one_client_each_get_their_own_result(
    server_transport: messaging.Transport, client_transport: messaging.Transport
) -> None:
    client = messaging.get_rpc_client(
        client_transport, messaging.Target(topic="t"), timeout=TIMEOUT
    )
    calls = Calls()
    with (
        serving(server_transport, messaging.Target(topic="t", server="s1"), [Echo("s1", calls)]),
        serving(server_transport, messaging.Target(topic="t", server="s2"), [Echo("s2", calls)]),
    ):
        results = run_callers(
            lambda n, i: client.call({"caller": n}, "echo", value={"thread": n, "call": i})
        )
    for n in range(THREADS):
        assert results[n] == expected(n)
    # Each request was handled exactly once, by one of the two servers.
    handled = calls.pending()
    assert len(handled) == THREADS * CALLS_PER_THREAD
    assert {name for name, _m, _v in handled} == {"s1", "s2"}


def test_one_client_per_thread_on_a_shared_transport_get_their_own_results(
    server_transport: messaging.Transport, client_transport: messaging.Transport
) -> None:
    clients = [
        messaging.get_rpc_client(
            client_transport, messaging.Target(topic="t", server="s1"), timeout=TIMEOUT
        )
        for _ in range(THREADS)
    ]
    with serving(server_transport, messaging.Target(topic="t", server="s1"), [Echo()]):
        results = run_callers(
            lambda n, i: clients[n].call({}, "echo", value={"thread": n, "call": i})
        )
    for n in range(THREADS):
        assert results[n] == expected(n)


def test_the_threading_executor_runs_calls_in_parallel(
    server_transport: messaging.Transport, client_transport: messaging.Transport
) -> None:
    gate = Gate()

    class Parallel:
        def enter(self, ctxt: Any, n: int) -> int:
            gate.hold(n)
            return n

    client = messaging.get_rpc_client(
        client_transport, messaging.Target(topic="t"), timeout=TIMEOUT
    )
    with serving(
        server_transport,
        messaging.Target(topic="t", server="s1"),
        [Parallel()],
        release=[gate.release],
    ):
        calls = [Outcome(client.call, {}, "enter", n=n) for n in range(4)]
        # All four are inside the endpoint at once before any is let go.
        assert sorted(gate.wait_entered(4)) == [0, 1, 2, 3]
        gate.release.set()
        assert [call.get() for call in calls] == [0, 1, 2, 3]


def test_the_blocking_executor_handles_one_request_at_a_time_in_order(
    server_transport: messaging.Transport, client_transport: messaging.Transport
) -> None:
    active = 0
    most = 0
    order: list[int] = []
    lock = threading.Lock()

    class Serial:
        def step(self, ctxt: Any, n: int) -> None:
            nonlocal active, most
            with lock:
                active += 1
                most = max(most, active)
                order.append(n)
            with lock:
                active -= 1

    client = messaging.get_rpc_client(
        client_transport, messaging.Target(topic="t"), timeout=TIMEOUT
    )
    with serving(
        server_transport,
        messaging.Target(topic="t", server="s1"),
        [Serial()],
        executor="blocking",
    ):
        for n in range(50):
            client.cast({}, "step", n=n)
        client.call({}, "step", n=50)
    assert order == list(range(51))
    assert most == 1


def test_casts_and_calls_interleaved_from_threads_are_each_handled_once(
    server_transport: messaging.Transport, client_transport: messaging.Transport
) -> None:
    calls = Calls()
    client = messaging.get_rpc_client(
        client_transport, messaging.Target(topic="t"), timeout=TIMEOUT
    )

    def mixed(n: int, i: int) -> Any:
        value = {"thread": n, "call": i}
        if i % 2:
            client.cast({}, "note", value=value)
            return value
        return client.call({}, "echo", value=value)

    with serving(server_transport, messaging.Target(topic="t", server="s1"), [Echo("s1", calls)]):
        results = run_callers(mixed)
        handled = calls.take(THREADS * CALLS_PER_THREAD)
    for n in range(THREADS):
        assert results[n] == expected(n)
    values = sorted((v["thread"], v["call"]) for _name, _m, v in handled)
    assert values == sorted((n, i) for n in range(THREADS) for i in range(CALLS_PER_THREAD))
