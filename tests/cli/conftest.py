"""Running the ``messaging`` command as a real subprocess, on sqlite and RabbitMQ.

Every run gets an isolated HOME and XDG directories (so the per-user default bus
is a file of the test), a bounded timeout, and is killed at teardown if still
running.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from tests.brokers import rabbit_url, rabbit_vhost

#: Seconds a one-shot command may take.
RUN_TIMEOUT = 60.0
#: Seconds a long-running command has to subscribe.
READY_TIMEOUT = 30.0
READY_PREFIX = "ready:"
ENV_TRANSPORT_URL = "MESSAGING_TRANSPORT_URL"


@dataclass
class Result:
    """What a finished command left."""

    code: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


class Running:
    """A command running in the background whose output is read as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path | None) -> None:
        self.argv = argv
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.stdout_lines: queue.Queue[str] = queue.Queue()
        self.stderr_seen: list[str] = []
        self._stdout_all: list[str] = []
        self._ready = threading.Event()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, False), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, True), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], is_stderr: bool) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            if is_stderr:
                self.stderr_seen.append(line)
                if READY_PREFIX in line:
                    self._ready.set()
            else:
                self._stdout_all.append(line)
                self.stdout_lines.put(line)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.process.poll() is not None:
                self._join()
                pytest.fail(
                    f"{self.argv[3:]} exited with {self.process.returncode} before it was ready; "
                    f"stderr: {self.stderr_seen}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"{self.argv[3:]} not ready within {timeout}s: {self.stderr_seen}")

    def next_line(self, timeout: float = RUN_TIMEOUT) -> str:
        try:
            return self.stdout_lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{self.argv[3:]} printed nothing within {timeout}s: {self.stderr_seen}")

    def finish(self, timeout: float = RUN_TIMEOUT) -> Result:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.argv[3:]} did not exit within {timeout}s: {self.stderr_seen}")
        self._join()
        return Result(code, "\n".join(self._stdout_all), "\n".join(self.stderr_seen))

    def terminate(self, timeout: float = RUN_TIMEOUT) -> Result:
        if self.process.poll() is None:
            self.process.terminate()
        return self.finish(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=RUN_TIMEOUT)
        self._join()

    def _join(self) -> None:
        for reader in self._readers:
            reader.join(timeout=RUN_TIMEOUT)


class Cli:
    """The ``messaging`` command with an isolated environment.

    Args:
        env: the environment of every run.
        url: passed as ``--transport-url`` when not None.
        cwd: the working directory of every run.
    """

    def __init__(self, env: dict[str, str], url: str | None, cwd: Path | None = None) -> None:
        self.env = env
        self.url = url
        self.cwd = cwd
        self._running: list[Running] = []

    def argv(self, args: tuple[str, ...]) -> list[str]:
        base = [sys.executable, "-m", "messaging.cli"]
        if self.url is not None:
            base += ["--transport-url", self.url]
        return base + list(args)

    def run(self, *args: str, timeout: float = RUN_TIMEOUT) -> Result:
        try:
            done = subprocess.run(
                self.argv(args),
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"messaging {' '.join(args)} did not finish within {timeout}s: {exc}")
        return Result(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str) -> Running:
        running = Running(self.argv(args), self.env, self.cwd)
        self._running.append(running)
        return running

    def close(self) -> None:
        for running in self._running:
            running.kill()


def isolated_env(root: Path) -> dict[str, str]:
    """os.environ with HOME and the XDG directories under ``root`` and no transport URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.pop(ENV_TRANSPORT_URL, None)
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    for name, sub in (
        ("XDG_STATE_HOME", "state"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_RUNTIME_DIR", "runtime"),
    ):
        env[name] = str(root / sub)
    env["PYTHONUNBUFFERED"] = "1"
    # The checkout first, whatever the current directory of the test run.
    project = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (project, env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return isolated_env(tmp_path / "env")


def sqlite_unavailable(db: Path) -> str | None:
    """Why the sqlite driver cannot be used now, or None when it can."""
    from oslo_config import cfg

    from messaging.exceptions import DriverLoadFailure
    from messaging.transport import get_rpc_transport

    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[], default_config_dirs=[])
    try:
        transport = get_rpc_transport(conf, url=f"sqlite:///{db}")
    except DriverLoadFailure as exc:
        return f"the sqlite driver is not loadable yet (messaging/drivers/sqlite): {exc}"
    transport.cleanup()
    return None


def require_sqlite(tmp_path: Path) -> None:
    reason = sqlite_unavailable(tmp_path / "probe" / "probe.db")
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def rabbit_module_url() -> Iterator[str]:
    with rabbit_vhost("messaging-cli-tests") as vhost:
        yield rabbit_url(vhost)


@pytest.fixture(params=["sqlite", pytest.param("rabbit", marks=pytest.mark.broker)])
def bus_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A transport URL: a fresh sqlite file, or a RabbitMQ virtual host of this module."""
    if request.param == "sqlite":
        require_sqlite(tmp_path)
        return f"sqlite:///{tmp_path / 'bus' / 'bus.db'}"
    url: str = request.getfixturevalue("rabbit_module_url")
    return url


@pytest.fixture
def cli(bus_url: str, cli_env: dict[str, str], tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(cli_env, bus_url, cwd=tmp_path)
    yield runner
    runner.close()


@pytest.fixture
def bare_cli(cli_env: dict[str, str], tmp_path: Path) -> Iterator[Cli]:
    """The command with no transport option, configuration or environment variable."""
    runner = Cli(cli_env, None, cwd=tmp_path)
    yield runner
    runner.close()


@pytest.fixture
def names() -> dict[str, str]:
    """Topic names of this test, so that tests sharing a broker never see each other."""
    tag = uuid.uuid4().hex[:10]
    return {"topic": f"cli-{tag}", "notifications": f"cli-notes-{tag}"}
