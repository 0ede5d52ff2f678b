"""messaging: notifications and RPC between the processes of a service fleet.

A drop-in successor to oslo.messaging: ``import messaging as oslo_messaging``
keeps the documented usage working, and :func:`install_as_oslo_messaging` hands
the name ``oslo_messaging`` to this package for every library of the process.
Heavy dependencies (oslo.config, stevedore, drivers) are imported only when
first used.
"""

from messaging import dispatcher, exceptions, notify, rpc, serializer, server, target, transport
from messaging.conffixture import ConfFixture
from messaging.exceptions import (
    ClientSendError,
    ConfigurationError,
    DriverLoadFailure,
    ExecutorLoadFailure,
    ExpectedException,
    InvalidTarget,
    InvalidTransportURL,
    MessageDeliveryFailure,
    MessageSerializationError,
    MessageUndeliverable,
    MessagingException,
    MessagingServerError,
    MessagingTimeout,
    NoSuchMethod,
    RemoteError,
    RPCDispatcherError,
    RPCVersionCapError,
    ServerListenError,
    TaskTimeout,
    UnsupportedVersion,
)
from messaging.notify import (
    LoggingErrorNotificationHandler,
    LoggingNotificationHandler,
    NotificationFilter,
    NotificationResult,
    Notifier,
    PublishErrorsHandler,
    get_batch_notification_listener,
    get_notification_listener,
)
from messaging.oslo_alias import install_as_oslo_messaging
from messaging.rpc import (
    DefaultRPCAccessPolicy,
    ExplicitRPCAccessPolicy,
    LegacyRPCAccessPolicy,
    RPCAccessPolicyBase,
    RPCClient,
    RPCDispatcher,
    expected_exceptions,
    expose,
    get_rpc_client,
    get_rpc_server,
)
from messaging.serializer import (
    JsonPayloadSerializer,
    NoOpSerializer,
    RequestContextSerializer,
    Serializer,
)
from messaging.server import MessageHandlingServer
from messaging.target import Target
from messaging.transport import (
    Transport,
    TransportHost,
    TransportOptions,
    TransportURL,
    get_notification_transport,
    get_rpc_transport,
    get_transport,
    set_transport_defaults,
)

__all__ = [
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
