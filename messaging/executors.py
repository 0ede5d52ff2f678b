"""Executors: how a server runs the handling of received messages.

Loaded by name through stevedore (namespace ``messaging.executors``):

``threading`` (the default)
    Up to ``executor_thread_pool_size`` threads. When the listener can be polled
    from several threads at once (every driver of this package but STOMP), the workers
    receive for themselves: an idle worker takes the next batch and handles it,
    and a new worker is started only when none is left idle to receive. A
    message then goes from the driver to the thread that handles it in one
    hand-over, and nobody receives while every worker is busy, so messages stay
    on the broker (where other consumers can take them) instead of piling up in
    memory. With other listeners a poll thread feeds the pool, blocking while
    every worker is busy.
``blocking``
    Messages are handled one at a time, in order, on the server's poll thread.
``eventlet``
    A pool of green threads, for services that monkey-patch with eventlet
    (the default there); its green workers receive for themselves as the
    threading executor's do. eventlet is imported only when this executor is
    chosen.
``asyncio``
    For services built on asyncio: endpoint methods may be ``async def``; they
    are awaited on an event loop (the running loop of the thread that starts the
    server, or a loop thread of the executor's own), while the rest of the
    handling, and plain endpoint methods, run on worker threads as with
    ``threading``. See :mod:`messaging.aio.executor`; asyncio is imported only
    when this executor is chosen.

An endpoint method's result goes through :func:`settle` before it is used:
under the ``asyncio`` executor an awaitable is awaited there; under the others
it is an error that names the executor to choose.
"""

from __future__ import annotations

import abc
import concurrent.futures
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from messaging import _plugins, green
from messaging._extras import require
from messaging.exceptions import ExecutorLoadFailure

__all__ = [
    "BlockingExecutor",
    "EventletExecutor",
    "Executor",
    "ThreadingExecutor",
    "default_executor_name",
    "load_executor",
    "settle",
]

NAMESPACE = "messaging.executors"
LOG = logging.getLogger(__name__)

#: Per worker thread: ``awaiter``, the callable that awaits an endpoint's
#: awaitable and returns its outcome (set by the executors that have a loop).
_worker = threading.local()


def settle(result: Any) -> Any:
    """An endpoint method's result; an awaitable one is awaited first.

    Dispatchers pass what an endpoint method returned through this. A worker
    of the ``asyncio`` executor awaits it on the executor's event loop (its
    thread blocks meanwhile, the loop does not); elsewhere there is no loop to
    await it on.

    Raises:
        TypeError: an awaitable outside an ``asyncio`` executor's worker (the
            coroutine is closed, so that no "never awaited" warning follows).
        Exception: what the awaitable raised.
    """
    if not inspect.isawaitable(result):
        return result
    awaiter: Callable[[Any], Any] | None = getattr(_worker, "awaiter", None)
    if awaiter is None:
        close = getattr(result, "close", None)
        if close is not None:
            close()
        raise TypeError(
            "An endpoint method returned an awaitable (an 'async def' method?); "
            "serve it with executor='asyncio'"
        )
    return awaiter(result)


def bind_awaiter(fn: Callable[..., Any], awaiter: Callable[[Any], Any]) -> Callable[..., Any]:
    """``fn``, run with ``awaiter`` as the way :func:`settle` awaits in its thread."""

    def bound(*args: Any) -> Any:
        previous = getattr(_worker, "awaiter", None)
        _worker.awaiter = awaiter
        try:
            return fn(*args)
        finally:
            _worker.awaiter = previous

    return bound


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

    def serve(self, receive: Callable[[], Any], handle: Callable[[Any], None]) -> bool:
        """Receive and handle on the executor's own workers, if it can.

        Each worker calls ``receive()`` (which blocks until something comes, and
        returns None when receiving is over) and then ``handle()`` with what it
        got. :meth:`shutdown` with ``wait`` returns once every worker has finished.

        Returns:
            False when the executor cannot do this (the server then runs a poll
            thread that calls :meth:`submit`); ``receive`` is not called.
        """
        return False


