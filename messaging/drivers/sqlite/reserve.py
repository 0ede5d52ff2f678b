"""Disk space kept next to a sqlite bus so that listeners go on taking messages on a full disk.

Taking a message writes to the file too (a claim, an acknowledgement, the
deletion of a request): in WAL mode each transaction appends to the write-ahead
log, which grows until a checkpoint copies it into the database. On a full disk
those writes fail like a send would, and the listeners that could make room by
draining the queues stop. So the first process that opens a bus allocates a
file of ``disk_reserve`` bytes next to it (``<bus>-reserve``, 0600). When a
listener's write fails on a full disk, the store checkpoints the log (so that it
is reused from its start instead of growing), releases the reserve (truncates
the file to 0 bytes, logging a WARNING) and tries once more. While the reserve
is released and the disk has less than ``disk_reserve`` bytes free, sends fail at
once saying so, so that they do not eat the room the listeners need (replies
excepted: the request was taken, and its caller waits). The reserve is
allocated again once the disk has twice its size free.

The file is shared by every process of the bus (any one may release it or
allocate it again); a disk too small for it (less than twice ``disk_reserve``
free when the bus is opened) goes without (no file), with a DEBUG line.
"""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["DiskReserve"]

LOG = logging.getLogger(__name__)


class DiskReserve:
    """The reserve file of one bus.

    Args:
        path: the bus file (the reserve is ``<path>-reserve``).
        size: its size in bytes; 0 for no reserve.

    Attributes:
        bus: the bus file.
        path: the reserve file.
        size: its size in bytes; 0 for no reserve.
    """

    def __init__(self, path: str, size: int) -> None:
        self.bus = path
        self.path = f"{path}-reserve"
        self.size = size
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<DiskReserve {self.path} {self.size} bytes>"

    def free(self) -> int:
        """Bytes free on the disk of the bus for this process (-1 if unknown)."""
        try:
            stats = os.statvfs(os.path.dirname(self.path) or ".")
        except OSError:
            return -1
        return stats.f_bavail * stats.f_frsize

    def _size(self) -> int:
        # -1: no reserve file; 0: one that was released; else its size.
        try:
            return os.stat(self.path).st_size
        except OSError:
            return -1

    def ensure(self) -> bool:
        """Allocate the reserve if it is missing and the disk has twice its size free.

        Returns:
            Whether the reserve is there now (True without a reserve).
        """
        if not self.size or self._size() >= self.size:
            return True
        with self._lock:
            if self._size() >= self.size:
                return True
            if self.free() < 2 * self.size:
                LOG.debug("No room for the %d-byte disk reserve %s", self.size, self.path)
                return False
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            except OSError as exc:
                LOG.debug("Cannot create the disk reserve %s: %s", self.path, exc)
                return False
            try:
                os.posix_fallocate(fd, 0, self.size)
            except OSError as exc:
                os.ftruncate(fd, 0)
                LOG.debug("Cannot allocate the disk reserve %s: %s", self.path, exc)
                return False
            finally:
                os.close(fd)
            return True

    def release(self) -> bool:
        """Give the reserve's room to the listeners; whether there was any.

        The file stays, empty: it says to every process of the bus that sends
        must leave the room to the listeners.
        """
        if not self.size or self._size() <= 0:
            return False
        try:
            os.truncate(self.path, 0)
        except OSError as exc:
            LOG.warning("Cannot release the disk reserve %s: %s", self.path, exc)
            return False
        LOG.warning(
            "The disk of the sqlite bus %s is full: released its %d-byte reserve so that "
            "listeners go on taking messages; sends fail until the disk has %d bytes free",
            self.bus,
            self.size,
            self.size,
        )
        return True

    def withheld(self) -> bool:
        """Whether a send must not write: the reserve was released and the disk is still short.

        Short: less than the reserve's size free. Allocates the reserve again when
        there is room for it. A bus without a reserve file (none, or a disk too
        small for one when the bus was opened) withholds nothing.
        """
        if not self.size:
            return False
        size = self._size()
        if size < 0 or size >= self.size or self.ensure():
            return False
        return 0 <= self.free() < self.size
