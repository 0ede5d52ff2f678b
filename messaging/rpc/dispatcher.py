"""``RPCDispatcher``: finds the endpoint method a request names and calls it."""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from messaging.dispatcher import DispatcherBase
from messaging.exceptions import (
    ExpectedException,
    NoSuchMethod,
    RPCDispatcherError,
    UnsupportedVersion,
)
from messaging.executors import settle
from messaging.rpc.versions import version_is_compatible
from messaging.serializer import NoOpSerializer, Serializer
from messaging.target import Target

if TYPE_CHECKING:
    from messaging.drivers.base import RpcIncomingMessage

# The exceptions are re-exported where oslo.messaging defines them.
__all__ = [
    "DefaultRPCAccessPolicy",
    "ExpectedException",
    "ExplicitRPCAccessPolicy",
    "LegacyRPCAccessPolicy",
    "NoSuchMethod",
    "PingEndpoint",
    "RPCAccessPolicyBase",
    "RPCDispatcher",
    "RPCDispatcherError",
    "UnsupportedVersion",
]

LOG = logging.getLogger(__name__)
PING_METHOD = "oslo_rpc_server_ping"
_MIN_HEARTBEAT_INTERVAL = 0.05
_HEARTBEAT_JOIN_TIMEOUT = 5.0


class RPCAccessPolicyBase(abc.ABC):
    """Decides which endpoint methods remote callers may invoke."""

    @abc.abstractmethod
    def is_allowed(self, endpoint: Any, method: str) -> bool:
        """Whether ``method`` of ``endpoint`` may be called remotely."""


