"""The asyncio pass of the conformance suite: async endpoints, async clients, on every driver.

A driver module adds it next to the other mixins, with the same harness::

    class TestMemoryAsyncio(MemoryBroker, AsyncioConformance):
        ...

Servers and listeners run ``executor="asyncio"`` with ``async def`` endpoint
methods; requests and notifications go through :mod:`messaging.aio`. Each test
body is a coroutine run with ``asyncio.run``; waits are bounded by
:attr:`~tests.drivers.conformance.DriverHarness.wait_timeout`, and the servers
are stopped off the loop (``wait()`` must not run on it).

The whole synchronous suite also runs under the asyncio executor with
``MESSAGING_TEST_EXECUTOR=asyncio``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pytest

import messaging
from messaging import aio, green
from messaging.server import MessageHandlingServer
from tests.drivers import remote_exc
from tests.drivers.conformance import REMOTE_EXC_MODULE, Collector, DriverHarness

__all__ = ["AsyncioConformance"]

S = TypeVar("S", aio.AsyncRPCClient, aio.AsyncNotifier)


class AsyncEndpoint:
    """Async RPC methods; ``hold`` waits until :attr:`release` is set.

    Args:
        server: the server's name.
        inbox: where casts and finished holds record ``(server, value)``.
    """

    def __init__(self, server: str, inbox: Collector[tuple[str, Any]], bound: float) -> None:
        self.server = server
        self.inbox = inbox
        self.bound = bound
        self.release = threading.Event()
        self.entered: Collector[int] = Collector(bound)

    async def add(self, ctxt: Any, a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    async def record(self, ctxt: Any, value: Any) -> None:
        await asyncio.sleep(0)
        self.inbox.put((self.server, value))

    async def echo_context(self, ctxt: Any) -> Any:
        return ctxt

    async def fail_custom(self, ctxt: Any, message: str) -> None:
        await asyncio.sleep(0)
        raise remote_exc.ConformanceError(message)

    async def hold(self, ctxt: Any, n: int) -> int:
        self.entered.put(n)
        # The loop stays free meanwhile: the wait is a worker thread of asyncio's.
        released = await asyncio.to_thread(self.release.wait, self.bound)
        self.inbox.put((self.server, ("held", n, released)))
        return n


class AsyncInfoEndpoint:
    """Records ``info`` payloads; asks for a requeue of the first delivery of a ``requeue`` one."""

    def __init__(self, inbox: Collector[Any]) -> None:
        self.inbox = inbox
        self.seen: set[str] = set()

    async def info(
        self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any
    ) -> Any:
        await asyncio.sleep(0)
        self.inbox.put((publisher_id, event_type, payload))
        first = md["message_id"] not in self.seen
        self.seen.add(md["message_id"])
        if payload.get("requeue") and first:
            return messaging.NotificationResult.REQUEUE
        return None


@pytest.mark.skipif(
    green.monkey_patched(), reason="the asyncio executor refuses a process patched by eventlet"
)
class AsyncioConformance(DriverHarness):
    """RPC and notifications with async endpoints and the awaitable clients."""

    def run(self, scenario: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``scenario()`` on a new event loop; stop the servers it started off the loop."""

        async def main() -> Any:
            try:
                return await scenario()
            finally:
                await asyncio.to_thread(self._release)
                for sender in self._senders:
                    sender.close()

        return asyncio.run(main())

    #: The async clients and notifiers of the running test, closed after it.
    _senders: list[aio.AsyncRPCClient | aio.AsyncNotifier]

    @pytest.fixture(autouse=True)
    def _asyncio_senders(self) -> None:
        self._senders = []

    def sender(self, made: S) -> S:
        """``made``, an async client or notifier with a pool of its own, closed after the test."""
        self._senders.append(made)
        return made

    def start(self, server: MessageHandlingServer) -> MessageHandlingServer:
        """Start ``server`` (from the test's loop: its async endpoints run there)."""
        self._servers.append(server)
        server.start(timeout=self.wait_timeout)
        return server

    def serve_async(
        self, topic: str, servers: Sequence[str] = ("server-a",)
    ) -> tuple[aio.AsyncRPCClient, Collector[tuple[str, Any]], list[AsyncEndpoint]]:
        """Serve ``topic`` with async endpoints; return an async client, the inbox, endpoints."""
        inbox: Collector[tuple[str, Any]] = self.collector()
        server_transport = self.rpc_transport()
        endpoints = []
        for name in servers:
            endpoint = AsyncEndpoint(name, inbox, self.wait_timeout)
            endpoints.append(endpoint)
            target = messaging.Target(topic=topic, server=name)
            self.start(
                messaging.get_rpc_server(server_transport, target, [endpoint], executor="asyncio")
            )
        client = aio.get_async_rpc_client(
            self.rpc_transport([REMOTE_EXC_MODULE]),
            messaging.Target(topic=topic),
            timeout=self.wait_timeout,
            max_concurrency=8,
        )
        self.sender(client)
        return client, inbox, endpoints

    # -- RPC --------------------------------------------------------------------------------

    def test_async_call_cast_and_context(self) -> None:
        async def scenario() -> None:
            client, inbox, _ = self.serve_async(self.unique("aio"))
            assert await client.call({}, "add", a=2, b=40) == 42
            await client.cast({}, "record", value="cast-1")
            echoed = await client.call({"user_id": "alice"}, "echo_context")
            assert echoed.get("user_id") == "alice"
            assert await asyncio.to_thread(inbox.take, 1) == [("server-a", "cast-1")]

        self.run(scenario)

    def test_async_fanout_cast_reaches_every_server(self) -> None:
        names = ("server-a", "server-b")

        async def scenario() -> None:
            client, inbox, _ = self.serve_async(self.unique("aio"), names)
            self.require(client.client.transport, "fanout")
            await client.prepare(fanout=True).cast({}, "record", value="to-all")
            received = await asyncio.to_thread(inbox.take, len(names))
            assert sorted(received) == [(name, "to-all") for name in names]

        self.run(scenario)

    def test_async_remote_failure_is_rebuilt(self) -> None:
        async def scenario() -> None:
            client, _, _ = self.serve_async(self.unique("aio"))
            with pytest.raises(remote_exc.ConformanceError, match="async boom"):
                await client.call({}, "fail_custom", message="async boom")

        self.run(scenario)

    def test_async_calls_are_handled_concurrently(self) -> None:
        count = 4

        async def scenario() -> None:
            client, _, (endpoint,) = self.serve_async(self.unique("aio"))
            calls = [asyncio.create_task(client.call({}, "hold", n=n)) for n in range(count)]
            # All the calls are inside the endpoint at once before any is answered.
            entered = await asyncio.to_thread(endpoint.entered.take, count)
            endpoint.release.set()
            assert sorted(entered) == list(range(count))
            assert sorted(await asyncio.gather(*calls)) == list(range(count))

        self.run(scenario)

    def test_timeout_wait_for_and_cancel_end_the_wait_not_the_work(self) -> None:
        async def scenario() -> None:
            client, inbox, (endpoint,) = self.serve_async(self.unique("aio"))
            with pytest.raises(messaging.MessagingTimeout):
                await client.prepare(timeout=0.5).call({}, "hold", n=1)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.call({}, "hold", n=2), 0.2)
            task = asyncio.create_task(client.call({}, "hold", n=3))
            assert sorted(await asyncio.to_thread(endpoint.entered.take, 3)) == [1, 2, 3]
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert inbox.drain() == [], "every wait ended while its request was handled"
            endpoint.release.set()
            finished = await asyncio.to_thread(inbox.take, 3)
            assert sorted(finished) == [("server-a", ("held", n, True)) for n in (1, 2, 3)]

        self.run(scenario)

    # -- notifications ----------------------------------------------------------------------

    def test_async_notifier_to_async_listener_with_requeue(self) -> None:
        async def scenario() -> None:
            transport = self.notification_transport()
            self.require(transport, "requeue")
            topic = self.unique("aio-notify")
            inbox: Collector[Any] = self.collector()
            listener = messaging.get_notification_listener(
                transport,
                [messaging.Target(topic=topic)],
                [AsyncInfoEndpoint(inbox)],
                executor="asyncio",
                allow_requeue=True,
            )
            self.start(listener)
            notifier = self.sender(
                aio.AsyncNotifier(
                    messaging.Notifier(transport, "aio.host", driver="messagingv2", topics=[topic]),
                    max_concurrency=2,
                )
            )
            await notifier.info({}, "aio.plain", {"n": 1})
            await notifier.info({}, "aio.again", {"requeue": True})
            got = await asyncio.to_thread(inbox.take, 3)
            assert sorted(got, key=repr) == sorted(
                [
                    ("aio.host", "aio.plain", {"n": 1}),
                    ("aio.host", "aio.again", {"requeue": True}),
                    ("aio.host", "aio.again", {"requeue": True}),
                ],
                key=repr,
            )

        self.run(scenario)
