"""Every public exception of ``messaging``, in one place.

The tree (names and constructor arguments follow oslo.messaging, so code that
catches oslo's exceptions keeps working)::

    Exception
    ├── MessagingException
    │   ├── MessagingTimeout
    │   ├── MessageDeliveryFailure
    │   │   ├── BrokerRefusal
    │   │   └── MessageTooLarge
    │   ├── MessageSerializationError (also TypeError)
    │   ├── InvalidTarget (also ValueError)
    │   ├── InvalidTransportURL
    │   ├── DriverLoadFailure
    │   ├── MissingExtra (also ImportError)
    │   ├── RemoteError
    │   ├── RPCVersionCapError
    │   ├── ClientSendError
    │   ├── TransportDriverError
    │   └── MessagingServerError
    │       ├── ExecutorLoadFailure
    │       ├── ServerListenError
    │       ├── TaskTimeout
    │       └── RPCDispatcherError
    │           ├── NoSuchMethod (also AttributeError)
    │           └── UnsupportedVersion
    ├── MessageUndeliverable
    ├── ConfigurationError
    └── ExpectedException

``MessageUndeliverable``, ``ConfigurationError`` and ``ExpectedException`` sit
outside ``MessagingException`` exactly as they do in oslo.messaging.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from types import TracebackType
from typing import Any

__all__ = [
    "BrokerRefusal",
    "ClientSendError",
    "ConfigurationError",
    "DriverLoadFailure",
    "ExecutorLoadFailure",
    "ExpectedException",
    "InvalidTarget",
    "InvalidTransportURL",
    "MessageDeliveryFailure",
    "MessageSerializationError",
    "MessageTooLarge",
    "MessageUndeliverable",
    "MessagingException",
    "MessagingServerError",
    "MessagingTimeout",
    "MissingExtra",
    "NoSuchMethod",
    "RPCDispatcherError",
    "RPCVersionCapError",
    "RemoteError",
    "ServerListenError",
    "TaskTimeout",
    "TransportDriverError",
    "UnsupportedVersion",
]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class MessagingException(Exception):
    """Base class of the exceptions raised by ``messaging``."""


class MessagingTimeout(MessagingException):
    """An operation (an RPC call, a server task) did not finish in time."""


class MessageDeliveryFailure(MessagingException):
    """A message could not be delivered to the broker after every allowed retry."""


class BrokerRefusal(MessageDeliveryFailure):
    """The broker refused something in a way that retrying cannot heal.

    A declaration that conflicts with what exists (``PRECONDITION_FAILED``), a
    feature the broker denies (RabbitMQ 4.3's transient queues, ``541``), a login
    or permission refused (``ACCESS_REFUSED``): the driver does not reconnect
    and try again forever; a listener's ``start()`` raises it, a send fails
    with it. The message names the entity, the argument in conflict and what
    fixes it.

    Attributes:
        entity: what was refused, e.g. ``queue 'notifications.info'``.
        argument: the argument in conflict (``durable``, ``x-queue-type``,
            ``transient_nonexcl_queues``...), or None when the broker names none.
        fix: the option (or broker setting) that fixes it.
        reason: the broker's own words.
    """

    def __init__(self, entity: str, argument: str | None, fix: str, reason: str) -> None:
        self.entity = entity
        self.argument = argument
        self.fix = fix
        self.reason = reason
        conflict = f" The argument in conflict: {argument}." if argument else ""
        super().__init__(
            f"The broker refused {entity}: {reason.rstrip('.')}.{conflict} Fix: {fix} "
            "(retrying cannot heal this)."
        )


class MessageTooLarge(MessageDeliveryFailure):
    """A message is larger than ``[DEFAULT] max_message_size``, or the broker's limit; not sent.

    Attributes:
        size: the size of the encoded message, in bytes.
        limit: the bound it is above.
    """

    def __init__(self, what: str, size: int, limit: int, bound: str | None = None) -> None:
        self.size = size
        self.limit = limit
        above = (
            f"max_message_size = {limit} bytes ([DEFAULT] option)"
            if bound is None
            else f"{bound} of {limit} bytes"
        )
        super().__init__(f"{what} is {size} bytes, more than {above}; it was not sent")


class MessageSerializationError(MessagingException, TypeError):
    """A message holds a value that cannot travel as JSON.

    Attributes:
        path: where the value sits in the message, e.g. ``payload['when']``.
        value_type: the name of the offending value's type.
    """

    def __init__(self, path: str, value_type: str) -> None:
        self.path = path
        self.value_type = value_type
        super().__init__(
            f"{path} is of type {value_type}, which is not JSON serialisable; "
            "convert it to a primitive (for example with JsonPayloadSerializer)"
        )


class InvalidTarget(MessagingException, ValueError):
    """A target lacks what the operation needs (a topic, a server...)."""

    def __init__(self, msg: str, target: Any) -> None:
        self.target = target
        super().__init__(f"{msg}: {target}")


class InvalidTransportURL(MessagingException):
    """A transport URL could not be parsed or names something impossible."""

    def __init__(self, url: Any, msg: str) -> None:
        self.url = url
        super().__init__(msg)


class DriverLoadFailure(MessagingException):
    """A transport, notification or executor driver could not be loaded."""

    def __init__(self, driver: str, ex: BaseException | str) -> None:
        self.driver = driver
        self.ex = ex
        super().__init__(f'Failed to load transport driver "{driver}": {ex}')


class MissingExtra(MessagingException, ImportError):
    """An optional package is not installed; the message names the extra that installs it.

    Raised where a transport, an executor or a feature (metrics) first needs
    the package, e.g. ``stomp:// needs the module 'stomp', which is not
    installed: pip install 'messaging-fleet[stomp]'``.

    Attributes:
        module: the missing module (``name`` too, as for any ImportError).
        extra: the extra of ``messaging-fleet`` that installs it.
        needed_by: what needs it.
    """

    def __init__(self, module: str, extra: str, needed_by: str) -> None:
        self.module = module
        self.extra = extra
        self.needed_by = needed_by
        super().__init__(
            f"{needed_by} needs the module {module!r}, which is not installed: "
            f"{self.install_command(extra)}"
        )
        self.name = module

    @staticmethod
    def install_command(extra: str) -> str:
        """The command that installs ``extra``: ``pip install 'messaging-fleet[EXTRA]'``."""
        return f"pip install 'messaging-fleet[{extra}]'"


class RemoteError(MessagingException):
    """An exception raised on the remote side that the client may not rebuild.

    Attributes:
        exc_type: the class name of the remote exception.
        value: ``str()`` of the remote exception.
        traceback: the remote traceback, a list of lines as oslo.messaging gives it
            (each ending with a newline); given as text, it is split into lines.
    """

    def __init__(
        self,
        exc_type: str | None = None,
        value: str | None = None,
        traceback: str | list[str] | None = None,
    ) -> None:
        self.exc_type = exc_type
        self.value = value
        if isinstance(traceback, str):
            traceback = traceback.splitlines(keepends=True)
        self.traceback = traceback
        # The message shows the traceback as text (oslo.messaging shows the list's repr).
        text = "".join(traceback or [])
        super().__init__(f"Remote error: {exc_type} {value}\n{text}.")


class RPCVersionCapError(MessagingException):
    """A call asked for a version above the client's ``version_cap``."""

    def __init__(self, version: str, version_cap: str) -> None:
        self.version = version
        self.version_cap = version_cap
        super().__init__(
            f"Requested message version, {version} is incompatible.  It needs to be equal "
            f"in major version and less than or equal in minor version as the specified "
            f"version cap {version_cap}."
        )


class ClientSendError(MessagingException):
    """The driver raised an error while an RPC client was sending."""

    def __init__(self, target: Any, ex: BaseException) -> None:
        self.target = target
        self.ex = ex
        super().__init__(f"Failed to send to target {target!r}: {ex}")


class TransportDriverError(MessagingException):
    """Base class of errors raised by transport drivers."""


class MessagingServerError(MessagingException):
    """Base class of errors raised by message handling servers."""


class ExecutorLoadFailure(MessagingServerError):
    """An executor could not be loaded."""

    def __init__(self, executor: str, ex: BaseException | str) -> None:
        self.executor = executor
        self.ex = ex
        super().__init__(f'Failed to load executor "{executor}": {ex}')


class ServerListenError(MessagingServerError):
    """A server could not start listening on its target."""

    def __init__(self, target: Any, ex: BaseException) -> None:
        self.target = target
        self.ex = ex
        super().__init__(f"Failed to listen on target {target!r}: {ex}")


class TaskTimeout(MessagingServerError):
    """A server's start, stop or wait did not finish within its ``timeout``."""


class RPCDispatcherError(MessagingServerError):
    """Base class of the errors of the RPC dispatcher."""


class NoSuchMethod(RPCDispatcherError, AttributeError):
    """No endpoint offers the requested RPC method."""

    def __init__(self, method: str) -> None:
        self.method = method
        super().__init__(f"Endpoint does not support RPC method {method}")


class UnsupportedVersion(RPCDispatcherError):
    """No endpoint implements a version compatible with the requested one."""

    def __init__(self, version: str, method: str | None = None) -> None:
        self.version = version
        self.method = method
        super().__init__(
            f"Endpoint does not support RPC version {version}. Attempted method: {method}"
        )


class MessageUndeliverable(Exception):
    """The broker returned a mandatory message: nothing was there to receive it."""

    def __init__(self, exception: BaseException, exchange: str, routing_key: str, message: Any):
        self.exception = exception
        self.exchange = exchange
        self.routing_key = routing_key
        self.message = message
        super().__init__(
            f"Message to exchange {exchange!r} with routing key {routing_key!r} "
            f"could not be delivered: {exception}"
        )


class ConfigurationError(Exception):
    """The configuration is inconsistent (two options that exclude each other...)."""


class ExpectedException(Exception):
    """Wraps an exception an endpoint declared with ``@expected_exceptions``.

    It captures ``sys.exc_info()`` at construction so that the server replies with
    the original exception while logging it only at debug level.
    """

    def __init__(self) -> None:
        info = sys.exc_info()
        self.exc_info: ExcInfo | tuple[None, None, None] = info
        super().__init__()


def known_names(names: Iterable[str]) -> str:
    """Format a list of plugin names for an error message."""
    return ", ".join(sorted(set(names))) or "(none installed)"
