"""The driver interface: what a transport driver implements.

A driver is loaded by name (the scheme of the transport URL) from the
``messaging.drivers`` entry points and built as
``Driver(conf, url, default_exchange=..., allowed_remote_exmods=[...])``.
It declares what it can do in :attr:`Driver.capabilities`; the layers above
check those instead of guessing.

Message encoding is not a driver's business beyond calling :mod:`messaging.wire`;
de-duplication (:class:`DuplicateFilter`), batching (:meth:`Listener.poll`) and
retry counting (:func:`attempts`, and :class:`Attempts` against a
:class:`Deadline`: no send waits past its bound, whatever ``retry`` says) live
here, once.
"""

from __future__ import annotations

import abc
import collections
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from messaging.health import LinkHealth

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.poison import HandlingFailure, ParkedMessage
    from messaging.target import Target
    from messaging.transport import TransportOptions, TransportURL

__all__ = [
    "Attempts",
    "Capabilities",
    "Deadline",
    "Driver",
    "DuplicateFilter",
    "GatheredReply",
    "IncomingMessage",
    "Listener",
    "OpenListeners",
    "QueueStats",
    "RpcIncomingMessage",
    "attempts",
]


@dataclass(frozen=True)
class Capabilities:
    """What a driver supports.

    Attributes:
        requeue: a notification can be put back for another delivery.
        pools: listener pools, each receiving its own copy of every notification.
        fanout: casts to every server of a topic.
        rpc: RPC calls and casts (not only notifications).
        batches: a listener can hold several unacknowledged messages at once, so
            batch listeners get full batches (False where the broker sends the next
            message only once the last is acknowledged).
    """

    requeue: bool = False
    pools: bool = False
    fanout: bool = False
    rpc: bool = False
    batches: bool = True


@dataclass(frozen=True)
class GatheredReply:
    """One server's reply to a request sent to every server (see :meth:`Driver.gather`).

    Attributes:
        result: what the server returned (None with a failure).
        failure: the exception the server replied with, rebuilt (a
            :class:`~messaging.exceptions.RemoteError` unless allowed), or None.
        elapsed: seconds from publishing the request to receiving this reply.
    """

    result: Any
    failure: BaseException | None
    elapsed: float


@dataclass(frozen=True)
class QueueStats:
    """A queue as the broker counts it (see :meth:`Driver.queue_stats`).

    Attributes:
        name: the queue.
        exists: whether the broker has it; when not, the counts are None.
        messages: messages ready for delivery (not those delivered and unacknowledged).
        consumers: consumers subscribed to it.
    """

    name: str
    exists: bool
    messages: int | None = None
    consumers: int | None = None


def attempts(retry: int | None) -> float:
    """How many times to try an operation under oslo's ``retry`` semantics.

    ``None`` or ``-1``: forever; ``0``: once, no retry; ``N``: ``N + 1`` times.
    """
    if retry is None or retry < 0:
        return float("inf")
    return float(retry + 1)


class Deadline:
    """A moment something must be done by, on the monotonic clock.

    Args:
        seconds: how long from ``start``; None for no bound.
        start: when the time began to run (``time.monotonic()``); now by default.

    Attributes:
        seconds: the bound it was made with.
    """

    def __init__(self, seconds: float | None, start: float | None = None) -> None:
        self.seconds = seconds
        begun = time.monotonic() if start is None else start
        self._at = None if seconds is None else begun + seconds

    def remaining(self, cap: float | None = None) -> float | None:
        """Seconds left (never below 0), at most ``cap``; None when neither bounds it."""
        if self._at is None:
            return cap
        left = max(0.0, self._at - time.monotonic())
        return left if cap is None else min(cap, left)

    def passed(self) -> bool:
        """Whether the moment has come."""
        return self._at is not None and time.monotonic() >= self._at

    def within(self, other: float | None) -> Deadline:
        """The earlier of this deadline and ``other`` seconds from now."""
        if other is None:
            return self
        if self._at is not None and self._at <= time.monotonic() + other:
            return self
        return Deadline(other)


