"""The notification outbox: notifications wait here while no broker is reachable.

Off by default (oslo.messaging's behaviour: the sender waits for the broker).
With ``[oslo_messaging_notifications] outbox = memory`` or ``sqlite``, a
notification sent through a transport is put in the outbox and the call
returns at once; one thread of the transport sends what waits, oldest first,
and removes it once the driver has it confirmed. While the broker is away the
thread tries again every ``outbox_retry_interval`` seconds, so the
notifications drain in order when it is back.

The outbox is bounded by ``outbox_max_messages`` and ``outbox_max_bytes``.
When it is full, ``outbox_when_full`` says what goes: ``drop-newest`` refuses
the new notification (its sender gets :class:`OutboxFull`, which the
:class:`~messaging.notify.Notifier` logs, and raises with ``raise_errors``);
``drop-oldest`` drops the oldest waiting ones to make room, each logged at
``ERROR`` with its event type and message id. Nothing is dropped silently.

The ``sqlite`` outbox keeps what waits in a local file (``outbox_path``,
created readable by its owner only), so that a process killed with
notifications in it sends them after it starts again. Delivery is at least
once: a notification sent just before a failure may be sent again.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from messaging.conf import OUTBOX_WHEN_FULL
from messaging.exceptions import MessageDeliveryFailure

if TYPE_CHECKING:
    pass

__all__ = ["Outbox", "OutboxFull", "OutboxSettings"]

LOG = logging.getLogger(__name__)
#: How many waiting notifications one round sends before waiting for their confirms.
BATCH = 200
WHEN_FULL = OUTBOX_WHEN_FULL


class OutboxFull(MessageDeliveryFailure):
    """The outbox is full and ``outbox_when_full = drop-newest``: this notification was not kept."""


@dataclass(frozen=True)
class OutboxSettings:
    """The outbox's options, read once."""

    kind: str
    path: str
    max_messages: int
    max_bytes: int
    when_full: str
    retry_interval: float

    @classmethod
    def from_group(cls, group: Any) -> OutboxSettings | None:
        """The settings of an option group; None when the outbox is off.

        Raises:
            ValueError: ``outbox = sqlite`` without ``outbox_path``.
        """
        if group.outbox == "none":
            return None
        if group.outbox == "sqlite" and not group.outbox_path:
            raise ValueError("outbox = sqlite needs outbox_path: the file to keep it in")
        return cls(
            group.outbox,
            group.outbox_path,
            group.outbox_max_messages,
            group.outbox_max_bytes,
            group.outbox_when_full,
            group.outbox_retry_interval,
        )


@dataclass(frozen=True)
class Entry:
    """A notification waiting in the outbox."""

    topic: str
    ctxt: Any
    message: dict[str, Any]
    version: float
    retry: int | None

    def encode(self) -> str:
        return json.dumps([self.topic, self.ctxt, self.message, self.version, self.retry])

    @classmethod
    def decode(cls, text: str) -> Entry:
        topic, ctxt, message, version, retry = json.loads(text)
        return cls(topic, ctxt, message, version, retry)

    def describe(self) -> str:
        return (
            f"{self.message.get('event_type')} ({self.message.get('priority')}, "
            f"message_id {self.message.get('message_id')})"
        )


class _Store(Protocol):
    def add(self, text: str) -> None: ...

    def oldest(self, limit: int) -> list[tuple[int, str]]: ...

    def remove(self, ids: list[int]) -> tuple[int, int]:
        """Remove what is still there of ``ids``; return how many and their bytes."""
        ...

    def close(self) -> None: ...


class _MemoryStore:
    def __init__(self) -> None:
        self._items: collections.deque[tuple[int, str]] = collections.deque()
        self._next = 0

    def add(self, text: str) -> None:
        self._next += 1
        self._items.append((self._next, text))

    def oldest(self, limit: int) -> list[tuple[int, str]]:
        return [self._items[i] for i in range(min(limit, len(self._items)))]

    def remove(self, ids: list[int]) -> tuple[int, int]:
        gone = set(ids)
        count = size = 0
        kept: collections.deque[tuple[int, str]] = collections.deque()
        for item in self._items:
            if item[0] in gone:
                count, size = count + 1, size + len(item[1])
            else:
                kept.append(item)
        self._items = kept
        return count, size

    def close(self) -> None:
        self._items.clear()


class _SqliteStore:
    def __init__(self, path: str) -> None:
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not os.path.exists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT)"
        )

    def existing(self) -> tuple[int, int]:
        count, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM outbox"
        ).fetchone()
        return int(count), int(size)

    def add(self, text: str) -> None:
        self._db.execute("INSERT INTO outbox (body) VALUES (?)", (text,))

    def oldest(self, limit: int) -> list[tuple[int, str]]:
        rows = self._db.execute("SELECT id, body FROM outbox ORDER BY id LIMIT ?", (limit,))
        return [(int(i), str(body)) for i, body in rows.fetchall()]

    def remove(self, ids: list[int]) -> tuple[int, int]:
        count = size = 0
        self._db.execute("BEGIN")
        for i in ids:
            for (length,) in self._db.execute(
                "DELETE FROM outbox WHERE id = ? RETURNING LENGTH(body)", (i,)
            ).fetchall():
                count, size = count + 1, size + int(length)
        self._db.execute("COMMIT")
        return count, size

    def close(self) -> None:
        self._db.close()


