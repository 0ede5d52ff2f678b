"""Bulk frame reads (``messaging.drivers.rabbit.frames``) on a real py-amqp TCP transport.

The transport is connected to a local socket that plays the broker's side of the
byte stream; what the reader hands to the frame handler is compared with what
was sent.
"""

from __future__ import annotations

import itertools
import select
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import amqp.exceptions
import amqp.transport
import pytest

from messaging.drivers.rabbit.frames import FrameReader, reader_for

TIMEOUT = 5.0


def frame(frame_type: int, channel: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes([end])


@dataclass
class Connection:
    """What :class:`FrameReader` uses of a py-amqp connection: transport, socket, handler."""

    transport: Any
    received: list[tuple[int, int, bytes]] = field(default_factory=list)
    on_frame: Any = None

    @property
    def sock(self) -> socket.socket:
        return self.transport.sock  # type: ignore[no-any-return]

    def on_inbound_frame(self, frame: tuple[int, int, bytes]) -> bool:
        self.received.append(frame)
        if self.on_frame is not None:
            self.on_frame(frame)
        return True


@pytest.fixture
def link() -> Iterator[tuple[Connection, socket.socket, FrameReader]]:
    """A connected transport, the socket of its peer and a reader of the transport."""
    server = socket.create_server(("127.0.0.1", 0))
    transport = amqp.transport.TCPTransport(f"127.0.0.1:{server.getsockname()[1]}", 5)
    transport.connect()
    peer, _ = server.accept()
    server.close()
    peer.recv(8)  # the AMQP protocol header the transport sent
    conn = Connection(transport)
    reader = reader_for(conn)  # type: ignore[arg-type]
    assert reader is not None
    try:
        yield conn, peer, reader
    finally:
        peer.close()
        transport.close()


def read_until(reader: FrameReader, conn: Connection, count: int) -> None:
    while len(conn.received) < count:
        readable, _, _ = select.select([conn.sock], [], [], TIMEOUT)
        assert readable, f"only {len(conn.received)} of {count} frames arrived"
        reader.read_available()


def test_frames_split_anywhere_are_handed_over_whole_and_in_order(
    link: tuple[Connection, socket.socket, FrameReader],
) -> None:
    conn, peer, reader = link
    frames = [frame(1 + n % 3, n % 5, bytes([n]) * (n * 37 % 900)) for n in range(60)]
    stream = b"".join(frames)
    # Cut the stream into pieces that split headers, payloads and end octets.
    cuts = [0, 3, 10, 11, 500, 1200, 1201, len(stream)]
    for start, stop in itertools.pairwise(cuts):
        peer.sendall(stream[start:stop])
        readable, _, _ = select.select([conn.sock], [], [], TIMEOUT)
        assert readable
        reader.read_available()
    read_until(reader, conn, 60)
    assert conn.received == [(1 + n % 3, n % 5, bytes([n]) * (n * 37 % 900)) for n in range(60)]
    assert conn.transport._read_buffer == b""


def test_a_handler_that_makes_py_amqp_read_by_itself_loses_and_repeats_nothing(
    link: tuple[Connection, socket.socket, FrameReader],
) -> None:
    # As a synchronous py-amqp method does: read the next frame itself, from the
    # middle of what the bulk reader already took off the socket.
    conn, peer, reader = link
    read_by_py_amqp: list[tuple[int, int, bytes]] = []

    def on_frame(got: tuple[int, int, bytes]) -> None:
        if got[2] == b"sync":
            read_by_py_amqp.append(conn.transport.read_frame())

    conn.on_frame = on_frame
    peer.sendall(
        frame(1, 1, b"a") + frame(1, 1, b"sync") + frame(1, 2, b"reply") + frame(1, 1, b"b")
    )
    read_until(reader, conn, 3)
    assert read_by_py_amqp == [(1, 2, b"reply")]
    assert [f[2] for f in conn.received] == [b"a", b"sync", b"b"]


def test_nothing_to_read_returns_at_once(
    link: tuple[Connection, socket.socket, FrameReader],
) -> None:
    _conn, _peer, reader = link
    assert reader.read_available() == 0


def test_a_corrupt_frame_end_is_an_unexpected_frame(
    link: tuple[Connection, socket.socket, FrameReader],
) -> None:
    conn, peer, reader = link
    peer.sendall(frame(1, 1, b"payload", end=0x00))
    select.select([conn.sock], [], [], TIMEOUT)
    with pytest.raises(amqp.exceptions.UnexpectedFrame, match="0x00"):
        reader.read_available()


def test_the_broker_closing_the_socket_is_a_connection_error(
    link: tuple[Connection, socket.socket, FrameReader],
) -> None:
    conn, peer, reader = link
    peer.close()
    select.select([conn.sock], [], [], TIMEOUT)
    with pytest.raises(OSError, match="closed"):
        reader.read_available()


def test_tls_transports_are_left_to_py_amqp() -> None:
    transport = amqp.transport.SSLTransport("127.0.0.1:1", 1, ssl={})
    assert reader_for(Connection(transport)) is None  # type: ignore[arg-type]
