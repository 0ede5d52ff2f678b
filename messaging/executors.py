"""Executors: how a server runs the handling of received messages.

Loaded by name through stevedore (namespace ``messaging.executors``):

``threading`` (the default)
    A pool of ``executor_thread_pool_size`` threads. The poll thread blocks when
    every worker is busy, so messages stay on the broker (where other consumers
    can take them) instead of piling up in memory.
``blocking``
    Messages are handled one at a time, in order, on the server's poll thread.
``eventlet``
    A pool of green threads, for services that monkey-patch with eventlet.
    eventlet is imported only when this executor is chosen.
"""

from __future__ import annotations

import abc
import concurrent.futures
import sys
import threading
from collections.abc import Callable
from typing import Any

from messaging import _plugins
from messaging.exceptions import ExecutorLoadFailure

__all__ = [
    "BlockingExecutor",
    "EventletExecutor",
    "Executor",
    "ThreadingExecutor",
    "default_executor_name",
    "load_executor",
]

NAMESPACE = "messaging.executors"


class Executor(abc.ABC):
    """Runs tasks for a server.

    Args:
        max_workers: how many tasks may run at once.
    """

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)``, possibly later; may block while the executor is full."""

    @abc.abstractmethod
    def shutdown(self, wait: bool = True) -> None:
        """Take no new tasks; with ``wait``, return once the submitted ones are done."""


class BlockingExecutor(Executor):
    """Runs each task at once, in the submitting thread."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` now."""
        fn(*args)

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to do: no task outlives its submit call."""


class ThreadingExecutor(Executor):
    """A bounded pool of threads."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="messaging-worker"
        )
        self._slots = threading.BoundedSemaphore(max_workers)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker; blocks while all workers are busy."""
        self._slots.acquire()
        try:
            future = self._pool.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _f: self._slots.release())

    def shutdown(self, wait: bool = True) -> None:
        """Stop the pool; with ``wait``, after the running tasks finish."""
        self._pool.shutdown(wait=wait)


class EventletExecutor(Executor):
    """A pool of eventlet green threads."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers)
        import eventlet

        self._pool = eventlet.GreenPool(max_workers)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Spawn ``fn(*args)`` on a green thread; blocks while the pool is full."""
        self._pool.spawn_n(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        """With ``wait``, return once every green thread has finished."""
        if wait:
            self._pool.waitall()


def default_executor_name() -> str:
    """``eventlet`` when the thread module is monkey-patched by eventlet, else ``threading``."""
    eventlet = sys.modules.get("eventlet")
    if eventlet is not None:
        from eventlet import patcher

        if patcher.is_monkey_patched("thread"):
            return "eventlet"
    return "threading"


def load_executor(name: str | None) -> type[Executor]:
    """Return the executor class registered as ``name`` (the default when None).

    Raises:
        ExecutorLoadFailure: no executor of that name; the message lists the known ones.
    """
    chosen = name or default_executor_name()
    try:
        cls = _plugins.load_plugin(NAMESPACE, chosen)
    except (LookupError, ImportError) as exc:
        raise ExecutorLoadFailure(chosen, str(exc)) from exc
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise ExecutorLoadFailure(chosen, f"{cls!r} is not an Executor subclass")
    return cls
