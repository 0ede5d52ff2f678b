"""The RPC canary: a server that calls itself through the broker, to catch a deaf path.

A connection can look healthy while requests no longer reach a server (an
exchange or a binding deleted under it) or replies no longer reach the
caller (a reply queue gone). With ``[DEFAULT] rpc_canary_interval`` set, each
RPC server calls its own ``canary`` method (namespace
:data:`CANARY_NAMESPACE`) through the broker at that interval, with the
interval as the call's timeout. A call that fails is logged and reported in
the server's health (see :mod:`messaging.health`), and the transport is asked
to set up again what the process consumes from and replies through
(:meth:`Driver.repair <messaging.drivers.base.Driver.repair>`); the next
call tells whether that helped. A broken path is so found within twice the
interval, and repaired soon after where the driver can.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from messaging.exceptions import MessagingException
from messaging.rpc.client import get_rpc_client
from messaging.target import Target

if TYPE_CHECKING:
    from messaging.transport import Transport

__all__ = ["CANARY_NAMESPACE", "Canary", "CanaryEndpoint", "CanaryHealth"]

LOG = logging.getLogger(__name__)
#: The namespace of the canary's method: no service endpoint answers in it.
CANARY_NAMESPACE = "messaging.canary"


class CanaryEndpoint:
    """Answers the canary's call (added to a server's endpoints when the canary is on)."""

    target = Target(namespace=CANARY_NAMESPACE, version="1.0")

    def canary(self, ctxt: Any, sent_at: float) -> float:
        """Give back when the call was sent."""
        return sent_at

    canary.exposed = True  # type: ignore[attr-defined]


@dataclass(frozen=True)
class CanaryHealth:
    """What the canary found, read at one moment.

    Attributes:
        interval: seconds between calls (each call's timeout too).
        last_answer_age: seconds since a call was last answered (None: never yet).
        round_trip: seconds the last answered call took.
        failures: calls failed in a row (0 while answered).
        repairs: times the transport was asked to set itself up again.
        last_error: why the last failed call failed.
    """

    interval: float
    last_answer_age: float | None
    round_trip: float | None
    failures: int
    repairs: int
    last_error: str | None


class Canary:
    """Calls one server through the broker at an interval, in a thread of its own.

    Args:
        transport: the server's transport (the calls go through it).
        target: the server's target (topic, server, exchange).
        interval: seconds between calls, and each call's timeout.
    """

    def __init__(self, transport: Transport, target: Target, interval: float) -> None:
        self.transport = transport
        self.interval = interval
        self.target = Target(
            exchange=target.exchange,
            topic=target.topic,
            server=target.server,
            namespace=CANARY_NAMESPACE,
            version="1.0",
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_answer: float | None = None
        self._round_trip: float | None = None
        self._failures = 0
        self._repairs = 0
        self._last_error: str | None = None

    def start(self) -> None:
        """Start calling."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"messaging-canary-{self.target.topic}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop calling; a call under way ends within its timeout (see :meth:`wait`)."""
        self._stop.set()

    def wait(self) -> None:
        """Wait until the thread has ended (after :meth:`stop`)."""
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.interval + 5)

    def health(self) -> CanaryHealth:
        """What the canary found so far."""
        with self._lock:
            last = self._last_answer
            return CanaryHealth(
                interval=self.interval,
                last_answer_age=None if last is None else time.monotonic() - last,
                round_trip=self._round_trip,
                failures=self._failures,
                repairs=self._repairs,
                last_error=self._last_error,
            )

    def _run(self) -> None:
        client = get_rpc_client(self.transport, self.target, timeout=self.interval)
        while not self._stop.wait(self.interval):
            started = time.monotonic()
            try:
                client.call({}, "canary", sent_at=time.time())
            except MessagingException as exc:
                if not self._stop.is_set():
                    self._failed(exc)
                continue
            self._answered(time.monotonic() - started)

    def _answered(self, round_trip: float) -> None:
        with self._lock:
            failed, self._failures = self._failures, 0
            self._last_answer = time.monotonic()
            self._round_trip = round_trip
            self._last_error = None
        if failed:
            LOG.warning(
                "The RPC canary of %s is answered again, after %d failed calls",
                self._where(),
                failed,
            )

    def _failed(self, exc: MessagingException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._failures += 1
            self._last_error = error
            failures = self._failures
        LOG.error(
            "The RPC canary of %s failed (%d in a row): %s; setting up the transport again",
            self._where(),
            failures,
            error,
        )
        try:
            repaired = self.transport.driver.repair(
                f"the RPC canary of {self._where()} was not answered"
            )
        except Exception:
            LOG.exception("The transport could not be set up again")
            return
        if repaired:
            with self._lock:
                self._repairs += 1

    def _where(self) -> str:
        return f"{self.target.topic}.{self.target.server}"
