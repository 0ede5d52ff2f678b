"""``RPCClient``: calls and casts to RPC servers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from messaging.conf import register_transport_opts
from messaging.exceptions import (
    ClientSendError,
    InvalidTarget,
    RemoteError,
    RPCVersionCapError,
    TransportDriverError,
)
from messaging.rpc.versions import check_version, version_is_compatible
from messaging.serializer import NoOpSerializer, Serializer
from messaging.target import refuse_fanout_call
from messaging.transport import NOTIFICATION_TRANSPORT_FOR_RPC, NotificationTransport

if TYPE_CHECKING:
    from messaging.target import Target
    from messaging.transport import Transport, TransportOptions

# The exceptions are re-exported where oslo.messaging defines them.
__all__ = ["ClientSendError", "RPCClient", "RPCVersionCapError", "RemoteError", "get_rpc_client"]

LOG = logging.getLogger(__name__)


class _Unset:
    """The default of arguments that, left out, keep their current value."""

    def __repr__(self) -> str:
        return "<unchanged>"


_marker: Any = _Unset()


class _CallContext:
    """The state of a client, or of a ``prepare()`` of it: target and per-call settings."""

    def __init__(
        self,
        transport: Transport,
        target: Target,
        serializer: Serializer,
        timeout: float | None = None,
        version_cap: str | None = None,
        retry: int | None = None,
        call_monitor_timeout: float | None = None,
        transport_options: TransportOptions | None = None,
    ) -> None:
        self.transport = transport
        self.conf = transport.conf
        self.target = target
        self.serializer = serializer
        self.timeout = timeout
        self.version_cap = version_cap
        self.retry = retry
        self.call_monitor_timeout = call_monitor_timeout
        self.transport_options = transport_options
        if version_cap is not None:
            check_version(version_cap)

    def _check_target_version(self, version: str | None, target: Target) -> None:
        if version is None:
            return
        try:
            check_version(version)
        except ValueError as exc:
            # oslo raises a MessagingException here; InvalidTarget is one, and a ValueError.
            raise InvalidTarget(str(exc), target) from None

    def _make_message(self, ctxt: Any, method: str, args: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "method": method,
            "args": {
                name: self.serializer.serialize_entity(ctxt, value) for name, value in args.items()
            },
        }
        if self.target.namespace is not None:
            message["namespace"] = self.target.namespace
        if self.target.version is not None:
            message["version"] = self.target.version
        return message

    def can_send_version(self, version: str | None = _marker) -> bool:
        """Whether ``version`` (the target's by default) is within ``version_cap``."""
        if version is _marker:
            version = self.target.version
        return self.version_cap is None or version_is_compatible(self.version_cap, version)

    def _check_version_cap(self) -> None:
        if not self.can_send_version():
            raise RPCVersionCapError(str(self.target.version), str(self.version_cap))

    def _send(self, ctxt: Any, method: str, kwargs: dict[str, Any], call: bool) -> Any:
        self._check_target_version(self.target.version, self.target)
        self._check_version_cap()
        message = self._make_message(ctxt, method, kwargs)
        wire_ctxt = self.serializer.serialize_context(ctxt)
        timeout = None
        if call:
            timeout = self.timeout if self.timeout is not None else self.conf.rpc_response_timeout
        try:
            # The arguments oslo.messaging passes to Transport._send, which tests patch.
            if not call:
                return self.transport.send(
                    self.target,
                    wire_ctxt,
                    message,
                    retry=self.retry,
                    transport_options=self.transport_options,
                )
            return self.transport.send(
                self.target,
                wire_ctxt,
                message,
                wait_for_reply=True,
                timeout=timeout,
                call_monitor_timeout=self.call_monitor_timeout,
                retry=self.retry,
                transport_options=self.transport_options,
            )
        except TransportDriverError as exc:
            raise ClientSendError(self.target, exc) from exc

    def cast(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        """Invoke ``method`` on a server (every server, with ``fanout``) without waiting.

        Raises:
            MessageDeliveryFailure: the broker could not be reached within ``retry``.
            MessageUndeliverable: with ``TransportOptions(at_least_once=True)``,
                no queue is there to receive the request.
            RPCVersionCapError: the target's version is above ``version_cap``.
            ClientSendError: the driver failed otherwise.
        """
        self._send(ctxt, method, kwargs, call=False)

    def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
        """Invoke ``method`` on one server and return its result.

        Raises:
            MessagingTimeout: no reply within ``timeout`` (or no heartbeat within
                ``call_monitor_timeout``); the message names topic, server, method,
                timeout and reply queue.
            RemoteError: the server raised an exception that may not be rebuilt here.
            InvalidTarget: the target is a fanout one.
            MessageDeliveryFailure: the broker could not be reached within ``retry``.
            MessageUndeliverable: with ``TransportOptions(at_least_once=True)``,
                no queue is there to receive the request.
            RPCVersionCapError: the target's version is above ``version_cap``.
            ClientSendError: the driver failed otherwise.
            Exception: a builtin exception, or one from ``allowed_remote_exmods``,
                raised by the server.
        """
        refuse_fanout_call(self.target)
        result = self._send(ctxt, method, kwargs, call=True)
        return self.serializer.deserialize_entity(ctxt, result)

    def prepare(
        self,
        exchange: str | None = _marker,
        topic: str | None = _marker,
        namespace: str | None = _marker,
        version: str | None = _marker,
        server: str | None = _marker,
        fanout: bool | None = _marker,
        timeout: float | None = _marker,
        version_cap: str | None = _marker,
        retry: int | None = _marker,
        call_monitor_timeout: float | None = _marker,
        transport_options: TransportOptions | None = _marker,
    ) -> _CallContext:
        """Return a context with some target attributes or call settings overridden.

        Arguments left out keep this context's values; the original is unchanged.

        Raises:
            InvalidTarget: ``version`` is not ``major.minor[.revision]``.
        """
        overrides = {
            name: value
            for name, value in (
                ("exchange", exchange),
                ("topic", topic),
                ("namespace", namespace),
                ("version", version),
                ("server", server),
                ("fanout", fanout),
            )
            if value is not _marker
        }
        if version is not _marker:
            self._check_target_version(version, self.target)

        def pick(value: Any, current: Any) -> Any:
            return current if value is _marker else value

        return _CallContext(
            self.transport,
            self.target(**overrides),
            self.serializer,
            timeout=pick(timeout, self.timeout),
            version_cap=pick(version_cap, self.version_cap),
            retry=pick(retry, self.retry),
            call_monitor_timeout=pick(call_monitor_timeout, self.call_monitor_timeout),
            transport_options=pick(transport_options, self.transport_options),
        )


class RPCClient(_CallContext):
    """Calls and casts to the RPC servers of a target.

    ``client.prepare(server='host1', version='1.2').call(ctxt, 'method', arg=1)``.
    Build it with :func:`get_rpc_client`; constructing it directly works but
    logs a warning, as oslo.messaging does.

    Args:
        transport: the RPC transport.
        target: the default target (a topic at least).
        timeout: seconds a call waits; None reads ``rpc_response_timeout``.
        version_cap: the highest version calls may ask for.
        serializer: converts arguments, results and contexts.
        retry: connection retries: None or -1 forever, 0 none, N times.
        call_monitor_timeout: with it, the server sends heartbeats during a call
            and the client fails when none came for that long.
        transport_options: e.g. ``TransportOptions(at_least_once=True)``.
    """

    def __init__(
        self,
        transport: Transport,
        target: Target,
        timeout: float | None = None,
        version_cap: str | None = None,
        serializer: Serializer | None = None,
        retry: int | None = None,
        call_monitor_timeout: float | None = None,
        transport_options: TransportOptions | None = None,
        _manual_load: bool = True,
    ) -> None:
        register_transport_opts(transport.conf)
        if _manual_load:
            LOG.warning(
                "Using RPCClient manually to instantiate client. "
                "Please use get_rpc_client to obtain an RPC client instance."
            )
        if isinstance(transport, NotificationTransport):
            LOG.warning(NOTIFICATION_TRANSPORT_FOR_RPC)
        super().__init__(
            transport,
            target,
            serializer or NoOpSerializer(),
            timeout,
            version_cap,
            retry,
            call_monitor_timeout,
            transport_options,
        )


def get_rpc_client(
    transport: Transport, target: Target, client_cls: type[RPCClient] = RPCClient, **kwargs: Any
) -> RPCClient:
    """Build an RPC client (the arguments are those of :class:`RPCClient`)."""
    return client_cls(transport, target, _manual_load=False, **kwargs)
