"""The sqlite transport driver (``sqlite:///path/bus.db``): durable, cross-process, no server.

The embedded default transport: a bus in one sqlite file (WAL mode) that the
processes of one host share. Modules, by role: :mod:`~.options` (settings and
the URL's path), :mod:`~.schema` (the file's versioned layout),
:mod:`~.store` (the transactions: publish, claim, take, acknowledge, expire,
the disk bound), :mod:`~.wakeup` (how a waiting listener learns of a new
message), :mod:`~.bus` (what a process shares per file), :mod:`~.reply`
(the reply queue), :mod:`~.listener` and :mod:`~.driver`.
"""

from messaging.drivers.sqlite.driver import SqliteDriver
from messaging.drivers.sqlite.options import list_opts

__all__ = ["SqliteDriver", "list_opts"]
