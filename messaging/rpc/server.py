"""RPC servers: ``get_rpc_server``, ``RPCServer``, ``@expose`` and ``@expected_exceptions``."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from messaging.conf import register_transport_opts
from messaging.exceptions import ExpectedException, NoSuchMethod
from messaging.excerpt import excerpt, log_exception
from messaging.health import ServerHealth
from messaging.rpc.canary import Canary, CanaryEndpoint
from messaging.rpc.control import CONTROL_NAMESPACE, ControlEndpoint
from messaging.rpc.dispatcher import PingEndpoint, RPCAccessPolicyBase, RPCDispatcher
from messaging.server import MessageHandlingServer
from messaging.transport import NOTIFICATION_TRANSPORT_FOR_RPC, NotificationTransport

if TYPE_CHECKING:
    from messaging.drivers.base import IncomingMessage, Listener, RpcIncomingMessage
    from messaging.serializer import Serializer
    from messaging.target import Target
    from messaging.transport import Transport

__all__ = ["RPCServer", "expected_exceptions", "expose", "get_rpc_server"]

LOG = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


class RPCServer(MessageHandlingServer):
    """Serves the endpoints of an RPC dispatcher on a target (topic and server).

    Requests are acknowledged when received (at-most-once, as oslo.messaging on
    RabbitMQ), dispatched, and answered with the result or the failure.

    Args:
        transport: the RPC transport.
        target: the server's target; topic and server are required.
        dispatcher: the RPC dispatcher.
        executor: the executor name.
    """

    dispatcher: RPCDispatcher

    def __init__(
        self,
        transport: Transport,
        target: Target,
        dispatcher: RPCDispatcher,
        executor: str | None = None,
    ) -> None:
        super().__init__(transport, dispatcher, executor)
        if isinstance(transport, NotificationTransport):
            LOG.warning(NOTIFICATION_TRANSPORT_FOR_RPC)
        self.target = target
        interval = float(self.conf.rpc_canary_interval)
        self._canary = Canary(transport, target, interval) if interval > 0 else None
        #: The queues the server consumes, once started (where the transport names them).
        self.consumed_queues: tuple[str, ...] = ()
        builtin = getattr(dispatcher, "builtin_endpoints", None)
        if builtin is not None:  # an RPCDispatcher (a dispatcher of the caller's may have none)
            builtin.append(ControlEndpoint(self))

    def _create_listener(self) -> Listener:
        listener = self.transport.listen(self.target, 1, None)
        self.consumed_queues = tuple(listener.queues)
        return listener

    def _handle_batch(self, batch: list[IncomingMessage]) -> None:
        # A status request (messaging status) is a question about the server's
        # traffic, not traffic: it is answered without being counted.
        if len(batch) == 1 and _is_status_request(batch[0]):
            self._process_incoming(batch)
            return
        super()._handle_batch(batch)

    def _after_start(self) -> None:
        if self._canary is not None:
            self._canary.start()

    def stop(self, *, log_after: float | None = None, timeout: float | None = None) -> None:
        """Stop receiving (and the canary's calls); see :meth:`MessageHandlingServer.stop`."""
        if self._canary is not None:
            self._canary.stop()
        super().stop(log_after=log_after, timeout=timeout)

    def _before_cleanup(self) -> None:
        if self._canary is not None:
            self._canary.wait()

    def health(self) -> ServerHealth:
        """This server's health, with what its canary found (see :mod:`messaging.health`)."""
        found = super().health()
        if self._canary is None:
            return found
        canary = self._canary.health()
        problems = list(found.problems)
        if found.state == "running" and canary.failures:
            problems.append(
                f"its canary call through the broker failed {canary.failures} time(s) in a "
                f"row ({canary.last_error})"
            )
        return dataclasses.replace(
            found,
            canary=canary,
            problems=tuple(problems),
            ready=found.ready and not canary.failures,
        )

    def _health_name(self) -> str:
        where = (
            f"{self.target.topic}.{self.target.server}" if self.target.server else self.target.topic
        )
        return f"RPC server on {where}"

    def _process_incoming(self, incoming: list[IncomingMessage]) -> None:
        for message in incoming:
            self._handle(message)  # type: ignore[arg-type]

    def _handle(self, message: RpcIncomingMessage) -> None:
        traced = self._tracing
        if traced is None:
            self._respond(message)
            return
        with traced.handle_rpc(message, self.target) as span:
            failure = self._respond(message)
            if failure is not None:
                traced.failed(span, failure)

    def _respond(self, message: RpcIncomingMessage) -> BaseException | None:
        """Acknowledge, dispatch and reply; return the failure sent back, if any."""
        message.acknowledge()
        result: Any = None
        failure: BaseException | None = None
        method = message.message.get("method")
        try:
            result = self.dispatcher.dispatch(message)
        except ExpectedException as exc:
            failure = exc.exc_info[1] or exc
            LOG.debug(
                "Expected exception during handling of %s: %s", excerpt(method), excerpt(failure)
            )
        except NoSuchMethod as exc:
            failure = exc
            if exc.method.endswith("_ignore_errors"):
                LOG.debug("No such method %s (ignored)", excerpt(exc.method))
            else:
                log_exception(LOG, "Exception during message handling")
        except Exception as exc:
            failure = exc
            log_exception(LOG, "Exception during message handling")
        if not _is_status_request(message):  # not counted received either
            self._count_handled("ok" if failure is None else "failed")
        try:
            if failure is not None:
                message.reply(failure=failure)
            else:
                message.reply(result)
        except Exception:
            log_exception(LOG, "Can not send reply for message %s", excerpt(method))
        return failure


def _is_status_request(message: IncomingMessage) -> bool:
    """Whether ``message`` asks the library's control endpoint (``messaging status``)."""
    return message.message.get("namespace") == CONTROL_NAMESPACE


def get_rpc_server(
    transport: Transport,
    target: Target,
    endpoints: Sequence[Any],
    executor: str | None = None,
    serializer: Serializer | None = None,
    access_policy: type[RPCAccessPolicyBase] | None = None,
    server_cls: type[RPCServer] = RPCServer,
) -> RPCServer:
    """Build an RPC server.

    With ``[DEFAULT] rpc_ping_enabled``, an endpoint answering
    ``oslo_rpc_server_ping`` is appended to ``endpoints``, as oslo.messaging does;
    the dispatcher keeps the caller's list itself (``server.dispatcher.endpoints``).

    Args:
        transport: the RPC transport.
        target: topic and server to serve.
        endpoints: the endpoint objects.
        executor: ``threading`` (default), ``blocking``, ``eventlet`` or ``asyncio``.
        serializer: converts contexts, arguments and results.
        access_policy: which methods may be called (a policy class).
        server_cls: the server class to build.
    """
    register_transport_opts(transport.conf)
    if not isinstance(endpoints, list):
        endpoints = list(endpoints)
    if transport.conf.rpc_ping_enabled:
        if any(hasattr(e, "oslo_rpc_server_ping") for e in endpoints):
            LOG.warning(
                "An endpoint already defines oslo_rpc_server_ping; the ping endpoint is not added"
            )
        else:
            endpoints.append(PingEndpoint())
    if transport.conf.rpc_canary_interval > 0:
        endpoints.append(CanaryEndpoint())
    dispatcher = RPCDispatcher(endpoints, serializer, access_policy)
    return server_cls(transport, target, dispatcher, executor)


def expose(func: F) -> F:
    """Mark an endpoint method as callable under :class:`ExplicitRPCAccessPolicy`."""
    func.exposed = True  # type: ignore[attr-defined]
    return func


def expected_exceptions(*exceptions: type[BaseException]) -> Callable[[F], F]:
    """Declare exceptions an endpoint method raises as part of its contract.

    They still reach the caller, but the server logs them only at debug level.
    Works on ``async def`` methods too.
    """

    @contextlib.contextmanager
    def declared() -> Iterator[None]:
        try:
            yield
        except ExpectedException:
            raise
        except exceptions as exc:
            raise ExpectedException() from exc

    def outer(func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def awaited(*args: Any, **kwargs: Any) -> Any:
                with declared():
                    return await func(*args, **kwargs)

            return awaited  # type: ignore[return-value]

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with declared():
                return func(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return outer
