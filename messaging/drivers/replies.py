"""RPC replies routed to their waiting callers by ``_msg_id``, whatever the driver.

A driver consumes its reply queue however it likes and hands every body it
receives to :meth:`ReplyWaiters.deliver`; each calling thread waits on its own
box with :meth:`ReplyWaiters.wait`, which honours the call's ``timeout`` and
``call_monitor_timeout`` (heartbeats, replies with ``ending`` false, push the
monitor deadline back). A reply nobody waits for any more (its caller timed
out) is logged and dropped. A reply that cannot be decoded (whatever the
reason: see :func:`messaging.wire.loads`) is logged with a bounded excerpt and
dropped; if its ``_msg_id`` can still be read, the caller waiting for it gets
the error at once instead of a timeout. A ``call_monitor_timeout`` of 0 (or
None) means no monitoring, as in oslo.messaging; :meth:`ReplyWaiters.close`
ends every wait in progress (the transport was cleaned up).

:meth:`ReplyWaiters.gather` is the one wait that takes several replies for
one ``_msg_id``: a request sent to every server of a topic (``messaging
status``), each of which replies.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from messaging import wire
from messaging.drivers.base import GatheredReply
from messaging.drivers.delivered import undecodable
from messaging.exceptions import MessagingTimeout, RemoteError
from messaging.excerpt import excerpt

__all__ = ["SEND_FAILED", "ReplyWaiters", "describe_call", "describe_request"]

LOG = logging.getLogger(__name__)
_WARN_WAITERS = 10
#: What :meth:`ReplyWaiters.send_failed` puts in a box: the request never left.
SEND_FAILED = "__send_failed__"
#: What :meth:`ReplyWaiters.close` puts in a box: the transport was cleaned up.
_CLOSED = "__closed__"
#: A reply's ``_msg_id`` as it appears in the raw body, enveloped (escaped) or not.
_MSG_ID = re.compile(rb'_msg_id\\?"\s*:\s*\\?"([0-9a-f]{32})\\?"')


def describe_call(msg_id: str, target: Any, message: dict[str, Any]) -> str:
    """The start of a call's timeout message: id, method, topic and server."""
    where = f"method {message.get('method')!r} on topic {target.topic!r}"
    if target.server:
        where += f", server {target.server!r}"
    return f"Timed out waiting for a reply to message ID {msg_id} ({where})"


def describe_request(message: dict[str, Any], topic: str) -> str:
    """An RPC request in an error: ``The request 'method' to topic 'topic'``."""
    return f"The request {excerpt(message.get('method'), 80)} to topic {excerpt(topic, 200)}"


