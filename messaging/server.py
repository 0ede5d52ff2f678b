"""``MessageHandlingServer``: the lifecycle shared by RPC servers and notification listeners.

A server owns a listener (from its transport) and an executor. ``start()``
subscribes and has the executor's workers receive batches for themselves
(:meth:`~messaging.executors.Executor.serve`), or, with an executor or a
listener that cannot do that, starts a poll thread that hands each received
batch to the executor; ``stop()`` stops receiving (batches already received are still
handled); ``wait()`` waits for the handling in progress, then releases the
listener. The three calls are ordered as in oslo.messaging, and may come from
different threads: ``stop()`` waits for ``start()``, ``wait()`` waits for
``stop()``, and ``start()`` after ``stop()`` begins a new round. Each accepts
``log_after`` (seconds before a "Possible hang" warning; 0 disables it) and
``timeout`` (seconds before :class:`~messaging.exceptions.TaskTimeout`).
"""

from __future__ import annotations

import abc
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from messaging import health, metrics, tracing
from messaging.conf import register_transport_opts
from messaging.exceptions import (
    ExecutorLoadFailure,
    InvalidTarget,
    MessagingServerError,
    ServerListenError,
    TaskTimeout,
)
from messaging.executors import Executor, load_executor

if TYPE_CHECKING:
    from messaging.drivers.base import IncomingMessage, Listener
    from messaging.transport import Transport

# The exceptions are importable from here too, where oslo.messaging defines them.
__all__ = [
    "ExecutorLoadFailure",
    "MessageHandlingServer",
    "MessagingServerError",
    "ServerListenError",
    "TaskTimeout",
]

LOG = logging.getLogger(__name__)
#: Seconds stop() and wait() wait for start() and stop() before warning of a
#: possible hang, when their ``log_after`` is not given.
DEFAULT_LOG_AFTER = 30.0

_POLL_ERROR_BACKOFF = (0.1, 5.0)


