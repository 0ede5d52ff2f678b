"""The driver conformance suite on the in-memory driver (``fake://``).

Each test gets its own virtual host, hence its own in-process broker; after the
test, nothing may have been parked on it but the poison the test sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import ClassVar

import messaging
from messaging.drivers.base import Capabilities
from messaging.drivers.memory import get_broker
from tests.drivers.conformance import DriverHarness, NotificationConformance, RPCConformance
from tests.drivers.conformance_asyncio import AsyncioConformance

MEMORY_CAPABILITIES = Capabilities(requeue=True, pools=True, fanout=True, rpc=True)


class MemoryBroker(DriverHarness):
    """A fresh virtual host of the in-memory broker per test."""

    capabilities: ClassVar[Capabilities | None] = MEMORY_CAPABILITIES

    def setup_broker(self) -> None:
        self.virtual_host = f"conformance-{uuid.uuid4().hex}"

    def transport_url(self) -> str:
        return f"fake:///{self.virtual_host}"

    def inject_raw(
        self, transport: messaging.Transport, topic: str, rpc: bool, bodies: Sequence[str]
    ) -> None:
        broker = get_broker(self.virtual_host)
        for body in bodies:
            assert broker.publish("", topic if rpc else f"{topic}.info", body) == 1

    def parked_count(self) -> int:
        return len(get_broker(self.virtual_host).dead_letters)

    def teardown_broker(self) -> None:
        broker = get_broker(self.virtual_host)
        parked = len(broker.dead_letters)
        broker.close()
        assert parked == self.parked_expected, (
            f"{parked} messages were parked, {self.parked_expected} expected: "
            f"{[reason for _queue, _body, reason in broker.dead_letters]}"
        )


class TestMemoryNotifications(MemoryBroker, NotificationConformance):
    """Notifications on ``fake://``."""


class TestMemoryRPC(MemoryBroker, RPCConformance):
    """RPC on ``fake://``."""


class TestMemoryAsyncio(MemoryBroker, AsyncioConformance):
    """Async endpoints and clients on ``fake://``."""
