"""py-amqp's blocking reads get a bound; its own timed reads keep theirs (a real local socket)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import amqp.transport
import pytest

from messaging.drivers.rabbit.sockets import bound_blocking_reads


@dataclass
class Conn:
    transport: Any

    @property
    def sock(self) -> socket.socket:
        return self.transport.sock  # type: ignore[no-any-return]


@pytest.fixture
def transport() -> Iterator[Any]:
    server = socket.create_server(("127.0.0.1", 0))
    transport = amqp.transport.TCPTransport(f"127.0.0.1:{server.getsockname()[1]}", 5)
    transport.connect()
    peer, _ = server.accept()
    server.close()
    try:
        yield transport
    finally:
        peer.close()
        transport.close()


def test_a_read_that_would_block_forever_fails_after_the_bound(transport: Any) -> None:
    bound_blocking_reads(Conn(transport), 0.2)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"sent nothing for 0\.2 s"):
        transport._read(7)
    assert 0.15 < time.monotonic() - started < 5


def test_a_read_with_py_amqps_own_timeout_keeps_it(transport: Any) -> None:
    bound_blocking_reads(Conn(transport), 30)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(socket.timeout), transport.having_timeout(0):
        transport.read_frame()  # drain_events(timeout=0): returns at once, as py-amqp expects
    assert time.monotonic() - started < 5
