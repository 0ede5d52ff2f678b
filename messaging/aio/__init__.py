"""asyncio support: the ``asyncio`` executor, an awaitable RPC client and notifier.

- ``executor="asyncio"`` (:mod:`messaging.aio.executor`): RPC servers and
  notification listeners whose endpoint methods may be ``async def``.
- :class:`AsyncRPCClient` (:func:`get_async_rpc_client`) and
  :class:`AsyncNotifier`: ``await client.call(...)``, ``await notifier.info(...)``.

asyncio support is imported only when asked for: ``import messaging`` does not
import this package.
"""

from messaging.aio.client import AsyncNotifier, AsyncRPCClient, get_async_rpc_client

__all__ = ["AsyncNotifier", "AsyncRPCClient", "get_async_rpc_client"]
