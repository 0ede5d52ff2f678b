"""The ``asyncio`` executor: ``async def`` endpoint methods, awaited on an event loop.

Where the loop lives:

- a server started from a coroutine (``start()`` called while an event loop
  runs in the calling thread) uses that loop: its endpoints run with the
  application's other tasks and may share its loop-bound objects (sessions,
  locks, queues);
- a server started from plain code gets a loop of the executor's own, run by
  a thread named ``messaging-asyncio-loop`` from ``start()`` until ``wait()``.

Everything else is the ``threading`` executor's: up to ``max_workers``
(``executor_thread_pool_size``, or ``start(override_pool_size)``) worker
threads receive, decode, acknowledge, dispatch and reply. A worker whose
endpoint method returns an awaitable hands it to the loop and waits for its
outcome, so at most ``max_workers`` messages are handled at once, and plain
endpoint methods run on the workers, never on the loop. The awaitable runs
with a copy of the worker's context variables (a tracing span, for one).

``wait()`` must not be called on the server's own loop: it waits for handlers
that need that loop. From a coroutine, ``await asyncio.to_thread(server.wait)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from messaging import green
from messaging.exceptions import ExecutorLoadFailure
from messaging.executors import ThreadingExecutor, bind_awaiter

__all__ = ["AsyncioExecutor"]

#: How often a worker waiting for the loop checks that the loop still runs, in seconds.
_LOOP_CHECK = 0.5


class EndpointCancelled(RuntimeError):
    """The task of an ``async def`` endpoint method was cancelled on the loop."""


class AsyncioExecutor(ThreadingExecutor):
    """Worker threads as :class:`~messaging.executors.ThreadingExecutor`, and an event loop.

    Args:
        max_workers: how many messages are handled at once.

    Attributes:
        loop: the loop awaitables of endpoint methods run on.
        owns_loop: whether the executor created ``loop`` (and runs it in its thread).
    """

    def __init__(self, max_workers: int) -> None:
        if green.monkey_patched():
            # Its loop thread and workers would be green threads of eventlet's hub,
            # which asyncio's loop cannot share; the eventlet executor is the one there.
            raise ExecutorLoadFailure(
                "asyncio",
                "this process is monkey-patched by eventlet; use executor='eventlet' there",
            )
        super().__init__(max_workers)
        self._loop_thread: threading.Thread | None = None
        try:
            self.loop = asyncio.get_running_loop()
            self.owns_loop = False
        except RuntimeError:
            self.loop = asyncio.new_event_loop()
            self.owns_loop = True
            self._loop_thread = threading.Thread(
                target=self.loop.run_forever, name="messaging-asyncio-loop", daemon=True
            )
            self._loop_thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker thread that awaits on :attr:`loop`."""
        super().submit(bind_awaiter(fn, self._await), *args)

    def serve(self, receive: Callable[[], Any], handle: Callable[[Any], None]) -> bool:
        """Receive on worker threads that await on :attr:`loop`."""
        return super().serve(receive, bind_awaiter(handle, self._await))

    def _await(self, awaitable: Awaitable[Any]) -> Any:
        context = contextvars.copy_context()
        outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def settle(task: asyncio.Task[Any]) -> None:
            if task.cancelled():
                outcome.set_exception(
                    EndpointCancelled("the task of an async endpoint method was cancelled")
                )
            elif (error := task.exception()) is not None:
                outcome.set_exception(error)
            else:
                outcome.set_result(task.result())

        def begin() -> None:
            task = self.loop.create_task(_awaited(awaitable), context=context)
            task.add_done_callback(settle)

        self.loop.call_soon_threadsafe(begin)
        while True:
            try:
                return outcome.result(timeout=_LOOP_CHECK)
            except concurrent.futures.TimeoutError:
                # A loop that stopped (the application's asyncio.run() returned)
                # would leave this worker, and the server's wait(), hanging.
                if self.loop.is_closed() or not self.loop.is_running():
                    raise RuntimeError(
                        "the event loop of the asyncio executor stopped while an async "
                        "endpoint method was awaited on it"
                    ) from None

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def shutdown(self, wait: bool = True) -> None:
        """Stop the workers, then the executor's own loop (if it has one).

        Without ``wait``, the workers and the loop finish in the background.

        Raises:
            RuntimeError: ``wait`` on the executor's own loop, which the handlers
                still running need (``await asyncio.to_thread(server.wait)`` instead).
        """
        if wait and self._on_loop():
            raise RuntimeError(
                "The server's wait() was called on the event loop its async endpoints run on; "
                "it would wait for itself. Use 'await asyncio.to_thread(server.wait)'."
            )
        if not wait:
            if self.owns_loop:
                threading.Thread(
                    target=self.shutdown, name="messaging-asyncio-shutdown", daemon=True
                ).start()
            else:
                super().shutdown(wait=False)
            return
        super().shutdown(wait=True)
        if self._loop_thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._loop_thread.join()
            self._loop_thread = None
            self.loop.close()


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    # create_task() takes coroutines only; an endpoint may return any awaitable.
    return await awaitable
