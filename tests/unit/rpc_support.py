"""Helpers shared by the RPC tests: configuration, transports, servers run in threads.

Every wait here is bounded by :data:`TIMEOUT` (generous: only a hang reaches it);
nothing sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from oslo_config import cfg

import messaging
from messaging.drivers import memory

#: The bound of every wait in these tests, in seconds.
TIMEOUT = 10.0

#: This module, for ``allowed_remote_exmods``.
THIS_MODULE = __name__


class QuotaError(Exception):
    """An application exception with keyword arguments, as nova's exceptions carry."""

    def __init__(self, message: str = "quota exceeded", **kwargs: Any) -> None:
        self.kwargs = kwargs
        super().__init__(message)


class InstanceNotFound(LookupError):
    """An application exception a method declares as expected."""


def make_conf(**overrides: Any) -> cfg.ConfigOpts:
    """A private configuration (``transport_url = fake://``) with ``overrides`` set."""
    conf = cfg.ConfigOpts()
    conf([], project="messaging-tests", default_config_files=[], default_config_dirs=[])
    from messaging.conf import register_transport_opts

    register_transport_opts(conf)
    conf.set_override("transport_url", "fake://")
    for name, value in overrides.items():
        conf.set_override(name, value)
    return conf


def rpc_transport(
    conf: cfg.ConfigOpts, allowed_remote_exmods: Sequence[str] | None = None
) -> messaging.Transport:
    """An RPC transport on the in-memory broker (its own driver, as another process has)."""
    return messaging.get_rpc_transport(conf, "fake://", allowed_remote_exmods=allowed_remote_exmods)


def broker() -> memory.Broker:
    """The broker of the default virtual host."""
    return memory.get_broker()


class Calls:
    """A thread-safe record of endpoint invocations, taken with bounded waits."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()

    def put(self, item: Any) -> None:
        """Record one invocation."""
        self._queue.put(item)

    def take(self, count: int = 1, timeout: float = TIMEOUT) -> list[Any]:
        """The next ``count`` invocations; fails the test if they do not come in time."""
        taken: list[Any] = []
        for index in range(count):
            try:
                taken.append(self._queue.get(timeout=timeout))
            except queue.Empty:
                raise AssertionError(
                    f"only {index} of {count} expected invocations came: {taken}"
                ) from None
        return taken

    def pending(self) -> list[Any]:
        """The invocations recorded and not taken yet, without waiting."""
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items


class Echo:
    """An endpoint recording ``(name, method, args)`` of every invocation."""

    def __init__(self, name: str = "server", calls: Calls | None = None) -> None:
        self.name = name
        self.calls = calls if calls is not None else Calls()

    def echo(self, ctxt: Any, value: Any = None) -> Any:
        self.calls.put((self.name, "echo", value))
        return value

    def whoami(self, ctxt: Any) -> str:
        self.calls.put((self.name, "whoami", None))
        return self.name

    def note(self, ctxt: Any, value: Any = None) -> None:
        self.calls.put((self.name, "note", value))

    def context(self, ctxt: Any) -> Any:
        return ctxt


class Gate:
    """Lets a test hold endpoint methods inside their call and release them.

    ``entered`` receives one item per method that reached the gate; ``release``
    opens it. A held method gives up after :data:`TIMEOUT`, so no test hangs.
    """

    def __init__(self) -> None:
        self.entered: queue.Queue[Any] = queue.Queue()
        self.release = threading.Event()

    def hold(self, item: Any = None) -> bool:
        """Called by an endpoint: announce, then wait for :attr:`release`."""
        self.entered.put(item)
        return self.release.wait(TIMEOUT)

    def wait_entered(self, count: int = 1, timeout: float = TIMEOUT) -> list[Any]:
        """Wait until ``count`` methods reached the gate."""
        items = []
        for index in range(count):
            try:
                items.append(self.entered.get(timeout=timeout))
            except queue.Empty:
                raise AssertionError(f"only {index} of {count} calls reached the gate") from None
        return items


@contextlib.contextmanager
def serving(
    transport: messaging.Transport,
    target: messaging.Target,
    endpoints: Sequence[Any],
    *,
    executor: str = "threading",
    release: Sequence[threading.Event] = (),
    **kwargs: Any,
) -> Iterator[messaging.rpc.RPCServer]:
    """Run an RPC server for the duration of the block; stop and wait for it after.

    Args:
        transport: the server's transport.
        target: topic and server name.
        endpoints: the endpoints.
        executor: the executor name.
        release: events set before stopping, so that held endpoints return.
        **kwargs: more arguments of ``get_rpc_server``.
    """
    server = messaging.get_rpc_server(transport, target, endpoints, executor=executor, **kwargs)
    server.start(timeout=TIMEOUT)
    try:
        yield server
    finally:
        for event in release:
            event.set()
        server.stop(timeout=TIMEOUT)
        server.wait(timeout=TIMEOUT)


class Outcome:
    """The result (or exception) of a function run on a daemon thread."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._queue: queue.Queue[tuple[bool, Any]] = queue.Queue()

        def run() -> None:
            try:
                self._queue.put((True, fn(*args, **kwargs)))
            except BaseException as exc:
                self._queue.put((False, exc))

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def get(self, timeout: float = TIMEOUT) -> Any:
        """The function's result; its exception is raised here."""
        try:
            ok, value = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no outcome within {timeout}s") from None
        self.thread.join(timeout)
        if not ok:
            raise value
        return value

    def error(self, timeout: float = TIMEOUT) -> BaseException:
        """The exception the function raised; fails the test if it returned."""
        try:
            value = self.get(timeout)
        except BaseException as exc:
            return exc
        raise AssertionError(f"expected an exception, got the result {value!r}")

    def done(self) -> bool:
        """Whether the function has finished."""
        return not self._queue.empty()


def join(thread: threading.Thread, timeout: float = TIMEOUT) -> None:
    """Join ``thread``; fail the test if it is still alive after ``timeout``."""
    thread.join(timeout)
    assert not thread.is_alive(), f"thread {thread.name} did not finish within {timeout}s"
