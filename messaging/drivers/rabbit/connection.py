"""One AMQP connection, owned by one I/O thread.

py-amqp connections are not thread-safe, so every operation on a connection
(declare, publish, consume, ack) runs on its I/O thread: other threads hand it
work with :meth:`AmqpConnection.post` or :meth:`AmqpConnection.submit_raw`. The
I/O thread waits in ``select()`` on the socket and on a wake-up pipe, so it
sleeps when there is nothing to do and reacts at once when there is; it also
sends AMQP heartbeats, so they keep flowing however busy the application is.

The I/O thread is a real OS thread even in a process that eventlet
monkey-patched, built from the unpatched modules, and it tells the
application's threads what happened only through :mod:`messaging.green`
(see the rules there): green threads that hold the CPU do not stop its
heartbeats, and no two green threads ever wait on its socket.

When the connection fails, the thread reconnects with backoff, moving through
the URL's hosts (round-robin or shuffled), and tells its observers (the
publisher and the subscriptions), which restore their channels, consumers and
unconfirmed messages.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import amqp
import amqp.exceptions

from messaging import green
from messaging.drivers.pool import process_id
from messaging.drivers.rabbit.amqp_internals import missing, warn_once
from messaging.drivers.rabbit.frames import FrameReader, reader_for
from messaging.drivers.rabbit.options import ssl_options_for_host
from messaging.drivers.rabbit.refusals import login_refusal
from messaging.drivers.rabbit.sockets import NativeConnection, bound_blocking_reads
from messaging.exceptions import BrokerRefusal, MessageDeliveryFailure

if TYPE_CHECKING:
    from messaging.drivers.rabbit.options import RabbitSettings
    from messaging.transport import TransportHost

__all__ = ["CONNECTION_ERRORS", "AmqpConnection", "ConnectionObserver"]

LOG = green.hand_over_logs(__name__)
# py-amqp logs on the I/O thread too, and filters do not pass to child loggers.
green.hand_over_logs("amqp")
green.hand_over_logs("amqp.connection.Connection.heartbeat_tick")
T = TypeVar("T")

#: Errors after which the connection is considered lost.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    amqp.exceptions.ConnectionError,
    amqp.exceptions.RecoverableConnectionError,
    socket.error,
    OSError,
    EOFError,
)
DEFAULT_PORT = 5672
#: Seconds a synchronous method waits for its answer when heartbeats are off.
ANSWER_TIMEOUT = 60.0
#: Seconds a closing connection waits for the broker's ``close-ok``.
CLOSE_TIMEOUT = 2.0
_IDLE_TICK = 1.0
_FLUSH_FRAMES = 64


class ConnectionObserver(Protocol):
    """What publishers and subscriptions implement to follow the connection's life."""

    def on_connected(self, conn: amqp.Connection, generation: int) -> None:
        """Called on the I/O thread after each (re)connection: restore channels and consumers."""

    def on_connection_lost(self, error: BaseException) -> None:
        """Called on the I/O thread when the connection fails."""

    def on_connect_failed(self, error: BaseException) -> None:
        """Called on the I/O thread after each failed connection attempt."""