class Attempts:
    """The tries of an operation, counted against oslo's ``retry`` and a :class:`Deadline`.

    Args:
        retry: oslo's retry count (None or -1: as many as the deadline allows).
        deadline: when to stop trying, whatever ``retry`` says.

    Attributes:
        tries: how many tries began.
    """

    def __init__(self, retry: int | None, deadline: Deadline) -> None:
        self.allowed = attempts(retry)
        self.deadline = deadline
        self.tries = 0

    def begin(self) -> None:
        """Count a try that begins now."""
        self.tries += 1

    def another(self) -> bool:
        """Whether another try may begin."""
        return self.tries < self.allowed and not self.deadline.passed()

    def pause(self, seconds: float) -> float:
        """How long to wait before the next try: ``seconds``, cut short by the deadline."""
        remaining = self.deadline.remaining(seconds)
        return seconds if remaining is None else remaining

    def spent(self) -> str:
        """What was spent, for an error: ``after 3 tries`` (and ``within 30 s``)."""
        text = f"after {self.tries} tries"
        if self.deadline.seconds is not None and self.deadline.passed():
            text += f" within {self.deadline.seconds:g} s"
        return text


class DuplicateFilter:
    """Remembers the last ``size`` ``_unique_id`` values a listener accepted."""

    def __init__(self, size: int = 16) -> None:
        self._seen: collections.deque[str] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def seen(self, unique_id: str | None) -> bool:
        """Return True if ``unique_id`` was accepted before; remember it otherwise."""
        if unique_id is None:
            return False
        with self._lock:
            if unique_id in self._seen:
                return True
            self._seen.append(unique_id)
            return False

    def __contains__(self, unique_id: object) -> bool:
        """Return True if ``unique_id`` was accepted before, without remembering it."""
        with self._lock:
            return unique_id in self._seen

    def add(self, unique_id: str | None) -> None:
        """Remember ``unique_id`` (for listeners that count a message as seen once acked)."""
        if unique_id is None:
            return
        with self._lock:
            if unique_id not in self._seen:
                self._seen.append(unique_id)


L = TypeVar("L", bound="Listener")


class OpenListeners(Generic[L]):
    """A driver's listeners that are not cleaned up yet; thread-safe.

    A driver tracks each listener it hands out, forgets it when the listener
    cleans itself up, and cleans up what is left in its own ``cleanup()``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: set[L] = set()

    def track(self, listener: L) -> L:
        """Remember ``listener``; return it."""
        with self._lock:
            self._listeners.add(listener)
        return listener

    def forget(self, listener: L) -> None:
        """Drop ``listener`` (it cleaned itself up)."""
        with self._lock:
            self._listeners.discard(listener)

    def take_all(self) -> list[L]:
        """Return every tracked listener and forget them all."""
        with self._lock:
            listeners, self._listeners = list(self._listeners), set()
        return listeners


class IncomingMessage(abc.ABC):
    """A received message, handed to a dispatcher.

    Attributes:
        ctxt: the request context as a dict.
        message: the message as a dict.
        msg_id: the id a reply is correlated by (calls) or a unique id.
        client_timeout: the call-monitor timeout asked for by the caller.
        previous_attempts: how many times this message was delivered before and
            not handled, as far as the transport counts (None: it does not, and
            the listener counts; see :mod:`messaging.poison`).
    """

    previous_attempts: int | None = None

    def __init__(
        self,
        ctxt: dict[str, Any],
        message: dict[str, Any],
        msg_id: str | None = None,
        client_timeout: float | None = None,
    ) -> None:
        self.ctxt = ctxt
        self.message = message
        self.msg_id = msg_id
        self.client_timeout = client_timeout

    @abc.abstractmethod
    def acknowledge(self) -> None:
        """Tell the broker the message was handled; must not raise."""

    @abc.abstractmethod
    def requeue(self) -> None:
        """Put the message back for another delivery; must not raise."""

    def park(self, failure: HandlingFailure) -> bool:
        """Move the message, with ``failure`` attached, to the transport's parking place.

        Returns:
            Whether it was parked (and so settled); False where the transport
            has no parking place, and the caller must settle it. Must not raise.
        """
        return False


class RpcIncomingMessage(IncomingMessage):
    """A received RPC request, which may be replied to."""

    @abc.abstractmethod
    def reply(self, reply: Any = None, failure: BaseException | None = None) -> None:
        """Send the result (or the failure) back to the caller; must not raise."""

    @abc.abstractmethod
    def heartbeat(self) -> None:
        """Tell a monitoring caller the call is still being worked on."""


class Listener(abc.ABC):
    """A poll-style listener: the server calls :meth:`poll` in a loop.

    A driver implements :meth:`poll_one`, :meth:`stop` and :meth:`cleanup`;
    batching is done here.
    """

    #: Whether :meth:`poll` may be called from several threads at once. When it
    #: may, the workers of a threaded executor receive for themselves, which
    #: saves every message a hand-over between threads.
    concurrent_poll: bool = False
    #: The queues it consumes, for status reports (empty where the driver does not say).
    queues: tuple[str, ...] = ()

    def __init__(self, batch_size: int = 1, batch_timeout: float | None = None) -> None:
        self.batch_size = max(1, batch_size or 1)
        self.batch_timeout = batch_timeout
        # One batch fills at a time: threads that poll at once would otherwise
        # share a trickle of messages out into several small batches.
        self._filling = threading.Lock()

    @abc.abstractmethod
    def poll_one(self, timeout: float | None) -> IncomingMessage | None:
        """Return the next message, or None after ``timeout`` or once stopped."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop receiving: a blocked :meth:`poll_one` returns None promptly. Thread-safe."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Release the listener's resources; unacknowledged messages go back to the queue."""

    def consuming(self) -> bool:
        """Whether the broker is delivering to this listener now (for health reports)."""
        return True

    def poll(self, timeout: float | None = None) -> list[IncomingMessage]:
        """Return the next batch: up to ``batch_size`` messages.

        Waits up to ``timeout`` for a first message, then up to ``batch_timeout``
        (from then on) for the batch to fill. An empty list means nothing came.
        """
        if self.batch_size == 1:
            first = self.poll_one(timeout)
            return [] if first is None else [first]
        start = time.monotonic()
        if not self._filling.acquire(timeout=-1 if timeout is None else timeout):
            return []
        try:
            return self._fill(
                None if timeout is None else max(0.0, start + timeout - time.monotonic())
            )
        finally:
            self._filling.release()

    def _fill(self, timeout: float | None) -> list[IncomingMessage]:
        first = self.poll_one(timeout)
        if first is None:
            return []
        batch = [first]
        deadline = None if self.batch_timeout is None else time.monotonic() + self.batch_timeout
        while len(batch) < self.batch_size:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            msg = self.poll_one(remaining)
            if msg is None:
                break
            batch.append(msg)
        return batch


