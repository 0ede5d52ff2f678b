"""The oslo.messaging side of the interop tests: its virtualenv and its peer processes.

The real oslo.messaging (latest from PyPI) is never a dependency of this
project: it lives in a virtualenv of its own, created once at
``$MESSAGING_INTEROP_VENV`` (default ``~/.cache/messaging-interop/oslo-venv``)
and reused by later runs. ``MESSAGING_INTEROP_REFRESH=1`` upgrades it to the
latest release. Creation happens under a file lock, so parallel runs wait for
one another instead of installing over each other.

Peers are ``oslo_peer.py`` run by that venv's python (see its docstring for the
modes); :class:`PeerProcess` reads their stdout lines through a thread, and
every wait has a deadline.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEER_SCRIPT = HERE / "oslo_peer.py"

VENV_ENV = "MESSAGING_INTEROP_VENV"
REFRESH_ENV = "MESSAGING_INTEROP_REFRESH"
DEFAULT_VENV = Path("~/.cache/messaging-interop/oslo-venv")
REQUIREMENTS = ("oslo.messaging", "oslo.context")
#: Installed next to oslo.messaging for the trace tests (oslo 18.3 traces RPC with them).
TRACING_REQUIREMENTS = ("opentelemetry-api", "opentelemetry-sdk")
INSTALLED = (*REQUIREMENTS, *TRACING_REQUIREMENTS)
INSTALL_TIMEOUT = 900.0
LOCK_TIMEOUT = INSTALL_TIMEOUT + 120.0

PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")

_PROBE = """
import json, sys
from importlib import metadata
import oslo_context, oslo_messaging

def _has(name):
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True

