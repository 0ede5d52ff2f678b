"""Running the synchronous client API from a coroutine, on a bounded pool of threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DEFAULT_MAX_CONCURRENCY", "Bridge", "shared_bridge"]

T = TypeVar("T")

#: How many sends and calls of the async clients of a process are under way at once,
#: unless a client is given its own bound.
DEFAULT_MAX_CONCURRENCY = 64


class Bridge:
    """Runs blocking sends and calls for coroutines, at most ``max_concurrency`` at once.

    Each runs on a thread of the bridge's pool with a copy of the awaiting
    task's context variables. Cancelling the awaiting task ends its wait at
    once; the thread finishes the send or call (whose own timeout bounds it)
    and its outcome is dropped.

    Args:
        max_concurrency: the size of the pool; more wait their turn.
    """

    def __init__(self, max_concurrency: int = DEFAULT_MAX_CONCURRENCY) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self.max_concurrency = max_concurrency
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.max_concurrency, thread_name_prefix="messaging-aio"
                )
            return self._pool

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a thread of the pool, awaited."""
        context = contextvars.copy_context()
        job = functools.partial(context.run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor(), job)

    def close(self) -> None:
        """Let the pool's threads end once their work is done (a new pool starts on next use)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)


_shared: Bridge | None = None
_shared_lock = threading.Lock()


def shared_bridge() -> Bridge:
    """The bridge of the process, used by async clients given no bound of their own."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Bridge()
        return _shared