class ReplyWaiters:
    """The calls waiting for a reply on one reply queue.

    Args:
        queue_name: the reply queue, for messages.
        limits: the bounds replies are decoded with.
    """

    def __init__(self, queue_name: str, limits: wire.Limits = wire.DEFAULT_LIMITS) -> None:
        self.queue_name = queue_name
        self.limits = limits
        self._waiters: dict[str, queue.SimpleQueue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._warn_at = _WARN_WAITERS
        self.closed = False

    def register(self, msg_id: str) -> queue.SimpleQueue[dict[str, Any]]:
        """Start waiting for the replies to ``msg_id`` (before the request is sent)."""
        box: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        with self._lock:
            self._waiters[msg_id] = box
            if len(self._waiters) > self._warn_at:
                LOG.warning(
                    "%d calls are waiting for a reply at once on %s",
                    len(self._waiters),
                    self.queue_name,
                )
                self._warn_at *= 2
        return box

    def unregister(self, msg_id: str) -> None:
        """Stop waiting for ``msg_id``."""
        with self._lock:
            self._waiters.pop(msg_id, None)

    def close(self) -> None:
        """End every wait in progress, and any later, with a :class:`MessagingTimeout`."""
        with self._lock:
            self.closed = True
            boxes = list(self._waiters.values())
        for box in boxes:
            box.put({_CLOSED: True})

    @staticmethod
    def send_failed(box: queue.SimpleQueue[dict[str, Any]], error: BaseException) -> None:
        """End a call's wait with ``error``: its request could not be sent."""
        box.put({SEND_FAILED: error})

    def call(
        self,
        target: Any,
        ctxt: Any,
        message: dict[str, Any],
        send: Callable[[str, queue.SimpleQueue[dict[str, Any]]], None],
        timeout: float | None,
        call_monitor_timeout: float | None,
        allowed_remote_exmods: Sequence[str],
        reply_address: str | None = None,
        started: float | None = None,
    ) -> Any:
        """Make one RPC call through this reply queue and return its result.

        The request gets a new ``_msg_id`` and this queue as ``_reply_q`` (or
        ``reply_address``, where the driver names it otherwise); ``send`` publishes
        the encoded request, and may end the wait early with :meth:`send_failed`
        on the box it is given (or raise). The time ``send`` takes counts against
        ``timeout``, which runs from ``started`` (``time.monotonic()``; now by
        default): the call never waits past it.

        Raises:
            MessagingTimeout: see :meth:`wait`.
            Exception: the remote failure, rebuilt, or what ``send`` raised.
        """
        started = time.monotonic() if started is None else started
        msg_id, box = self._new_box()
        try:
            body = wire.encode_request(
                ctxt, message, msg_id, reply_address or self.queue_name, call_monitor_timeout
            )
            send(body, box)
            return self.wait(
                box,
                timeout,
                call_monitor_timeout,
                allowed_remote_exmods,
                describe_call(msg_id, target, message),
                started,
            )
        finally:
            self.unregister(msg_id)

    def _new_box(self) -> tuple[str, queue.SimpleQueue[dict[str, Any]]]:
        # A new _msg_id and where its replies go; closed already: the wait ends at once.
        msg_id = wire.new_msg_id()
        box = self.register(msg_id)
        if self.closed:
            box.put({_CLOSED: True})
        return msg_id, box

    def gather(
        self,
        ctxt: Any,
        message: dict[str, Any],
        send: Callable[[str, queue.SimpleQueue[dict[str, Any]]], int | None],
        timeout: float,
        allowed_remote_exmods: Sequence[str],
        expect: int | None = None,
        started: float | None = None,
    ) -> list[GatheredReply]:
        """Send one request that several servers receive, and gather their replies.

        As :meth:`call`, but every final reply to the request's ``_msg_id`` is
        kept (heartbeats are not) until ``timeout`` has passed since
        ``started``, or until ``expect`` replies came. ``send`` returns how
        many queues received the request, where the transport can tell: with
        no ``expect``, that many replies end the wait (none: at once). Each
        reply's ``elapsed`` runs from the moment the request was handed to ``send``.

        Raises:
            MessagingTimeout: the transport was cleaned up during the wait.
            Exception: what ``send`` raised, or gave :meth:`send_failed`.
        """
        started = time.monotonic() if started is None else started
        msg_id, box = self._new_box()
        try:
            body = wire.encode_request(ctxt, message, msg_id, self.queue_name, None)
            # What came before (a connection, a reply queue) is not the servers' time.
            sent_at = time.monotonic()
            routed = send(body, box)
            wanted = routed if expect is None else expect
            deadline = started + timeout
            replies: list[GatheredReply] = []
            while wanted is None or len(replies) < wanted:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    reply = box.get(timeout=remaining)
                except queue.Empty:
                    break
                error = reply.get(SEND_FAILED)
                if error is not None:
                    raise error
                if _CLOSED in reply:
                    raise MessagingTimeout(
                        f"Gathering the replies to message ID {msg_id}: the transport was "
                        f"cleaned up; reply queue {self.queue_name}"
                    )
                failure = reply.get("failure")
                if not failure and not reply.get("ending", True):
                    continue  # a heartbeat: the server is still at it
                replies.append(
                    GatheredReply(
                        None if failure else reply.get("result"),
                        wire.deserialize_failure(failure, allowed_remote_exmods)
                        if failure
                        else None,
                        time.monotonic() - sent_at,
                    )
                )
            return replies
        finally:
            self.unregister(msg_id)

    def deliver(self, body: bytes | str) -> None:
        """Hand a received reply body to the thread waiting for its ``_msg_id``; never raises."""
        try:
            decoded = wire.decode(body, self.limits)
        except Exception as exc:  # RecursionError, MemoryError...: the thread must go on
            reason = undecodable(exc, body, f"reply queue {self.queue_name}")
            self._fail_unreadable(body, reason)
            return
        msg_id = decoded.msg_id
        with self._lock:
            box = self._waiters.get(msg_id or "")
        if box is None:
            LOG.info("No calling threads waiting for msg_id : %s", msg_id)
            return
        box.put(decoded.message)

    def _fail_unreadable(self, body: bytes | str, reason: str) -> None:
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        found = _MSG_ID.search(raw)
        if found is None:
            return
        with self._lock:
            box = self._waiters.get(found.group(1).decode("ascii"))
        if box is not None:
            error = RemoteError("UnreadableReply", f"the reply cannot be decoded: {reason}", "")
            box.put({SEND_FAILED: error})

    def wait(
        self,
        box: queue.SimpleQueue[dict[str, Any]],
        timeout: float | None,
        call_monitor_timeout: float | None,
        allowed_remote_exmods: Sequence[str],
        describe: str,
        started: float | None = None,
    ) -> Any:
        """Wait for the final reply; heartbeats extend the call-monitor deadline.

        ``timeout`` runs from ``started`` (``time.monotonic()``; now by default).

        Raises:
            MessagingTimeout: no reply within ``timeout``, or no heartbeat within
                ``call_monitor_timeout``; ``describe`` says which call.
            Exception: the remote failure, rebuilt.
        """
        now = time.monotonic()
        deadline = None if timeout is None else (now if started is None else started) + timeout
        monitor = None if not call_monitor_timeout else now + call_monitor_timeout
        result: Any = None
        while True:
            limits = [t for t in (deadline, monitor) if t is not None]
            remaining = None if not limits else min(limits) - time.monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                reply = box.get(timeout=remaining)
            except queue.Empty:
                if monitor is not None and (deadline is None or monitor < deadline):
                    raise MessagingTimeout(
                        f"{describe}: no heartbeat or reply within call_monitor_timeout "
                        f"{call_monitor_timeout}s; timeout {timeout}s, "
                        f"reply queue {self.queue_name}"
                    ) from None
                raise MessagingTimeout(
                    f"{describe}: no reply within {timeout}s; timeout {timeout}s, "
                    f"reply queue {self.queue_name}"
                ) from None
            error = reply.get(SEND_FAILED)
            if error is not None:
                raise error
            if _CLOSED in reply:
                raise MessagingTimeout(
                    f"{describe}: the transport was cleaned up; timeout {timeout}s, "
                    f"reply queue {self.queue_name}"
                )
            if reply.get("failure"):
                raise wire.deserialize_failure(reply["failure"], allowed_remote_exmods)
            if reply.get("result") is not None:
                result = reply["result"]
            if reply.get("ending", True):
                return result
            if call_monitor_timeout:
                monitor = time.monotonic() + call_monitor_timeout
