"""The process-wide registry of broker connections, shared by every transport.

Every driver instance of a process that points at the same broker (same hosts,
credentials, virtual host and TLS settings: the *broker key*) shares one entry
here, however many transports, notifiers, listeners and clients use it. An
entry is reference-counted: :meth:`ConnectionRegistry.acquire` creates it on
first use, :meth:`ConnectionRegistry.release` closes it when its last user
leaves (the semantics of DIRAC's MQConnectionManager).

Fork safety: a child process never uses or closes its parent's connections.
The registry is emptied in the child right after ``fork()``; the inherited
objects are dropped without touching their sockets, and the child opens its
own connections on first use.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

__all__ = ["Closeable", "ConnectionRegistry", "ProcessLocal", "process_id"]

LOG = logging.getLogger(__name__)

_pid = os.getpid()


def _note_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_note_fork)


def process_id() -> int:
    """This process's id, as ``os.getpid()`` but without a system call on every use.

    Kept current in a child made by ``fork()``; drivers compare it with the id
    recorded when they opened a connection, on every publish, to notice a fork.
    """
    return _pid


class Closeable(Protocol):
    """What the registry holds: anything that can be closed."""

    def close(self) -> None:
        """Close the connection(s) and stop their threads."""


T = TypeVar("T", bound=Closeable)


class _Entry(Generic[T]):
    def __init__(self, obj: T) -> None:
        self.obj = obj
        self.users = 0


class ConnectionRegistry(Generic[T]):
    """Shares one object per broker key within a process, reference-counted.

    Args:
        name: what the registry holds, for logs.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry[T]] = {}
        os.register_at_fork(after_in_child=self._forget_after_fork)

    def _forget_after_fork(self) -> None:
        # The parent's sockets and threads belong to the parent: drop them unclosed.
        self._lock = threading.Lock()
        self._entries = {}

    def acquire(self, key: Hashable, factory: Callable[[], T]) -> T:
        """Return the shared object for ``key``, creating it on first use."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(factory())
                LOG.debug("%s: opened a shared entry", self.name)
            entry.users += 1
            return entry.obj

    def release(self, key: Hashable) -> None:
        """Drop one reference to ``key``; close the object when none is left."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.users -= 1
            if entry.users > 0:
                return
            del self._entries[key]
        LOG.debug("%s: the last user left; closing", self.name)
        entry.obj.close()

    def users(self, key: Hashable) -> int:
        """How many users hold ``key`` (0 when it is not open)."""
        with self._lock:
            entry = self._entries.get(key)
            return 0 if entry is None else entry.users

    def objects(self) -> list[T]:
        """The objects open now."""
        with self._lock:
            return [entry.obj for entry in self._entries.values()]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


V = TypeVar("V")


class ProcessLocal(Generic[V]):
    """What a driver holds for the process that uses it, such as its share of a broker.

    Opened on first use, and opened again after :meth:`release` or in a child made
    by ``fork()``: a parent's connections are never the child's to use or close.

    Args:
        open_: opens the value (called under a lock, at most once per opening).
        close: lets go of a value this process opened.
        on_open: called before each opening (a driver forgets its listeners there).
    """

    def __init__(
        self,
        open_: Callable[[], V],
        close: Callable[[V], None],
        on_open: Callable[[], None] | None = None,
    ) -> None:
        self._open = open_
        self._close = close
        self._on_open = on_open
        self._lock = threading.Lock()
        self._value: V | None = None
        self._pid = process_id()

    def get(self) -> V:
        """The value of this process, opened now if it is not open."""
        value = self._value
        if value is not None and self._pid == process_id():
            return value  # the common case, without the lock
        with self._lock:
            value = self._value
            if value is None or self._pid != process_id():
                self._pid = process_id()
                if self._on_open is not None:
                    self._on_open()
                value = self._value = self._open()
            return value

    def opened(self) -> V | None:
        """The value this process opened, if any; never opens it."""
        with self._lock:
            return self._value if self._pid == process_id() else None

    def release(self) -> None:
        """Let go of the value, if this process opened it; the next :meth:`get` opens anew."""
        with self._lock:
            value, self._value = self._value, None
        if value is not None and self._pid == process_id():
            self._close(value)
