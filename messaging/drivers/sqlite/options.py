"""Options of the sqlite driver, the typed settings built from them, and the database path.

The options live in ``[oslo_messaging_sqlite]``; a transport URL's query overrides
them (``sqlite:////var/lib/app/bus.db?visibility_timeout=5``).

Where the database file is (:func:`database_path`), following SQLAlchemy's
convention for sqlite URLs:

- ``sqlite:///relative/bus.db`` (three slashes): relative to the current
  directory of the process that opens it (made absolute once, when the
  transport is created);
- ``sqlite:////abs/bus.db`` (four slashes): an absolute path;
- ``sqlite:///~/bus.db``: ``~`` is expanded to the user's home;
- ``sqlite://`` or ``sqlite:///``: the ``database`` option, by default
  ``$XDG_STATE_HOME/messaging/bus.db`` (``~/.local/state/messaging/bus.db``).

The directory of the file is created if needed, readable by its owner only
(0700), as is the file (0600): a bus holds pending notifications and RPC
arguments. A URL with a host, a path
naming a directory, ``:memory:`` (which other processes could not share) or a
directory that cannot be created is an ``InvalidTransportURL`` that says why.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from messaging.confhelpers import OptionGroup, refuse_invalid, settings_of
from messaging.exceptions import InvalidTransportURL

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.transport import TransportURL

__all__ = [
    "SQLITE_GROUP",
    "WAKEUP_MODES",
    "SqliteSettings",
    "database_path",
    "default_database",
    "list_opts",
    "make_private_dirs",
    "register_sqlite_opts",
    "shown_url",
    "sqlite_opts",
]

SQLITE_GROUP = "oslo_messaging_sqlite"
WAKEUP_MODES = ("auto", "inotify", "poll")
SYNCHRONOUS_MODES = ("normal", "full")

_MIB = 1024 * 1024


def default_database() -> str:
    """The database used when a URL names none: ``$XDG_STATE_HOME/messaging/bus.db``.

    ``XDG_STATE_HOME`` defaults to ``~/.local/state``; a relative value is
    ignored, as the XDG specification says.
    """
    state = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        state = os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "messaging", "bus.db")


_VISIBILITY_HELP = (
    "Seconds a notification taken by a listener stays invisible to other listeners. A "
    "living listener keeps extending it while it handles the message; once its process "
    "dies, the message is delivered again after at most this long."
)
_MAX_BYTES_HELP = (
    "Bound on the bytes of message bodies stored in the database file; a send that would "
    "go past it fails with an error naming the limit and the file. The file is somewhat "
    "larger (about 1.2 times, with 500-byte messages) plus a write-ahead log of a few MB, "
    "and does not shrink when drained: sqlite reuses its free pages. 0: no bound."
)
_MAX_MESSAGES_HELP = (
    "Bound on the number of messages stored (each copy of a notification counts); a send "
    "past it fails with an error naming the limit and the file. 0: no bound."
)
_WAKEUP_HELP = (
    "How a waiting listener learns of a message written by another process: inotify (Linux) "
    "on the database's directory, or polling PRAGMA data_version every poll_interval. auto: "
    "inotify where available, else polling."
)
_POLL_HELP = "Seconds between checks for new messages when polling (wakeup = poll)."
_BUSY_HELP = (
    "Seconds to wait for another process's write transaction before failing (sqlite's "
    "busy timeout)."
)
_SYNC_HELP = (
    "sqlite's synchronous mode. normal: a committed message survives a crash of any "
    "process but the last ones may be lost if the machine loses power; full: an fsync at "
    "every commit, slower."
)
_TTL_HELP = (
    "Seconds the fanout queue of an RPC server or the reply queue of a client lives after "
    "its process stops renewing it (it renews it every third of this while alive)."
)
_PREFETCH_BYTES_HELP = (
    "Bound on the bytes of the notifications a listener takes at once (prefetch bounds "
    "their number); one is always taken, however large. 0: no bound."
)
_PUBLISH_TIMEOUT_HELP = (
    "Seconds a send may take, tries again included (the database locked by another "
    "process, the disk full), before it fails with MessageDeliveryFailure, whatever its "
    "retry says: a notification sent with the default retry (forever) gives up after this "
    "long. A call's send is bounded by the call's timeout too. The equivalent of "
    "RabbitMQ's publish_confirm_timeout."
)
_DISK_RESERVE_HELP = (
    "Bytes of disk kept free for listeners in a file next to the bus (<bus>-reserve). On a "
    "full disk, a listener's write (taking or acknowledging a message) releases it and goes "
    "on, so that listeners drain the queues while sends fail; sends (not RPC replies) then "
    "fail at once until this much is free again, and the reserve is allocated again once "
    "twice this much is free. A disk with less than twice this free when the bus is opened "
    "goes without. 0: no reserve (on a full disk, listeners stop taking messages until "
    "there is room)."
)
_MAX_PARKED_HELP = (
    "Bound on the number of parked messages (the file's dead letters: notifications that "
    "failed max_delivery_attempts times, messages that cannot be decoded). Parking past it "
    "drops the oldest parked messages, with an ERROR saying how many and what stays. "
    "0: no bound."
)
_MAX_PARKED_BYTES_HELP = (
    "Bound on the bytes of parked message bodies; parking past it drops the oldest parked "
    "messages (the newest is always kept), with an ERROR. 0: no bound."
)
_PREFETCH_HELP = (
    "How many notifications a listener takes at once; each is delivered again if the "
    "listener's process dies before acknowledging it."
)


def _build_opts() -> list[cfg.Opt]:
    from oslo_config import cfg

    opts = [
        cfg.StrOpt(
            "database",
            default=default_database(),
            sample_default="$XDG_STATE_HOME/messaging/bus.db",
            help="Database file used when the transport URL names none (sqlite://).",
        ),
        cfg.FloatOpt("visibility_timeout", default=30.0, min=0.1, help=_VISIBILITY_HELP),
        cfg.IntOpt("max_bytes", default=1024 * _MIB, min=0, help=_MAX_BYTES_HELP),
        cfg.IntOpt("max_messages", default=1_000_000, min=0, help=_MAX_MESSAGES_HELP),
        cfg.StrOpt(
            "wakeup",
            default="auto",
            choices=[
                ("auto", "inotify where available, else poll"),
                ("inotify", "Linux inotify on the database's directory"),
                ("poll", "check PRAGMA data_version every poll_interval"),
            ],
            help=_WAKEUP_HELP,
        ),
        cfg.FloatOpt("poll_interval", default=0.02, min=0.001, max=5.0, help=_POLL_HELP),
        cfg.FloatOpt("busy_timeout", default=10.0, min=0.0, help=_BUSY_HELP),
        cfg.StrOpt(
            "synchronous",
            default="normal",
            choices=[("normal", "no fsync at commit (WAL)"), ("full", "fsync at every commit")],
            help=_SYNC_HELP,
        ),
        cfg.FloatOpt("transient_queue_ttl", default=60.0, min=1.0, help=_TTL_HELP),
        cfg.IntOpt("prefetch", default=16, min=1, max=10_000, help=_PREFETCH_HELP),
        cfg.IntOpt("prefetch_bytes", default=16 * _MIB, min=0, help=_PREFETCH_BYTES_HELP),
        cfg.FloatOpt("publish_timeout", default=30.0, min=0.001, help=_PUBLISH_TIMEOUT_HELP),
        cfg.IntOpt("disk_reserve", default=4 * _MIB, min=0, help=_DISK_RESERVE_HELP),
        cfg.IntOpt("max_parked", default=10_000, min=0, help=_MAX_PARKED_HELP),
        cfg.IntOpt("max_parked_bytes", default=64 * _MIB, min=0, help=_MAX_PARKED_BYTES_HELP),
    ]
    return opts


#: ``[oslo_messaging_sqlite]`` (also read from ``[messaging_sqlite]``); ``list_opts`` is what
#: ``oslo-config-generator`` finds through the ``messaging.drivers`` entry point.
OPTIONS = OptionGroup(SQLITE_GROUP, _build_opts)
sqlite_opts, register_sqlite_opts, list_opts = OPTIONS.opts, OPTIONS.register, OPTIONS.list_opts


@dataclass(frozen=True)
class SqliteSettings:
    """The sqlite driver's options, typed and checked, read once.

    Every field is the option of the same name (see :func:`sqlite_opts`).

    Raises:
        ConfigurationError: an option is out of range; the message names it.
    """

    database: str = ""
    visibility_timeout: float = 30.0
    max_bytes: int = 1024 * _MIB
    max_messages: int = 1_000_000
    wakeup: str = "auto"
    poll_interval: float = 0.02
    busy_timeout: float = 10.0
    synchronous: str = "normal"
    transient_queue_ttl: float = 60.0
    prefetch: int = 16
    prefetch_bytes: int = 16 * _MIB
    publish_timeout: float = 30.0
    disk_reserve: int = 4 * _MIB
    max_parked: int = 10_000
    max_parked_bytes: int = 64 * _MIB

    def __post_init__(self) -> None:
        problems = []
        if self.wakeup not in WAKEUP_MODES:
            problems.append(f"wakeup {self.wakeup!r} is not one of {', '.join(WAKEUP_MODES)}")
        if self.synchronous not in SYNCHRONOUS_MODES:
            problems.append(
                f"synchronous {self.synchronous!r} is not one of {', '.join(SYNCHRONOUS_MODES)}"
            )
        positive = (
            "visibility_timeout",
            "poll_interval",
            "transient_queue_ttl",
            "prefetch",
            "publish_timeout",
        )
        problems += [f"{name} must be above 0" for name in positive if getattr(self, name) <= 0]
        nonnegative = (
            "max_bytes",
            "max_messages",
            "busy_timeout",
            "prefetch_bytes",
            "disk_reserve",
            "max_parked",
            "max_parked_bytes",
        )
        problems += [
            f"{name} must not be negative" for name in nonnegative if getattr(self, name) < 0
        ]
        refuse_invalid("sqlite driver", SQLITE_GROUP, problems)

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, url: TransportURL) -> SqliteSettings:
        """Read ``[oslo_messaging_sqlite]`` with ``url``'s query on top.

        Raises:
            InvalidTransportURL: a query parameter names no option or does not convert.
            ConfigurationError: an option is out of range.
        """
        values: dict[str, Any] = OPTIONS.read(conf, url.query, shown_url(url))
        return settings_of(cls, values)


def shown_url(url: TransportURL) -> str:
    """``url`` for messages: without passwords, its path not percent-encoded."""
    return urllib.parse.unquote(url.redacted())


def make_private_dirs(directory: str) -> None:
    """Create ``directory`` and any missing parent, each readable by its owner only (0700).

    Existing directories keep their mode.
    """
    missing = []
    while directory and not os.path.isdir(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    for name in reversed(missing):
        try:
            os.mkdir(name, 0o700)
        except FileExistsError:
            if not os.path.isdir(name):
                raise


def database_path(url: TransportURL, settings: SqliteSettings) -> str:
    """The absolute path of the database file a ``sqlite://`` URL names; its directory exists.

    See the module documentation for the URL forms.

    Raises:
        InvalidTransportURL: the URL has a host, names ``:memory:`` or a directory,
            or the file's directory cannot be created.
    """
    shown = shown_url(url)
    if url.hosts:
        raise InvalidTransportURL(
            str(url),
            f"Transport URL {shown!r} names a host; a sqlite bus is a file on this machine: "
            "write sqlite:///relative/path.db or sqlite:////absolute/path.db",
        )
    raw = url.virtual_host or settings.database
    if not raw:
        raise InvalidTransportURL(
            str(url),
            f"Transport URL {shown!r} names no database file and the option "
            f"[{SQLITE_GROUP}] database is empty",
        )
    if raw == ":memory:" or raw.startswith("file:"):
        raise InvalidTransportURL(
            str(url),
            f"Transport URL {shown!r}: {raw!r} is not supported; the sqlite bus must be a file "
            "that other processes can open (use fake:// for an in-process bus)",
        )
    path = os.path.abspath(os.path.expanduser(raw))
    if raw.endswith(("/", os.sep)) or os.path.isdir(path):
        raise InvalidTransportURL(
            str(url), f"Transport URL {shown!r} names the directory {path!r}, not a database file"
        )
    directory = os.path.dirname(path)
    try:
        make_private_dirs(directory)
    except OSError as exc:
        raise InvalidTransportURL(
            str(url),
            f"Transport URL {shown!r}: cannot create the directory {directory!r} of the "
            f"database file: {exc.strerror or exc}",
        ) from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InvalidTransportURL(
            str(url),
            f"Transport URL {shown!r}: the directory {directory!r} of the database file is not "
            "writable (sqlite needs to create its -wal and -shm files there)",
        )
    return path
