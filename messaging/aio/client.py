"""Awaitable RPC calls and casts, and an awaitable notifier.

:class:`AsyncRPCClient` and :class:`AsyncNotifier` keep the method names and
arguments of :class:`~messaging.RPCClient` and :class:`~messaging.Notifier`
(``call``, ``cast``, ``prepare``, ``info``, ...), so code moves to asyncio by
adding ``await``. They send through the synchronous client on a bounded pool
of threads (:class:`~messaging.aio.bridge.Bridge`), so they work on every
driver. Cancelling the awaiting task (``asyncio.wait_for`` does) stops the
wait, not the remote work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from messaging.aio.bridge import Bridge, shared_bridge
from messaging.rpc.client import get_rpc_client

if TYPE_CHECKING:
    from messaging.notify.notifier import Notifier
    from messaging.rpc.client import _CallContext
    from messaging.target import Target
    from messaging.transport import Transport

__all__ = ["AsyncNotifier", "AsyncRPCClient", "get_async_rpc_client"]


def _bridge(max_concurrency: int | None) -> tuple[Bridge, bool]:
    """The bridge to send through, and whether it is the sender's own."""
    if max_concurrency is None:
        return shared_bridge(), False
    return Bridge(max_concurrency), True


class AsyncRPCClient:
    """Awaitable calls and casts to the RPC servers of a target.

    ``await client.prepare(server='host1').call(ctxt, 'method', arg=1)``.

    Args:
        client: the synchronous client (or a ``prepare()`` of it) to send with.
        max_concurrency: how many calls and casts of this client (and of its
            ``prepare()`` copies) run at once; None shares the process's pool
            of :data:`~messaging.aio.bridge.DEFAULT_MAX_CONCURRENCY` threads.

    Attributes:
        client: the synchronous client.
    """

    def __init__(self, client: _CallContext, *, max_concurrency: int | None = None) -> None:
        self.client = client
        self._bridge, self._own_bridge = _bridge(max_concurrency)

    @property
    def target(self) -> Target:
        """The target calls and casts go to."""
        return self.client.target

    def prepare(self, **overrides: Any) -> AsyncRPCClient:
        """A copy with target attributes or call settings overridden (see ``RPCClient.prepare``)."""
        prepared = AsyncRPCClient.__new__(AsyncRPCClient)
        prepared.client = self.client.prepare(**overrides)
        prepared._bridge, prepared._own_bridge = self._bridge, False
        return prepared

    def close(self) -> None:
        """Let the threads of this client's own pool (``max_concurrency``) end.

        Sends already under way finish. A client sharing the process's pool has
        nothing to close. The client (and its ``prepare()`` copies) may still be
        used: a new pool starts.
        """
        if self._own_bridge:
            self._bridge.close()

    def can_send_version(self, *args: Any) -> bool:
        """Whether a version (the target's by default) is within ``version_cap``."""
        return self.client.can_send_version(*args)

    async def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
        """Invoke ``method`` on one server and return its result.

        Raises:
            MessagingTimeout: no reply within the client's ``timeout``.
            asyncio.CancelledError: the awaiting task was cancelled; the
                request may still be handled.
            Exception: as :meth:`messaging.RPCClient.call`.
        """
        return await self._bridge.run(self.client.call, ctxt, method, **kwargs)

    async def cast(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        """Invoke ``method`` without waiting for a result; returns once the request is sent.

        Raises:
            Exception: as :meth:`messaging.RPCClient.cast`.
        """
        await self._bridge.run(self.client.cast, ctxt, method, **kwargs)


def get_async_rpc_client(
    transport: Transport, target: Target, *, max_concurrency: int | None = None, **kwargs: Any
) -> AsyncRPCClient:
    """Build an :class:`AsyncRPCClient` (``kwargs`` are those of ``get_rpc_client``)."""
    return AsyncRPCClient(
        get_rpc_client(transport, target, **kwargs), max_concurrency=max_concurrency
    )


class AsyncNotifier:
    """Awaitable notifications: ``await notifier.info(ctxt, 'compute.start', payload)``.

    Args:
        notifier: the synchronous notifier to send with.
        max_concurrency: as :class:`AsyncRPCClient`'s.

    Attributes:
        notifier: the synchronous notifier.
    """

    def __init__(self, notifier: Notifier, *, max_concurrency: int | None = None) -> None:
        self.notifier = notifier
        self._bridge, self._own_bridge = _bridge(max_concurrency)

    def prepare(self, **overrides: Any) -> AsyncNotifier:
        """A copy with another ``publisher_id``, ``retry`` or ``raise_errors``."""
        prepared = AsyncNotifier.__new__(AsyncNotifier)
        prepared.notifier = self.notifier.prepare(**overrides)
        prepared._bridge, prepared._own_bridge = self._bridge, False
        return prepared

    def close(self) -> None:
        """As :meth:`AsyncRPCClient.close`."""
        if self._own_bridge:
            self._bridge.close()

    def is_enabled(self) -> bool:
        """False when the only driver is ``noop``."""
        return self.notifier.is_enabled()

    async def _send(self, priority: str, ctxt: Any, event_type: str, payload: Any) -> None:
        await self._bridge.run(getattr(self.notifier, priority), ctxt, event_type, payload)

    async def audit(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at AUDIT priority."""
        await self._send("audit", ctxt, event_type, payload)

    async def debug(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at DEBUG priority."""
        await self._send("debug", ctxt, event_type, payload)

    async def info(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at INFO priority."""
        await self._send("info", ctxt, event_type, payload)

    async def warn(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at WARN priority."""
        await self._send("warn", ctxt, event_type, payload)

    warning = warn

    async def error(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at ERROR priority."""
        await self._send("error", ctxt, event_type, payload)

    async def critical(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at CRITICAL priority."""
        await self._send("critical", ctxt, event_type, payload)

    async def sample(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at SAMPLE priority."""
        await self._send("sample", ctxt, event_type, payload)
