"""CoilMQ, a STOMP broker from PyPI, run by tests in a subprocess on a free loopback port.

:func:`running_coilmq` starts one (``python -c`` with CoilMQ's own command-line
entry point), waits a bounded time for its port to accept connections, and stops
it afterwards. CoilMQ keeps its queues in memory; it accepts as STOMP 1.2
``host`` header only its own fully qualified host name (:attr:`CoilMQ.fqdn`).

``stomp_11_only=True`` removes STOMP 1.2 from the versions the broker negotiates,
making it a broker that speaks at most 1.1 (for the driver's fallback).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from tests.brokers import unavailable

__all__ = ["START_TIMEOUT", "CoilMQ", "running_coilmq"]

#: Seconds CoilMQ gets to accept connections once started.
START_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0
_HOST = "127.0.0.1"
_ATTEMPTS = 3

_START = "import sys; from coilmq.start import main; sys.argv[0] = 'coilmq'; main()"
_START_11_ONLY = (
    "import sys; from coilmq.protocol import negotiate; "
    "from coilmq.protocol.version import Version; "
    "del negotiate.SUPPORTED_VERSIONS[Version.from_str('1.2')]; " + _START.split("; ", 1)[1]
)


@dataclasses.dataclass(frozen=True)
class CoilMQ:
    """A running CoilMQ broker.

    Attributes:
        host: the address it listens on.
        port: its port.
        fqdn: the host name it accepts in STOMP 1.2's ``host`` header.
        log: its log file.
    """

    host: str
    port: int
    fqdn: str
    log: Path

    def url(self, vhost: str | None = None, query: str = "") -> str:
        """Its transport URL (``vhost`` becomes the URL's path; None: no path)."""
        path = "" if vhost is None else "/" + urllib.parse.quote(vhost, safe="")
        return f"stomp://guest:guest@{self.host}:{self.port}{path}{query}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_TIMEOUT)


@contextlib.contextmanager
def running_coilmq(stomp_11_only: bool = False) -> Iterator[CoilMQ]:
    """Start CoilMQ on a free port for the duration of the ``with`` block.

    Skips the test (or fails it under ``MESSAGING_REQUIRE_BROKERS=1``) when
    CoilMQ is not installed; fails when it does not start in time.
    """
    if importlib.util.find_spec("coilmq") is None:
        unavailable("CoilMQ is not installed (pip install -e '.[test]')")
    code = _START_11_ONLY if stomp_11_only else _START
    with tempfile.TemporaryDirectory(prefix="coilmq-") as directory:
        log = Path(directory) / "coilmq.log"
        for _ in range(_ATTEMPTS):
            port = _free_port()
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-c", code, "-b", _HOST, "-p", str(port)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                deadline = time.monotonic() + START_TIMEOUT
                while process.poll() is None and not _accepts(port):
                    if time.monotonic() > deadline:
                        raise AssertionError(
                            f"CoilMQ did not accept connections on {_HOST}:{port} within "
                            f"{START_TIMEOUT}s:\n{log.read_text(errors='replace')[-2000:]}"
                        )
                    time.sleep(0.05)  # polling a port that has no event to wait on
                if process.poll() is not None:
                    # Most likely the port was taken in between: try another.
                    continue
                yield CoilMQ(_HOST, port, socket.getfqdn(), log)
                return
            finally:
                _stop(process)
        raise AssertionError(
            f"CoilMQ exited at start {_ATTEMPTS} times:\n{log.read_text(errors='replace')[-2000:]}"
        )