class LegacyRPCAccessPolicy(RPCAccessPolicyBase):
    """Every attribute may be called, private ones included (oslo's old behaviour)."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        """Always True."""
        return True


class DefaultRPCAccessPolicy(RPCAccessPolicyBase):
    """Every method except those whose name starts with ``_`` (the default)."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        """True unless ``method`` is private."""
        return not method.startswith("_")


class ExplicitRPCAccessPolicy(RPCAccessPolicyBase):
    """Only methods decorated with :func:`messaging.rpc.server.expose`."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        """True if the method was exposed."""
        return bool(getattr(getattr(endpoint, method, None), "exposed", False))


class PingEndpoint:
    """Answers ``oslo_rpc_server_ping`` with ``'pong'`` (when ``rpc_ping_enabled``).

    The method is exposed, so the ping answers under every access policy,
    :class:`ExplicitRPCAccessPolicy` included (oslo.messaging's does not).
    """

    def oslo_rpc_server_ping(self, ctxt: Any, **kwargs: Any) -> str:
        """Return ``'pong'``."""
        return "pong"

    oslo_rpc_server_ping.exposed = True  # type: ignore[attr-defined]


class RPCDispatcher(DispatcherBase):
    """Routes RPC requests to endpoints by namespace, version and method name.

    The first endpoint whose target accepts the request's namespace, whose
    version is compatible, which has the method and whose access policy allows
    it, is called as ``method(ctxt, **args)``. When a compatible endpoint exists
    but lacks the method (a data attribute, or the reserved ``target``, is no
    method), :class:`NoSuchMethod` is raised; when none is compatible,
    :class:`UnsupportedVersion`.

    Args:
        endpoints: the endpoint objects (an optional ``target`` attribute sets
            their namespace and version); kept as given, the caller's list.
        serializer: converts contexts, arguments and results.
        access_policy: an :class:`RPCAccessPolicyBase` subclass (the class, not an
            instance); :class:`DefaultRPCAccessPolicy` when None.

    Raises:
        TypeError: an endpoint's ``target`` is not a Target, or ``access_policy``
            is not a policy class.
    """

    def __init__(
        self,
        endpoints: Sequence[Any],
        serializer: Serializer | None = None,
        access_policy: type[RPCAccessPolicyBase] | None = None,
    ) -> None:
        for endpoint in endpoints:
            target = getattr(endpoint, "target", None)
            if target is not None and not isinstance(target, Target):
                raise TypeError(
                    f"The 'target' of endpoint {endpoint!r} must be a messaging.Target, "
                    f"not {type(target).__name__}"
                )
        if access_policy is None:
            access_policy = DefaultRPCAccessPolicy
        if not (isinstance(access_policy, type) and issubclass(access_policy, RPCAccessPolicyBase)):
            raise TypeError(
                f"access_policy must be a subclass of RPCAccessPolicyBase (the class itself), "
                f"not {access_policy!r}"
            )
        self.endpoints = endpoints if isinstance(endpoints, list) else list(endpoints)
        #: The library's own endpoints (an RPC server's control endpoint): tried
        #: when no endpoint of ``endpoints`` takes a request, and not listed there.
        self.builtin_endpoints: list[Any] = []
        self.serializer: Serializer = serializer or NoOpSerializer()
        self.access_policy = access_policy()
        self._default_target = Target()

    def _find(self, method: str, namespace: str | None, version: str) -> Any:
        func, compatible = self._search(self.endpoints, method, namespace, version)
        if func is None and self.builtin_endpoints:
            func, builtin = self._search(self.builtin_endpoints, method, namespace, version)
            compatible = compatible or builtin
        if func is not None:
            return func
        if compatible:
            raise NoSuchMethod(method)
        raise UnsupportedVersion(version, method=method)

    def _search(
        self, endpoints: Sequence[Any], method: str, namespace: str | None, version: str
    ) -> tuple[Any, bool]:
        """The method found (or None), and whether an endpoint was compatible."""
        compatible = False
        for endpoint in endpoints:
            target = getattr(endpoint, "target", None) or self._default_target
            if namespace not in target.accepted_namespaces:
                continue
            if not version_is_compatible(target.version or "1.0", version):
                continue
            compatible = True
            # Data attributes, and the reserved 'target', are not methods to call.
            func = getattr(endpoint, method, None) if method != "target" else None
            if callable(func) and self.access_policy.is_allowed(endpoint, method):
                return func, True
        return None, compatible

    def dispatch(self, incoming: RpcIncomingMessage) -> Any:
        """Call the endpoint method a request names and return its serialised result.

        With a call-monitor timeout on the request, heartbeats are sent every half
        of it while the method runs. An ``async def`` method is awaited (under the
        ``asyncio`` executor; see :func:`messaging.executors.settle`).
        """
        body = incoming.message
        method = str(body.get("method"))
        func = self._find(method, body.get("namespace"), str(body.get("version") or "1.0"))
        ctxt = self.serializer.deserialize_context(incoming.ctxt)
        args = {
            name: self.serializer.deserialize_entity(ctxt, value)
            for name, value in (body.get("args") or {}).items()
        }
        watchdog = _Watchdog.start(incoming)
        try:
            result = settle(func(ctxt, **args))
        finally:
            if watchdog is not None:
                watchdog.finish()
        return self.serializer.serialize_entity(ctxt, result)


class _Watchdog:
    """Sends call-monitor heartbeats every half ``client_timeout`` while a method runs."""

    def __init__(self, incoming: RpcIncomingMessage, interval: float) -> None:
        self._incoming = incoming
        self._interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name="messaging-rpc-heartbeat", daemon=True
        )

    @classmethod
    def start(cls, incoming: RpcIncomingMessage) -> _Watchdog | None:
        """Start heartbeating for ``incoming`` if its caller monitors the call."""
        if not incoming.client_timeout:
            return None
        try:
            interval = float(incoming.client_timeout) / 2
        except (TypeError, ValueError):
            LOG.warning(
                "Ignoring the invalid call-monitor timeout %r of a call to %s",
                incoming.client_timeout,
                incoming.message.get("method"),
            )
            return None
        watchdog = cls(incoming, max(interval, _MIN_HEARTBEAT_INTERVAL))
        watchdog._thread.start()
        return watchdog

    def _beat(self) -> None:
        while not self._done.wait(self._interval):
            try:
                self._incoming.heartbeat()
            except Exception as exc:
                # The broker or the caller is gone; the caller's own timeout decides.
                LOG.warning(
                    "Call-monitor heartbeat for %s failed, no more will be sent: %s",
                    self._incoming.message.get("method"),
                    exc,
                )
                return

    def finish(self) -> None:
        """Stop heartbeating; unless a heartbeat hangs, none is sent after this returns."""
        self._done.set()
        self._thread.join(_HEARTBEAT_JOIN_TIMEOUT)
        if self._thread.is_alive():
            LOG.warning(
                "A call-monitor heartbeat for %s is still being sent after %.0f s; replying",
                self._incoming.message.get("method"),
                _HEARTBEAT_JOIN_TIMEOUT,
            )
