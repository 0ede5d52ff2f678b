"""Fixtures for testing code that sends and receives through ``messaging`` (a pytest plugin).

Installed with the package (entry point ``pytest11``), so the fixtures are there
in any test suite of a project that depends on ``messaging``:

``messaging_url``
    The transport URL of the test: ``memory://`` (a fresh in-memory broker per
    test) unless ``--messaging-url`` or the ``messaging_url`` ini option names a
    real broker (``rabbit://guest:guest@127.0.0.1:5672/``).
``messaging_conf``
    A fresh ``oslo_config`` configuration that reads no file.
``messaging_transport``, ``messaging_rpc_transport``
    A notification transport and an RPC transport on that URL, cleaned up after
    the test.
``messaging_notifier``
    A ``Notifier`` (``messagingv2``, topic ``notifications``, publisher ``tests``).
``messaging_listener``
    Starts a listener that collects: ``messaging_listener(topics=["notifications"])``
    returns a :class:`Collected`, whose ``wait_for(n)`` returns the first ``n``
    notifications or fails after a bound.
``messaging_rpc_server``
    Serves endpoints: ``messaging_rpc_server([Calculator()], topic="calc")``
    starts an RPC server and returns an ``RPCClient`` aimed at it.

Everything a fixture starts is stopped when the test ends, and the in-memory
brokers are forgotten before and after each test, so no message reaches the
next one.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.notify.notifier import Notifier
    from messaging.rpc.client import RPCClient
    from messaging.server import MessageHandlingServer
    from messaging.transport import Transport

__all__ = ["Collected", "Notification"]

#: Seconds a fixture waits for what it expects (a notification, a start, a stop).
WAIT = 10.0
_PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--messaging-url`` and the ``messaging_url`` ini option."""
    group = parser.getgroup("messaging")
    group.addoption(
        "--messaging-url",
        default=None,
        help="transport URL of the messaging fixtures (default: memory://, a fresh broker "
        "per test)",
    )
    parser.addini("messaging_url", "transport URL of the messaging fixtures", default="")


@dataclass(frozen=True)
class Notification:
    """One notification a listener received.

    Attributes:
        priority: ``info``, ``error``...
        ctxt: the request context, as received.
        publisher_id: who sent it.
        event_type: what happened (``compute.instance.create.end``).
        payload: the payload, as received.
        metadata: ``message_id`` and ``timestamp``.
    """

    priority: str
    ctxt: Any
    publisher_id: str
    event_type: str
    payload: Any
    metadata: dict[str, Any]


class Collected:
    """What a listener of :func:`messaging_listener` has received, in order."""

    def __init__(self) -> None:
        self._items: list[Notification] = []
        self._changed = threading.Condition()

    def add(self, notification: Notification) -> None:
        """Record one notification (called by the listener's endpoint)."""
        with self._changed:
            self._items.append(notification)
            self._changed.notify_all()

    @property
    def notifications(self) -> list[Notification]:
        """Everything received so far."""
        with self._changed:
            return list(self._items)

    def wait_for(self, count: int, timeout: float = WAIT) -> list[Notification]:
        """The first ``count`` notifications, once they have arrived.

        Raises:
            AssertionError: fewer arrived within ``timeout`` seconds (the message
                says how many, and which).
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._items) >= count, timeout):
                got = [n.event_type for n in self._items]
                raise AssertionError(
                    f"{len(got)} of {count} notifications arrived within {timeout:g} s: {got}"
                )
            return self._items[:count]


class _CollectingEndpoint:
    """A notification endpoint with a method for each priority, adding to a :class:`Collected`."""

    def __init__(self, collected: Collected) -> None:
        self._collected = collected
        for priority in _PRIORITIES:
            setattr(self, priority, self._recorder(priority))

    def _recorder(self, priority: str) -> Callable[..., None]:
        def record(
            ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any
        ) -> None:
            self._collected.add(
                Notification(priority, ctxt, publisher_id, event_type, payload, dict(metadata))
            )

        return record


def _url(config: pytest.Config) -> str:
    given = config.getoption("--messaging-url") or config.getini("messaging_url")
    return str(given) if given else "memory://"


@pytest.fixture
def messaging_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The transport URL of this test (a fresh in-memory broker unless configured)."""
    from messaging.drivers.memory import reset_brokers

    reset_brokers()
    yield _url(request.config)
    reset_brokers()


