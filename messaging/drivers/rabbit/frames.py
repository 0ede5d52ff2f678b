"""Reading AMQP frames in bulk on a plain TCP connection.

py-amqp reads a frame with three ``recv()`` calls (header, payload, end octet),
each wrapped in two socket-mode changes when a timeout is given: some twenty
system calls for every message of three frames. :class:`FrameReader` takes
whatever the socket holds in one non-blocking ``recv()``, cuts the complete
frames out of it and hands each to the connection's own frame handler, exactly
as py-amqp's ``drain_events`` would.

An incomplete frame at the end of a read stays in the transport's
``_read_buffer``, which is where py-amqp's own reader looks first: the two
readers can take turns on a connection (py-amqp still reads by itself while it
waits for the reply to a synchronous method, such as a declaration).

TLS connections are not handled here (an SSL socket has no non-blocking
``recv`` flag); :func:`reader_for` returns None for them.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import amqp.exceptions
import amqp.transport

from messaging.drivers.rabbit.amqp_internals import missing, warn_once

__all__ = ["FrameReader", "reader_for"]

_HEADER = struct.Struct(">BHI")
_FRAME_END = 0xCE
#: Bytes asked of the socket per read (below the size at which the C allocator
#: maps memory of its own: a larger buffer costs three system calls per read).
READ_SIZE = 64 * 1024
#: Reads per :meth:`FrameReader.read_available` call, so that work queued for the
#: I/O thread (acknowledgements, publishes) runs between them.
MAX_READS = 16


class FrameReader:
    """Reads every complete frame already received on a connection.

    Args:
        conn: a connected py-amqp connection over plain TCP.
    """

    def __init__(self, conn: amqp.Connection) -> None:
        self._conn = conn
        self._transport = conn.transport
        self._recv = conn.sock.recv
        # While frames are being handled, the stream's unread bytes are in
        # _buffer from _start on, not in the transport: if a handler makes
        # py-amqp read by itself, they are handed back to it first.
        self._buffer: bytes | None = None
        self._start = 0
        self._handed_back = False
        own_read = self._transport._read

        def read(n: int, initial: bool = False) -> bytes:
            self._hand_back()
            data: bytes = own_read(n, initial)
            return data

        self._transport._read = read

    def _hand_back(self) -> None:
        buffer = self._buffer
        if buffer is not None:
            self._transport._read_buffer = buffer[self._start :] + self._transport._read_buffer
            self._buffer = None
            self._handed_back = True

    def read_available(self) -> int:
        """Handle the frames that have arrived, without blocking; return how many.

        Raises:
            OSError: the broker closed the connection.
            amqp.exceptions.UnexpectedFrame: the stream is corrupt.
        """
        transport = self._transport
        handle = self._conn.on_inbound_frame
        handled = 0
        for _ in range(MAX_READS):
            try:
                data = self._recv(READ_SIZE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return handled
            if not data:
                transport.connected = False
                raise OSError("Server unexpectedly closed connection")
            buffer = transport._read_buffer + data if transport._read_buffer else data
            transport._read_buffer = b""
            size = len(buffer)
            start = 0
            try:
                while size - start >= 8:
                    frame_type, channel, length = _HEADER.unpack_from(buffer, start)
                    end = start + 7 + length
                    if end >= size:
                        break
                    if buffer[end] != _FRAME_END:
                        raise amqp.exceptions.UnexpectedFrame(
                            f"Received frame_end {buffer[end]:#04x} while expecting 0xce"
                        )
                    payload = buffer[start + 7 : end]
                    start = end + 1
                    self._buffer, self._start = buffer, start
                    handle((frame_type, channel, payload))
                    handled += 1
                    if self._handed_back:
                        # py-amqp read by itself meanwhile: go on from what it left.
                        self._handed_back = False
                        buffer, transport._read_buffer = transport._read_buffer, b""
                        size, start = len(buffer), 0
            finally:
                if self._handed_back:  # py-amqp holds the unread bytes
                    self._handed_back = False
                else:
                    transport._read_buffer = buffer[start:] + transport._read_buffer
                self._buffer = None
            if len(data) < READ_SIZE:
                return handled
        return handled


def reader_for(conn: amqp.Connection) -> FrameReader | None:
    """A :class:`FrameReader` for ``conn``, or None: py-amqp's own reads are used then.

    None when ``conn`` is not plain TCP, or py-amqp lacks what the reader replaces.
    """
    transport: Any = conn.transport
    if not isinstance(transport, amqp.transport.TCPTransport):
        return None
    lacking = missing(transport, ("_read", "_read_buffer")) + missing(conn, ("on_inbound_frame",))
    if lacking:
        warn_once("the bulk frame reader", lacking)
        return None
    return FrameReader(conn)
