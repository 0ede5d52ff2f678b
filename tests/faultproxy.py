"""A TCP proxy for tests that injects network faults between a client and a broker.

``FaultProxy(target_port)`` listens on a free loopback port and forwards each
connection to ``127.0.0.1:target_port``. :meth:`FaultProxy.freeze` stops
forwarding in both directions while keeping every socket open (a peer that
stops answering without closing); :meth:`FaultProxy.thaw` resumes;
:meth:`FaultProxy.reset` closes every connection abruptly;
:meth:`FaultProxy.refuse` closes them and every new one at once (a broker
that is down), until :meth:`FaultProxy.accept`. :attr:`FaultProxy.latency`
delays every chunk forwarded (seconds, each way) and :attr:`FaultProxy.rate`
caps each direction of each connection (bytes per second; 0: no cap). It uses native
threads and sockets, so that it keeps working in a process that eventlet
monkey-patched.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

from messaging.green import natives

__all__ = ["FaultProxy"]


class FaultProxy:
    """Forwards loopback TCP connections to a port, with faults on demand.

    Args:
        target_port: the port of 127.0.0.1 to forward to.
    """

    def __init__(self, target_port: int) -> None:
        native = natives()
        self._socket = native.socket
        self._threading = native.threading
        select = native.select.select
        # A sleep of the calling OS thread, monkey-patched or not.
        self._sleep = lambda seconds: select([], [], [], seconds)
        self.target_port = target_port
        self._listener = self._socket.socket()
        self._listener.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._flowing = self._threading.Event()
        self._flowing.set()
        self._closed = False
        self._refusing = False
        self.latency = 0.0
        self.rate = 0
        self._lock = self._threading.Lock()
        self._sockets: list[Any] = []
        self._start(self._accept)

    def _start(self, target: Any, *args: Any) -> None:
        thread = self._threading.Thread(target=target, args=args, daemon=True)
        thread.start()

    def url(self, vhost: str = "") -> str:
        """A ``rabbit://`` URL through the proxy."""
        return f"rabbit://guest:guest@127.0.0.1:{self.port}/{vhost}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing:
                client.close()
                continue
            try:
                upstream = self._socket.create_connection(("127.0.0.1", self.target_port), 5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            self._start(self._pipe, client, upstream)
            self._start(self._pipe, upstream, client)

    def _pipe(self, source: Any, sink: Any) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                if self.latency:
                    self._sleep(self.latency)
                if self.rate:
                    self._sleep(len(data) / self.rate)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(self._socket.SHUT_RDWR)

    def freeze(self) -> None:
        """Stop forwarding; the connections stay open and silent."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Forward again what was held and what comes."""
        self._flowing.set()

    def reset(self) -> None:
        """Close every forwarded connection at once."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        linger = struct.pack("ii", 1, 0)  # close with a reset (RST), not a FIN
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_LINGER, linger)
            with contextlib.suppress(OSError):
                # Wakes the forwarding thread blocked on it (close alone would not).
                sock.shutdown(self._socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def refuse(self) -> None:
        """Close every connection and refuse new ones: a broker that is down."""
        self._refusing = True
        self.reset()

    def accept(self) -> None:
        """Accept connections again after :meth:`refuse`."""
        self._refusing = False

    def close(self) -> None:
        """Stop listening and close every connection."""
        self._closed = True
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.reset()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
