"""``Target``: where a message goes, or what a server or listener receives."""

from __future__ import annotations

from typing import Any

from messaging.exceptions import InvalidTarget

__all__ = ["Target", "refuse_fanout_call"]


class Target:
    """Identifies a destination of messages.

    Which attributes matter depends on the use: an RPC server needs ``topic`` and
    ``server``; an RPC client needs ``topic``; a notifier or notification listener
    needs ``topic`` (``exchange`` is optional and defaults to ``control_exchange``).

    Args:
        exchange: the exchange; ``None`` means the transport's ``control_exchange``.
        topic: the topic, the name by which servers and listeners are found.
        namespace: the RPC namespace of an endpoint or a call.
        version: the RPC API version, ``"major.minor"``.
        server: one server among those on a topic (for directed calls).
        fanout: whether a cast goes to every server on the topic.
        legacy_namespaces: other namespaces an endpoint still accepts, for renames.
    """

    def __init__(
        self,
        exchange: str | None = None,
        topic: str | None = None,
        namespace: str | None = None,
        version: str | None = None,
        server: str | None = None,
        fanout: bool | None = None,
        legacy_namespaces: list[str] | None = None,
    ) -> None:
        self.exchange = exchange
        self.topic = topic
        self.namespace = namespace
        self.version = version
        self.server = server
        self.fanout = fanout
        self.accepted_namespaces: list[str | None] = [namespace, *(legacy_namespaces or [])]

    def __call__(self, **kwargs: Any) -> Target:
        """Return a copy with some attributes overridden.

        As in oslo.messaging, ``legacy_namespaces`` is not carried into the copy.
        """
        for name in ("exchange", "topic", "namespace", "version", "server", "fanout"):
            kwargs.setdefault(name, getattr(self, name))
        return Target(**kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and vars(self) == vars(other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        attrs = [
            f"{name}={value}"
            for name in ("exchange", "topic", "namespace", "version", "server", "fanout")
            if (value := getattr(self, name)) is not None
        ]
        return f"<Target {', '.join(attrs)}>"


def refuse_fanout_call(target: Target) -> None:
    """Refuse a call to a fanout target: a call is answered by one server.

    The one check of it, made by the RPC client (before the transport, as
    oslo.messaging does) and by the drivers (for callers of ``Transport.send``).

    Raises:
        InvalidTarget: ``target.fanout`` is set.
    """
    if target.fanout:
        raise InvalidTarget("A call cannot be used with fanout", target)
