"""The driver conformance suite on the in-memory driver (``fake://``).

Each test gets its own virtual host, hence its own in-process broker; after the
test, nothing may have been parked as undeliverable on it.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from messaging.drivers.base import Capabilities
from messaging.drivers.memory import get_broker
from tests.drivers.conformance import DriverHarness, NotificationConformance, RPCConformance

MEMORY_CAPABILITIES = Capabilities(requeue=True, pools=True, fanout=True, rpc=True)


class MemoryBroker(DriverHarness):
    """A fresh virtual host of the in-memory broker per test."""

    capabilities: ClassVar[Capabilities | None] = MEMORY_CAPABILITIES

    def setup_broker(self) -> None:
        self.virtual_host = f"conformance-{uuid.uuid4().hex}"

    def transport_url(self) -> str:
        return f"fake:///{self.virtual_host}"

    def teardown_broker(self) -> None:
        broker = get_broker(self.virtual_host)
        assert broker.dead_letters == [], f"messages were parked: {broker.dead_letters}"
        broker.close()


class TestMemoryNotifications(MemoryBroker, NotificationConformance):
    """Notifications on ``fake://``."""


class TestMemoryRPC(MemoryBroker, RPCConformance):
    """RPC on ``fake://``."""
