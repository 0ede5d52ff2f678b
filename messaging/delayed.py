"""Calls made after a delay, on one scheduler thread instead of a timer thread each.

A :class:`DelayedCalls` keeps its calls in a heap and makes them on a thread
of its own, started on first use and gone once it has been idle for a moment
(so a quiet process holds no thread for it). It is fork-aware: in a child
process the parent's pending calls are dropped and a new thread starts on the
first call. :func:`shared` is the process's scheduler for short retries
(RPC replies waiting for their reply queue), so that 2,000 such retries cost
one thread, not 2,000.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ["DelayedCalls", "shared"]

LOG = logging.getLogger(__name__)
#: Seconds the thread waits with nothing to do before it ends.
IDLE_EXIT = 1.0


class DelayedCalls:
    """Runs calls after a delay on one thread of its own, started on first use.

    Args:
        name: the thread's name.
        what: what the calls do, for the log line of one that fails.
    """

    def __init__(self, name: str, what: str = "A delayed call") -> None:
        self._name = name
        self._what = what
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._pid = os.getpid()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Call ``fn()`` in ``delay`` seconds (at once when stopped: nothing waits then)."""
        with self._cond:
            if self._stopped:
                run_now = True
            else:
                run_now = False
                if self._pid != os.getpid():  # forked: the parent's thread is not here
                    self._pid, self._heap, self._thread = os.getpid(), [], None
                heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), fn))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                    self._thread.start()
                self._cond.notify()
        if run_now:
            fn()

    def _run(self) -> None:
        while True:
            with self._cond:
                idle_until = time.monotonic() + IDLE_EXIT
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    if not self._heap:
                        if time.monotonic() >= idle_until:
                            self._thread = None  # the next call starts a new one
                            return
                        self._cond.wait(idle_until - time.monotonic())
                    else:
                        self._cond.wait(self._heap[0][0] - time.monotonic())
                        idle_until = time.monotonic() + IDLE_EXIT
                if self._stopped:
                    return
                _when, _n, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                LOG.exception("%s failed", self._what)

    def pending(self) -> int:
        """How many calls wait."""
        with self._cond:
            return len(self._heap)

    def stop(self) -> int:
        """Stop the thread and drop the calls not made yet (bounded wait).

        Returns:
            How many were dropped.
        """
        with self._cond:
            self._stopped = True
            dropped, self._heap = len(self._heap), []
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
        return dropped

    def restart(self) -> None:
        """Accept calls again after :meth:`stop` (a server started anew)."""
        with self._cond:
            self._stopped = False
            self._thread = None


_SHARED: DelayedCalls | None = None
_SHARED_LOCK = threading.Lock()


def shared() -> DelayedCalls:
    """The process's scheduler for short retries."""
    global _SHARED
    if _SHARED is None:
        with _SHARED_LOCK:
            if _SHARED is None:
                _SHARED = DelayedCalls("messaging-delayed", "A delayed retry")
    return _SHARED
