"""RPC: clients, servers, dispatcher and access policies."""

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
    "DefaultRPCAccessPolicy",
    "ExplicitRPCAccessPolicy",
    "LegacyRPCAccessPolicy",
    "RPCAccessPolicyBase",
    "RPCClient",
    "RPCDispatcher",
    "RPCServer",
    "expected_exceptions",
    "expose",
    "get_rpc_client",
    "get_rpc_server",
    "get_rpc_transport",
]
