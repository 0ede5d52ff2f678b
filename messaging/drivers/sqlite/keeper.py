"""The keeper of a sqlite bus: what makes a dead process's claims and queues go away.

While a process lives, every third of the shortest visibility timeout or queue
TTL its keeper extends the claims of the process's listeners, renews the leases
of its transient queues (re-creating any that were collected while the process
was stalled), and drops expired messages and the queues of processes that
stopped renewing them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from messaging.drivers.sqlite.store import Declaration, Store
from messaging.exceptions import TransportDriverError

__all__ = ["Keeper"]

LOG = logging.getLogger(__name__)

#: Bounds of the keeper's period, in seconds.
_MIN_PERIOD = 0.05
_MAX_PERIOD = 10.0


class Keeper:
    """Extends live claims, renews transient queues, collects expired ones; see the module.

    Args:
        store: the bus's store.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._round = threading.Lock()  # held for a round of run_once
        self._claims: dict[str, float] = {}
        self._leases: dict[str, tuple[tuple[Declaration, ...], float]] = {}
        self._stop = threading.Event()
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None

    def hold_claims(self, consumer: str, visible_for: float) -> None:
        """Keep extending the claims of ``consumer`` by ``visible_for`` seconds."""
        with self._lock:
            self._claims[consumer] = visible_for
        self._started()

    def lease(
        self,
        declarations: Sequence[Declaration],
        ttl: float,
        busy: float | None = None,
    ) -> None:
        """Declare a transient queue now and keep renewing it for ``ttl`` seconds at a time.

        Args:
            declarations: the queue, once per binding (all of one queue).
            ttl: how long the queue lives past each renewal.
            busy: bounds the wait for another process's write (the store's busy timeout).
        """
        held = tuple(declarations)
        self._store.declare(held, time.time() + ttl, busy)
        with self._lock:
            self._leases[held[0].queue] = (held, ttl)
        self._started()

    def forget(self, name: str) -> None:
        """Stop extending the claims of consumer ``name`` or renewing queue ``name``.

        Waits for a round in progress, so that a queue deleted next is not renewed
        (re-created) behind its owner's back.
        """
        with self._round, self._lock:
            self._claims.pop(name, None)
            self._leases.pop(name, None)

    def _started(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="messaging-sqlite-keeper", daemon=True
                )
                self._thread.start()
        self._changed.set()  # a shorter period may be due

    def _period(self) -> float:
        with self._lock:
            spans = [*self._claims.values(), *(ttl for _, ttl in self._leases.values())]
        return min(_MAX_PERIOD, max(_MIN_PERIOD, min(spans, default=_MAX_PERIOD) / 3))

    def run_once(self) -> None:
        """Do one round of the keeper's work now."""
        with self._round:
            with self._lock:
                by_span: dict[float, list[str]] = {}
                for consumer, span in self._claims.items():
                    by_span.setdefault(span, []).append(consumer)
                leases = list(self._leases.values())
            for span, consumers in by_span.items():
                self._store.extend_claims(consumers, span)
            now = time.time()
            for declarations, ttl in leases:
                self._store.declare(declarations, now + ttl)
            self._store.collect()
            self._store.reserve.ensure()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._changed.wait(self._period())
            self._changed.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
            except TransportDriverError as exc:
                LOG.warning("Could not renew claims and queues of %s: %s", self._store.path, exc)

    def close(self) -> None:
        """Stop the thread (the claims and queues are then left to expire)."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        self._changed.set()
        if thread is not None:
            thread.join(5.0)
