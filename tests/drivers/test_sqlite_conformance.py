"""The driver conformance suite on the sqlite driver: a fresh database file per test.

After each test, the file is checked: nothing was parked as undecodable but the
poison the test sent, and once every transport is cleaned up, no process of ours
still has it open.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import messaging
from messaging.drivers.base import Capabilities
from messaging.drivers.sqlite.bus import open_buses
from messaging.drivers.sqlite.store import Store
from tests.drivers.conformance import DriverHarness, NotificationConformance, RPCConformance
from tests.drivers.conformance_asyncio import AsyncioConformance

SQLITE_CAPABILITIES = Capabilities(requeue=True, pools=True, fanout=True, rpc=True)


class SqliteFile(DriverHarness):
    """A fresh bus file in the test's temporary directory."""

    capabilities: ClassVar[Capabilities | None] = SQLITE_CAPABILITIES

    def setup_broker(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="messaging-sqlite-"))
        self.database = self.directory / "bus.db"

    def transport_url(self) -> str:
        return f"sqlite:///{self.database}"

    def inject_raw(
        self, transport: messaging.Transport, topic: str, rpc: bool, bodies: Sequence[str]
    ) -> None:
        # A connection of its own, as another process would write.
        store = Store(str(self.database), busy_timeout=5.0)
        try:
            for body in bodies:
                assert store.publish("", topic if rpc else f"{topic}.info", body) == 1
        finally:
            store.close()

    def parked_count(self) -> int:
        store = Store(str(self.database), busy_timeout=5.0)
        try:
            return len(store.dead_letters())
        finally:
            store.close()

    def teardown_broker(self) -> None:
        assert not [bus for bus in open_buses() if bus.path == str(self.database)], (
            "the bus is still open after every transport was cleaned up"
        )
        try:
            parked = self.parked_count()
            assert parked == self.parked_expected, (
                f"{parked} messages were parked, {self.parked_expected} expected"
            )
        finally:
            shutil.rmtree(self.directory)


class TestSqliteNotifications(SqliteFile, NotificationConformance):
    """Notifications on ``sqlite://``."""


class TestSqliteRPC(SqliteFile, RPCConformance):
    """RPC on ``sqlite://``."""


class TestSqliteAsyncio(SqliteFile, AsyncioConformance):
    """Async endpoints and clients on sqlite."""
