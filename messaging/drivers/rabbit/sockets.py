"""py-amqp connections over native sockets, for the driver's I/O threads.

py-amqp makes its socket with the ``socket`` and ``ssl`` modules it imported,
which eventlet's monkey-patching turns green. The driver's I/O threads are
real OS threads (:mod:`messaging.green`), so their connections must use the
unpatched modules: :class:`NativeConnection` is a py-amqp connection whose
transport connects, and wraps TLS, with :func:`messaging.green.natives`. In a
process that is not monkey-patched those are the ordinary modules and nothing
changes.

py-amqp waits for the broker's answer to a synchronous method (a declaration,
opening a channel) with a blocking read that has no end: a broker that stops
answering without closing the socket would hold the I/O thread forever, and
its heartbeats with it. :func:`bound_blocking_reads` gives those reads a
bound, past which the connection counts as lost and is replaced.

Its channels are :class:`ReportingChannel`: when the broker closes a channel
(a message above its size limit, a consumer timeout, an unknown delivery tag),
the channel's owner is told and opens a new one, instead of py-amqp silently
reopening the channel without its consumers or its confirm mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import amqp
import amqp.exceptions
import amqp.spec
import amqp.transport

from messaging.drivers.rabbit.amqp_internals import missing, warn_once
from messaging.green import natives

__all__ = [
    "NativeConnection",
    "NativeSSLTransport",
    "NativeTCPTransport",
    "ReportingChannel",
    "bound_blocking_reads",
    "native_frame_writer",
    "wrap_tls",
]


class _NativeConnect:
    """Connects ``self.sock`` with the unpatched ``socket`` module, trying each address."""

    sock: Any

    def _connect(self, host: str, port: int, timeout: float | None) -> None:
        socket = natives().socket
        addresses = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
        for index, (family, kind, proto, _name, address) in enumerate(addresses):
            sock = socket.socket(family, kind, proto)
            try:
                sock.set_inheritable(False)
                sock.settimeout(timeout)
                sock.connect(address)
            except OSError:
                sock.close()
                if index + 1 == len(addresses):
                    raise
                continue
            self.sock = sock
            return


class NativeTCPTransport(_NativeConnect, amqp.transport.TCPTransport):  # type: ignore[misc]
    """py-amqp's plain TCP transport over a native socket."""


class NativeSSLTransport(_NativeConnect, amqp.transport.SSLTransport):  # type: ignore[misc]
    """py-amqp's TLS transport over a native socket, wrapped by the unpatched ``ssl``."""

    def _wrap_socket(self, sock: Any, context: Any = None, **options: Any) -> Any:
        return wrap_tls(sock, **options)


def wrap_tls(
    sock: Any,
    ssl_version: int | None = None,
    keyfile: str | None = None,
    certfile: str | None = None,
    ca_certs: str | None = None,
    cert_reqs: int | None = None,
    server_hostname: str | None = None,
) -> Any:
    """Wrap a connected client socket for TLS; the handshake is left to the caller.

    The options are those :func:`~messaging.drivers.rabbit.options.ssl_options_for_host`
    gives. The broker's certificate is checked against ``ca_certs``, or the system's
    trust store without one (never silently unverified); its name is checked when
    ``server_hostname`` is given.
    """
    ssl = natives().ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT if ssl_version is None else ssl_version)
    if certfile is not None:
        context.load_cert_chain(certfile, keyfile)
    if ca_certs is not None:
        context.load_verify_locations(ca_certs)
    # check_hostname first: verify_mode cannot drop to CERT_NONE while it is on.
    context.check_hostname = server_hostname is not None
    if cert_reqs is not None:
        context.verify_mode = cert_reqs
    elif context.verify_mode == ssl.CERT_NONE:
        context.verify_mode = ssl.CERT_REQUIRED
    if ca_certs is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    return context.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=False)