class Driver(abc.ABC):
    """Base class of transport drivers.

    Args:
        conf: the caller's configuration.
        url: the parsed transport URL.
        default_exchange: the exchange of targets without one (``control_exchange``).
        allowed_remote_exmods: modules whose exceptions an RPC client may rebuild.

    Attributes:
        limits: the bounds on what is sent and decoded (``[DEFAULT] max_message_size``
            and ``max_message_depth``); a driver checks what it sends with
            :func:`messaging.wire.check_size` and decodes with these.
    """

    #: What the driver can do: a class attribute, which a driver whose abilities
    #: depend on its URL (``kombu+<transport>://``) sets per instance.
    capabilities: Capabilities = Capabilities()

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        url: TransportURL,
        default_exchange: str | None = None,
        allowed_remote_exmods: Sequence[str] | None = None,
    ) -> None:
        self.conf = conf
        self.url = url
        self.default_exchange = default_exchange or "openstack"
        self.allowed_remote_exmods = list(allowed_remote_exmods or [])
        from messaging.conf import message_limits

        self.limits = message_limits(conf)

    def require_features(self, requeue: bool = False, pools: bool = False) -> None:
        """Raise NotImplementedError when a needed capability is missing."""
        name = type(self).__name__
        if requeue and not self.capabilities.requeue:
            raise NotImplementedError(f"The {name} driver does not support requeueing messages")
        if pools and not self.capabilities.pools:
            raise NotImplementedError(f"The {name} driver does not support listener pools")

    def exchange_of(self, target: Target) -> str:
        """The exchange a target uses: its own or the default one."""
        return target.exchange or self.default_exchange

    @abc.abstractmethod
    def send_notification(
        self, target: Target, ctxt: Any, message: dict[str, Any], version: float, retry: int | None
    ) -> None:
        """Send a notification to ``<target.topic>`` (which already carries the priority).

        Raises:
            MessageDeliveryFailure: the broker could not be reached within ``retry``.
            MessageSerializationError: the message does not encode as JSON.
        """

    @abc.abstractmethod
    def listen_for_notifications(
        self,
        targets_and_priorities: Iterable[tuple[Target, str]],
        pool: str | None,
        batch_size: int,
        batch_timeout: float | None,
        temporary: bool = False,
    ) -> Listener:
        """Subscribe to ``<topic>.<priority>`` for each pair; ``pool`` shares a copy.

        Args:
            targets_and_priorities: the targets, each with a priority.
            pool: the listener pool; None for the default queue of each pair.
            batch_size: how many messages a poll may return.
            batch_timeout: how long a poll waits for a batch to fill.
            temporary: the pool's queue goes away with its listener instead of
                collecting notifications for ever (``pool`` is then required, and
                best unique: :func:`messaging.drivers.names.temporary_pool`).
        """

    def send(
        self,
        target: Target,
        ctxt: Any,
        message: dict[str, Any],
        wait_for_reply: bool | None = None,
        timeout: float | None = None,
        call_monitor_timeout: float | None = None,
        retry: int | None = None,
        transport_options: TransportOptions | None = None,
    ) -> Any:
        """Send an RPC request; return the reply when ``wait_for_reply``."""
        raise NotImplementedError(f"The {type(self).__name__} driver does not support RPC")

    def listen(self, target: Target, batch_size: int, batch_timeout: float | None) -> Listener:
        """Subscribe to RPC requests for ``target`` (topic, topic.server and fanout)."""
        raise NotImplementedError(f"The {type(self).__name__} driver does not support RPC")

    def gather(
        self,
        target: Target,
        ctxt: Any,
        message: dict[str, Any],
        timeout: float,
        expect: int | None = None,
        retry: int | None = None,
    ) -> list[GatheredReply]:
        """Send one request to every server of ``target``'s topic and gather their replies.

        The request goes to the topic's fanout exchange, with a ``_msg_id`` and
        a ``_reply_q`` as a call's: every server that receives it replies, and
        the replies are gathered until ``timeout``. This is its own path: a
        call to a fanout target stays refused by :meth:`send`.

        Args:
            target: the topic (and exchange) whose servers to reach.
            ctxt: the request context, as for :meth:`send`.
            message: the request (``method``, ``args``, ``namespace``, ``version``).
            timeout: seconds to gather replies for.
            expect: stop as soon as this many replies came (by default, as
                soon as every queue that received the request was answered,
                where the transport says how many did).
            retry: oslo's retry count of the publish.

        Returns:
            The replies, in the order they came.

        Raises:
            NotImplementedError: the driver has no fanout or no RPC.
            MessageDeliveryFailure: the request could not be published.
        """
        raise NotImplementedError(
            f"The {type(self).__name__} driver cannot send a request to every server"
        )

    def queue_stats(self, names: Sequence[str]) -> list[QueueStats]:
        """Ask the broker how many messages and consumers each queue has.

        A queue the broker does not have is reported with ``exists`` False,
        never as an error.

        Args:
            names: the queues, in the order to report them.

        Raises:
            NotImplementedError: the transport cannot tell.
            MessageDeliveryFailure: the broker could not be reached.
        """
        raise NotImplementedError(
            f"The {type(self).__name__} driver cannot tell the depth of its queues"
        )

    def flush(self, timeout: float | None = None) -> int:
        """Wait until messages sent without waiting for the broker are settled.

        Drivers that confirm every send before returning have nothing to flush.

        Returns:
            How many messages are still unsettled after ``timeout``.
        """
        return 0

    def parked(
        self, limit: int, queue: str | None = None, replay: bool = False
    ) -> tuple[list[ParkedMessage], list[ParkedMessage]]:
        """List (or replay) the messages parked by listeners (see :mod:`messaging.poison`).

        Args:
            limit: how many at most.
            queue: only those parked from this queue.
            replay: send them again to the queue they came from.

        Returns:
            The messages selected, and those of them that could not be replayed.

        Raises:
            NotImplementedError: the driver has no parking place to read.
        """
        raise NotImplementedError(
            f"The {type(self).__name__} driver has no parked messages to list or replay"
        )

    def link_health(self) -> LinkHealth:
        """The state of the driver's connections (for health reports); cheap, thread-safe."""
        return LinkHealth()

    def repair(self, reason: str) -> bool:
        """Set up again everything this process consumes from and replies through.

        Called when an end-to-end check (the RPC canary) found that messages no
        longer make the round trip although the driver saw nothing wrong.

        Args:
            reason: what was found, for the driver's log.

        Returns:
            Whether the driver had anything to set up again.
        """
        return False

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Release every resource of this driver instance."""