class AmqpConnection:
    """A self-healing AMQP connection driven by its own thread.

    Args:
        settings: the driver's settings.
        hosts: the broker hosts of the URL (tried in turn on failure).
        virtual_host: the virtual host ('/' when None or empty).
        name: a short label for logs and the connection name shown by RabbitMQ.
    """

    def __init__(
        self,
        settings: RabbitSettings,
        hosts: Sequence[TransportHost],
        virtual_host: str | None,
        name: str,
    ) -> None:
        self.settings = settings
        self.virtual_host = virtual_host or "/"
        self.name = name
        self._hosts = list(hosts) or [_default_host()]
        if settings.kombu_failover_strategy == "shuffle":
            random.shuffle(self._hosts)
        self._host_cycle = itertools.cycle(range(len(self._hosts)))
        green.start_bridge()
        native = self._native = green.natives()
        # Green threads may hand work over directly only where it never blocks
        # the hub: in a monkey-patched process everything goes through the I/O thread.
        self._direct = not green.monkey_patched()
        self._lock = native.threading.Lock()
        self._commands: collections.deque[_Command] = collections.deque()
        self._wake_pending = False
        self._out: list[bytes] = []  # frames held by write_buffered until the round ends
        self._holding = False  # inside write_buffered: writes go to _out
        self._send: Callable[[bytes], None] | None = None  # the socket's own write
        self._in_round = False
        self._round_end: list[Callable[[], None]] = []
        # Held by the I/O thread while it uses the connection (not while it waits in
        # select), and by a caller thread that uses it directly (try_direct).
        self.io_lock = native.threading.RLock()
        self._waiting: list[_Command] = []  # commands that need the connection back
        self._observers: list[ConnectionObserver] = []
        self._wake_r, self._wake_w = native.os.pipe()
        native.os.set_blocking(self._wake_r, False)
        native.os.set_blocking(self._wake_w, False)
        self._conn: amqp.Connection | None = None
        self._reader: FrameReader | None = None  # bulk frame reads (plain TCP only)
        self.generation = 0
        self.current_host: TransportHost | None = None
        self.blocked: str | None = None
        self._closing = native.threading.Event()
        self._connected = green.CallerEvent()
        self._stopped = green.CallerEvent()
        self._thread: Any = None  # the native threading.Thread
        self._pid = process_id()
        self._retry_delay = float(settings.rabbit_retry_interval)
        self._last_failure: BaseException | None = None
        self._failures_in_round = 0
        self.connection_name = f"{name}:{os.getpid()}:{uuid.uuid4()}"

    # -- threads other than the I/O thread -----------------------------------------------

    def add_observer(self, observer: ConnectionObserver) -> None:
        """Follow the connection; if it is up, ``on_connected`` runs soon for the observer."""

        def add() -> None:
            self._observers.append(observer)
            if self._conn is not None:
                observer.on_connected(self._conn, self.generation)
            elif self._last_failure is not None:
                # Down now: say so at once rather than at the next attempt.
                observer.on_connect_failed(self._last_failure)

        self.submit_raw(add)

    def remove_observer(self, observer: ConnectionObserver) -> green.Completion:
        """Stop following the connection."""

        def remove() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return self.submit_raw(remove)

    def submit_raw(self, fn: Callable[[], None]) -> green.Completion:
        """Run ``fn()`` on the I/O thread, connected or not; the completion tells its end."""
        completion = green.Completion()
        self._enqueue(_Command(lambda _conn: fn(), needs_connection=False, completion=completion))
        return completion

    def run_connected(self, work: Callable[[amqp.Connection], T], timeout: float, what: str) -> T:
        """Run ``work(connection)`` on the I/O thread once connected, within ``timeout``.

        For a command's one-off talk with the broker (counting queues, browsing
        parked messages): ``what`` says what it is for, in the errors. A refused
        login fails it at once, as it fails a send.

        Raises:
            BrokerRefusal: the broker refuses the login (credentials, virtual host).
            MessageDeliveryFailure: the broker was not reached within ``timeout``,
                ``work`` did not finish within it, or the broker refused it.
        """
        job = _OneOff(work)
        self.add_observer(job)
        try:
            return cast(T, job.completion.result(timeout))
        except TimeoutError:
            raise MessageDeliveryFailure(
                f"The broker did not answer within {timeout:g} s when asked to {what}"
                if job.started
                else f"Could not reach the broker within {timeout:g} s to {what}"
            ) from None
        except BrokerRefusal:
            raise
        except (amqp.exceptions.AMQPError, OSError) as exc:
            raise MessageDeliveryFailure(f"Could not {what}: {type(exc).__name__}: {exc}") from exc
        finally:
            self.remove_observer(job)

    def try_direct(self, fn: Callable[[], None]) -> bool:
        """Run ``fn()`` in the calling thread if the connection is up and idle.

        Saves the hand-over to the I/O thread (a thread wake-up each way) when
        nothing else is going on; returns False, having done nothing, when the
        I/O thread is busy, work is queued for it (so that one thread's
        messages keep their order), or the connection is down.
        """
        conn = self._conn
        if (
            conn is None
            or not self._direct
            or self._commands
            or self._closing.is_set()
            or self._pid != process_id()
        ):
            return False
        if not self.io_lock.acquire(blocking=False):
            return False
        try:
            if self._conn is not conn or self._commands:
                return False
            try:
                fn()
            except CONNECTION_ERRORS as exc:
                error = exc
                self.post(lambda: self._lost_if(conn, error))
            return True
        finally:
            self.io_lock.release()

    def post(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the I/O thread, connected or not, without a future (cheapest).

        Errors are logged (connection errors also start a reconnection).
        """
        self._enqueue(_Command(lambda _conn: fn(), needs_connection=False))

    def reconnect(self, reason: str) -> None:
        """Drop the connection and make it again (what is on it is set up again).

        For a path an end-to-end check found broken while the connection looks
        fine (a binding or an exchange deleted under it, say); nothing happens
        while the connection is down or was never used.
        """
        if not self.in_use:
            return

        def drop() -> None:
            if self._conn is not None:
                self._lost(amqp.exceptions.RecoverableConnectionError(reason))

        self.post(drop)

    def _enqueue(self, command: _Command) -> None:
        if self._closing.is_set() or self._thread is None or self._pid != process_id():
            with self._lock:
                if self._closing.is_set():
                    command.fail(
                        amqp.exceptions.RecoverableConnectionError(
                            f"{self.name}: connection closed"
                        )
                    )
                    return
                if self._thread is None or self._pid != process_id():
                    self._start_thread()
        self._commands.append(command)  # deque.append is atomic: no lock needed
        if not self._wake_pending:
            self._wake_pending = True
            self._wake()

    def _start_thread(self) -> None:
        self._pid = process_id()
        thread = self._native.threading.Thread(
            target=self._run, name=f"messaging-amqp-{self.name}", daemon=True
        )
        self._thread = thread
        thread.start()

    def _wake(self) -> None:
        # A full pipe (BlockingIOError) means the thread is awake anyway.
        with contextlib.suppress(OSError):
            self._native.os.write(self._wake_w, b"x")

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the connection is up; False after ``timeout``."""
        with self._lock:
            if self._thread is None:
                self._start_thread()
        return self._connected.wait(timeout)

    def close(self) -> None:
        """Close the connection and stop the I/O thread (bounded wait)."""
        with self._lock:
            if self._closing.is_set():
                return
            self._closing.set()
            thread = self._thread
        self._wake()
        if thread is not None and thread.ident != self._native.get_ident():
            # Waited for on the application's side (a native join would stall the hub).
            if self._stopped.wait(timeout=10):
                thread.join(timeout=1)
            if thread.is_alive():
                LOG.warning("%s: the I/O thread did not stop within 10 s", self.name)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def amqp_connection(self) -> amqp.Connection | None:
        """The py-amqp connection: for code running on the I/O thread only."""
        return self._conn

    @property
    def last_failure(self) -> BaseException | None:
        """Why the last connection attempt failed, while the connection is down."""
        return self._last_failure

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: nothing more is sent on it."""
        return bool(self._closing.is_set())

    @property
    def connected(self) -> bool:
        """Whether the connection is up now."""
        return self._connected.is_set()

    @property
    def in_use(self) -> bool:
        """Whether anything started the connection in this process (and did not close it)."""
        return self._thread is not None and self._pid == process_id() and not self.closed

    @property
    def io_thread_alive(self) -> bool:
        """Whether the I/O thread runs (True while the connection is not in use)."""
        return not self.in_use or bool(self._thread.is_alive())

    # -- the I/O thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._stopped.set()

    def _loop(self) -> None:
        self._retry_delay = float(self.settings.rabbit_retry_interval)
        while not self._closing.is_set():
            if self._conn is None:
                with self.io_lock:
                    connected = self._connect_once()
                if not connected:
                    self._failures_in_round += 1
                    if self._failures_in_round % len(self._hosts):
                        continue  # another host of the URL is still to try: at once
                    self._pause(self._retry_delay + self._splay())
                    self._retry_delay = min(
                        self._retry_delay + float(self.settings.rabbit_retry_backoff),
                        float(self.settings.rabbit_interval_max),
                    )
                    continue
                self._retry_delay = float(self.settings.rabbit_retry_interval)
                self._failures_in_round = 0
            try:
                self._serve_once()
            except CONNECTION_ERRORS as exc:
                with self.io_lock:
                    self._lost(exc)
            except Exception as exc:
                # Anything else (a channel error nobody owns, a fault in this code):
                # the connection starts afresh, and everything on it is restored.
                LOG.exception("[%s] Unexpected error on the AMQP connection", self.connection_name)
                with self.io_lock:
                    self._lost(exc)
            if self._conn is None:
                # oslo.messaging's kombu_reconnect_delay: a pause after a lost
                # connection, so that a broker that just dropped every client is
                # not met by all of them again at once (the splay spreads them).
                self._pause(float(self.settings.kombu_reconnect_delay) + self._splay())
        with self.io_lock:
            self._shutdown()

    def _splay(self) -> float:
        splay = float(self.settings.kombu_reconnect_splay)
        return random.uniform(0.0, splay) if splay > 0 else 0.0

    def _pause(self, seconds: float) -> None:
        # Work that arrives meanwhile runs (or, if it needs the connection, waits
        # for it) without cutting the pause short; closing does.
        deadline = time.monotonic() + seconds
        while not self._closing.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wait_wake(remaining)
            with self.io_lock:
                self._run_commands()

    def _wait_wake(self, timeout: float) -> bool:
        readable, _, _ = self._native.select.select([self._wake_r], [], [], timeout)
        if readable:
            self._drain_wake()
        return bool(readable)

    def _drain_wake(self) -> None:
        read = self._native.os.read
        try:
            while read(self._wake_r, 4096):
                pass
        except OSError:  # BlockingIOError: the pipe is empty
            pass
        # Lowered only once the pipe is empty, and before the commands run: a
        # command added after this point either sees the flag down and writes
        # to the pipe, or is run by this round.
        self._wake_pending = False

    def write_buffered(self, fn: Callable[[], T]) -> T:
        """On the I/O thread: run ``fn`` with its socket writes held until the round ends.

        Messages published one after the other then leave in one ``send()``
        instead of one each. Only for writes that wait for no answer.
        """
        if self._conn is None or not self._in_round or self._send is None:
            return fn()
        self._holding = True
        try:
            return fn()
        finally:
            self._holding = False
            if len(self._out) >= _FLUSH_FRAMES:
                self._flush_out()

    def _hold_writes(self, conn: amqp.Connection) -> None:
        # Every write of the connection goes through here: held ones wait in _out,
        # and any other write (a declaration, a channel closing...) sends them
        # first, so that frames always reach the broker in the order they were made.
        transport = conn.transport
        lacking = missing(transport, ("_write",))
        if lacking:
            warn_once("holding writes to send them together", lacking)
            self._send = None
            return
        send = self._send = transport._write
        out = self._out

        def write(data: bytes) -> None:
            if self._holding:
                out.append(bytes(data))  # py-amqp hands over a view of a buffer it reuses
                return
            if out:
                held = b"".join(out)
                out.clear()
                send(held)
            send(data)

        transport._write = write

    def _flush_out(self) -> None:
        if not self._out or self._conn is None or self._send is None:
            return
        data = b"".join(self._out)
        self._out.clear()
        self._send(data)

    def at_round_end(self, fn: Callable[[], None]) -> None:
        """On the I/O thread: run ``fn`` once at the end of this round (now, outside one)."""
        if not self._in_round:
            fn()
        elif fn not in self._round_end:
            self._round_end.append(fn)

    def _run_commands(self) -> None:
        self._in_round = True
        try:
            self._run_commands_unflushed()
            while self._round_end:
                self._round_end.pop(0)()
        finally:
            self._in_round = False
            self._round_end.clear()
            self._flush_out()

    def _run_commands_unflushed(self) -> None:
        while True:
            try:
                command = self._commands.popleft()
            except IndexError:
                return
            if command.needs_connection and self._conn is None:
                self._waiting.append(command)
                continue
            try:
                command.run(self._conn)
            except CONNECTION_ERRORS as exc:
                self._lost(exc)

    def _serve_once(self) -> None:
        conn = self._conn
        assert conn is not None
        sock = conn.sock
        readable: list[Any] = []
        if not self._buffered(conn):
            tick = self._heartbeat_tick()
            readable, _, _ = self._native.select.select([sock, self._wake_r], [], [], tick)
        with self.io_lock:
            if self._wake_r in readable:
                self._drain_wake()
            self._run_commands()
            if self._conn is not conn:
                return
            reader = self._reader
            if reader is None:
                self._drain(conn)
            elif sock in readable:
                reader.read_available()
            if self._conn is conn and conn.heartbeat:
                conn.heartbeat_tick(rate=self.settings.heartbeat_rate)

    def _answer_timeout(self) -> float:
        # How long a synchronous method may wait for the broker's answer: as long
        # as the broker stays silent before heartbeats count it as dead.
        return float(self.settings.heartbeat_timeout_threshold) or ANSWER_TIMEOUT

    def _heartbeat_tick(self) -> float:
        threshold = float(self.settings.heartbeat_timeout_threshold)
        if threshold <= 0:
            return _IDLE_TICK
        return max(0.05, min(_IDLE_TICK, threshold / max(1, self.settings.heartbeat_rate) / 2))

    def _buffered(self, conn: amqp.Connection) -> bool:
        if self._reader is not None:
            return False  # it leaves at most the start of a frame, which needs more bytes
        transport = conn.transport
        if getattr(transport, "_read_buffer", b""):
            return True
        pending = getattr(conn.sock, "pending", None)
        return bool(pending and pending())

    def _is_current(self, conn: amqp.Connection) -> bool:
        return self._conn is conn

    def _drain(self, conn: amqp.Connection) -> None:
        # Read every frame that is already there, without blocking.
        for _ in range(10_000):
            if not self._is_current(conn):
                return
            sock = conn.sock
            if not self._buffered(conn):
                readable, _, _ = self._native.select.select([sock], [], [], 0)
                if not readable:
                    return
            try:
                conn.drain_events(timeout=0)
            except TimeoutError:
                return

    def _connect_once(self) -> bool:
        host = self._hosts[next(self._host_cycle)]
        self.current_host = host  # the host in use, or being tried
        address = f"{_bracket(host.hostname or 'localhost')}:{host.port or DEFAULT_PORT}"
        settings = self.settings
        conn = NativeConnection(
            host=address,
            userid=host.username if host.username is not None else "guest",
            password=host.password if host.password is not None else "guest",
            virtual_host=self.virtual_host,
            login_method=settings.rabbit_login_method,
            ssl=ssl_options_for_host(settings, host.hostname or "localhost") or False,
            heartbeat=settings.heartbeat_timeout_threshold,
            connect_timeout=max(1.0, float(settings.rabbit_interval_max)),
            write_timeout=self._answer_timeout(),
            client_properties={
                "capabilities": {
                    "authentication_failure_close": True,
                    "connection.blocked": True,
                    "consumer_cancel_notify": True,
                },
                "connection_name": self.connection_name,
            },
            on_blocked=self._on_blocked,
            on_unblocked=self._on_unblocked,
        )
        try:
            conn.connect()
        except Exception as exc:
            self._close_quietly(conn)
            # A refused login fails what waits for the connection (see refusals).
            refusal = login_refusal(exc, address)
            failure: BaseException = refusal or exc
            LOG.error(
                "[%s] AMQP server on %s is unreachable: %s. Trying again in %s seconds."
                if refusal is None
                else "[%s] AMQP server on %s refused the connection: %s What waits for it "
                "fails; trying again in %s seconds, in case it is fixed on the broker.",
                self.connection_name,
                address,
                failure,
                self._retry_delay,
            )
            self._last_failure = failure
            for observer in list(self._observers):
                observer.on_connect_failed(failure)
            return False
        self._conn = conn
        bound_blocking_reads(conn, self._answer_timeout())
        self._hold_writes(conn)
        self._reader = reader_for(conn)
        self._last_failure = None
        self.current_host = host
        self.generation += 1
        LOG.info("[%s] Connected to AMQP server on %s", self.connection_name, address)
        self._connected.set()
        for observer in list(self._observers):
            try:
                observer.on_connected(conn, self.generation)
            except CONNECTION_ERRORS as exc:
                self._lost(exc)
                return False
            except Exception:
                # One observer's fault must not keep the others from their connection.
                LOG.exception("[%s] Could not restore %r", self.connection_name, observer)
        self._flush_out()
        waiting, self._waiting = self._waiting, []
        self._commands.extendleft(reversed(waiting))
        return True

    def _lost_if(self, conn: amqp.Connection, error: BaseException) -> None:
        if self._conn is conn:
            self._lost(error)

    def _lost(self, error: BaseException) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        self._reader = None
        self._out.clear()  # unsent frames: their messages are unconfirmed and go again
        self._connected.clear()
        LOG.error("[%s] AMQP connection lost: %s; reconnecting", self.connection_name, error)
        self._close_quietly(conn)
        for observer in list(self._observers):
            observer.on_connection_lost(error)

    def _on_blocked(self, reason: str) -> None:
        self.blocked = reason or "(no reason given)"
        LOG.error("The broker has blocked the connection: %s", self.blocked)

    def _on_unblocked(self) -> None:
        self.blocked = None
        LOG.info("The broker has unblocked the connection")

    @staticmethod
    def _close_quietly(conn: amqp.Connection) -> None:
        try:
            conn.collect()
        except Exception:
            LOG.debug("error while discarding a connection", exc_info=True)

    def _shutdown(self) -> None:
        self._run_commands()
        with self._lock:
            leftover = self._waiting + list(self._commands)
            self._waiting, self._commands = [], collections.deque()
        for command in leftover:
            command.fail(
                amqp.exceptions.RecoverableConnectionError(f"{self.name}: connection closed")
            )
        conn, self._conn, self._reader = self._conn, None, None
        self._connected.clear()
        if conn is not None:
            try:
                # A broker that does not answer the goodbye is not waited for long.
                bound_blocking_reads(conn, min(CLOSE_TIMEOUT, self._answer_timeout()))
                conn.close()
            except Exception:
                self._close_quietly(conn)


class _OneOff:
    """The work of :meth:`AmqpConnection.run_connected`, followed as a connection observer.

    It runs on the first connection it sees, or fails on a refused login: a
    wait for the connection alone would last out its timeout on a refusal.
    """

    def __init__(self, work: Callable[[amqp.Connection], Any]) -> None:
        self._work = work
        self.started = False
        self.completion = green.Completion()

    def on_connected(self, conn: amqp.Connection, generation: int) -> None:
        if self.started or self.completion.done:
            return
        self.started = True
        try:
            value = self._work(conn)
        except CONNECTION_ERRORS as exc:
            self.completion.settle(exc)
            raise
        except Exception as exc:
            self.completion.settle(exc)
        else:
            self.completion.settle(value=value)

    def on_connection_lost(self, error: BaseException) -> None:
        pass  # the work, if it ran on that connection, fails with its own error

    def on_connect_failed(self, error: BaseException) -> None:
        if isinstance(error, BrokerRefusal):
            self.completion.settle(error)


class _Command:
    """Work for the I/O thread, and the completion its caller may wait on."""

    __slots__ = ("completion", "fn", "needs_connection")

    def __init__(
        self,
        fn: Callable[[Any], Any],
        needs_connection: bool,
        completion: green.Completion | None = None,
    ) -> None:
        self.fn = fn
        self.needs_connection = needs_connection
        self.completion = completion

    def fail(self, error: BaseException) -> None:
        """Fail the command without running it."""
        if self.completion is not None:
            self.completion.settle(error)

    def run(self, conn: amqp.Connection | None) -> None:
        """Run the work and settle the completion; connection errors are re-raised after."""
        completion = self.completion
        if completion is None:
            try:
                self.fn(conn)
            except CONNECTION_ERRORS:
                raise
            except Exception:
                LOG.exception("A task of the AMQP I/O thread failed")
            return
        if completion.done:
            return  # given up by its caller
        try:
            value = self.fn(conn)
        except CONNECTION_ERRORS as exc:
            completion.settle(exc)
            raise
        except Exception as exc:
            completion.settle(exc)
        else:
            completion.settle(value=value)


def _bracket(hostname: str) -> str:
    return f"[{hostname}]" if ":" in hostname and not hostname.startswith("[") else hostname


def _default_host() -> TransportHost:
    from messaging.transport import TransportHost

    return TransportHost("localhost", DEFAULT_PORT, "guest", "guest")
