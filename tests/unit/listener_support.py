"""Helpers shared by the listener, server and executor tests (in-memory transport, real threads).

Every wait here is bounded by :data:`TIMEOUT`; nothing sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from oslo_config import cfg
from oslo_context import context as oslo_context

import messaging
from messaging.drivers import memory
from messaging.server import MessageHandlingServer

#: The bound of every wait in these tests, in seconds (generous: only a hang reaches it).
TIMEOUT = 10.0

Call = tuple[Any, ...]


def make_conf(**overrides: Any) -> cfg.ConfigOpts:
    """A private configuration with the transport options registered and ``overrides`` set."""
    conf = cfg.ConfigOpts()
    conf([], project="messaging-tests", default_config_files=[], default_config_dirs=[])
    from messaging.conf import register_notification_opts, register_transport_opts

    register_transport_opts(conf)
    register_notification_opts(conf)
    for name, value in overrides.items():
        conf.set_override(name, value)
    return conf


def transport(conf: cfg.ConfigOpts, url: str = "fake://") -> messaging.Transport:
    """A notification transport on the in-memory broker."""
    return messaging.get_notification_transport(conf, url)


def notifier(
    transport: messaging.Transport,
    publisher_id: str = "compute.host1",
    topics: Sequence[str] = ("notifications",),
) -> messaging.Notifier:
    """A ``messagingv2`` notifier."""
    return messaging.Notifier(transport, publisher_id, driver="messagingv2", topics=list(topics))


def request_context(**values: Any) -> oslo_context.RequestContext:
    """A request context, as services pass to notifiers."""
    return oslo_context.RequestContext(**values)


def broker() -> memory.Broker:
    """The broker of the default virtual host."""
    return memory.get_broker()


class Recorder:
    """Endpoint base: records every call as ``(priority, ctxt, publisher_id, event_type,
    payload, metadata)`` in a queue (batch endpoints record ``(priority, messages)``).
    """

    def __init__(self) -> None:
        self.calls: queue.Queue[Call] = queue.Queue()

    def record(self, *call: Any) -> None:
        """Record one call."""
        self.calls.put(call)

    def take(self, count: int, timeout: float = TIMEOUT) -> list[Call]:
        """The next ``count`` calls; fails the test if they do not come within ``timeout``."""
        taken = []
        for index in range(count):
            try:
                taken.append(self.calls.get(timeout=timeout))
            except queue.Empty:
                raise AssertionError(
                    f"only {index} of {count} expected endpoint calls came: {taken}"
                ) from None
        return taken

    def pending(self) -> list[Call]:
        """The calls recorded and not taken yet, without waiting."""
        calls = []
        while True:
            try:
                calls.append(self.calls.get_nowait())
            except queue.Empty:
                return calls


class InfoRecorder(Recorder):
    """Records ``info`` notifications."""

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.record("info", ctxt, publisher_id, event_type, payload, md)


def start_bounded(server: MessageHandlingServer, **kwargs: Any) -> None:
    """Start ``server`` (with ``kwargs``), bounded by :data:`TIMEOUT`."""
    server.start(timeout=TIMEOUT, **kwargs)


def stop_and_wait(server: MessageHandlingServer) -> None:
    """Stop ``server`` and wait for it, bounded by :data:`TIMEOUT`."""
    server.stop(timeout=TIMEOUT)
    server.wait(timeout=TIMEOUT)


@contextlib.contextmanager
def running(server: MessageHandlingServer, **kwargs: Any) -> Iterator[MessageHandlingServer]:
    """Run ``server`` for the duration of the block; stop and wait for it afterwards."""
    start_bounded(server, **kwargs)
    try:
        yield server
    finally:
        stop_and_wait(server)


def in_thread(target: Any, *args: Any) -> tuple[threading.Thread, queue.Queue[Any]]:
    """Run ``target(*args)`` on a daemon thread; its result (or exception) goes to the queue."""
    outcome: queue.Queue[Any] = queue.Queue()

    def run() -> None:
        try:
            outcome.put(target(*args))
        except BaseException as exc:
            outcome.put(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def join(thread: threading.Thread, timeout: float = TIMEOUT) -> None:
    """Join ``thread``; fail the test if it is still alive after ``timeout``."""
    thread.join(timeout)
    assert not thread.is_alive(), f"thread {thread.name} did not finish within {timeout}s"
