"""asyncio support: the ``asyncio`` executor, an awaitable RPC client and notifier.

Importing :mod:`messaging` does not import this package (nor asyncio); choosing
``executor="asyncio"`` or importing ``messaging.aio`` does.
"""
