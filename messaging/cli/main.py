"""The ``messaging`` command: argument parsing, logging, and turning errors into exit codes.

See :mod:`messaging.cli.errors` for the exit codes and
:mod:`messaging.cli.session` for how the transport URL is chosen.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from messaging.cli import demo, health, listen, notify, parked, rpc, serve, status
from messaging.cli.commands import Commands
from messaging.cli.errors import ExitCode, describe
from messaging.cli.session import ENV_TRANSPORT_URL, Session

__all__ = ["build_parser", "main"]

PROG = "messaging"

_EPILOG = f"""\
transport:
  The URL comes from --transport-url, else ${ENV_TRANSPORT_URL}, else the
  --config-file files (as a service reads them), else the embedded sqlite
  transport in $XDG_STATE_HOME/messaging/bus.db (~/.local/state/messaging/bus.db).

exit codes:
  0 success, 1 the operation failed (the remote method raised...), 2 usage
  (bad option, bad JSON, MODULE:CLASS not loadable, unknown transport or
  executor name), 3 configuration (bad URL, config file or option value, an
  optional package not installed: the extra is named),
  4 timeout, 5 broker unreachable, 6 nothing receives the request,
  70 internal error, 130 interrupted.
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


class _OneLineFormatter(logging.Formatter):
    """``messaging <command>: LEVEL: message``; the exception as one line unless tracebacks."""

    def __init__(self, prog: str, tracebacks: bool) -> None:
        super().__init__()
        self._prog = prog
        self._tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        text = f"{self._prog}: {record.levelname}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            if self._tracebacks:
                text += "\n" + self.formatException(record.exc_info)
            else:
                exc = record.exc_info[1]
                detail = (str(exc).strip().splitlines() or [""])[0]
                text += (
                    f" ({type(exc).__name__}: {detail})" if detail else f" ({type(exc).__name__})"
                )
        return text


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("messaging-fleet")
    except metadata.PackageNotFoundError:
        return "unknown"


def _common_options() -> argparse.ArgumentParser:
    # Defaults are SUPPRESSed so that the options may come before or after the
    # subcommand without the subcommand's parser resetting them.
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("global options")
    group.add_argument(
        "--transport-url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"the transport, e.g. rabbit://user:pass@host:5672/ (also ${ENV_TRANSPORT_URL})",
    )
    group.add_argument(
        "--config-file",
        metavar="PATH",
        action="append",
        default=argparse.SUPPRESS,
        help="an oslo.config file to read transport_url and notification options from; "
        "repeat for several",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="debug logging, and tracebacks with errors",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log what the library does (INFO)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``messaging`` command and its subcommands."""
    common = _common_options()
    parser = _Parser(
        prog=PROG,
        description="Send and receive notifications, make RPC calls, serve endpoints.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands = Commands(subparsers, [common])
    for module in (notify, listen, rpc, serve, parked, health, status, demo):
        module.add_parser(commands)
    parser.commands = dict(subparsers.choices)  # type: ignore[attr-defined]
    return parser


def _configure_logging(prog: str, debug: bool, verbose: bool, long_running: bool) -> None:
    if debug:
        level = logging.DEBUG
    elif verbose:
        level = logging.INFO
    elif long_running:
        level = logging.WARNING
    else:
        # A one-shot command reports its failure itself, in one line; the
        # library's log records of the same failure would only repeat it.
        level = logging.CRITICAL + 1
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter(prog, tracebacks=debug))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _remote_traceback(exc: BaseException) -> str | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        remote = getattr(current, "traceback", None) or getattr(current, "remote_traceback", None)
        if isinstance(remote, str) and remote.strip():
            return remote
        current = current.__cause__
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``messaging`` command.

    Args:
        argv: the arguments (``sys.argv[1:]`` by default).

    Returns:
        The exit code (see :mod:`messaging.cli.errors`).
    """
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # Reported by the subcommand's parser, so the message names the subcommand.
        commands: dict[str, argparse.ArgumentParser] = getattr(parser, "commands", {})
        owner = commands.get(args.command or "", parser)
        owner.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    prog = f"{PROG} {args.command}"
    debug = bool(getattr(args, "debug", False))
    _configure_logging(prog, debug, bool(getattr(args, "verbose", False)), args.long_running)
    session = Session(
        transport_url=getattr(args, "transport_url", None),
        config_files=getattr(args, "config_file", None) or (),
        stderr=sys.stderr,
        prog=prog,
    )
    try:
        with session:
            return int(args.run(args, session))
    except BrokenPipeError:
        # The reader of stdout went away (`messaging listen | head -3`): a normal end.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
    except (Exception, KeyboardInterrupt) as exc:
        code, message = describe(session.explain(exc))
        if debug:
            traceback.print_exc(file=sys.stderr)
            remote = _remote_traceback(exc)
            if remote:
                print(f"remote traceback:\n{remote}", file=sys.stderr)
        print(f"{prog}: {message}", file=sys.stderr, flush=True)
        return code
