"""What every unit test shares: no in-memory broker left over from another test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from messaging.drivers.memory import reset_brokers


@pytest.fixture(autouse=True)
def _fresh_broker() -> Iterator[None]:
    reset_brokers()
    yield
    reset_brokers()