class BlockingExecutor(Executor):
    """Runs each task at once, in the submitting thread."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` now."""
        fn(*args)

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to do: no task outlives its submit call."""


class _ServingExecutor(Executor):
    """Workers that receive for themselves (:meth:`serve`), started while none is left idle.

    Subclasses say how a worker starts (:meth:`_start`) and how tasks given to
    :meth:`submit` run.
    """

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers)
        self._lock = threading.Lock()
        self._workers: list[Any] = []
        self._idle = 0
        self._closed = False
        # Green workers give the others their turn after each batch: one that
        # always finds the next message waiting would otherwise never yield.
        self._yield: Callable[[], None] | None = _green_yield() if green.monkey_patched() else None

    @abc.abstractmethod
    def _start(self, target: Callable[..., None], args: tuple[Any, ...], name: str) -> Any:
        """Start ``target(*args)`` on a new worker (without running it yet in this thread).

        Returns:
            What :meth:`_join` and :meth:`_is_current` take.
        """

    @abc.abstractmethod
    def _join(self, worker: Any) -> None:
        """Wait for a worker to finish (never the calling one)."""

    @abc.abstractmethod
    def _is_current(self, worker: Any) -> bool:
        """Whether ``worker`` is the calling thread."""

    def serve(self, receive: Callable[[], Any], handle: Callable[[Any], None]) -> bool:
        """Start one receiving worker; more start while none is left idle to receive."""
        self._start_worker(receive, handle)
        return True

    def _start_worker(self, receive: Callable[[], Any], handle: Callable[[Any], None]) -> None:
        with self._lock:
            if self._closed or len(self._workers) >= self.max_workers:
                return
            name = f"messaging-worker-{len(self._workers)}"
            self._workers.append(self._start(self._work, (receive, handle), name))
            self._idle += 1  # counted as idle from now, so that no second one starts early

    def _work(self, receive: Callable[[], Any], handle: Callable[[Any], None]) -> None:
        counted_idle = True  # by _start_worker
        try:
            while True:
                if not counted_idle:
                    with self._lock:
                        self._idle += 1
                    counted_idle = True
                received = receive()
                with self._lock:
                    self._idle -= 1
                    counted_idle = False
                    grow = received is not None and self._idle == 0
                if received is None:
                    return
                if grow:
                    self._start_worker(receive, handle)
                try:
                    handle(received)
                except Exception:
                    LOG.exception("Unexpected error while handling received messages")
                if self._yield is not None:
                    self._yield()
        finally:
            if counted_idle:
                with self._lock:
                    self._idle -= 1

    def _close_workers(self, wait: bool) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        if wait:
            for worker in workers:
                if not self._is_current(worker):
                    self._join(worker)


class ThreadingExecutor(_ServingExecutor):
    """A bounded pool of threads, which may also receive for themselves (:meth:`serve`)."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(max_workers)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker; blocks while all workers are busy."""
        self._slots.acquire()
        try:
            with self._lock:
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        max_workers=self.max_workers, thread_name_prefix="messaging-worker"
                    )
                pool = self._pool
            future = pool.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _f: self._slots.release())

    def _start(self, target: Callable[..., None], args: tuple[Any, ...], name: str) -> Any:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        return thread

    def _join(self, worker: Any) -> None:
        worker.join()

    def _is_current(self, worker: Any) -> bool:
        return worker is threading.current_thread()

    def shutdown(self, wait: bool = True) -> None:
        """Stop the pool; with ``wait``, after the running tasks and workers finish.

        A worker that shuts down its own executor is not waited for.
        """
        with self._lock:
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=wait)
        self._close_workers(wait)


class EventletExecutor(_ServingExecutor):
    """A pool of eventlet green threads, which may also receive for themselves."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers)
        eventlet = require("eventlet", "the eventlet executor")
        self._eventlet = eventlet
        self._pool = eventlet.GreenPool(max_workers)
        self._yield = _green_yield()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Spawn ``fn(*args)`` on a green thread; blocks while the pool is full."""
        self._pool.spawn_n(fn, *args)

    def _start(self, target: Callable[..., None], args: tuple[Any, ...], name: str) -> Any:
        return self._eventlet.spawn(target, *args)

    def _join(self, worker: Any) -> None:
        worker.wait()

    def _is_current(self, worker: Any) -> bool:
        return bool(worker is self._eventlet.getcurrent())

    def shutdown(self, wait: bool = True) -> None:
        """With ``wait``, return once every green thread has finished."""
        if wait:
            self._pool.waitall()
        self._close_workers(wait)


#: Longest a green worker that always finds the next message waiting runs
#: before it lets the other green threads have their turn, in seconds.
GREEN_SLICE = 0.002


def _green_yield() -> Callable[[], None]:
    from eventlet import sleep

    last = time.monotonic()

    def maybe_yield() -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= GREEN_SLICE:
            sleep(0)
            last = time.monotonic()

    return maybe_yield


def default_executor_name() -> str:
    """``eventlet`` when the thread module is monkey-patched by eventlet, else ``threading``."""
    return "eventlet" if green.monkey_patched() else "threading"


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
