"""TLS test helpers: a throwaway PKI made with ``openssl``, and a TLS-terminating TCP proxy.

The local RabbitMQ speaks plain AMQP only; :class:`TlsProxy` puts TLS in front of
it, so that the driver's TLS settings meet a real handshake without touching the
broker's configuration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import selectors
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.brokers import unavailable

__all__ = ["OPENSSL_TIMEOUT", "CertificateAuthority", "KeyPair", "TlsProxy"]

#: Seconds one ``openssl`` command may take.
OPENSSL_TIMEOUT = 30.0
_JOIN_TIMEOUT = 5.0
_IO_TIMEOUT = 5.0
_CHUNK = 65536


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        unavailable("the openssl command is not installed: cannot make test certificates")
    result = subprocess.run(
        [exe, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=OPENSSL_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")


def _new_key(path: Path) -> None:
    # EC keys: generated in milliseconds, unlike RSA.
    _openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path.name, cwd=path.parent
    )


def _alt_name(name: str) -> str:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return f"DNS:{name}"
    return f"IP:{name}"


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclasses.dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that signs server and client certificates, valid for a day."""

    directory: Path
    name: str
    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path, name: str) -> CertificateAuthority:
        """Make a CA called ``name`` in ``directory`` (files ``<name>-ca.pem/.key``)."""
        key = directory / f"{name}-ca.key"
        cert = directory / f"{name}-ca.pem"
        _new_key(key)
        _openssl(
            "req", "-x509", "-new", "-key", key.name, "-out", cert.name, "-days", "1",
            "-subj", f"/CN={name} test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash",
            cwd=directory,
        )  # fmt: skip
        return cls(directory, name, cert, key)

    def issue(self, stem: str, common_name: str, alt_names: Sequence[str] = ()) -> KeyPair:
        """Sign a new certificate.

        Args:
            stem: file name stem (``<stem>.pem`` and ``<stem>.key``).
            common_name: the subject's CN.
            alt_names: host names or IP addresses for subjectAltName; empty makes a
                client certificate, otherwise a server certificate.

        Returns:
            The certificate and key files.
        """
        key = self.directory / f"{stem}.key"
        csr = self.directory / f"{stem}.csr"
        cert = self.directory / f"{stem}.pem"
        ext = self.directory / f"{stem}.ext"
        usage = "serverAuth" if alt_names else "clientAuth"
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={usage}",
            "subjectKeyIdentifier=hash",
            "authorityKeyIdentifier=keyid",
        ]
        if alt_names:
            lines.append("subjectAltName=" + ",".join(_alt_name(n) for n in alt_names))
        ext.write_text("\n".join(lines) + "\n")
        _new_key(key)
        _openssl(
            "req", "-new", "-key", key.name, "-out", csr.name, "-subj", f"/CN={common_name}",
            cwd=self.directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", csr.name, "-CA", self.cert.name, "-CAkey", self.key.name,
            "-CAcreateserial", "-out", cert.name, "-days", "1", "-extfile", ext.name,
            cwd=self.directory,
        )  # fmt: skip
        return KeyPair(cert, key)


class TlsProxy:
    """Accepts TLS on a free loopback port and relays the plain bytes to ``upstream``.

    One thread accepts; each connection gets a thread that does the handshake and
    then relays both ways. :meth:`close` stops everything with bounded joins.

    Attributes:
        port: the port it listens on (127.0.0.1).
        handshake_errors: the errors of failed handshakes, in order.
        relayed: connections whose handshake succeeded and that reached upstream.
        versions: the TLS version negotiated by each successful handshake.
    """

    def __init__(
        self,
        server: KeyPair,
        upstream: tuple[str, int],
        client_ca: Path | None = None,
    ) -> None:
        """Start listening.

        Args:
            server: the certificate and key presented to clients.
            upstream: where to relay to.
            client_ca: when set, clients must present a certificate signed by it.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(server.cert, server.key)
        if client_ca is not None:
            context.load_verify_locations(client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        self._context = context
        self._upstream = upstream
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.handshake_errors: list[BaseException] = []
        self.relayed = 0
        self.versions: list[str | None] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"tls-proxy-{self.port}", daemon=True
        )
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listener closed
            with self._lock:
                if self._stopping.is_set():
                    client.close()
                    return
                self._sockets.add(client)
                thread = threading.Thread(
                    target=self._serve,
                    args=(client,),
                    name=f"tls-proxy-{self.port}-conn",
                    daemon=True,
                )
                self._threads.append(thread)
            thread.start()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._stopping.is_set():
                return False
            self._sockets.add(sock)
            return True

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        tls: ssl.SSLSocket | None = None
        try:
            client.settimeout(_IO_TIMEOUT)
            try:
                tls = self._context.wrap_socket(client, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                with self._lock:
                    self.handshake_errors.append(exc)
                return
            with self._lock:
                self.versions.append(tls.version())
            if not self._track(tls):
                return
            upstream = socket.create_connection(self._upstream, timeout=_IO_TIMEOUT)
            if not self._track(upstream):
                return
            with self._lock:
                self.relayed += 1
            self._relay(tls, upstream)
        except OSError:
            pass  # a side went away, or close() shut the sockets
        finally:
            for sock in (tls, upstream, client):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()

    def _relay(self, tls: ssl.SSLSocket, plain: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(tls, selectors.EVENT_READ, plain)
            selector.register(plain, selectors.EVENT_READ, tls)
            while not self._stopping.is_set():
                # Decrypted bytes may wait inside the TLS object, invisible to select.
                ready: list[tuple[Any, Any]] = [(tls, plain)] if tls.pending() else []
                if not ready:
                    ready = [(key.fileobj, key.data) for key, _ in selector.select(timeout=0.2)]
                for source, sink in ready:
                    data = source.recv(_CHUNK)
                    if not data:
                        return
                    sink.sendall(data)

    def close(self) -> None:
        """Stop accepting, close every socket and join the threads (bounded)."""
        self._stopping.set()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        self._listener.close()
        # Shutting down wakes a thread blocked on its sockets; each closes its own.
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._acceptor.join(_JOIN_TIMEOUT)
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        alive = [t.name for t in (self._acceptor, *threads) if t.is_alive()]
        if alive:
            raise AssertionError(f"TLS proxy threads did not stop: {alive}")