class MessageHandlingServer(abc.ABC):
    """Receives messages from a transport and hands them to a dispatcher.

    Subclasses say how to subscribe (:meth:`_create_listener`) and what to do
    with a received batch (:meth:`_process_incoming`).

    Args:
        transport: the transport to receive from.
        dispatcher: the object that routes messages to endpoints.
        executor: ``threading`` (default), ``blocking``, ``eventlet`` or ``asyncio``; None picks
            ``eventlet`` when eventlet has monkey-patched threads, else ``threading``.

    Raises:
        ExecutorLoadFailure: ``executor`` names no known executor.
    """

    def __init__(self, transport: Transport, dispatcher: Any, executor: str | None = None) -> None:
        self.transport = transport
        self.conf = transport.conf
        self.dispatcher = dispatcher
        self.executor_type = executor
        self._executor_cls = load_executor(executor)
        register_transport_opts(self.conf)

        self._cond = threading.Condition()
        self._ops = threading.Lock()
        self._state = "new"  # new -> running -> stopped -> (start) running ...
        self._waited = False
        self._listener: Listener | None = None
        self._executor: Executor | None = None
        self._poll_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stopped_by_itself = threading.Event()
        # For health(): written by the receiving threads, read by anyone.
        self._counts = threading.Lock()
        self._received = 0
        self._in_flight = 0
        self._last_message_at: float | None = None
        # Read once: with tracing off, a message costs only the check of this attribute.
        self._tracing: tracing.Tracing | None = getattr(transport, "tracing", None)
        health.track(self)

    # -- what subclasses provide -------------------------------------------------

    @abc.abstractmethod
    def _create_listener(self) -> Listener:
        """Subscribe on the transport and return the listener."""

    @abc.abstractmethod
    def _process_incoming(self, incoming: list[IncomingMessage]) -> None:
        """Handle one received batch; acknowledge, requeue or reply as fits. Must not raise."""

    def _health_name(self) -> str:
        """What the server is, in a health report."""
        return type(self).__name__

    # -- health ----------------------------------------------------------------------

    def health(self) -> health.ServerHealth:
        """Read this server's health now (see :mod:`messaging.health`)."""
        link = self.transport.driver.link_health()
        listener, executor, poll_thread = self._listener, self._executor, self._poll_thread
        running = self._state == "running"
        consuming = running and listener is not None and listener.consuming()
        max_workers = executor.max_workers if executor is not None else 0
        with self._counts:
            in_flight, received, last = self._in_flight, self._received, self._last_message_at
        problems = []
        dead = []
        if not link.alive:
            dead.append("an I/O thread of its transport has died")
        if running and poll_thread is not None and not poll_thread.is_alive():
            dead.append("its receiving thread has died")
        if running and self._stopped_by_itself.is_set():
            dead.append("its listener stopped by itself")
        problems.extend(dead)
        if running and not link.connected:
            problems.append(
                "not connected to the broker" + (f" ({link.error})" if link.error else "")
            )
        if running and not consuming:
            problems.append("the broker delivers nothing to it (not consuming)")
        if not running:
            problems.append(f"not running ({self._state})")
        return health.ServerHealth(
            name=self._health_name(),
            state=self._state,
            consuming=consuming,
            last_message_age=None if last is None else max(0.0, time.monotonic() - last),
            received=received,
            in_flight=in_flight,
            max_workers=max_workers,
            saturation=in_flight / max_workers if max_workers else 0.0,
            link=link,
            problems=tuple(problems),
            live=not dead,
            ready=running and not problems,
        )

    #: What a server receives, in metrics: ``rpc`` or ``notification``.
    metrics_kind = "rpc"

    @functools.cached_property
    def metrics_name(self) -> str:
        """The ``server`` label of this server's metrics (its health name)."""
        return self._health_name()

    def _handle_batch(self, batch: list[IncomingMessage]) -> None:
        started = time.monotonic()
        with self._counts:
            self._in_flight += 1
            self._received += len(batch)
            self._last_message_at = started
        counting = metrics.ACTIVE
        if counting is not None:
            for message in batch:
                priority = str(message.message.get("priority", "")).lower()
                counting.count_received(self.metrics_name, self.metrics_kind, priority)
        try:
            self._process_incoming(batch)
        finally:
            with self._counts:
                self._in_flight -= 1
            if counting is not None:
                counting.observe_handling(
                    self.metrics_name, self.metrics_kind, time.monotonic() - started
                )

    def _count_handled(self, outcome: str) -> None:
        """Count one message handled, with its outcome (when metrics are on)."""
        counting = metrics.ACTIVE
        if counting is not None:
            counting.count_handled(self.metrics_name, self.metrics_kind, outcome)

    # -- ordering ------------------------------------------------------------------

    def _await(
        self,
        ready: Callable[[], bool],
        task: str,
        after: str,
        log_after: float | None,
        timeout: float | None,
    ) -> None:
        if log_after is None:
            log_after = DEFAULT_LOG_AFTER
        start = time.monotonic()
        warned = False
        with self._cond:
            while not ready():
                elapsed = time.monotonic() - start
                if timeout is not None and elapsed >= timeout:
                    raise TaskTimeout(
                        f"Timed out after {timeout}s: {task} waited for {after} to complete"
                    )
                waits = [1.0]
                if timeout is not None:
                    waits.append(timeout - elapsed)
                if log_after and not warned:
                    if elapsed >= log_after:
                        LOG.warning(
                            "Possible hang: %s", f"{task} is waiting for {after} to complete"
                        )
                        warned = True
                    else:
                        waits.append(log_after - elapsed)
                self._cond.wait(max(0.0, min(waits)))

    def _set_state(self, state: str, waited: bool | None = None) -> None:
        with self._cond:
            self._state = state
            if waited is not None:
                self._waited = waited
            self._cond.notify_all()

    # -- lifecycle -------------------------------------------------------------------

    def start(
        self,
        override_pool_size: int | None = None,
        *,
        log_after: float = 30,
        timeout: float | None = None,
    ) -> None:
        """Subscribe and begin handling messages.

        Args:
            override_pool_size: executor size instead of ``executor_thread_pool_size``.
            log_after: unused here (start waits for nothing); accepted for symmetry.
            timeout: unused here; accepted for symmetry.

        Raises:
            ServerListenError: the transport could not subscribe.
        """
        with self._ops:
            if self._state == "running":
                LOG.warning("The server %r has already been started; start() ignored", self)
                return
            if self._state == "stopped" and not self._waited:
                self._finish()  # a restart after stop() without wait()
            try:
                listener = self._create_listener()
            except Exception as exc:
                # Nothing runs: stop() and wait() must not wait for a start that failed.
                self._set_state("stopped", waited=True)
                if isinstance(exc, InvalidTarget | NotImplementedError):
                    raise
                raise ServerListenError(getattr(self, "target", None), exc) from exc
            size = override_pool_size or self.conf.executor_thread_pool_size
            self._after_start()
            executor = self._executor = self._executor_cls(size)
            self._listener = listener
            self._stopping.clear()
            self._stopped_by_itself.clear()
            if not (
                listener.concurrent_poll
                and executor.serve(lambda: self._receive(listener), self._handle_batch)
            ):
                self._poll_thread = threading.Thread(
                    target=self._poll_loop,
                    args=(listener, executor),
                    name=f"messaging-poll-{id(self):x}",
                )
                self._poll_thread.daemon = True
                self._poll_thread.start()
            self._set_state("running", waited=False)

    def stop(self, *, log_after: float | None = None, timeout: float | None = None) -> None:
        """Stop receiving. Batches already received are still handled (see :meth:`wait`).

        Waits for :meth:`start` if it has not happened yet. Does not wait for the
        poll thread (:meth:`wait` does), so an endpoint may stop its own server,
        whatever the executor.
        """
        self._await(lambda: self._state != "new", "stop", "start", log_after, timeout)
        with self._ops:
            if self._state != "running":
                return
            self._stopping.set()
            assert self._listener is not None
            self._listener.stop()
            self._set_state("stopped")

    def wait(self, *, log_after: float | None = None, timeout: float | None = None) -> None:
        """Wait until the messages received before :meth:`stop` are handled, then clean up.

        Waits for :meth:`stop` if it has not happened yet.
        """
        self._await(lambda: self._state == "stopped", "wait", "stop", log_after, timeout)
        with self._ops:
            if self._state != "stopped" or self._waited:
                return
            self._finish()

    def _finish(self) -> None:
        # The poll thread may still hold a batch received before stop(): let it
        # hand that over before the executor is shut down.
        poll_thread, self._poll_thread = self._poll_thread, None
        if poll_thread is not None and poll_thread is not threading.current_thread():
            poll_thread.join()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._before_cleanup()
        if self._listener is not None:
            try:
                self._listener.cleanup()
            except Exception:
                LOG.exception("Error while cleaning up the listener of %r", self)
            self._listener = None
        self._set_state("stopped", waited=True)

    def _after_start(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Hook: called once the server runs (before it receives anything)."""

    def _before_cleanup(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Hook: called once handling has stopped, before the listener is released."""

    def reset(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Hook for configuration reloads (SIGHUP); nothing to do."""

    # -- the poll thread --------------------------------------------------------------

    def _receive(self, listener: Listener) -> list[IncomingMessage] | None:
        """The next batch; None once the server (or the listener by itself) stopped."""
        backoff = _POLL_ERROR_BACKOFF[0]
        while not self._stopping.is_set():
            try:
                batch = listener.poll(timeout=None)
            except Exception:
                LOG.exception("Failed to receive messages; retrying in %.1f s", backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _POLL_ERROR_BACKOFF[1])
                continue
            if batch:
                return batch
            # A poll without timeout returns nothing only once the listener is
            # stopped; if the server was not (its transport was cleaned up under
            # it), stop receiving rather than spin.
            if not self._stopping.is_set() and not self._stopped_by_itself.is_set():
                self._stopped_by_itself.set()
                LOG.warning("The listener of %r stopped by itself; no more messages", self)
            return None
        return None

    def _poll_loop(self, listener: Listener, executor: Executor) -> None:
        while (batch := self._receive(listener)) is not None:
            try:
                executor.submit(self._handle_batch, batch)
            except Exception:
                LOG.exception("The executor refused a batch; handling it on the poll thread")
                self._handle_batch(batch)
