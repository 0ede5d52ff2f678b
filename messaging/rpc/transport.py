"""The RPC transport factory at oslo.messaging's path (``oslo_messaging.rpc.transport``)."""

from messaging.transport import RPCTransport, get_rpc_transport

__all__ = ["RPCTransport", "get_rpc_transport"]
