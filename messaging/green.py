"""Native I/O threads in a process eventlet monkey-patched, and the hand-over to green threads.

Most OpenStack services still call ``eventlet.monkey_patch()`` first thing:
after that, ``threading.Thread`` starts a green thread, ``socket`` and
``select`` cooperate with eventlet's hub, and locks, events and queues only
work between green threads of that hub. A driver I/O loop that used those
would share one CPU-bound hub with the application: its heartbeats would stop
whenever a green thread computes without yielding, and two green threads
waiting on one socket make eventlet raise "Second simultaneous read".

So an I/O thread here is always a real OS thread, built from the modules as
they were before patching (:func:`natives`), and it never touches an object of
the application's world (a green lock, event, queue or future). Whatever it
has to tell that world (a confirm, a delivery, a reply, a log line) goes
through :func:`to_caller`: in a process that is not monkey-patched it runs at
once, on the I/O thread, as it always did; in a patched one it is queued for
a green thread that runs it in the hub, woken through a pipe. The same code
serves both worlds; only that one hand-over differs.

Rules for code that runs on an I/O thread:

- wait only on native objects (:func:`natives`), never on the application's;
- settle application-side objects with :class:`Completion`, :class:`CallerEvent`
  or :func:`to_caller`;
- log through a logger set up with :func:`hand_over_logs` (logging's locks
  are green in a patched process, and a native thread must not contend for them).

Native locks may be taken from green threads only around code that cannot
switch green threads (no I/O, no waiting): a green thread holding one while
the hub runs another would block the whole hub.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = [
    "CallerEvent",
    "Completion",
    "Natives",
    "hand_over_logs",
    "monkey_patched",
    "natives",
    "on_caller_side",
    "start_bridge",
    "to_caller",
]

LOG = logging.getLogger(__name__)


def monkey_patched() -> bool:
    """Whether eventlet has monkey-patched the thread module of this process."""
    eventlet = sys.modules.get("eventlet")
    if eventlet is None:
        return False
    from eventlet import patcher

    return bool(patcher.is_monkey_patched("thread"))


@dataclass(frozen=True)
class Natives:
    """The standard modules as they were before eventlet patched them.

    In a process that is not monkey-patched these are the ordinary modules.

    Attributes:
        threading: ``threading`` with real OS threads, locks and events.
        select: ``select`` that blocks the calling OS thread.
        socket: ``socket`` whose sockets block the calling OS thread.
        ssl: ``ssl`` whose sockets wrap those sockets.
        os: ``os`` with the system calls ``read`` and ``write`` unwrapped.
        get_ident: the calling OS thread's identifier.
    """

    threading: ModuleType
    select: ModuleType
    socket: ModuleType
    ssl: ModuleType
    os: ModuleType
    get_ident: Callable[[], int]


@functools.cache
def _natives(patched: bool) -> Natives:
    if not patched:
        import _thread
        import select
        import socket
        import ssl

        return Natives(threading, select, socket, ssl, os, _thread.get_ident)
    from eventlet import patcher

    socket_module = patcher.original("socket")
    return Natives(
        threading=patcher.original("threading"),
        select=patcher.original("select"),
        socket=socket_module,
        # original("ssl") would still build its sockets on the green socket class.
        ssl=patcher.import_patched("ssl", socket=socket_module),
        os=patcher.original("os"),
        get_ident=patcher.original("_thread").get_ident,
    )


def natives() -> Natives:
    """The unpatched modules, for code that runs on a native I/O thread."""
    return _natives(monkey_patched())


class _Bridge:
    """Runs functions handed over by native threads in a green thread of the hub.

    Native threads queue a call and write one byte to a pipe, only when no
    wake-up is pending already, so that a burst of hand-overs costs one wake-up.
    The hub watches the pipe with a listener that stays registered for good
    (a listener removed in a forked child that still shares the parent's epoll
    would unregister the parent's too) and wakes the green thread that runs
    the calls.
    """

    def __init__(self) -> None:
        import eventlet
        from eventlet import hubs

        native = natives()
        self.pid = os.getpid()
        self.get_ident = native.get_ident
        self.hub_thread = native.get_ident()
        self._os = native.os
        self._calls: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._pending = False
        self._read_fd, self._write_fd = native.os.pipe()
        native.os.set_blocking(self._read_fd, False)
        native.os.set_blocking(self._write_fd, False)
        self._hub = hubs.get_hub()
        self._idle = False  # the green thread waits to be woken
        self._runner = eventlet.spawn(self._run)
        self._hub.add(self._hub.READ, self._read_fd, self._on_readable, _ignore, _ignore)

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._calls.append((fn, args))  # deque.append is atomic
        if not self._pending:
            self._pending = True
            # A full pipe: the green thread is being woken anyway.
            with contextlib.suppress(BlockingIOError):
                self._os.write(self._write_fd, b"x")

    def _on_readable(self, _fileno: int) -> None:
        # In the hub itself: nothing here may block or switch green threads.
        if os.getpid() != self.pid:
            return  # a forked child's copy: the bytes are the parent's to read
        with contextlib.suppress(BlockingIOError):
            while self._os.read(self._read_fd, 4096):
                pass
        if self._idle:
            self._idle = False
            self._hub.schedule_call_global(0, self._runner.switch)

    def _run(self) -> None:
        calls = self._calls
        while True:
            # Lowered before the queue is looked at: a call queued after this
            # either sees the flag down and writes to the pipe, or is run here.
            self._pending = False
            if not calls:
                self._idle = True
                self._hub.switch()
                continue
            while calls:
                fn, args = calls.popleft()
                try:
                    fn(*args)
                except Exception:
                    LOG.exception("A hand-over from an I/O thread failed")


def _ignore(*_args: Any) -> None:
    pass


_bridge: _Bridge | None = None


def _forget_bridge_after_fork() -> None:
    # The parent's bridge serves the parent's I/O threads; the child makes its own.
    global _bridge
    _bridge = None


os.register_at_fork(after_in_child=_forget_bridge_after_fork)


def start_bridge() -> None:
    """Make :func:`to_caller` hand over to this thread's hub, if the process is patched.

    Called from the application's side (a green thread) before a native I/O
    thread starts; cheap when there is nothing to do. In a forked child a new
    bridge replaces the parent's.
    """
    global _bridge
    if not monkey_patched():
        return
    if _bridge is None:
        _bridge = _Bridge()


def on_caller_side() -> bool:
    """Whether the calling thread is on the application's side (not a native I/O thread)."""
    bridge = _bridge
    return bridge is None or bridge.get_ident() == bridge.hub_thread


def to_caller(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` on the application's side: now, or soon in the hub.

    Called from a native I/O thread of a monkey-patched process, the call is
    queued for the hub; anywhere else it runs at once. Calls queued by one
    thread run in the order they were queued.
    """
    bridge = _bridge
    if bridge is None or bridge.get_ident() == bridge.hub_thread:
        fn(*args)
    else:
        bridge.call(fn, args)


class CallerEvent:
    """An event set from any thread (I/O threads included), waited on by the application.

    :meth:`is_set` answers at once from any thread; waiters are woken through
    :func:`to_caller`.
    """

    __slots__ = ("_event", "_flag")

    def __init__(self) -> None:
        self._flag = False
        self._event = threading.Event()  # the application's kind of event

    def is_set(self) -> bool:
        """Whether the event is set now."""
        return self._flag

    def set(self) -> None:
        """Set the event and wake its waiters."""
        self._flag = True
        to_caller(self._event.set)

    def clear(self) -> None:
        """Clear the event."""
        self._flag = False
        to_caller(self._event.clear)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait (on the application's side) until set; False after ``timeout``."""
        return self._event.wait(timeout)


class Completion:
    """The end of an operation an I/O thread carries out: a value or an error.

    Cheap to make. Settled once, from any thread (later settles are ignored);
    the waiter and the ``callback`` are woken on the application's side.

    Attributes:
        done: whether it is settled.
        error: the error it ended with, if any.
        value: the value it ended with, if any.
        callback: called with the completion once settled, on the application's side.
    """

    __slots__ = ("_lock", "callback", "done", "error", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self.done = False
        self.error: BaseException | None = None
        self.value: Any = None
        self.callback: Callable[[Completion], None] | None = None

    def settle(self, error: BaseException | None = None, value: Any = None) -> bool:
        """Record the end and wake the waiter; False if it had ended already."""
        with _settle_lock():
            if self.done:
                return False
            self.error = error
            self.value = value
            self.done = True
        to_caller(self._finish)
        return True

    def _finish(self) -> None:
        self._lock.release()
        if self.callback is not None:
            self.callback(self)

    def wait(self, timeout: float | None) -> bool:
        """Wait for the end; False after ``timeout``."""
        if self._lock.acquire(timeout=-1 if timeout is None else timeout):
            self._lock.release()
            return True
        return False

    def result(self, timeout: float | None) -> Any:
        """Wait for the end and return the value, or raise the error.

        Raises:
            TimeoutError: not settled within ``timeout``.
        """
        if not self.wait(timeout):
            raise TimeoutError(f"not done within {timeout} s")
        if self.error is not None:
            raise self.error
        return self.value


@functools.cache
def _settle_lock() -> Any:
    # Guards the first-settle check of every Completion: held for a few
    # bytecodes, never across a wait, so green threads may take it too.
    return natives().threading.Lock()


class _HandOver(logging.Filter):
    """Moves records logged on a native I/O thread to the hub, where handlers run."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "messaging_handed_over", False) or on_caller_side():
            return True
        record.messaging_handed_over = True
        to_caller(logging.getLogger(record.name).handle, record)
        return False


_HAND_OVER = _HandOver()


def hand_over_logs(logger: logging.Logger | str) -> logging.Logger:
    """Make ``logger`` safe to use on a native I/O thread of a patched process; return it.

    Its records are handed to the hub and emitted there (handlers take
    logging's locks, which are green once patched). In a process that is not
    monkey-patched nothing changes.
    """
    if isinstance(logger, str):
        logger = logging.getLogger(logger)
    if _HAND_OVER not in logger.filters:
        logger.addFilter(_HAND_OVER)
    return logger
