"""``messaging demo``: notifications and RPC between processes, self-contained.

It starts two processes of this command on a temporary embedded bus: ``messaging
listen`` (a notification listener) and ``messaging serve`` with
:class:`~messaging.cli.demo_endpoints.Calculator` (an RPC server). It then sends
notifications and makes calls and a cast from this process, prints what each
side received as it arrives, stops both processes and removes the bus.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from messaging.cli.errors import CliError, ExitCode
from messaging.cli.session import ENV_TRANSPORT_URL, READY_PREFIX, embedded_url

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.cli.commands import Commands
    from messaging.cli.session import Session

__all__ = ["add_parser", "run"]

#: Seconds a child has to start and subscribe.
START_TIMEOUT = 60.0
#: Seconds to wait for a side to receive what was sent.
RECEIVE_TIMEOUT = 30.0
#: Seconds a child has to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 15.0

_print_lock = threading.Lock()


def _say(who: str, text: str) -> None:
    with _print_lock:
        print(f"[{who}] {text}", flush=True)


def add_parser(commands: Commands) -> None:
    """Add ``demo`` to the ``messaging`` command."""
    commands.add(
        "demo",
        run,
        long_running=True,
        summary="run a notification listener and an RPC server in two processes and talk to them",
        description=__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else None,
    )


class _Child:
    """A child process of this command whose output lines are shown as they come."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
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
                if READY_PREFIX in line:
                    self._ready.set()
                    continue
                self.errors.append(line)
                continue
            _say(self.name, line)
            self.lines.put(line)

    def wait_ready(self, timeout: float) -> None:
        """Wait until the child says it is subscribed.

        Raises:
            CliError: the child exited first, or took longer than ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self.process.poll() is not None:
                self._join_readers()
                raise CliError(f"the {self.name} exited while starting: {self.last_error()}")
            if time.monotonic() > deadline:
                raise CliError(f"the {self.name} did not start within {timeout:g}s")

    def expect(self, text: str, timeout: float) -> str:
        """Return the next output line, which must contain ``text``.

        Raises:
            CliError: no line within ``timeout``, or another line came.
        """
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise CliError(
                f"the {self.name} printed nothing within {timeout:g}s (expected {text!r})",
                ExitCode.TIMEOUT,
            ) from None
        if text not in line:
            raise CliError(f"the {self.name} printed {line!r}, expected {text!r}")
        return line

    def last_error(self) -> str:
        """The child's last line on stderr, or its exit code."""
        return self.errors[-1] if self.errors else f"exit code {self.process.returncode}"

    def _join_readers(self) -> None:
        for reader in self._readers:
            reader.join(timeout=STOP_TIMEOUT)

    def finish(self, timeout: float) -> int:
        """Wait for the child to exit by itself; return its exit code.

        Raises:
            CliError: it did not exit within ``timeout``.
        """
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CliError(
                f"the {self.name} did not exit within {timeout:g}s", ExitCode.TIMEOUT
            ) from None
        self._join_readers()
        return code

    def stop(self) -> int:
        """Terminate the child (SIGTERM, then SIGKILL) and return its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        self._join_readers()
        return self.process.returncode


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "messaging.cli", *args]


def _child_env(url: str) -> dict[str, str]:
    # The URL goes through the environment, not argv, where `ps` would show a password.
    return {**os.environ, ENV_TRANSPORT_URL: url}


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _notifications(conf: cfg.ConfigOpts, url: str, listener: _Child, topic: str) -> None:
    """Send three notifications; check the listener printed each, then exited 0."""
    from messaging.notify import Notifier
    from messaging.transport import get_notification_transport

    transport = get_notification_transport(conf, url=url)
    try:
        notifier = Notifier(
            transport,
            publisher_id="demo.host1",
            driver="messagingv2",
            topics=[topic],
            retry=2,
            raise_errors=True,
        )
        events = [
            ("info", "compute.instance.create.start", {"instance_id": "42"}),
            ("info", "compute.instance.create.end", {"instance_id": "42", "state": "active"}),
            ("error", "compute.instance.delete.error", {"instance_id": "7", "reason": "busy"}),
        ]
        for priority, event_type, payload in events:
            _say("demo", f"notify {priority.upper()} {event_type} {_show(payload)}")
            getattr(notifier, priority)({}, event_type, payload)
        notifier.flush(RECEIVE_TIMEOUT)
    finally:
        transport.cleanup()
    for _priority, event_type, _payload in events:
        listener.expect(event_type, RECEIVE_TIMEOUT)
    code = listener.finish(RECEIVE_TIMEOUT)
    if code != 0:
        raise CliError(f"the listener exited with code {code}: {listener.last_error()}")


def _rpc(conf: cfg.ConfigOpts, url: str, server: _Child, topic: str, server_name: str) -> None:
    """Make calls, a cast and a ping; check the server printed each request."""
    from messaging.rpc import get_rpc_client
    from messaging.target import Target
    from messaging.transport import get_rpc_transport

    transport = get_rpc_transport(conf, url=url)
    try:
        client = get_rpc_client(transport, Target(topic=topic), timeout=RECEIVE_TIMEOUT, retry=2)
        _say("demo", "call add(a=2, b=3)")
        _say("demo", f"result: {_show(client.call({}, 'add', a=2, b=3))}")
        server.expect("received add", RECEIVE_TIMEOUT)

        _say("demo", 'call echo(greeting="hello") with the context {"user": "alice"}')
        echoed = client.call({"user": "alice"}, "echo", greeting="hello")
        _say("demo", f"result: {_show(echoed)}")
        server.expect("received echo", RECEIVE_TIMEOUT)

        _say("demo", "call divide(a=1, b=0)")
        try:
            client.call({}, "divide", a=1, b=0)
        except ZeroDivisionError as exc:
            _say("demo", f"the server raised ZeroDivisionError: {str(exc).splitlines()[0]}")
        else:
            raise CliError("divide(a=1, b=0) did not raise ZeroDivisionError")
        server.expect("received divide", RECEIVE_TIMEOUT)

        _say("demo", 'cast record(note="nobody waits for this")')
        client.cast({}, "record", note="nobody waits for this")
        server.expect("received record", RECEIVE_TIMEOUT)

        _say("demo", f"ping the server {server_name!r}")
        answer = client.prepare(server=server_name).call({}, "oslo_rpc_server_ping")
        _say("demo", f"result: {_show(answer)}")
    finally:
        transport.cleanup()


def run(args: argparse.Namespace, session: Session) -> int:
    """Run the demo; return 0 when each side received what was sent."""
    from oslo_config import cfg

    from messaging.transport import redact_url

    run_id = uuid.uuid4().hex[:8]
    notifications = f"demo-notifications-{run_id}"
    topic = f"demo-calculator-{run_id}"
    server_name = "demo-server"
    with tempfile.TemporaryDirectory(prefix="messaging-demo-") as tmp:
        url = session.explicit_url or embedded_url(Path(tmp) / "bus.db")
        _say("demo", f"transport: {redact_url(url)}")
        conf = cfg.ConfigOpts()
        conf(args=[], default_config_files=[], default_config_dirs=[])
        children: list[_Child] = []
        try:
            listener = _Child(
                "listener",
                _command("listen", "--topic", notifications, "--count", "3", "--timeout", "120"),
                _child_env(url),
            )
            children.append(listener)
            server = _Child(
                "rpc server",
                _command(
                    "serve",
                    "--topic",
                    topic,
                    "--server",
                    server_name,
                    "messaging.cli.demo_endpoints:Calculator",
                ),
                _child_env(url),
            )
            children.append(server)
            for child in children:
                child.wait_ready(START_TIMEOUT)
                shown = " ".join(child.argv[3:])
                _say(
                    "demo", f"started the {child.name}: messaging {shown} (pid {child.process.pid})"
                )
            _notifications(conf, url, listener, notifications)
            _rpc(conf, url, server, topic, server_name)
            code = server.stop()
            if code != 0:
                raise CliError(f"the rpc server exited with code {code}: {server.last_error()}")
        finally:
            for child in children:
                child.stop()
    _say("demo", "done: the listener and the rpc server received everything sent, and stopped")
    return ExitCode.OK