print(json.dumps({
    "oslo.messaging": metadata.version("oslo.messaging"),
    "oslo.context": metadata.version("oslo.context"),
    "oslo.config": metadata.version("oslo.config"),
    "kombu": metadata.version("kombu"),
    "amqp": metadata.version("amqp"),
    "python": sys.version.split()[0],
    **{name: metadata.version(name) for name in ("opentelemetry-api", "opentelemetry-sdk")
       if _has(name)},
}))
"""


class OsloEnvError(RuntimeError):
    """The oslo virtualenv could not be created or does not work."""


class PeerError(AssertionError):
    """A peer did not do what the test waited for (the message carries its output)."""


@dataclass(frozen=True)
class OsloEnv:
    """A working virtualenv with oslo.messaging installed.

    Attributes:
        venv: the virtualenv directory.
        python: its interpreter.
        versions: installed versions (``oslo.messaging``, ``kombu``, ``python``...).
        install_seconds: how long this run spent installing; None when reused.
    """

    venv: Path
    python: Path
    versions: dict[str, str]
    install_seconds: float | None = None

    @property
    def oslo_messaging_version(self) -> str:
        """The installed oslo.messaging version, e.g. ``18.3.1``."""
        return self.versions["oslo.messaging"]

    def describe(self) -> str:
        """One line for reports and assertion messages."""
        others = ", ".join(
            f"{name} {self.versions[name]}"
            for name in ("oslo.context", "kombu", "amqp", "python")
            if name in self.versions
        )
        how = (
            "reused"
            if self.install_seconds is None
            else f"installed in {self.install_seconds:.0f} s"
        )
        return f"oslo.messaging {self.oslo_messaging_version} ({others}; {how}; venv {self.venv})"


def venv_path() -> Path:
    """Where the oslo virtualenv lives (``$MESSAGING_INTEROP_VENV`` or the default)."""
    return Path(os.environ.get(VENV_ENV) or DEFAULT_VENV).expanduser()


def peer_environ() -> dict[str, str]:
    """The environment for the venv's python: nothing of the test process's venv leaks in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    deadline = time.monotonic() + timeout
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OsloEnvError(
                        f"another process held {path} for more than {timeout:.0f} s"
                    ) from None
                # flock cannot be waited on with a bound; poll it.
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _probe(python: Path) -> dict[str, str] | None:
    if not python.exists():
        return None
    try:
        done = subprocess.run(
            [str(python), "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=120,
            env=peer_environ(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    versions: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return versions


def _run_logged(argv: Sequence[str], log: Path, timeout: float) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        try:
            done = subprocess.run(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                env=peer_environ(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise OsloEnvError(f"{argv[0]} took more than {timeout:.0f} s; see {log}") from exc
    if done.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise OsloEnvError(f"{' '.join(argv)} failed ({done.returncode}); {log}:\n{tail}")


def ensure_oslo_env(venv: Path | None = None, refresh: bool | None = None) -> OsloEnv:
    """Return the oslo virtualenv, creating or upgrading it first if needed.

    Args:
        venv: the directory; :func:`venv_path` when None.
        refresh: upgrade oslo.messaging even if the venv works; read from
            ``$MESSAGING_INTEROP_REFRESH`` when None.

    Raises:
        OsloEnvError: creation or installation failed (with pip's output).
    """
    venv = venv or venv_path()
    if refresh is None:
        refresh = os.environ.get(REFRESH_ENV) == "1"
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(venv.with_name(venv.name + ".lock"), LOCK_TIMEOUT):
        versions = _probe(python)
        missing = [name for name in TRACING_REQUIREMENTS if name not in (versions or {})]
        if versions is not None and not refresh and not missing:
            return OsloEnv(venv, python, versions)
        started = time.monotonic()
        log = venv.with_name(venv.name + "-install.log")
        log.write_text("")
        if versions is not None and not refresh:
            # A venv made before the trace tests: add what they need, keep the rest.
            _run_logged([str(python), "-m", "pip", "install", *missing], log, INSTALL_TIMEOUT)
            versions = _probe(python)
            if versions is None:
                raise OsloEnvError(f"oslo_messaging does not import in {venv} after installing")
            return OsloEnv(venv, python, versions, time.monotonic() - started)
        if versions is None and venv.exists():
            shutil.rmtree(venv)  # a half-made venv from an interrupted run
        if not python.exists():
            _run_logged([sys.executable, "-m", "venv", str(venv)], log, 300)
        _run_logged(
            [str(python), "-m", "pip", "install", "--upgrade", *INSTALLED],
            log,
            INSTALL_TIMEOUT,
        )
        versions = _probe(python)
        if versions is None:
            raise OsloEnvError(f"oslo_messaging does not import in {venv} after installing")
        return OsloEnv(venv, python, versions, time.monotonic() - started)


@dataclass
class InteropNames:
    """Unique broker names for one test, so tests never see each other's messages."""

    token: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    topics: list[str] = field(default_factory=list)
    servers: list[str] = field(default_factory=list)
    pools: list[str] = field(default_factory=list)

    @property
    def exchange(self) -> str:
        """The control exchange of both sides in this test."""
        return f"interop-x-{self.token}"

    def topic(self, label: str = "t") -> str:
        """A new topic name."""
        name = f"interop-{label}-{self.token}"
        self.topics.append(name)
        return name

    def server(self, label: str) -> str:
        """A new RPC server name."""
        name = f"{label}-{self.token}"
        self.servers.append(name)
        return name

    def pool(self, label: str) -> str:
        """A new notification pool name."""
        name = f"interop-pool-{label}-{self.token}"
        self.pools.append(name)
        return name


_EOF = object()
Event = dict[str, Any]


class PeerProcess:
    """One running ``oslo_peer.py``; output lines are read by a thread into a queue.

    Lines are kept in arrival order; :meth:`wait_for` hands each line out once.
    """

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.argv = argv
        self.lines: list[Event | str] = []
        self._handed_out: set[int] = set()
        self._queue: queue.Queue[object] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=200)
        self._eof = False
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=peer_environ(),
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, name=f"{name}-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name=f"{name}-stderr", daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.rstrip("\n")
            try:
                parsed: object = json.loads(line)
            except ValueError:
                parsed = line
            self._queue.put(parsed if isinstance(parsed, dict) else line)
        self._queue.put(_EOF)

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for raw in self._proc.stderr:
            self._stderr.append(raw.rstrip("\n"))

    @property
    def returncode(self) -> int | None:
        """The exit status, or None while running."""
        return self._proc.poll()

    def diagnostics(self) -> str:
        """What the peer printed so far, for failure messages."""
        out = "\n".join(f"  {line}" for line in map(str, self.lines[-40:]))
        err = "\n".join(f"  {line}" for line in list(self._stderr)[-60:])
        return (
            f"peer {self.name!r} (exit status {self.returncode}): {' '.join(self.argv)}\n"
            f" stdout:\n{out or '  (nothing)'}\n stderr:\n{err or '  (nothing)'}"
        )

    def _pump(self, deadline: float) -> bool:
        """Move one line from the reader into ``lines``; False at the deadline or EOF."""
        if self._eof:
            return False
        try:
            item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return False
        if item is _EOF:
            self._eof = True
            return False
        self.lines.append(item)  # type: ignore[arg-type]
        return True

    def wait_for(
        self, predicate: Callable[[Event | str], bool], timeout: float, what: str = "a line"
    ) -> Event | str:
        """Return the first line not yet handed out that satisfies ``predicate``.

        Raises:
            PeerError: none came within ``timeout`` seconds, or the peer exited.
        """
        deadline = time.monotonic() + timeout
        index = 0
        while True:
            while index < len(self.lines):
                line = self.lines[index]
                if index not in self._handed_out and predicate(line):
                    self._handed_out.add(index)
                    return line
                index += 1
            if not self._pump(deadline):
                why = "exited" if self._eof else f"sent nothing more in {timeout:.0f} s"
                raise PeerError(f"waiting for {what}: the peer {why}\n{self.diagnostics()}")

    def wait_event(self, event: str, timeout: float, **fields: Any) -> Event:
        """Return the next JSON line with this ``event`` and these field values."""

        def matches(line: Event | str) -> bool:
            return (
                isinstance(line, dict)
                and line.get("event") == event
                and all(line.get(k) == v for k, v in fields.items())
            )

        found = self.wait_for(matches, timeout, what=f"event {event!r} {fields or ''}")
        assert isinstance(found, dict)
        return found

    def collect(self, event: str, count: int, timeout: float, **fields: Any) -> list[Event]:
        """Return ``count`` lines with this ``event``, all within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        return [
            self.wait_event(event, max(0.0, deadline - time.monotonic()), **fields)
            for _ in range(count)
        ]

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for the ``READY`` line (the peer is consuming)."""
        self.wait_for(lambda line: line == "READY", timeout, what="READY")

    def wait_exit(self, timeout: float) -> int:
        """Wait for the peer to exit by itself and return its status.

        Raises:
            PeerError: it was still running after ``timeout`` seconds (it is killed).
        """
        try:
            status = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise PeerError(f"still running after {timeout:.0f} s\n{self.diagnostics()}") from None
        self._drain()
        return status

    def _drain(self) -> None:
        for reader in self._readers:
            reader.join(timeout=5.0)
        while self._pump(time.monotonic()):
            pass

    def terminate(self) -> None:
        """Send SIGTERM to the peer, if it still runs, without waiting."""
        if self._proc.poll() is None:
            self._proc.terminate()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM the peer, wait for it (killing it after ``timeout``), return its status."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._drain()
        return self._proc.returncode

    def kill(self) -> None:
        """Kill the peer at once."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10.0)


class OsloPeers:
    """Starts the oslo peers of one test and stops every one of them at :meth:`close`.

    Args:
        env: the oslo virtualenv.
        url: the transport URL both sides use.
        exchange: the control exchange both sides use.
        config_file: an oslo.messaging configuration file the peers read, if any.
    """

    def __init__(
        self, env: OsloEnv, url: str, exchange: str, config_file: Path | None = None
    ) -> None:
        self.env = env
        self.url = url
        self.exchange = exchange
        self.config_file = config_file
        self.started: list[PeerProcess] = []

    def start(
        self, mode: str, *args: str, name: str | None = None, timeout: float = 60.0
    ) -> PeerProcess:
        """Start ``oslo_peer.py <mode>`` with the common arguments plus ``args``."""
        argv = [
            str(self.env.python),
            "-u",
            "-s",
            str(PEER_SCRIPT),
            mode,
            "--url",
            self.url,
            "--exchange",
            self.exchange,
            "--timeout",
            str(timeout),
            *(["--config-file", str(self.config_file)] if self.config_file else []),
            *args,
        ]
        peer = PeerProcess(name or f"{mode}-{len(self.started)}", argv)
        self.started.append(peer)
        return peer

    def _run_to_end(self, peer: PeerProcess, timeout: float) -> list[Event]:
        status = peer.wait_exit(timeout)
        if status != 0 or not any(
            isinstance(line, dict) and line.get("event") == "done" for line in peer.lines
        ):
            raise PeerError(f"the peer failed\n{peer.diagnostics()}")
        return [line for line in peer.lines if isinstance(line, dict)]

    def notify(
        self,
        topics: Sequence[str],
        payloads: Sequence[Any],
        *,
        event_type: str,
        publisher_id: str,
        priority: str = "info",
        driver: str = "messagingv2",
        context: dict[str, Any] | None = None,
        timeout: float = 60.0,
    ) -> list[Event]:
        """Send one notification per payload through an oslo Notifier; return the ``sent`` lines."""
        args = [f"--topic={topic}" for topic in topics]
        args += [
            f"--payloads={json.dumps(list(payloads))}",
            f"--event-type={event_type}",
            f"--publisher-id={publisher_id}",
            f"--priority={priority}",
            f"--driver={driver}",
        ]
        if context is not None:
            args.append(f"--context={json.dumps(context)}")
        peer = self.start("notify", *args, timeout=timeout)
        events = self._run_to_end(peer, timeout)
        return [e for e in events if e["event"] == "sent"]

    def listen(
        self,
        topics: Sequence[str],
        *,
        pool: str | None = None,
        count: int | None = None,
        name: str = "oslo-listener",
        timeout: float = 60.0,
    ) -> PeerProcess:
        """Start an oslo notification listener and wait until it consumes."""
        args = [f"--topic={topic}" for topic in topics] + [f"--name={name}"]
        if pool is not None:
            args.append(f"--pool={pool}")
        if count is not None:
            args.append(f"--count={count}")
        peer = self.start("listen", *args, name=name, timeout=timeout)
        peer.wait_ready()
        return peer

    def rpc_server(
        self, topic: str, server: str, timeout: float = 90.0, *, trace: bool = False
    ) -> PeerProcess:
        """Start an oslo RPC server (``PeerEndpoint``) and wait until it consumes.

        With ``trace``, oslo's tracing is on and the peer prints its ``span``
        lines when stopped.
        """
        extra = ["--trace"] if trace else []
        peer = self.start(
            "rpc-server",
            f"--topic={topic}",
            f"--server={server}",
            *extra,
            name=server,
            timeout=timeout,
        )
        peer.wait_ready()
        return peer

    def rpc_client(
        self,
        topic: str,
        ops: Sequence[dict[str, Any]],
        *,
        context: dict[str, Any] | None = None,
        call_timeout: float = 30.0,
        timeout: float = 60.0,
        spans: list[Event] | None = None,
    ) -> list[Event]:
        """Run the calls and casts of ``ops`` through an oslo RPCClient.

        Args:
            spans: when given, oslo's tracing is on and the client's ``span``
                lines are appended to it.

        Returns:
            One ``result`` or ``error`` line per op, in the order of ``ops``.
        """
        args = [f"--topic={topic}", f"--ops={json.dumps(list(ops))}"]
        args.append(f"--call-timeout={call_timeout}")
        if context is not None:
            args.append(f"--context={json.dumps(context)}")
        if spans is not None:
            args.append("--trace")
        peer = self.start("rpc-client", *args, timeout=timeout)
        events = self._run_to_end(peer, timeout)
        if spans is not None:
            spans.extend(e for e in events if e["event"] == "span")
        outcomes = sorted(
            (e for e in events if e["event"] in ("result", "error")), key=lambda e: e["index"]
        )
        if [e["index"] for e in outcomes] != list(range(len(ops))):
            raise PeerError(f"not one outcome per op\n{peer.diagnostics()}")
        return outcomes

    def close(self) -> None:
        """Stop every peer still running (SIGTERM to all at once, then kill laggards)."""
        errors = []
        for peer in self.started:
            peer.terminate()
        for peer in reversed(self.started):
            try:
                peer.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(f"{peer.name}: {exc!r}")
                peer.kill()
        if errors:
            raise PeerError("could not stop peers: " + "; ".join(errors))


# What the tests of both directions expect of contexts and notifications.

TIMESTAMP_PATTERN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?"


def context_kwargs() -> dict[str, Any]:
    """Keyword arguments of the oslo.context ``RequestContext`` a test sends with."""
    return {
        "user_id": "alice",
        "project_id": "proj-1",
        "request_id": f"req-{uuid.uuid4()}",
        "auth_token": "secret-token",
        "roles": ["member", "reader"],
    }


def expected_wire_context(kwargs: dict[str, Any], *, redacted: bool) -> dict[str, Any]:
    """The keys a receiver's context dict must hold for a context made from ``kwargs``.

    Notifications carry the redacted copy (no ``auth_token``); RPC carries it all.
    """
    return {
        "user": kwargs["user_id"],
        "project_id": kwargs["project_id"],
        "request_id": kwargs["request_id"],
        "roles": kwargs["roles"],
        "auth_token": None if redacted else kwargs["auth_token"],
    }


def subset(mapping: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """``mapping`` restricted to ``keys`` (missing keys show as ``'<missing>'``)."""
    return {key: mapping.get(key, "<missing>") for key in keys}