class ReportingChannel(amqp.Channel):  # type: ignore[misc]
    """A channel that tells its owner when the broker closes it.

    py-amqp answers a broker's ``channel.close`` by reopening the channel under
    the same number and raising the error from whatever read the frame, which
    may be another channel's wait: the error reaches the wrong code, and the
    reopened channel has lost its consumers and its confirm mode. A channel
    with an owner (``on_broker_close`` set) is closed for good instead, and the
    owner is called with the broker's error, on the I/O thread, in the middle
    of reading frames: it must not wait for the broker there (it posts its
    recovery). A channel without one keeps py-amqp's behaviour, which
    synchronous declarations rely on.

    Attributes:
        on_broker_close: called with the broker's error when it closes the channel.
    """

    on_broker_close: Callable[[amqp.exceptions.AMQPError], None] | None = None

    def _on_close(self, reply_code: int, reply_text: str, class_id: int, method_id: int) -> None:
        owner = self.on_broker_close
        connection = self.connection
        if owner is None or connection is None or connection.is_closing or self.is_closing:
            super()._on_close(reply_code, reply_text, class_id, method_id)
            return
        self.send_method(amqp.spec.Channel.CloseOk)
        self.on_broker_close = None
        self.collect()  # closed: its number is free, and it is no longer open
        error = amqp.exceptions.error_for_code(
            reply_code, reply_text, (class_id, method_id), amqp.exceptions.ChannelError
        )
        owner(error)


def native_frame_writer(connection: Any, transport: Any) -> Any:
    """py-amqp's frame writer, serialised by a native lock.

    py-amqp guards each connection's frame buffer with a ``threading.Lock``
    made at connect time, which is green in a patched process. Two native
    threads contending for a green lock make eventlet switch across threads
    ("Cannot switch to a different thread"); taking a native lock first leaves
    the green one always free.
    """
    from amqp import method_framing

    write = method_framing.frame_writer(connection, transport)
    lock = natives().threading.Lock()

    def write_frame(*args: Any) -> Any:
        with lock:
            return write(*args)

    return write_frame


class NativeConnection(amqp.Connection):  # type: ignore[misc]
    """A py-amqp connection over native sockets and locks, with reporting channels."""

    Channel = ReportingChannel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("frame_writer", native_frame_writer)
        super().__init__(*args, **kwargs)

    def Transport(  # noqa: N802 (py-amqp's name)
        self,
        host: str,
        connect_timeout: float | None,
        ssl: Any = False,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        socket_settings: Any = None,
        **kwargs: Any,
    ) -> amqp.transport._AbstractTransport:
        """Make the transport py-amqp connects with: over a native socket."""
        cls = NativeSSLTransport if ssl else NativeTCPTransport
        return cls(
            host,
            connect_timeout=connect_timeout,
            ssl=ssl,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            socket_settings=socket_settings,
            **kwargs,
        )

    def on_inbound_method(
        self, channel_id: int, method_sig: Any, payload: Any, content: Any
    ) -> Any:
        """Dispatch a method to its channel; drop one for a channel closed meanwhile."""
        channels = self.channels
        if channels is not None and channel_id not in channels:
            return None
        return super().on_inbound_method(channel_id, method_sig, payload, content)


def bound_blocking_reads(conn: amqp.Connection, seconds: float) -> None:
    """Make py-amqp's blocking reads on ``conn`` fail after ``seconds`` without data.

    Raises (from the read):
        TimeoutError: nothing arrived for ``seconds`` while py-amqp waited.
    """
    transport = conn.transport
    lacking = missing(transport, ("_quick_recv",))
    if lacking:
        warn_once("bounding the wait for the broker's answers", lacking)
        return
    sock = conn.sock
    recv = transport._quick_recv
    select = natives().select.select
    pending = getattr(sock, "pending", None)  # TLS: bytes decrypted, not yet read

    def bounded_recv(n: int) -> Any:
        # Only a read that would block without end is bounded: one for which
        # py-amqp set a timeout of its own (drain_events(timeout=0)...) keeps it.
        if sock.gettimeout() is None and not (pending is not None and pending()):
            readable, _, _ = select([sock], [], [], seconds)
            if not readable:
                raise TimeoutError(
                    f"the broker sent nothing for {seconds:g} s while an answer was awaited"
                )
        return recv(n)

    transport._quick_recv = bounded_recv
