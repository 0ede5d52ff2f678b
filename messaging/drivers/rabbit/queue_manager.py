"""Stable names for reply and fanout queues (``use_queue_manager``), as oslo.messaging.

With ``use_queue_manager`` a process names its reply queue and its servers'
fanout queues ``reply_<hostname>:<processname>:<n>`` and
``<topic>_fanout_<hostname>:<processname>:<n>`` instead of using a random id, so
that a restarted service declares the same queues again rather than new ones
(RabbitMQ keeps every queue name as an atom, and quorum queues with random names
pile up).

``n`` counts the queues named so far by the processes of one process group on
the host, so that the workers a service forks get different names; the count
lives in a small file (``/dev/shm`` where there is one), locked while it is read
and written, and starts again at 1 when the process group, or the start time of
its leader, is not the one the file recorded: a restarted service reuses its
names. oslo.messaging keeps the same count under an oslo.concurrency lock; this
module locks the file itself (``fcntl``), so no ``lock_path`` is needed.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from typing import TYPE_CHECKING

from messaging.drivers.rabbit.topology import queue_manager_unique

if TYPE_CHECKING:
    from messaging.drivers.rabbit.options import RabbitSettings

__all__ = ["counter_path", "next_counter", "queue_unique"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def counter_path(hostname: str, processname: str) -> str:
    """The file that holds the count of ``hostname`` and ``processname``."""
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    name = f"messaging_qmanager_{_UNSAFE.sub('_', hostname)}_{_UNSAFE.sub('_', processname)}"
    return os.path.join(directory, name)


def _group_start_time(pgid: int) -> str:
    # Field 22 of /proc/<pid>/stat, after the command name in parentheses.
    try:
        with open(f"/proc/{pgid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return "0"


def next_counter(path: str) -> int:
    """Take the next number of ``path``'s count (1 for a new process group).

    Args:
        path: the count's file (see :func:`counter_path`); created if missing.

    Returns:
        The number, unique among the processes of this process group.
    """
    import fcntl

    pgid = os.getpgid(0)
    started = _group_start_time(pgid)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        recorded = os.read(fd, 256).decode("ascii", "replace").split(":")
        counter = 0
        if len(recorded) == 3 and recorded[0] == str(pgid) and recorded[2] == started:
            with contextlib.suppress(ValueError):
                counter = int(recorded[1])
        counter += 1
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, f"{pgid}:{counter}:{started}".encode("ascii"))
        return counter
    finally:
        os.close(fd)  # releases the lock


def queue_unique(settings: RabbitSettings) -> str:
    """The part that tells a reply or fanout queue of this process from the others'.

    A random hex id, or with ``use_queue_manager`` the stable
    ``<hostname>:<processname>:<n>``.
    """
    if not settings.use_queue_manager:
        return uuid.uuid4().hex
    counter = next_counter(counter_path(settings.hostname, settings.processname))
    return queue_manager_unique(settings, counter)
