"""The layout of a sqlite bus file, versioned, and how a connection to it is opened.

A bus file is an ordinary sqlite database in WAL mode (readers never block the
writer, and several processes may use it at once) marked with
``PRAGMA application_id`` :data:`APPLICATION_ID`, so that a file of another
application is refused instead of being written into, and with
``PRAGMA user_version`` :data:`SCHEMA_VERSION`, so that a file written by a
newer release is refused with a clear error rather than misread.

Tables (the model is RabbitMQ's, as the other drivers use it):

- ``queues``: a name, and for transient queues (RPC fanout and reply queues) the
  wall-clock time ``lease_until`` after which a queue nobody renewed is deleted
  with its messages; durable queues have none.
- ``bindings``: which queue gets a copy of what is published to an exchange
  with a routing key (a fanout exchange gives a copy to every bound queue).
- ``messages``: one row per copy; ``visible_at`` is when it may be taken
  (a taken notification is invisible until its visibility timeout ends),
  ``claimed_by`` the listener holding it, ``deliveries`` how often it was taken,
  ``expires_at`` when an unanswered RPC call request is dropped.
- ``usage``: one row counting the messages and body bytes stored, kept by
  triggers, for the disk bound.
- ``dead_letters``: messages that could not be decoded or failed too often,
  kept for inspection; ``dead_letter_usage`` counts them and their body bytes
  (kept by triggers), for their bound. It was added without a new schema
  version (an earlier release ignores it, and its parking keeps it up to date):
  a file that lacks it gets it when opened.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time

from messaging.exceptions import TransportDriverError

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "connect"]

LOG = logging.getLogger(__name__)

#: "msgb" in ASCII: marks a file as a messaging bus.
APPLICATION_ID = 0x6D736762
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    lease_until REAL,
    created_at REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE bindings (
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    queue TEXT NOT NULL,
    PRIMARY KEY (exchange, routing_key, queue)
) WITHOUT ROWID;
CREATE INDEX bindings_by_queue ON bindings (queue);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    expires_at REAL,
    visible_at REAL NOT NULL DEFAULT 0,
    claimed_by TEXT,
    deliveries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_by_queue ON messages (queue, id);
CREATE INDEX messages_by_claimer ON messages (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE INDEX messages_expiring ON messages (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE usage (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    messages INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT INTO usage (id, messages, bytes) VALUES (0, 0, 0);
CREATE TRIGGER usage_on_insert AFTER INSERT ON messages BEGIN
    UPDATE usage SET messages = messages + 1, bytes = bytes + NEW.size WHERE id = 0;
END;
CREATE TRIGGER usage_on_delete AFTER DELETE ON messages BEGIN
    UPDATE usage SET messages = messages - 1, bytes = bytes - OLD.size WHERE id = 0;
END;

CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    parked_at REAL NOT NULL
);
"""

# Setting journal_mode needs a moment with no other connection writing; several
# processes creating the same file at once may each have to try again.
_SETUP_ATTEMPTS = 50
_SETUP_PAUSE = 0.05


def connect(path: str, busy_timeout: float, synchronous: str = "normal") -> sqlite3.Connection:
    """Open the bus file at ``path`` (created if needed) and check or create its schema.

    The connection is in autocommit mode (transactions are begun explicitly) and
    may be used from any thread, one at a time.

    A file created here is readable and writable by its owner only (0600); sqlite
    gives its ``-wal`` and ``-shm`` files the same mode. An existing file keeps its
    mode (a warning says so when any local user can read it).

    Raises:
        TransportDriverError: the file cannot be opened or written, is not a sqlite
            database, belongs to another application, or has a newer schema version.
    """
    _create_private(path)
    try:
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise TransportDriverError(f"Cannot open the sqlite bus {path!r}: {exc}") from exc
    try:
        _check_access(path)
        _setup(conn, path, synchronous)
    except BaseException:
        conn.close()
        raise
    return conn


def _create_private(path: str) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise TransportDriverError(
            f"Cannot create the sqlite bus {path!r}: {exc.strerror or exc}"
        ) from exc


def _check_access(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise TransportDriverError(f"Cannot open the sqlite bus {path!r}: {exc}") from exc
    if not os.access(path, os.R_OK | os.W_OK):
        raise TransportDriverError(
            f"The sqlite bus {path!r} is not readable and writable by this process "
            f"(mode {stat.filemode(mode)}, owner uid {os.stat(path).st_uid}, this process "
            f"uid {os.geteuid()}): senders and listeners both write to it"
        )
    if mode & stat.S_IROTH:
        LOG.warning(
            "The sqlite bus %s is readable by every local user (mode %s): they can read its "
            "pending notifications and RPC arguments; chmod o-r it",
            path,
            stat.filemode(mode),
        )


def _setup(conn: sqlite3.Connection, path: str, synchronous: str) -> None:
    for attempt in range(_SETUP_ATTEMPTS):
        try:
            conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise TransportDriverError(
                    f"The sqlite bus {path!r} cannot use WAL mode (journal_mode stays {mode!r}); "
                    "is it on a network file system?"
                )
            _check_or_create_schema(conn, path)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt + 1 == _SETUP_ATTEMPTS:
                raise TransportDriverError(f"Cannot set up the sqlite bus {path!r}: {exc}") from exc
            time.sleep(_SETUP_PAUSE)  # another process holds the file while creating it
        except sqlite3.DatabaseError as exc:
            raise TransportDriverError(f"{path!r} is not a usable sqlite database: {exc}") from exc


# Added to files of version 1 that lack them, in the transaction that checks the schema.
_ADDITIONS = """
CREATE TABLE IF NOT EXISTS dead_letter_usage (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    messages INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO dead_letter_usage (id, messages, bytes)
    SELECT 0, count(*), total(length(CAST(body AS BLOB))) FROM dead_letters;
CREATE TRIGGER IF NOT EXISTS dead_letter_usage_on_insert AFTER INSERT ON dead_letters BEGIN
    UPDATE dead_letter_usage SET messages = messages + 1,
        bytes = bytes + length(CAST(NEW.body AS BLOB)) WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS dead_letter_usage_on_delete AFTER DELETE ON dead_letters BEGIN
    UPDATE dead_letter_usage SET messages = messages - 1,
        bytes = bytes - length(CAST(OLD.body AS BLOB)) WHERE id = 0;
END;
"""


def _check_or_create_schema(conn: sqlite3.Connection, path: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id == 0 and version == 0 and tables == 0:
            # executescript() would commit half-way; run the statements one by one.
            for statement in _statements(_SCHEMA):
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif app_id != APPLICATION_ID:
            raise TransportDriverError(
                f"{path!r} is a sqlite database of another application (application_id "
                f"{app_id:#x}, {tables} schema objects), not a messaging bus; "
                "name another file in the transport URL"
            )
        elif version > SCHEMA_VERSION:
            raise TransportDriverError(
                f"The sqlite bus {path!r} has schema version {version}, written by a newer "
                f"release of messaging; this one reads version {SCHEMA_VERSION}"
            )
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'dead_letter_usage_on_delete'"
        ).fetchone():
            for statement in _statements(_ADDITIONS):
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    # Split on statement ends, keeping trigger bodies (which hold ';') whole.
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]
