"""py-amqp still has what the RabbitMQ driver uses beyond its public API.

The driver falls back to py-amqp's own ways when a part is missing (see
``messaging.drivers.rabbit.amqp_internals``), but silently slower or unbounded
is not good enough: this fails loudly after an upgrade of py-amqp that removed
or renamed one of them, so that the driver is adapted in the same change.
"""

from __future__ import annotations

import inspect
import socket

import amqp
import amqp.spec
import amqp.transport

from messaging.drivers.rabbit.amqp_internals import (
    CONNECTION_INTERNALS,
    TRANSPORT_INTERNALS,
    missing,
)
from messaging.drivers.rabbit.frames import reader_for
from messaging.drivers.rabbit.sockets import ReportingChannel


def test_a_connected_transport_has_what_the_driver_replaces() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    transport = amqp.transport.TCPTransport(f"127.0.0.1:{server.getsockname()[1]}", 5)
    transport.connect()
    peer, _ = server.accept()
    try:
        assert missing(transport, TRANSPORT_INTERNALS) == []
        assert isinstance(transport._read_buffer, bytes)
        assert callable(transport._quick_recv)
    finally:
        peer.close()
        server.close()
        transport.close()


def test_a_connection_has_the_frame_handler_and_writer_the_driver_calls() -> None:
    # Both are set once connected; the classes say where they come from.
    source = inspect.getsource(amqp.Connection.connect)
    for name in CONNECTION_INTERNALS:
        assert f"self.{name} =" in source, f"py-amqp's Connection.connect no longer sets {name}"


def test_the_channel_close_handler_the_reporting_channel_overrides_is_py_amqps() -> None:
    assert "_on_close" in vars(amqp.Channel)
    channel = object.__new__(ReportingChannel)
    channel._callbacks = {}
    channel._setup_listeners()  # how py-amqp routes a channel's methods to its handlers
    assert channel._callbacks[amqp.spec.Channel.Close] == channel._on_close
    assert ReportingChannel._on_close is not amqp.Channel._on_close
    params = list(inspect.signature(amqp.Channel._on_close).parameters)
    assert params == ["self", "reply_code", "reply_text", "class_id", "method_id"]


def test_without_those_internals_the_frame_reader_steps_aside() -> None:
    class Bare(amqp.transport.TCPTransport):  # type: ignore[misc]
        def __init__(self) -> None:  # no connection, no _read_buffer
            pass

    class Conn:
        transport = Bare()

    assert reader_for(Conn()) is None  # type: ignore[arg-type]
