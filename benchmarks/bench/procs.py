"""The worker processes: the code they run, starting one, its JSON lines, stopping it.

By default a run works on a copy of ``messaging/`` and ``benchmarks/`` taken
when it starts (:func:`code_snapshot`), so that edits made to the checkout
while it runs do not change the code under test halfway through.
"""

from __future__ import annotations

import collections
import compileall
import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

Event = dict[str, Any]
_EOF = object()


class WorkerError(RuntimeError):
    """A worker failed, exited early or said nothing in time (the message has its stderr)."""


#: Where workers take ``messaging`` and ``benchmarks`` from; see :func:`code_snapshot`.
_code_root = REPO_ROOT


def code_root() -> Path:
    """The directory workers import ``messaging`` and ``benchmarks`` from."""
    return _code_root


@contextlib.contextmanager
def code_snapshot(enabled: bool = True) -> Iterator[Path]:
    """Copy ``messaging/`` and ``benchmarks/`` to a temporary directory and run from it.

    Inside the block, workers import from the copy (compiled once), and the
    current directory is the copy, so that ``python -c 'import messaging'``
    (the import-time measurement) finds it first too. Disabled, the checkout
    itself is used.
    """
    global _code_root
    if not enabled:
        yield REPO_ROOT
        return
    previous = Path.cwd()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    with tempfile.TemporaryDirectory(prefix="messaging-bench-code-") as directory:
        root = Path(directory)
        for package in ("messaging", "benchmarks"):
            shutil.copytree(REPO_ROOT / package, root / package, ignore=ignore)
        compileall.compile_dir(root, quiet=1)
        _code_root = root
        os.chdir(root)
        try:
            yield root
        finally:
            os.chdir(previous)
            _code_root = REPO_ROOT


def worker_env() -> dict[str, str]:
    """The environment of a worker: the code root first on the path, nothing of a venv leaks."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
    }
    env["PYTHONPATH"] = str(_code_root)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Worker:
    """A running ``python -m <module> ...``; its stdout JSON lines arrive through a thread.

    Args:
        name: a label for error messages.
        python: the interpreter.
        module: the module to run (``benchmarks.bench.worker`` or ``.raw_kombu``).
        args: its arguments.
    """

    def __init__(self, name: str, python: str, module: str, args: list[str]) -> None:
        self.name = name
        self.argv = [python, "-m", module, *args]
        self._events: queue.Queue[object] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=60)
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=worker_env(),
            cwd=_code_root,
        )
        self.pid = self._proc.pid
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith("{"):
                try:
                    self._events.put(json.loads(line))
                except ValueError:
                    self._stderr.append("(stdout) " + line.rstrip())
            else:
                self._stderr.append("(stdout) " + line.rstrip())
        self._events.put(_EOF)

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line.rstrip())

    def diagnostics(self) -> str:
        """The command line, exit status and last lines of stderr."""
        tail = "\n".join(f"    {line}" for line in self._stderr) or "    (nothing)"
        return (
            f"worker {self.name!r} (exit status {self._proc.poll()}): "
            f"{' '.join(self.argv)}\n  stderr:\n{tail}"
        )

    def wait_event(self, event: str, timeout: float) -> Event:
        """Return the next line with this ``event``, skipping others.

        Raises:
            WorkerError: the worker reported an error, exited, or was silent too long.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise WorkerError(
                    f"no {event!r} within {timeout:.0f} s\n{self.diagnostics()}"
                ) from None
            if item is _EOF:
                self._proc.wait(10)
                self._stderr_flush()
                raise WorkerError(f"exited before {event!r}\n{self.diagnostics()}")
            assert isinstance(item, dict)
            if item.get("event") == "error":
                self._stderr_flush()
                raise WorkerError(f"{item.get('error')}\n{self.diagnostics()}")
            if item.get("event") == event:
                return item

    def _stderr_flush(self) -> None:
        self._readers[1].join(2.0)

    def result(self, timeout: float) -> Event:
        """Wait for the ``result`` line and for the process to exit; return the figures.

        Raises:
            WorkerError: as :meth:`wait_event`; the worker is killed first.
        """
        try:
            figures = self.wait_event("result", timeout)
        except WorkerError:
            self.kill()
            raise
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()  # the figures are in; a thread that does not end is not ours to wait for
        figures.pop("event", None)
        return figures

    def close_stdin(self) -> None:
        """Tell a serving worker to stop (it stops when its stdin closes)."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()

    def kill(self) -> None:
        """Kill the worker if it still runs."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_stdin()
        if exc[0] is not None:
            self.kill()
            return
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