@pytest.fixture
def messaging_conf() -> cfg.ConfigOpts:
    """A configuration that reads no file, for the transports of this test."""
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    conf([], project="messaging-tests", default_config_files=[], default_config_dirs=[])
    return conf


@pytest.fixture
def messaging_transport(messaging_conf: cfg.ConfigOpts, messaging_url: str) -> Iterator[Transport]:
    """A notification transport on :func:`messaging_url`, cleaned up after the test."""
    import messaging

    transport = messaging.get_notification_transport(messaging_conf, messaging_url)
    yield transport
    transport.cleanup()


@pytest.fixture
def messaging_rpc_transport(
    messaging_conf: cfg.ConfigOpts, messaging_url: str
) -> Iterator[Transport]:
    """An RPC transport on :func:`messaging_url`, cleaned up after the test."""
    import messaging

    transport = messaging.get_rpc_transport(messaging_conf, messaging_url)
    yield transport
    transport.cleanup()


@pytest.fixture
def messaging_notifier(messaging_transport: Transport) -> Notifier:
    """A notifier on topic ``notifications``, publisher ``tests``."""
    import messaging

    return messaging.Notifier(
        messaging_transport, publisher_id="tests", driver="messagingv2", topics=["notifications"]
    )


def _stop_all(servers: list[MessageHandlingServer]) -> None:
    for server in reversed(servers):
        server.stop(timeout=WAIT)
        server.wait(timeout=WAIT)


@pytest.fixture
def messaging_listener(
    messaging_transport: Transport,
) -> Iterator[Callable[..., Collected]]:
    """Start listeners that collect; ``messaging_listener(topics=[...], pool=None)``.

    Each call starts a notification listener on ``topics`` (default
    ``["notifications"]``; with a real broker, a pool of its own unless one is
    given, so that it takes nothing from other consumers) and returns its
    :class:`Collected`. Listeners stop when the test ends.
    """
    import messaging

    servers: list[MessageHandlingServer] = []

    def listen(topics: Sequence[str] = ("notifications",), pool: str | None = None) -> Collected:
        collected = Collected()
        real_broker = not str(messaging_transport.driver.url.transport).startswith(
            ("memory", "fake")
        )
        own_pool = pool is None and real_broker
        if own_pool:
            pool = f"tests-{uuid.uuid4().hex[:12]}"
        listener = messaging.get_notification_listener(
            messaging_transport,
            [messaging.Target(topic=topic) for topic in topics],
            [_CollectingEndpoint(collected)],
            executor="threading",
            pool=pool,
            temporary_pool=own_pool,  # a pool the test names is left as it is
        )
        listener.start(timeout=WAIT)
        servers.append(listener)
        return collected

    yield listen
    _stop_all(servers)


@pytest.fixture
def messaging_rpc_server(
    messaging_rpc_transport: Transport,
) -> Iterator[Callable[..., RPCClient]]:
    """Serve endpoints: ``messaging_rpc_server(endpoints, topic="tests", server="s1")``.

    Each call starts an RPC server with ``endpoints`` and returns an RPC client
    aimed at its topic (``timeout`` 10 s). Servers stop when the test ends.
    """
    import messaging

    servers: list[MessageHandlingServer] = []

    def serve(
        endpoints: Sequence[Any], topic: str = "tests", server: str = "s1", **client: Any
    ) -> RPCClient:
        rpc_server = messaging.get_rpc_server(
            messaging_rpc_transport,
            messaging.Target(topic=topic, server=server),
            list(endpoints),
            executor="threading",
        )
        rpc_server.start(timeout=WAIT)
        servers.append(rpc_server)
        client.setdefault("timeout", WAIT)
        return messaging.get_rpc_client(
            messaging_rpc_transport, messaging.Target(topic=topic), **client
        )

    yield serve
    _stop_all(servers)
