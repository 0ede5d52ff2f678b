"""The transactions of a sqlite bus: publish, claim, take, acknowledge, requeue, expire.

One :class:`Store` per process and file holds one connection, used by one
thread at a time. Writes run in ``BEGIN IMMEDIATE`` transactions (the write
lock is taken up front, so a transaction never fails half-way because another
process wrote first; it waits up to ``busy_timeout`` instead), and a taker
first looks for candidates with a plain read, which never blocks or is blocked
by a writer, so idle listeners do not compete for the write lock.

Delivery guarantees:

- A notification is *claimed*: it stays in its queue, invisible, until the
  listener acknowledges it (deleted), requeues it or releases it (visible
  again at once), or its visibility timeout passes (visible again: the
  listener's process died). A living process keeps extending its claims
  (:meth:`Store.extend_claims`), so a slow handler does not lose its message.
  Each claim carries a token (the listener's id and the delivery count) so
  that a late acknowledgement of a claim that was taken over does nothing.
- An RPC request or reply is *taken*: deleted in the same transaction that
  returns it (at most once).
- The disk bound: a publish that leaves more stored message bytes or messages
  than the publisher's limits is rolled back and raises
  ``MessageDeliveryFailure`` naming the limit and the file.
- Parked messages (``dead_letters``) are bounded by ``parked`` (a
  :class:`Limits`): parking past it drops the oldest parked messages, with an
  ERROR that says how many and what the table holds; the newest is always kept.
- A full disk stops sends, not listeners: see :mod:`~messaging.drivers.sqlite.reserve`.

Times in the file are wall-clock (``time.time()``), which the processes of a
host share; a step of the clock moves the end of claims and leases with it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from messaging.drivers.sqlite import schema
from messaging.drivers.sqlite.reserve import DiskReserve
from messaging.exceptions import MessageDeliveryFailure, TransportDriverError

__all__ = ["Declaration", "Limits", "Store", "StoreError", "StoredMessage"]

LOG = logging.getLogger(__name__)

_LIVE = "(expires_at IS NULL OR expires_at > :now)"
_LIVE_QUEUE = "(q.lease_until IS NULL OR q.lease_until > :now)"
_COLUMNS = "id, queue, body, deliveries"

_T = TypeVar("_T")


class StoreError(TransportDriverError):
    """The database failed an operation.

    Attributes:
        code: sqlite's name for the error (``SQLITE_BUSY``, ``SQLITE_FULL``...), or "".
    """

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code

    @property
    def lasting(self) -> bool:
        """Whether trying again cannot help: the file cannot be written (read-only...)."""
        return self.code.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH"))

    @property
    def disk_full(self) -> bool:
        """Whether the disk (or the file's size limit) is full."""
        return self.code == "SQLITE_FULL" or "EFBIG" in str(self)


@dataclass(frozen=True)
class StoredMessage:
    """One copy of a message as a consumer got it.

    Attributes:
        id: the row id; increasing, never reused.
        queue: the queue it was taken from.
        body: the encoded message, as published.
        deliveries: how many times it was taken, this time included.
    """

    id: int
    queue: str
    body: str
    deliveries: int

    @property
    def redelivered(self) -> bool:
        """Whether it was delivered before."""
        return self.deliveries > 1


@dataclass(frozen=True)
class Declaration:
    """A queue and the binding that feeds it.

    Attributes:
        queue: the queue name.
        exchange: the exchange it is bound to (None: no binding).
        routing_key: the binding key (fanout exchanges ignore it).
    """

    queue: str
    exchange: str | None = None
    routing_key: str = ""


@dataclass(frozen=True)
class Limits:
    """The disk bound a publisher enforces (0: no bound).

    Attributes:
        max_bytes: bound on the bytes of stored message bodies.
        max_messages: bound on the number of stored messages.
    """

    max_bytes: int = 0
    max_messages: int = 0


@functools.cache
def _peek_sql(queues: int) -> str:
    # One ordered index range per queue (queue, id), merged: the cost is the
    # claimed rows at the head of each queue plus ``limit``, whatever the backlog.
    parts = [
        f"SELECT id, size FROM (SELECT id, size FROM messages WHERE queue = :q{index} "
        f"AND visible_at <= :now AND {_LIVE} ORDER BY id LIMIT :limit)"
        for index in range(queues)
    ]
    return f"SELECT id, size FROM ({' UNION ALL '.join(parts)}) ORDER BY id LIMIT :limit"


@functools.cache
def _insert_sql(kind: str) -> str:
    # A copy for each live queue the message routes to: the queue named by the
    # key ("direct", exchange ""), every queue of the exchange ("fanout"), or the
    # queues bound with the key ("topic").
    head = (
        "INSERT INTO messages (queue, body, size, enqueued_at, expires_at) "
        "SELECT q.name, :body, :size, :now, :expires FROM queues q "
    )
    if kind == "direct":
        return head + f"WHERE q.name = :key AND {_LIVE_QUEUE}"
    joined = (
        head + f"JOIN bindings b ON b.queue = q.name WHERE b.exchange = :exchange AND {_LIVE_QUEUE}"
    )
    if kind == "fanout":
        return joined + " GROUP BY q.name"
    return joined + " AND b.routing_key = :key"


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class Store:
    """The bus file seen through one connection; thread-safe.

    Args:
        path: the database file.
        busy_timeout: seconds to wait for another process's write transaction.
        synchronous: sqlite's synchronous mode (``normal`` or ``full``).
        on_visible: called after a commit that made messages visible (new,
            requeued or released), to wake this process's waiting listeners.
        disk_reserve: bytes of disk kept for listeners (see
            :mod:`~messaging.drivers.sqlite.reserve`); 0 for none.
        parked: the bound of the parked messages (``max_parked_bytes`` and
            ``max_parked``); None for none.

    Raises:
        TransportDriverError: the file cannot be opened or is not a bus.
    """

    def __init__(
        self,
        path: str,
        busy_timeout: float,
        synchronous: str = "normal",
        on_visible: Callable[[], None] | None = None,
        disk_reserve: int = 0,
        parked: Limits | None = None,
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._conn = schema.connect(path, busy_timeout, synchronous)
        self.reserve = DiskReserve(path, disk_reserve)
        self.reserve.ensure()
        self.parked = parked or Limits()
        self._lock = threading.Lock()
        self._on_visible = on_visible or (lambda: None)
        self._closed = False

    def __repr__(self) -> str:
        return f"<Store {self.path}>"

    # -- plumbing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors(what):
            yield self._conn

    @contextlib.contextmanager
    def _transaction(self, what: str, busy: float | None = None) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors(what):
            shorter = busy is not None and busy < self.busy_timeout
            if shorter:
                self._conn.execute(f"PRAGMA busy_timeout = {int(max(busy or 0.0, 0.001) * 1000)}")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            finally:
                if shorter:
                    self._conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        if self._closed:
            raise StoreError(f"The sqlite bus {self.path} is closed ({what})")
        try:
            yield
        except sqlite3.Error as exc:
            code = str(getattr(exc, "sqlite_errorname", ""))
            text = f"sqlite bus {self.path}: {what} failed: {exc}"
            if code == "SQLITE_FULL":
                text += f" ({_free_space(self.path)})"
            raise StoreError(text, code) from exc

    def _draining(self, write: Callable[[], _T]) -> _T:
        """Run a listener's ``write``; on a full disk, make room (see the module), run it again."""
        try:
            return write()
        except StoreError as exc:
            if not exc.disk_full:
                raise
        self._checkpoint()
        if self.reserve.release():
            self._checkpoint()
        return write()

    def _checkpoint(self) -> None:
        # Copies the log into the database and has the next write start the log
        # again from its beginning: room the file already holds.
        try:
            with self._lock:
                self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        except sqlite3.Error as exc:
            LOG.debug("Checkpoint of %s on a full disk failed: %s", self.path, exc)

    def close(self) -> None:
        """Close the connection; later calls raise ``TransportDriverError``."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    # -- topology -------------------------------------------------------------------------

    def declare(
        self,
        declarations: Sequence[Declaration],
        lease_until: float | None,
        busy: float | None = None,
    ) -> None:
        """Create queues and bindings that do not exist; renew the lease of transient ones.

        Args:
            declarations: the queues and their bindings.
            lease_until: None for durable queues; else the wall-clock time until
                which the (transient) queues live unless renewed.
            busy: seconds to wait for another process's write transaction, if
                shorter than the store's busy timeout.
        """
        with self._transaction("declaring queues", busy) as conn:
            for declaration in declarations:
                self._declare(conn, declaration, lease_until, time.time())

    @staticmethod
    def _declare(
        conn: sqlite3.Connection, d: Declaration, lease_until: float | None, now: float
    ) -> None:
        if lease_until is None:
            conn.execute(
                "INSERT OR IGNORE INTO queues (name, lease_until, created_at) VALUES (?, NULL, ?)",
                (d.queue, now),
            )
        else:
            conn.execute(
                "INSERT INTO queues (name, lease_until, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET lease_until = excluded.lease_until "
                "WHERE lease_until IS NOT NULL",
                (d.queue, lease_until, now),
            )
        if d.exchange is not None:
            conn.execute(
                "INSERT OR IGNORE INTO bindings (exchange, routing_key, queue) VALUES (?, ?, ?)",
                (d.exchange, d.routing_key, d.queue),
            )

    def delete_queue(self, name: str) -> int:
        """Delete a queue, its bindings and its messages; return how many messages went."""

        def write() -> int:
            with self._transaction(f"deleting queue {name}") as conn:
                return self._delete_queue(conn, name)

        return self._draining(write)

    @staticmethod
    def _delete_queue(conn: sqlite3.Connection, name: str) -> int:
        dropped = conn.execute("DELETE FROM messages WHERE queue = ?", (name,)).rowcount
        conn.execute("DELETE FROM bindings WHERE queue = ?", (name,))
        conn.execute("DELETE FROM queues WHERE name = ?", (name,))
        return dropped

    # -- publishing -----------------------------------------------------------------------

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: str,
        *,
        fanout: bool = False,
        declare: Declaration | None = None,
        expires_at: float | None = None,
        limits: Limits | None = None,
        busy: float | None = None,
    ) -> int:
        """Store a copy of ``body`` in every live queue bound to ``routing_key`` in ``exchange``.

        Exchange ``""`` routes to the queue named ``routing_key``, if it exists.

        Args:
            exchange: the exchange.
            routing_key: the routing key (ignored with ``fanout``).
            body: the encoded message.
            fanout: copy to every queue bound to the exchange.
            declare: a durable queue and binding to create first (the publisher
                of a notification declares its default queue).
            expires_at: wall-clock time after which unconsumed copies are dropped.
            limits: the disk bound to enforce; None for none (replies).
            busy: seconds to wait for another process's write transaction, if
                shorter than the store's busy timeout.

        Returns:
            How many queues got a copy.

        Raises:
            MessageDeliveryFailure: the disk bound would be passed (nothing stored).
            StoreError: the database failed (locked past the busy timeout, disk full...).
        """
        now = time.time()
        size = len(body.encode("utf-8"))
        values = {
            "exchange": exchange,
            "key": routing_key,
            "body": body,
            "size": size,
            "now": now,
            "expires": expires_at,
        }
        kind = "direct" if exchange == "" else ("fanout" if fanout else "topic")
        what = f"publishing to {exchange!r} with key {routing_key!r}"
        # Replies (no limits) may use the room: their caller waits for them.
        if limits is not None and self.reserve.withheld():
            raise StoreError(
                f"sqlite bus {self.path}: {what} refused: the disk is full "
                f"({_free_space(self.path)}; listeners are using the {self.reserve.size}-byte "
                f"disk reserve, and sends wait until that much is free: disk_reserve option)",
                "SQLITE_FULL",
            )
        with self._transaction(what, busy) as conn:
            if declare is not None:
                self._declare(conn, declare, None, now)
            routed = conn.execute(_insert_sql(kind), values).rowcount
            if routed and limits is not None:
                self._check_limits(conn, limits, now, size, routed)
        if routed:
            self._on_visible()
        return routed

    def _check_limits(
        self, conn: sqlite3.Connection, limits: Limits, now: float, size: int, copies: int
    ) -> None:
        messages, used = conn.execute("SELECT messages, bytes FROM usage").fetchone()
        if not self._past(limits, messages, used):
            return
        self._collect(conn, now)  # expired requests and dead queues do not count
        messages, used = conn.execute("SELECT messages, bytes FROM usage").fetchone()
        problems = self._past(limits, messages, used)
        if problems:
            raise MessageDeliveryFailure(
                f"The sqlite bus {self.path} is full: this message ({copies} x {size} bytes) "
                f"would make "
                f"{', '.join(problems)} ([oslo_messaging_sqlite] option, or the same name in the "
                "transport URL's query); it was not stored. Consume or purge queues, or raise "
                "the bound."
            )

    @staticmethod
    def _past(limits: Limits, messages: int, used: int) -> list[str]:
        problems = []
        if limits.max_bytes and used > limits.max_bytes:
            problems.append(f"{used} bytes of message bodies, past max_bytes = {limits.max_bytes}")
        if limits.max_messages and messages > limits.max_messages:
            problems.append(f"{messages} messages, past max_messages = {limits.max_messages}")
        return problems

    # -- consuming ------------------------------------------------------------------------

    @staticmethod
    def _candidates(
        conn: sqlite3.Connection,
        queues: Sequence[str],
        now: float,
        limit: int,
        max_bytes: int = 0,
    ) -> list[int]:
        params: dict[str, object] = {f"q{index}": name for index, name in enumerate(queues)}
        params.update(now=now, limit=limit)
        ids: list[int] = []
        total = 0
        for message_id, size in conn.execute(_peek_sql(len(queues)), params):
            total += size
            if ids and max_bytes and total > max_bytes:
                break  # the first message is always taken, however large
            ids.append(message_id)
        return ids

    def claim(
        self,
        queues: Sequence[str],
        consumer: str,
        visible_for: float,
        limit: int,
        max_bytes: int = 0,
    ) -> list[StoredMessage]:
        """Claim up to ``limit`` visible messages of ``queues``, oldest first.

        They stay stored, invisible for ``visible_for`` seconds, until acknowledged,
        requeued or released with the claim token (``consumer``, ``deliveries``).
        With ``max_bytes``, the claimed bodies add up to at most that many bytes
        (always one message at least).
        """
        now = time.time()
        with self._reading("looking for messages") as conn:
            ids = self._candidates(conn, queues, now, limit, max_bytes)
        if not ids:
            return []
        sql = (
            "UPDATE messages SET claimed_by = ?, visible_at = ?, deliveries = deliveries + 1 "
            f"WHERE id IN ({_marks(len(ids))}) AND visible_at <= ? "
            f"AND (expires_at IS NULL OR expires_at > ?) RETURNING {_COLUMNS}"
        )

        def write() -> list[tuple[int, str, str, int]]:
            with self._transaction("claiming messages") as conn:
                return conn.execute(sql, (consumer, now + visible_for, *ids, now, now)).fetchall()

        rows = self._draining(write)
        return sorted((StoredMessage(*row) for row in rows), key=lambda m: m.id)

    def take(self, queues: Sequence[str], limit: int) -> list[StoredMessage]:
        """Take (delete and return) up to ``limit`` visible messages of ``queues``, oldest first."""
        now = time.time()
        with self._reading("looking for messages") as conn:
            ids = self._candidates(conn, queues, now, limit)
        if not ids:
            return []
        sql = (
            f"DELETE FROM messages WHERE id IN ({_marks(len(ids))}) AND visible_at <= ? "
            f"AND (expires_at IS NULL OR expires_at > ?) RETURNING {_COLUMNS}"
        )

        def write() -> list[tuple[int, str, str, int]]:
            with self._transaction("taking messages") as conn:
                return conn.execute(sql, (*ids, now, now)).fetchall()

        rows = self._draining(write)
        return sorted((StoredMessage(*row) for row in rows), key=lambda m: m.id)

    def next_visible(self, queues: Sequence[str]) -> float | None:
        """The wall-clock time the next claimed message of ``queues`` becomes visible again."""
        now = time.time()
        sql = (
            f"SELECT min(visible_at) FROM messages WHERE queue IN ({_marks(len(queues))}) "
            "AND visible_at > ?"
        )
        with self._reading("looking for claimed messages") as conn:
            value = conn.execute(sql, (*queues, now)).fetchone()[0]
        return None if value is None else float(value)

    # -- settling claims ------------------------------------------------------------------

    def ack(self, message: StoredMessage, consumer: str) -> bool:
        """Delete a claimed message; False if the claim was lost (nothing done)."""
        return self._settle("DELETE FROM messages", message, consumer, "acknowledging")

    def requeue(self, message: StoredMessage, consumer: str) -> bool:
        """Make a claimed message visible again at once; False if the claim was lost."""
        change = "UPDATE messages SET visible_at = 0, claimed_by = NULL"
        done = self._settle(change, message, consumer, "requeueing")
        if done:
            self._on_visible()
        return done

    def _settle(self, change: str, message: StoredMessage, consumer: str, what: str) -> bool:
        sql = f"{change} WHERE id = ? AND claimed_by = ? AND deliveries = ?"

        def write() -> bool:
            with self._transaction(f"{what} a message") as conn:
                return conn.execute(sql, (message.id, consumer, message.deliveries)).rowcount == 1

        return self._draining(write)

    def release(self, consumer: str) -> int:
        """Make every message ``consumer`` claimed visible again; return how many."""

        def write() -> int:
            with self._transaction("releasing claimed messages") as conn:
                return conn.execute(
                    "UPDATE messages SET visible_at = 0, claimed_by = NULL WHERE claimed_by = ?",
                    (consumer,),
                ).rowcount

        count = self._draining(write)
        if count:
            self._on_visible()
        return count

    def extend_claims(self, consumers: Sequence[str], visible_for: float) -> int:
        """Keep the messages claimed by ``consumers`` invisible ``visible_for`` seconds more."""
        if not consumers:
            return 0
        sql = f"UPDATE messages SET visible_at = ? WHERE claimed_by IN ({_marks(len(consumers))})"

        def write() -> int:
            with self._transaction("extending claims") as conn:
                return conn.execute(sql, (time.time() + visible_for, *consumers)).rowcount

        return self._draining(write)

    def park(self, message: StoredMessage, reason: str, consumer: str | None = None) -> None:
        """Move a message that cannot be handled to ``dead_letters`` (claimed or taken).

        Past the bound of parked messages, the oldest ones are dropped (logged).
        """

        def write() -> tuple[int, int, int]:
            with self._transaction("parking a message") as conn:
                if consumer is not None:
                    conn.execute(
                        "DELETE FROM messages WHERE id = ? AND claimed_by = ?",
                        (message.id, consumer),
                    )
                conn.execute(
                    "INSERT INTO dead_letters (queue, body, reason, parked_at) VALUES (?, ?, ?, ?)",
                    (message.queue, message.body, reason, time.time()),
                )
                return self._bound_parked(conn)

        dropped, messages, used = self._draining(write)
        if dropped:
            LOG.error(
                "Dropped the %d oldest parked message(s) of the sqlite bus %s to stay within "
                "max_parked = %d and max_parked_bytes = %d; it holds %d parked message(s), %d "
                "bytes: look at them and purge what is handled",
                dropped,
                self.path,
                self.parked.max_messages,
                self.parked.max_bytes,
                messages,
                used,
            )

    def _bound_parked(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        # How many were dropped, and how many messages and bytes stay parked.
        messages, used = conn.execute("SELECT messages, bytes FROM dead_letter_usage").fetchone()
        if not self._past(self.parked, messages, used):
            return 0, messages, used
        max_messages, max_bytes = self.parked.max_messages, self.parked.max_bytes
        doomed: list[int] = []
        rows = conn.execute(
            "SELECT id, length(CAST(body AS BLOB)) FROM dead_letters ORDER BY id LIMIT ?",
            (messages - 1,),  # never the newest
        )
        for row_id, size in rows:
            if (not max_messages or messages <= max_messages) and (
                not max_bytes or used <= max_bytes
            ):
                break
            doomed.append(row_id)
            messages, used = messages - 1, used - size
        for start in range(0, len(doomed), 500):
            chunk = doomed[start : start + 500]
            conn.execute(f"DELETE FROM dead_letters WHERE id IN ({_marks(len(chunk))})", chunk)
        return len(doomed), messages, used

    # -- housekeeping ---------------------------------------------------------------------

    def collect(self) -> tuple[int, list[str]]:
        """Drop expired messages and transient queues whose lease ended.

        Returns:
            How many expired messages were dropped, and the queues deleted.
        """

        def write() -> tuple[int, list[str]]:
            with self._transaction("collecting expired messages and queues") as conn:
                return self._collect(conn, time.time())

        return self._draining(write)

    @staticmethod
    def _collect(conn: sqlite3.Connection, now: float) -> tuple[int, list[str]]:
        expired = conn.execute(
            "DELETE FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
        ).rowcount
        if expired:
            LOG.debug("Dropped %d expired message(s)", expired)
        dead = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM queues WHERE lease_until IS NOT NULL AND lease_until <= ?",
                (now,),
            )
        ]
        for name in dead:
            dropped = Store._delete_queue(conn, name)
            LOG.info(
                "Deleted queue %s, not renewed by its process, with %d message(s)", name, dropped
            )
        return expired, dead

    # -- inspection -----------------------------------------------------------------------

    def usage(self) -> tuple[int, int]:
        """How many messages and bytes of message bodies are stored."""
        with self._reading("reading usage") as conn:
            messages, used = conn.execute("SELECT messages, bytes FROM usage").fetchone()
        return int(messages), int(used)

    def queue_names(self) -> list[str]:
        """The names of the existing queues, sorted."""
        with self._reading("listing queues") as conn:
            return [row[0] for row in conn.execute("SELECT name FROM queues ORDER BY name")]

    def bodies(self, queue: str) -> list[str]:
        """The unexpired bodies stored in ``queue`` (claimed ones too), oldest first."""
        with self._reading(f"reading queue {queue}") as conn:
            return [
                row[0]
                for row in conn.execute(
                    f"SELECT body FROM messages WHERE queue = :queue AND {_LIVE} ORDER BY id",
                    {"queue": queue, "now": time.time()},
                )
            ]

    def parked_usage(self) -> tuple[int, int]:
        """How many messages and bytes of their bodies are parked."""
        with self._reading("reading parked usage") as conn:
            messages, used = conn.execute(
                "SELECT messages, bytes FROM dead_letter_usage"
            ).fetchone()
        return int(messages), int(used)

    def dead_letters(self) -> list[tuple[str, str, str]]:
        """``(queue, body, reason)`` of every parked message, oldest first."""
        with self._reading("reading dead letters") as conn:
            rows = conn.execute("SELECT queue, body, reason FROM dead_letters ORDER BY id")
            return [(str(q), str(b), str(r)) for q, b, r in rows]


def _free_space(path: str) -> str:
    """How much room the file system of ``path`` has left, for an error message."""
    try:
        stats = os.statvfs(os.path.dirname(path) or ".")
    except OSError as exc:
        return f"free space unknown: {exc.strerror or exc}"
    return f"{stats.f_bavail * stats.f_frsize} bytes free on the disk holding it"