class Outbox:
    """A bounded queue of notifications and the thread that sends them.

    Args:
        settings: the outbox's options.
        send: sends one notification through the driver (may raise).
        flush: waits for the driver's confirms; returns how many are still unconfirmed.
        confirm_timeout: how long one round waits for its confirms.
    """

    def __init__(
        self,
        settings: OutboxSettings,
        send: Callable[[str, Any, dict[str, Any], float, int | None], None],
        flush: Callable[[float], int],
        confirm_timeout: float,
    ) -> None:
        self.settings = settings
        self._send = send
        self._flush = flush
        self._confirm_timeout = confirm_timeout
        self._cond = threading.Condition()
        self._count = 0
        self._bytes = 0
        self._sizes: dict[int, int] = {}
        store: _Store
        if settings.kind == "sqlite":
            sqlite_store = _SqliteStore(settings.path)
            self._count, self._bytes = sqlite_store.existing()
            store = sqlite_store
        else:
            store = _MemoryStore()
        self._store = store
        self._closed = False
        self._failing_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="messaging-outbox", daemon=True)
        self._thread.start()
        if self._count:
            LOG.info("The outbox has %d notifications from before; sending them", self._count)

    def __len__(self) -> int:
        with self._cond:
            return self._count

    def put(
        self, topic: str, ctxt: Any, message: dict[str, Any], version: float, retry: int | None
    ) -> None:
        """Keep a notification for sending; return at once.

        Raises:
            OutboxFull: the outbox is full and drops the newest.
        """
        entry = Entry(topic, ctxt, message, version, retry)
        text = entry.encode()
        size = len(text)
        settings = self.settings
        with self._cond:
            while self._count and (
                self._count >= settings.max_messages or self._bytes + size > settings.max_bytes
            ):
                if settings.when_full == "drop-newest":
                    raise OutboxFull(
                        f"The outbox is full ({self._count} notifications, {self._bytes} bytes; "
                        f"outbox_max_messages = {settings.max_messages}, outbox_max_bytes = "
                        f"{settings.max_bytes}): notification {entry.describe()} not kept"
                    )
                self._drop_oldest()
            self._store.add(text)
            self._count += 1
            self._bytes += size
            self._cond.notify_all()

    def _drop_oldest(self) -> None:
        # Called with the lock held.
        ((oldest_id, text),) = self._store.oldest(1)
        count, size = self._store.remove([oldest_id])
        self._count -= count
        self._bytes -= size
        LOG.error(
            "The outbox is full: dropped its oldest notification %s to make room",
            Entry.decode(text).describe(),
        )

    def drain(self, timeout: float | None) -> int:
        """Wait until everything in the outbox was sent; return how many are left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._count and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._count

    def close(self, timeout: float) -> int:
        """Send what waits, for up to ``timeout``, then stop; return how many were left.

        What is left of a memory outbox is lost, and logged; a sqlite outbox
        keeps it for the next start.
        """
        left = self.drain(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout + self._confirm_timeout + 1)
        with self._cond:
            left = self._count
            if left and self.settings.kind == "memory":
                LOG.error("%d notifications were still in the outbox at cleanup: lost", left)
            elif left:
                LOG.warning(
                    "%d notifications stay in the outbox %s until the next start",
                    left,
                    self.settings.path,
                )
            self._store.close()
        return left

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._count and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch = self._store.oldest(BATCH)
            try:
                self._send_batch(batch)
            except Exception as exc:  # the broker is away: try again later, in order
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    LOG.warning(
                        "The outbox could not send (%s); %d notifications wait, trying again "
                        "every %s s",
                        exc,
                        len(self),
                        self.settings.retry_interval,
                    )
                with self._cond:
                    if not self._closed:
                        self._cond.wait(self.settings.retry_interval)
                continue
            if self._failing_since is not None:
                LOG.warning(
                    "The outbox sends again after %.1f s", time.monotonic() - self._failing_since
                )
                self._failing_since = None
            with self._cond:
                count, size = self._store.remove([i for i, _ in batch])
                self._count -= count
                self._bytes -= size
                self._cond.notify_all()

    def _send_batch(self, batch: list[tuple[int, str]]) -> None:
        for _id, text in batch:
            entry = Entry.decode(text)
            self._send(entry.topic, entry.ctxt, entry.message, entry.version, entry.retry)
        left = self._flush(self._confirm_timeout)
        if left:
            raise MessageDeliveryFailure(f"{left} notifications were not confirmed in time")
