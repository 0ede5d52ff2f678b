"""Exit codes of the ``messaging`` command, and how an exception becomes one line.

Every failure the command can foresee ends as one line on stderr,
``messaging <command>: <what went wrong>``, and one of these exit codes; a
traceback is shown only with ``--debug``.

====  ==========================================================================
code  meaning
====  ==========================================================================
0     success
1     the operation failed: the remote method raised, the server refused
2     usage: unknown option, bad JSON, a ``MODULE:CLASS`` that cannot be loaded,
      a transport or executor name that no plugin has (the known names are listed)
3     configuration: malformed URL, unreadable config file, a value an option
      refuses (the file, ``[group]`` and option are named), an optional package
      that the transport, executor or feature needs is not installed (the
      ``pip install 'messaging-fleet[EXTRA]'`` to run is named)
4     timeout: no reply to a call or ping, ``listen --count`` not reached, no
      server answered ``status``
5     the broker could not be reached, or did not take the message
6     nobody receives: no server or queue for an RPC call or cast
70    internal error (a bug: please report it with the ``--debug`` output)
130   interrupted (Ctrl-C)
====  ==========================================================================
"""

from __future__ import annotations

import enum
import re

__all__ = ["CliError", "ExitCode", "describe", "is_config_error"]


class ExitCode(enum.IntEnum):
    """The exit codes of the ``messaging`` command (see the module docstring)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    CONFIG = 3
    TIMEOUT = 4
    UNREACHABLE = 5
    UNDELIVERABLE = 6
    INTERNAL = 70
    INTERRUPTED = 130


class CliError(Exception):
    """A failure the command explains itself: one line and an exit code.

    Args:
        message: the line to print (without the ``messaging <command>:`` prefix).
        code: the exit code.
    """

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.code = code


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_config_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the configuration is wrong (a URL, a driver name, a value)."""
    from messaging.exceptions import ConfigurationError, DriverLoadFailure, InvalidTransportURL

    if isinstance(exc, InvalidTransportURL | DriverLoadFailure | ConfigurationError):
        return True
    # oslo.config's errors (missing file, parse error, bad value) share no base
    # class with ours; they all live in its package.
    return type(exc).__module__.startswith("oslo_config")


def _unknown_name(exc: BaseException) -> bool:
    # A transport driver or an executor that no entry point names: a typo.
    from messaging.exceptions import DriverLoadFailure, ExecutorLoadFailure

    return isinstance(exc, DriverLoadFailure | ExecutorLoadFailure) and isinstance(
        exc.__cause__, LookupError
    )


def describe(exc: BaseException) -> tuple[ExitCode, str]:
    """Return the exit code and the one-line message for an exception.

    Args:
        exc: what a command raised.

    Returns:
        ``(code, message)``; ``code`` is :attr:`ExitCode.INTERNAL` for anything
        not foreseen, and the message then says to run with ``--debug``.
    """
    from messaging._extras import missing_extra
    from messaging.exceptions import (
        ClientSendError,
        MessageDeliveryFailure,
        MessageUndeliverable,
        MessagingException,
        MessagingTimeout,
        RemoteError,
        ServerListenError,
        TaskTimeout,
    )

    if isinstance(exc, CliError):
        return exc.code, str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED, "interrupted"
    missing = missing_extra(exc, "this command")
    if missing is not None:
        return ExitCode.CONFIG, str(missing)
    if _unknown_name(exc):
        return ExitCode.USAGE, _first_line(exc)
    if is_config_error(exc):
        return ExitCode.CONFIG, _LOCATION_INFO.sub(_location, _first_line(exc))
    if isinstance(exc, MessagingTimeout | TaskTimeout):
        return ExitCode.TIMEOUT, _first_line(exc)
    if isinstance(exc, MessageUndeliverable):
        return (
            ExitCode.UNDELIVERABLE,
            f"nothing receives messages for routing key {exc.routing_key!r} "
            f"on exchange {exc.exchange!r}: is a server running?",
        )
    if isinstance(exc, MessageDeliveryFailure | ServerListenError | ClientSendError):
        return ExitCode.UNREACHABLE, _first_line(exc)
    if isinstance(exc, RemoteError):
        return ExitCode.FAILED, f"the server raised {exc.exc_type}: {_first_line_of(exc.value)}"
    if isinstance(exc, MessagingException):
        return ExitCode.FAILED, _first_line(exc)
    if isinstance(exc, NotImplementedError):
        return ExitCode.CONFIG, f"the transport cannot do this: {_first_line(exc)}"
    if isinstance(exc, OSError):
        return ExitCode.FAILED, f"{type(exc).__name__}: {_first_line(exc)}"
    return (
        ExitCode.INTERNAL,
        f"internal error: {type(exc).__name__}: {_first_line(exc)} "
        "(run with --debug for the traceback)",
    )


#: oslo.config's ``LocationInfo(location=<Locations.user: (4, True)>, detail='/etc/a.conf')``.
_LOCATION_INFO = re.compile(
    r"LocationInfo\(location=<Locations\.(\w+)[^>]*>, detail=(?:'([^']*)'|None)\)"
)


def _location(match: re.Match[str]) -> str:
    return match.group(2) or match.group(1)


def _first_line_of(text: str | None) -> str:
    text = (text or "").strip()
    return text.splitlines()[0] if text else "(no message)"
