"""The awaitable client side: AsyncRPCClient (call, cast, prepare) and AsyncNotifier."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import messaging
from messaging import aio
from tests.unit import listener_support
from tests.unit.rpc_support import TIMEOUT, Calls, Echo, Gate, make_conf, rpc_transport, serving

TARGET = messaging.Target(topic="aio", server="s1")


@pytest.fixture
def bus() -> Iterator[messaging.Transport]:
    transport = rpc_transport(make_conf())
    yield transport
    transport.cleanup()


class Held(Echo):
    """``hold`` waits at the gate, then records that it finished."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate
        self.finished = threading.Event()

    def hold(self, ctxt: Any, n: int = 0) -> int:
        self.gate.hold(n)
        self.finished.set()
        return n


def test_call_cast_and_prepare(bus: messaging.Transport) -> None:
    endpoint = Echo()

    async def scenario() -> tuple[Any, Any, bool]:
        client = aio.get_async_rpc_client(
            bus, messaging.Target(topic="aio", version="1.0"), timeout=TIMEOUT, version_cap="1.0"
        )
        answer = await client.prepare(server="s1").call({}, "echo", value=[1, 2])
        await client.cast({}, "note", value="cast")
        return answer, client.target.topic, client.can_send_version("1.1")

    with serving(bus, TARGET, [endpoint]):
        answer, topic, can_send = asyncio.run(scenario())
        assert endpoint.calls.take(2) == [("server", "echo", [1, 2]), ("server", "note", "cast")]
    assert (answer, topic, can_send) == ([1, 2], "aio", False)


def test_the_call_timeout_raises_messaging_timeout(bus: messaging.Transport) -> None:
    gate = Gate()

    async def scenario() -> None:
        client = aio.get_async_rpc_client(bus, TARGET, timeout=0.2)
        with pytest.raises(messaging.MessagingTimeout):
            await client.call({}, "hold")

    with serving(bus, TARGET, [Held(gate)], release=[gate.release]):
        asyncio.run(scenario())


def test_wait_for_and_cancellation_stop_the_wait_not_the_remote_work(
    bus: messaging.Transport,
) -> None:
    gate = Gate()
    endpoint = Held(gate)

    async def scenario() -> None:
        client = aio.get_async_rpc_client(bus, TARGET, timeout=TIMEOUT)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.call({}, "hold", n=1), 0.1)
        task = asyncio.create_task(client.call({}, "hold", n=2))
        await asyncio.to_thread(gate.wait_entered, 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The waits ended while both requests were still being handled.
        assert not endpoint.finished.is_set()

    with serving(bus, TARGET, [endpoint], release=[gate.release]):
        asyncio.run(scenario())
        gate.release.set()
        assert endpoint.finished.wait(TIMEOUT), "the remote work goes on after the cancel"


def test_calls_from_one_loop_are_concurrent(bus: messaging.Transport) -> None:
    count = 5
    gate = Gate()

    async def scenario() -> list[int]:
        client = aio.get_async_rpc_client(bus, TARGET, timeout=TIMEOUT, max_concurrency=count)
        calls = [asyncio.create_task(client.call({}, "hold", n=n)) for n in range(count)]
        # Every call reaches the server before any is answered.
        await asyncio.to_thread(gate.wait_entered, count)
        gate.release.set()
        return await asyncio.gather(*calls)

    with serving(bus, TARGET, [Held(gate)], release=[gate.release]):
        assert asyncio.run(scenario()) == list(range(count))


def test_async_client_against_async_endpoints_in_one_loop(bus: messaging.Transport) -> None:
    class Doubler:
        async def double(self, ctxt: Any, value: int) -> int:
            await asyncio.sleep(0)
            return value * 2

    async def scenario() -> list[int]:
        server = messaging.get_rpc_server(bus, TARGET, [Doubler()], executor="asyncio")
        server.start()
        try:
            client = aio.get_async_rpc_client(bus, TARGET, timeout=TIMEOUT)
            return await asyncio.gather(*(client.call({}, "double", value=n) for n in range(20)))
        finally:
            server.stop()
            await asyncio.to_thread(server.wait, timeout=TIMEOUT)

    assert asyncio.run(scenario()) == [n * 2 for n in range(20)]


def test_the_async_notifier_sends_every_priority() -> None:
    conf = listener_support.make_conf()
    bus = listener_support.transport(conf)
    calls = Calls()

    class Everything:
        def __getattr__(self, priority: str) -> Any:
            if priority not in messaging.notify.dispatcher.PRIORITIES:
                raise AttributeError(priority)
            return lambda ctxt, publisher, event, payload, md: calls.put(
                (priority, publisher, event, payload)
            )

    async def scenario() -> None:
        notifier = aio.AsyncNotifier(listener_support.notifier(bus, publisher_id="a.host"))
        assert notifier.is_enabled()
        await notifier.audit({}, "ev", 1)
        await notifier.debug({}, "ev", 2)
        await notifier.info({}, "ev", 3)
        await notifier.warning({}, "ev", 4)
        await notifier.error({}, "ev", 5)
        await notifier.critical({}, "ev", 6)
        await notifier.prepare(publisher_id="b.host").sample({}, "ev", 7)

    listener = messaging.get_notification_listener(
        bus, [messaging.Target(topic="notifications")], [Everything()], executor="blocking"
    )
    with listener_support.running(listener):
        asyncio.run(scenario())
        got = sorted(calls.take(7), key=lambda call: call[3])
    bus.cleanup()
    assert [(p, pub, payload) for p, pub, _e, payload in got] == [
        ("audit", "a.host", 1),
        ("debug", "a.host", 2),
        ("info", "a.host", 3),
        ("warn", "a.host", 4),
        ("error", "a.host", 5),
        ("critical", "a.host", 6),
        ("sample", "b.host", 7),
    ]


def test_a_bridge_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        aio.AsyncNotifier(object(), max_concurrency=0)  # type: ignore[arg-type]
