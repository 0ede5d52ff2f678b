"""The public names of ``messaging``, and that importing it stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys

import messaging

# The names exported today. Adding or removing one is an API change: update this
# list on purpose, together with the documentation.
EXPECTED_ALL = [
    "ClientSendError",
    "ConfFixture",
    "ConfigurationError",
    "DefaultRPCAccessPolicy",
    "DriverLoadFailure",
    "ExecutorLoadFailure",
    "ExpectedException",
    "ExplicitRPCAccessPolicy",
    "InvalidTarget",
    "InvalidTransportURL",
    "JsonPayloadSerializer",
    "LegacyRPCAccessPolicy",
    "LoggingErrorNotificationHandler",
    "LoggingNotificationHandler",
    "MessageDeliveryFailure",
    "MessageHandlingServer",
    "MessageSerializationError",
    "MessageUndeliverable",
    "MessagingException",
    "MessagingServerError",
    "MessagingTimeout",
    "NoOpSerializer",
    "NoSuchMethod",
    "NotificationFilter",
    "NotificationResult",
    "Notifier",
    "PublishErrorsHandler",
    "RPCAccessPolicyBase",
    "RPCClient",
    "RPCDispatcher",
    "RPCDispatcherError",
    "RPCVersionCapError",
    "RemoteError",
    "RequestContextSerializer",
    "Serializer",
    "ServerListenError",
    "Target",
    "TaskTimeout",
    "Transport",
    "TransportHost",
    "TransportOptions",
    "TransportURL",
    "UnsupportedVersion",
    "dispatcher",
    "exceptions",
    "expected_exceptions",
    "expose",
    "get_batch_notification_listener",
    "get_notification_listener",
    "get_notification_transport",
    "get_rpc_client",
    "get_rpc_server",
    "get_rpc_transport",
    "get_transport",
    "install_as_oslo_messaging",
    "notify",
    "rpc",
    "serializer",
    "server",
    "set_transport_defaults",
    "target",
    "transport",
]

# oslo.messaging 18.3.1's top-level names (reference §1.1): all must exist here too.
OSLO_NAMES = [
    "ClientSendError",
    "DefaultRPCAccessPolicy",
    "DriverLoadFailure",
    "ExecutorLoadFailure",
    "ExpectedException",
    "ExplicitRPCAccessPolicy",
    "InvalidTarget",
    "InvalidTransportURL",
    "JsonPayloadSerializer",
    "LegacyRPCAccessPolicy",
    "LoggingErrorNotificationHandler",
    "LoggingNotificationHandler",
    "MessageDeliveryFailure",
    "MessageHandlingServer",
    "MessageUndeliverable",
    "MessagingException",
    "MessagingServerError",
    "MessagingTimeout",
    "NoOpSerializer",
    "NoSuchMethod",
    "NotificationFilter",
    "NotificationResult",
    "Notifier",
    "PublishErrorsHandler",
    "RPCAccessPolicyBase",
    "RPCClient",
    "RPCDispatcher",
    "RPCDispatcherError",
    "RPCVersionCapError",
    "RemoteError",
    "Serializer",
    "ServerListenError",
    "Target",
    "Transport",
    "TransportHost",
    "TransportOptions",
    "TransportURL",
    "UnsupportedVersion",
    "expected_exceptions",
    "expose",
    "get_batch_notification_listener",
    "get_notification_listener",
    "get_notification_transport",
    "get_rpc_client",
    "get_rpc_server",
    "get_rpc_transport",
    "get_transport",
    "set_transport_defaults",
]

HEAVY = ["oslo_config", "stevedore", "kombu", "yaml", "eventlet"]


def test_all_is_pinned() -> None:
    assert messaging.__all__ == EXPECTED_ALL


def test_oslo_messaging_names_are_all_exported() -> None:
    assert len(OSLO_NAMES) == 48
    assert sorted(set(OSLO_NAMES) - set(messaging.__all__)) == []


def test_all_is_sorted_and_unique() -> None:
    assert messaging.__all__ == sorted(set(messaging.__all__))


def test_every_name_resolves() -> None:
    for name in messaging.__all__:
        assert getattr(messaging, name) is not None, name


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from messaging import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == EXPECTED_ALL


def test_exceptions_are_messaging_exceptions() -> None:
    # MessageUndeliverable, ConfigurationError and ExpectedException are plain
    # Exceptions in oslo.messaging too.
    outside = {"MessageUndeliverable", "ConfigurationError", "ExpectedException"}
    for name in messaging.__all__:
        obj = getattr(messaging, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and name not in outside:
            assert issubclass(obj, messaging.MessagingException), name


def test_import_does_not_pull_heavy_dependencies() -> None:
    code = (
        "import json, sys\n"
        "import messaging\n"
        "messaging.Notifier, messaging.Target, messaging.ConfFixture\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
