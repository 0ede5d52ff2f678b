"""py-amqp connections over native sockets, for the driver's I/O threads.

py-amqp makes its socket with the ``socket`` and ``ssl`` modules it imported,
which eventlet's monkey-patching turns green. The driver's I/O threads are
real OS threads (:mod:`messaging.green`), so their connections must use the
unpatched modules: :class:`NativeConnection` is a py-amqp connection whose
transport connects, and wraps TLS, with :func:`messaging.green.natives`. In a
process that is not monkey-patched those are the ordinary modules and nothing
changes.
"""

from __future__ import annotations

from typing import Any

import amqp
import amqp.transport

from messaging.green import natives

__all__ = ["NativeConnection", "NativeSSLTransport", "NativeTCPTransport", "wrap_tls"]


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


class NativeConnection(amqp.Connection):  # type: ignore[misc]
    """A py-amqp connection whose transport uses native sockets."""

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
