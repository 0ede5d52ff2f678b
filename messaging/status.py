"""The status of a topic: which servers answer, how fast, and the broker's count of its queues.

::

    found = messaging.status.topic_status(transport, Target(topic="compute"), timeout=3)
    found.answers   # one per server that answered, fastest first
    found.queues    # the topic's queues: messages and consumers (None: the transport cannot tell)
    found.problems  # what is wrong, in words; found.ok is True when there is nothing

:func:`census` sends one request to every server of the topic at once, on
the topic's fanout exchange (as a fanout cast), but with a ``_msg_id`` and a
reply queue, so that every server that receives it replies; the replies are
gathered until the timeout (see :meth:`Driver.gather
<messaging.drivers.base.Driver.gather>`). The request asks for the status
method of :mod:`messaging.rpc.control`: a server of this library answers who
it is (server name, host, process) and how it is (its health). A server of
oslo.messaging, or of an older release of this library, has no such method
and replies with a failure (``UnsupportedVersion``): it is counted as an
anonymous server that receives and replies. A server that does not answer
within the timeout is not seen at all.

:func:`queue_stats` asks the broker, where the transport can tell (RabbitMQ,
and the in-memory transport), how many messages wait in the topic's shared
queue ``<topic>``, in the queue ``<topic>.<server>`` of each server that
answered and in the fanout queues those servers named, and how many
consumers each has. A queue the broker does not have is reported as missing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from messaging.drivers.base import GatheredReply, QueueStats
from messaging.exceptions import RemoteError
from messaging.rpc.control import CONTROL_NAMESPACE, CONTROL_VERSION, LIBRARY, STATUS_METHOD

if TYPE_CHECKING:
    from messaging.target import Target
    from messaging.transport import Transport

__all__ = [
    "DEFAULT_TIMEOUT",
    "Answer",
    "QueueStats",
    "TopicStatus",
    "census",
    "queue_names",
    "queue_stats",
    "topic_status",
]

#: Seconds to gather answers when the caller does not say.
DEFAULT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Answer:
    """One server's answer to a census.

    Attributes:
        elapsed: seconds from sending the request to receiving this answer.
        server: the server's name (None for an anonymous server).
        host: the host it runs on (None for an anonymous server).
        pid: its process id (None for an anonymous server).
        library: ``messaging`` for a server of this library; None for an
            anonymous one.
        status: the whole status answer (see
            :meth:`ControlEndpoint.status <messaging.rpc.control.ControlEndpoint.status>`);
            empty for an anonymous server.
        failure: for an anonymous server, what it replied with
            (``UnsupportedVersion: ...``); else None.
    """

    elapsed: float
    server: str | None = None
    host: str | None = None
    pid: int | None = None
    library: str | None = None
    status: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None

    @property
    def known(self) -> bool:
        """Whether the server said who it is (a server of this library)."""
        return self.library is not None

    @property
    def problems(self) -> list[str]:
        """What the server says is wrong with it (nothing for an anonymous server)."""
        return [str(p) for p in self.status.get("problems") or ()]

    @classmethod
    def from_reply(cls, reply: GatheredReply) -> Answer:
        """Read a gathered reply: a status answer, or a failure of an anonymous server."""
        if reply.failure is not None:
            failure = reply.failure
            kind = failure.exc_type if isinstance(failure, RemoteError) else type(failure).__name__
            text = failure.value if isinstance(failure, RemoteError) else str(failure)
            first = (str(text or "").strip().splitlines() or [""])[0]
            return cls(reply.elapsed, failure=f"{kind}: {first}" if first else str(kind))
        status = reply.result if isinstance(reply.result, dict) else {}
        if status.get("library") != LIBRARY:
            # Something answered the method with something else: it says nothing of itself.
            return cls(reply.elapsed, failure=f"unexpected answer: {reply.result!r:.200}")
        pid = status.get("pid")
        return cls(
            reply.elapsed,
            server=_text(status.get("server")),
            host=_text(status.get("host")),
            pid=pid if isinstance(pid, int) else None,
            library=LIBRARY,
            status=status,
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class TopicStatus:
    """What :func:`topic_status` found.

    Attributes:
        topic: the topic.
        exchange: the exchange asked for (None: the transport's ``control_exchange``).
        timeout: seconds the answers were gathered for.
        answers: one per server that answered, fastest first.
        queues: the topic's queues as the broker counts them; None where the
            transport cannot tell.
        queues_unavailable: why ``queues`` is None.
        elapsed: seconds the whole status took.
        expected: the servers the caller expected to answer.
    """

    topic: str
    exchange: str | None
    timeout: float
    answers: tuple[Answer, ...]
    queues: tuple[QueueStats, ...] | None
    queues_unavailable: str | None = None
    elapsed: float = 0.0
    expected: tuple[str, ...] = ()

    @property
    def missing(self) -> list[str]:
        """The servers expected that did not answer as themselves (anonymous answers aside)."""
        answered = {a.server for a in self.answers if a.known}
        return [s for s in self.expected if s not in answered]

    @property
    def problems(self) -> list[str]:
        """What is wrong, in words.

        No server answered; an expected server did not answer (unless as
        many anonymous servers answered: they may be those); a server says it
        is not ready; the topic's queue has more consumers than servers
        answered; a queue has no consumer or does not exist.
        """
        found: list[str] = []
        if not self.answers:
            found.append(f"no server of topic {self.topic!r} answered within {self.timeout:g} s")
        missing = self.missing
        anonymous = sum(1 for a in self.answers if not a.known)
        # An anonymous answer may be an expected server that cannot say who it is.
        if len(missing) > anonymous:
            maybe = f" (or is one of the {anonymous} anonymous servers)" if anonymous else ""
            found.extend(
                f"server {name!r} did not answer within {self.timeout:g} s{maybe}"
                for name in missing
            )
        for answer in self.answers:
            if answer.known and answer.status.get("ready") is False:
                reasons = "; ".join(answer.problems) or "not ready"
                found.append(f"server {answer.server!r} on {answer.host}: {reasons}")
        shared = next((q for q in self.queues or () if q.name == self.topic), None)
        if shared is not None and (shared.consumers or 0) > len(self.answers):
            found.append(
                f"queue {self.topic!r} has {shared.consumers} consumers but "
                f"{len(self.answers)} server(s) answered: a server is too busy to answer "
                f"within {self.timeout:g} s, stuck, or no longer receives fanout requests"
            )
        for queue in self.queues or ():
            if not queue.exists:
                found.append(f"queue {queue.name!r} does not exist")
            elif not queue.consumers:
                found.append(
                    f"queue {queue.name!r} has no consumer ({queue.messages} message(s) waiting)"
                )
        return found

    @property
    def ok(self) -> bool:
        """At least one server answered, and nothing is wrong (see :attr:`problems`)."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """Everything, as plain data (JSON-serialisable)."""
        return {
            "topic": self.topic,
            "exchange": self.exchange,
            "timeout": self.timeout,
            "elapsed": self.elapsed,
            "ok": self.ok,
            "problems": self.problems,
            "answers": [
                {**asdict(a), "known": a.known, "problems": a.problems} for a in self.answers
            ],
            "queues": None if self.queues is None else [asdict(q) for q in self.queues],
            "queues_unavailable": self.queues_unavailable,
            "expected": list(self.expected),
            "missing": self.missing,
        }


def census(
    transport: Transport,
    target: Target,
    timeout: float = DEFAULT_TIMEOUT,
    expect: int | None = None,
    retry: int | None = None,
) -> list[Answer]:
    """Ask every server of ``target``'s topic who it is, and gather the answers.

    Args:
        transport: an RPC transport whose driver has fanout.
        target: the topic (and exchange); its other attributes are ignored.
        timeout: seconds to gather answers for.
        expect: stop as soon as this many servers answered (by default, as soon
            as every queue that received the request answered, where the
            transport says how many did; else at ``timeout``).
        retry: oslo's retry count of the request's publish.

    Returns:
        One answer per server that answered, fastest first.

    Raises:
        NotImplementedError: the transport cannot reach every server of a topic.
        MessageDeliveryFailure: the request could not be published.
    """
    message = {
        "method": STATUS_METHOD,
        "args": {},
        "namespace": CONTROL_NAMESPACE,
        "version": CONTROL_VERSION,
    }
    replies = transport.driver.gather(target, {}, message, timeout, expect=expect, retry=retry)
    return sorted((Answer.from_reply(r) for r in replies), key=lambda a: a.elapsed)


def queue_names(topic: str, answers: Sequence[Answer], servers: Sequence[str] = ()) -> list[str]:
    """The queues to count: ``<topic>``, each answering server's own queues, the others'.

    A server of this library names the queues it consumes; for one that does
    not, its ``<topic>.<server>`` queue is counted (anonymous servers have none
    known). Then the ``<topic>.<server>`` queue of each of ``servers`` (the
    servers expected) that did not answer.
    """
    found = [topic]
    for answer in answers:
        if not answer.known:
            continue
        named = [str(q) for q in answer.status.get("queues") or ()]
        if not named and answer.server:
            named = [f"{topic}.{answer.server}"]
        found.extend(named)
    found.extend(f"{topic}.{server}" for server in servers)
    return list(dict.fromkeys(found))


def queue_stats(transport: Transport, names: Sequence[str]) -> list[QueueStats] | None:
    """The broker's count of messages and consumers of each queue; None where it cannot tell.

    Raises:
        MessageDeliveryFailure: the broker could not be reached.
    """
    try:
        return transport.driver.queue_stats(names)
    except NotImplementedError:
        return None


def topic_status(
    transport: Transport,
    target: Target,
    timeout: float = DEFAULT_TIMEOUT,
    expect: int | None = None,
    retry: int | None = None,
    servers: Sequence[str] = (),
) -> TopicStatus:
    """The servers of a topic (:func:`census`) and its queues (:func:`queue_stats`).

    Args:
        transport: an RPC transport.
        target: the topic (and exchange).
        timeout: seconds to gather answers for.
        expect: stop gathering as soon as this many servers answered.
        retry: oslo's retry count of the request's publish.
        servers: the servers expected: each one that does not answer is a
            problem, and its queue ``<topic>.<server>`` is counted all the same.

    Raises:
        NotImplementedError: the transport cannot reach every server of a topic.
        MessageDeliveryFailure: the broker could not be reached.
    """
    started = time.monotonic()
    topic = str(target.topic)
    answers = census(transport, target, timeout, expect=expect, retry=retry)
    queues = queue_stats(transport, queue_names(topic, answers, servers))
    unavailable = None
    if queues is None:
        unavailable = f"the {transport.driver.url.transport} transport cannot count its queues"
    return TopicStatus(
        topic=topic,
        exchange=target.exchange,
        timeout=timeout,
        answers=tuple(answers),
        queues=None if queues is None else tuple(queues),
        queues_unavailable=unavailable,
        elapsed=time.monotonic() - started,
        expected=tuple(servers),
    )
