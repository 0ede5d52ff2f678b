"""RPC: clients, servers, dispatcher and access policies.

The exceptions of RPC are importable from here too, as from ``oslo_messaging.rpc``.
"""

from messaging.exceptions import (
    ClientSendError,
    ExpectedException,
    NoSuchMethod,
    RemoteError,
    RPCDispatcherError,
    RPCVersionCapError,
    UnsupportedVersion,
)
from messaging.rpc.client import RPCClient, get_rpc_client
from messaging.rpc.dispatcher import (
    DefaultRPCAccessPolicy,
    ExplicitRPCAccessPolicy,
    LegacyRPCAccessPolicy,
    RPCAccessPolicyBase,
    RPCDispatcher,
)
from messaging.rpc.server import RPCServer, expected_exceptions, expose, get_rpc_server
from messaging.transport import get_rpc_transport

__all__ = [
    "ClientSendError",
    "DefaultRPCAccessPolicy",
    "ExpectedException",
    "ExplicitRPCAccessPolicy",
    "LegacyRPCAccessPolicy",
    "NoSuchMethod",
    "RPCAccessPolicyBase",
    "RPCClient",
    "RPCDispatcher",
    "RPCDispatcherError",
    "RPCServer",
    "RPCVersionCapError",
    "RemoteError",
    "UnsupportedVersion",
    "expected_exceptions",
    "expose",
    "get_rpc_client",
    "get_rpc_server",
    "get_rpc_transport",
]
