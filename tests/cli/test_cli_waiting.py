"""The status line of a command that waits: on a terminal only, cleared after."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from messaging.cli.waiting import waiting
from messaging.health import LinkHealth
from tests.cli.conftest import RUN_TIMEOUT, isolated_env

CLEAR = "\r\x1b[K"


class Terminal(io.StringIO):
    """A stream that says it is a terminal and tells when something was written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = threading.Event()

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        count = super().write(text)
        self.written.set()
        return count


class _Down:
    """A transport whose connection is down (only what the status line reads)."""

    class driver:  # noqa: N801 - stands for the attribute of a Transport
        @staticmethod
        def link_health() -> LinkHealth:
            return LinkHealth(connected=False, error="[Errno 111] Connection refused\nmore")


def test_nothing_is_written_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    with waiting(stream, "the reply", show_after=0):
        pass
    assert stream.getvalue() == ""


def test_a_terminal_sees_what_is_waited_for_then_a_cleared_line() -> None:
    stream = Terminal()
    with waiting(stream, "the reply of echo", show_after=0):
        assert stream.written.wait(RUN_TIMEOUT)
    text = stream.getvalue()
    assert text.startswith(CLEAR + "waiting 0 s for the reply of echo")
    assert text.endswith(CLEAR)


def test_a_connection_down_says_why() -> None:
    stream = Terminal()
    transport: Any = _Down()
    with waiting(stream, "the reply", transport, show_after=0):
        assert stream.written.wait(RUN_TIMEOUT)
    line = stream.getvalue().split(CLEAR)[1]
    assert line.endswith("(reconnecting: [Errno 111] Connection refused)"), line


def test_a_quick_answer_shows_nothing() -> None:
    stream = Terminal()
    with waiting(stream, "the reply", show_after=RUN_TIMEOUT):
        pass
    assert stream.getvalue() == ""


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the command with its stderr on a pseudo-terminal; its code and what stderr showed."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "messaging.cli", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while time.monotonic() < deadline:
            readable, _, _ = select.select([master], [], [], deadline - time.monotonic())
            if not readable:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the command exited and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        code = process.wait(timeout=RUN_TIMEOUT)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=RUN_TIMEOUT)
    return code, shown.decode()


def test_notify_shows_on_a_terminal_that_it_waits_for_the_broker(tmp_path: Path) -> None:
    # Port 1 on the loopback refuses: the notification waits for a reconnection,
    # at least rabbit_retry_interval (1 s), longer than the line's delay.
    env = isolated_env(tmp_path)
    down = "rabbit://guest:guest@127.0.0.1:1/"
    code, shown = _run_on_a_terminal(
        ["--transport-url", down, "notify", "--retry", "1", "x.y"], env
    )
    assert code == 5, shown
    status, _, error = shown.rpartition(CLEAR)
    assert re.search(r"waiting \d+ s for the broker to take x\.y \(reconnecting: ", status), shown
    assert error.startswith("messaging notify: "), shown
    assert error.count("\n") == 1, shown


@pytest.mark.parametrize("args", [["notify", "--retry", "1", "x.y"], ["ping", "--retry", "1"]])
def test_nothing_changes_when_stderr_is_a_pipe(tmp_path: Path, args: list[str]) -> None:
    env = isolated_env(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "messaging.cli", "--transport-url", "rabbit://127.0.0.1:1/", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 5
    assert "waiting" not in done.stderr
    assert "\r" not in done.stderr
