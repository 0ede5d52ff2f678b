"""oslo.messaging's documented notification listener example, run unchanged on ``fake://``.

The example (the module docstring of ``oslo_messaging.notify.listener``) is kept
verbatim in :data:`LISTENER_EXAMPLE`; ``import oslo_messaging`` resolves to
``messaging`` and ``cfg.CONF`` to a private configuration for the duration of the
test. oslo's module documents no batch listener example, so there is none here.
"""

from __future__ import annotations

import sys
import threading
import warnings
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging.notify.listener import NotificationServer
from tests.unit.listener_support import TIMEOUT, broker, in_thread, join, make_conf

LISTENER_EXAMPLE = r"""
from oslo_config import cfg
import oslo_messaging


class NotificationEndpoint(object):
    filter_rule = oslo_messaging.NotificationFilter(
        publisher_id='^compute.*')

    def warn(self, ctxt, publisher_id, event_type, payload, metadata):
        do_something(payload)


class ErrorEndpoint(object):
    filter_rule = oslo_messaging.NotificationFilter(
        event_type='^instance\..*\.start$',
        context={'ctxt_key': 'regexp'})

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        do_something(payload)

transport = oslo_messaging.get_notification_transport(cfg.CONF)
targets = [
    oslo_messaging.Target(topic='notifications'),
    oslo_messaging.Target(topic='notifications_bis')
]
endpoints = [
    NotificationEndpoint(),
    ErrorEndpoint(),
]
pool = "listener-workers"
server = oslo_messaging.get_notification_listener(transport, targets,
                                                  endpoints, pool=pool)
server.start()
server.wait()
"""


class ServiceContext:
    """A context object as services pass them; only its redacted copy is sent."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def redacted_copy(self) -> ServiceContext:
        return ServiceContext(**{k: v for k, v in self.values.items() if k != "auth_token"})

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)


def test_documented_listener_example(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = make_conf(transport_url="fake://")
    monkeypatch.setattr(cfg, "CONF", conf)
    monkeypatch.setitem(sys.modules, "oslo_messaging", messaging)

    # Instrumentation only: know when the example's server has started.
    started = threading.Event()
    real_start = NotificationServer.start

    def start(self: NotificationServer, *args: Any, **kwargs: Any) -> None:
        real_start(self, *args, **kwargs)
        started.set()

    monkeypatch.setattr(NotificationServer, "start", start)

    expected = 4
    handled: list[Any] = []
    all_handled = threading.Event()
    lock = threading.Lock()

    def do_something(payload: Any) -> None:
        with lock:
            handled.append(payload)
            if len(handled) >= expected:
                all_handled.set()

    namespace: dict[str, Any] = {"__name__": "listener_example", "do_something": do_something}

    def feed_then_stop() -> None:
        try:
            feed()
        finally:  # never leave the test thread blocked in server.wait()
            if "server" in namespace:
                namespace["server"].stop(timeout=TIMEOUT)

    def feed() -> None:
        assert started.wait(TIMEOUT), "the example's server did not start"
        transport = messaging.get_notification_transport(conf)
        both = ["notifications", "notifications_bis"]
        compute = messaging.Notifier(transport, "compute.host1", driver="messagingv2", topics=both)
        network = messaging.Notifier(transport, "network.host1", driver="messagingv2", topics=both)
        matching = ServiceContext(ctxt_key="regexp-123", auth_token="secret")
        other = ServiceContext(ctxt_key="something-else")
        # Filtered out: wrong publisher, wrong event type, wrong context value.
        network.warn(None, "port.down", "network warn")
        compute.error(matching, "instance.create.end", "wrong event")
        compute.error(other, "instance.create.start", "wrong context")
        # Accepted: each comes once per target topic.
        compute.warn(None, "disk.low", "compute warn")
        compute.error(matching, "instance.create.start", "instance error")
        assert all_handled.wait(TIMEOUT), f"handled only {handled}"

    feeder, outcome = in_thread(feed_then_stop)
    with warnings.catch_warnings():
        # The example's non-raw '^instance\..*\.start$' is an invalid escape sequence.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        code = compile(LISTENER_EXAMPLE, "<oslo listener example>", "exec")
        exec(code, namespace)  # returns once server.wait() does
    join(feeder)
    failure = outcome.get_nowait()
    assert failure is None, failure

    assert sorted(handled) == ["compute warn", "compute warn", "instance error", "instance error"]
    assert isinstance(namespace["server"], NotificationServer)
    # Everything taken was settled: the filtered ones were acknowledged, not returned.
    assert broker().queue_depth("listener-workers") == 0
