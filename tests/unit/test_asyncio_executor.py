"""The ``asyncio`` executor: async and plain endpoint methods, where the loop lives, the bound."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import messaging
from messaging import executors
from messaging.aio.executor import AsyncioExecutor
from tests.unit import listener_support
from tests.unit.rpc_support import TIMEOUT, Calls, Gate, make_conf, rpc_transport, serving

TARGET = messaging.Target(topic="aio", server="s1")


@pytest.fixture
def bus() -> Iterator[messaging.Transport]:
    transport = rpc_transport(make_conf(), allowed_remote_exmods=[__name__])
    yield transport
    transport.cleanup()


def client(bus: messaging.Transport) -> messaging.RPCClient:
    return messaging.get_rpc_client(bus, TARGET, timeout=TIMEOUT)


class Refused(Exception):
    """An exception an endpoint declares as expected."""


class Mixed:
    """Async and plain methods; each records the thread and the loop it ran on."""

    def __init__(self) -> None:
        self.calls = Calls()

    async def double(self, ctxt: Any, value: int) -> int:
        self.calls.put(("double", threading.current_thread(), asyncio.get_running_loop()))
        await asyncio.sleep(0)  # a real suspension point
        return value * 2

    def triple(self, ctxt: Any, value: int) -> int:
        self.calls.put(("triple", threading.current_thread(), _running_loop()))
        return value * 3

    async def fail(self, ctxt: Any) -> None:
        await asyncio.sleep(0)
        raise ValueError("async failure")

    @messaging.expected_exceptions(Refused)
    async def refuse(self, ctxt: Any) -> None:
        await asyncio.sleep(0)
        raise Refused("no")

    async def cancel_itself(self, ctxt: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def test_the_asyncio_executor_loads_by_name() -> None:
    assert executors.load_executor("asyncio") is AsyncioExecutor


def test_a_process_monkey_patched_by_eventlet_is_refused_with_the_executor_to_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("messaging.green.monkey_patched", lambda: True)
    with pytest.raises(messaging.ExecutorLoadFailure, match="executor='eventlet'"):
        AsyncioExecutor(4)


def test_async_methods_run_on_the_loop_and_plain_ones_on_worker_threads(
    bus: messaging.Transport,
) -> None:
    endpoint = Mixed()
    with serving(bus, TARGET, [endpoint], executor="asyncio"):
        assert client(bus).call({}, "double", value=21) == 42
        assert client(bus).call({}, "triple", value=2) == 6
        (_, async_thread, loop), (_, plain_thread, plain_loop) = endpoint.calls.take(2)
    assert async_thread.name == "messaging-asyncio-loop"
    assert isinstance(loop, asyncio.AbstractEventLoop)
    assert plain_thread is not async_thread and plain_loop is None
    assert loop.is_closed(), "the executor's own loop is closed by wait()"


def test_failures_of_async_methods_reach_the_caller(
    bus: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    with serving(bus, TARGET, [Mixed()], executor="asyncio"):
        with pytest.raises(ValueError, match="async failure"):
            client(bus).call({}, "fail")
        with pytest.raises(messaging.RemoteError, match="cancelled"):
            client(bus).call({}, "cancel_itself")
        caplog.clear()
        with pytest.raises(Refused), caplog.at_level(logging.DEBUG, "messaging.rpc.server"):
            client(bus).call({}, "refuse")
        # Declared with expected_exceptions: logged at debug level only, as a plain method's is.
        logged = [r for r in caplog.records if r.name == "messaging.rpc.server"]
    assert any("Expected exception" in r.getMessage() for r in logged)
    assert all(r.levelno == logging.DEBUG for r in logged)


def test_an_async_method_under_another_executor_is_a_clear_error(
    bus: messaging.Transport,
) -> None:
    with (
        serving(bus, TARGET, [Mixed()], executor="threading"),
        pytest.raises(TypeError, match="executor='asyncio'"),
    ):
        client(bus).call({}, "double", value=1)


def test_a_plain_method_that_blocks_does_not_block_the_loop(bus: messaging.Transport) -> None:
    gate = Gate()

    class Endpoint(Mixed):
        def block(self, ctxt: Any) -> bool:
            return gate.hold()

    endpoint = Endpoint()
    with serving(bus, TARGET, [endpoint], executor="asyncio", release=[gate.release]):
        blocked = listener_support.in_thread(client(bus).call, {}, "block")
        gate.wait_entered()
        # The plain method holds a worker; an async one still runs on the loop meanwhile.
        assert client(bus).call({}, "double", value=5) == 10
        gate.release.set()
        thread, outcome = blocked
        listener_support.join(thread)
        assert outcome.get_nowait() is True


def test_handling_is_concurrent_up_to_the_pool_size(bus: messaging.Transport) -> None:
    size = 3

    async def scenario() -> tuple[int, int]:
        gate = asyncio.Event()
        all_in = asyncio.Event()
        extra_in = asyncio.Event()
        in_flight = 0
        most = 0
        done = Calls()

        class Held:
            async def hold(self, ctxt: Any, n: int) -> None:
                nonlocal in_flight, most
                in_flight += 1
                most = max(most, in_flight)
                if in_flight == size:
                    all_in.set()
                elif in_flight > size:
                    extra_in.set()
                await asyncio.wait_for(gate.wait(), TIMEOUT)
                in_flight -= 1
                done.put(n)

        server = messaging.get_rpc_server(bus, TARGET, [Held()], executor="asyncio")
        server.start(override_pool_size=size)
        try:
            caster = client(bus)
            for n in range(size + 2):
                caster.cast({}, "hold", n=n)
            await asyncio.wait_for(all_in.wait(), TIMEOUT)
            # Bounded negative check: no fourth handler starts while three are held.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(extra_in.wait(), 0.3)
            gate.set()
            finished = await asyncio.to_thread(done.take, size + 2)
        finally:
            server.stop()
            await asyncio.to_thread(server.wait, timeout=TIMEOUT)
        return most, len(finished)

    most, finished = asyncio.run(scenario())
    assert (most, finished) == (size, size + 2)


def test_a_server_started_from_a_coroutine_uses_the_running_loop(
    bus: messaging.Transport,
) -> None:
    endpoint = Mixed()

    async def scenario() -> tuple[asyncio.AbstractEventLoop, Any]:
        server = messaging.get_rpc_server(bus, TARGET, [endpoint], executor="asyncio")
        server.start()
        try:
            answer = await asyncio.to_thread(client(bus).call, {}, "double", value=4)
            assert answer == 8
            server.stop()
            with pytest.raises(RuntimeError, match="to_thread"):
                server.wait()
            await asyncio.to_thread(server.wait, timeout=TIMEOUT)
        finally:
            server.stop()
        return asyncio.get_running_loop(), endpoint.calls.take(1)[0][2]

    mine, used = asyncio.run(scenario())
    assert used is mine


class AsyncInfo(listener_support.Recorder):
    """Records ``info`` notifications from an async method."""

    async def info(
        self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any
    ) -> None:
        await asyncio.sleep(0)
        self.record("info", event_type, payload)


def test_notification_listeners_run_async_endpoints() -> None:
    conf = listener_support.make_conf()
    bus = listener_support.transport(conf)
    endpoint = AsyncInfo()
    listener = messaging.get_notification_listener(
        bus, [messaging.Target(topic="notifications")], [endpoint], executor="asyncio"
    )
    with listener_support.running(listener):
        listener_support.notifier(bus).info({}, "compute.start", {"n": 1})
        assert endpoint.take(1) == [("info", "compute.start", {"n": 1})]
    bus.cleanup()


class AsyncBatch(listener_support.Recorder):
    async def info(self, messages: list[dict[str, Any]]) -> None:
        await asyncio.sleep(0)
        self.record("info", [m["payload"] for m in messages])


def test_batch_listeners_run_async_endpoints() -> None:
    conf = listener_support.make_conf()
    bus = listener_support.transport(conf)
    endpoint = AsyncBatch()
    listener = messaging.get_batch_notification_listener(
        bus,
        [messaging.Target(topic="notifications")],
        [endpoint],
        executor="asyncio",
        batch_size=2,
        batch_timeout=TIMEOUT,
    )
    sender = listener_support.notifier(bus)
    sender.info({}, "ev", {"n": 1})
    sender.info({}, "ev", {"n": 2})
    with listener_support.running(listener):
        assert endpoint.take(1) == [("info", [{"n": 1}, {"n": 2}])]
    bus.cleanup()
