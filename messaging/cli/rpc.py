"""``messaging call``, ``messaging cast`` and ``messaging ping``: an RPC client."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from messaging.cli.errors import CliError, ExitCode, is_config_error
from messaging.cli.jsonargs import parse_object
from messaging.cli.notify import bounded_retry

if TYPE_CHECKING:
    from messaging.cli.commands import Commands
    from messaging.cli.session import Session
    from messaging.rpc.client import RPCClient

__all__ = ["DEFAULT_TOPIC", "add_parser", "run_call", "run_cast", "run_ping"]

#: The topic of ``call``, ``cast``, ``ping`` and ``serve`` when ``--topic`` is not given.
DEFAULT_TOPIC = "messaging"
#: Seconds ``ping`` waits for its answer unless ``--timeout`` says otherwise.
PING_TIMEOUT = 10.0
PING_METHOD = "oslo_rpc_server_ping"


def add_target_options(parser: argparse.ArgumentParser, topic: str, server: str) -> None:
    """Add ``--topic`` (default :data:`DEFAULT_TOPIC`) and ``--server`` with these helps."""
    parser.add_argument(
        "--topic", default=DEFAULT_TOPIC, help=f"{topic} (default: {DEFAULT_TOPIC})"
    )
    parser.add_argument("--server", default=None, help=server)


def _target_options(parser: argparse.ArgumentParser) -> None:
    add_target_options(
        parser, "the servers' topic", "one server of the topic (default: any one of them)"
    )
    parser.add_argument(
        "--retry",
        type=int,
        default=None,
        help=f"connection retries (default: {bounded_retry(None)})",
    )


def add_parser(commands: Commands) -> None:
    """Add ``call``, ``cast`` and ``ping`` to the ``messaging`` command."""
    call = commands.add(
        "call",
        run_call,
        summary="call a method of an RPC server and print its result as JSON",
        description="Call METHOD(ctxt, **ARGS_JSON) on a server of --topic and print the "
        "result as JSON.",
    )
    _target_options(call)
    call.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for the result (default: [DEFAULT] rpc_response_timeout, 60)",
    )
    _method_arguments(call)

    cast = commands.add(
        "cast",
        run_cast,
        summary="invoke a method of an RPC server without waiting",
        description="Send METHOD(ctxt, **ARGS_JSON) to a server of --topic (to every one "
        "with --fanout) and return once the transport has taken it.",
    )
    _target_options(cast)
    cast.add_argument("--fanout", action="store_true", help="send to every server of the topic")
    _method_arguments(cast)

    ping = commands.add(
        "ping",
        run_ping,
        summary="check that an RPC server answers",
        description=f"Call {PING_METHOD}, which servers with [DEFAULT] rpc_ping_enabled "
        "(and every `messaging serve`) answer with 'pong'.",
    )
    _target_options(ping)
    ping.add_argument(
        "--timeout",
        type=float,
        default=PING_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the answer (default: {PING_TIMEOUT:g})",
    )


def _method_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--context",
        metavar="CONTEXT_JSON",
        default="{}",
        help="the request context, a JSON object (default: {})",
    )
    parser.add_argument("method", metavar="METHOD", help="the endpoint method to invoke")
    parser.add_argument(
        "args",
        metavar="ARGS_JSON",
        nargs="?",
        default="{}",
        help='its keyword arguments, a JSON object such as {"a": 1} (default: {})',
    )


def _client(
    args: argparse.Namespace, session: Session, timeout: float | None, fanout: bool = False
) -> RPCClient:
    from messaging.rpc import get_rpc_client
    from messaging.target import Target
    from messaging.transport import TransportOptions

    if timeout is not None and timeout <= 0:
        raise CliError("--timeout must be more than 0 seconds", ExitCode.USAGE)
    transport = session.rpc_transport()
    if not transport.capabilities.rpc:
        raise CliError(f"the transport {session.describe_url()} carries no RPC", ExitCode.CONFIG)
    target = Target(topic=args.topic, server=args.server, fanout=fanout or None)
    # at_least_once: a request that no queue receives is an error at once, not a
    # message dropped by the broker and, for a call, a timeout a minute later.
    return get_rpc_client(
        transport,
        target,
        timeout=timeout,
        retry=bounded_retry(args.retry),
        transport_options=TransportOptions(at_least_once=not fanout),
    )


def _where(args: argparse.Namespace) -> str:
    server = f", server {args.server!r}" if args.server else ""
    return f"topic {args.topic!r}{server}"


def _nobody(args: argparse.Namespace) -> CliError:
    return CliError(f"no server listens on {_where(args)}", ExitCode.UNDELIVERABLE)


def _invoke(
    args: argparse.Namespace,
    session: Session,
    client: RPCClient,
    ctxt: dict[str, Any],
    method: str,
    kwargs: dict[str, Any],
) -> Any:
    from messaging.exceptions import MessageUndeliverable, MessagingException, RemoteError

    try:
        with session.waiting(f"the reply of {method} from {_where(args)}", client.transport):
            return client.call(ctxt, method, **kwargs)
    except MessageUndeliverable as exc:
        raise _nobody(args) from exc
    except RemoteError as exc:
        raise CliError(
            f"{method} failed on the server: {exc.exc_type}: {_first(exc.value)}"
        ) from exc
    except MessagingException:
        raise
    except Exception as exc:
        if is_config_error(exc):
            raise  # read here, when the call needed it: not the server's
        # Not raised here: the server's exception, rebuilt from its reply; its first
        # argument holds the remote message and traceback (str() of a KeyError
        # would quote all of it).
        text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
        raise CliError(
            f"{method} failed on the server: {type(exc).__name__}: {_first(text)}"
        ) from exc


def _first(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else "(no message)"


def run_call(args: argparse.Namespace, session: Session) -> int:
    """Call the method and print its result as JSON."""
    ctxt = parse_object(args.context, "CONTEXT_JSON")
    kwargs = parse_object(args.args, "ARGS_JSON")
    client = _client(args, session, args.timeout)
    result = _invoke(args, session, client, ctxt, args.method, kwargs)
    print(json.dumps(result, sort_keys=True, default=str), flush=True)
    return ExitCode.OK


def run_cast(args: argparse.Namespace, session: Session) -> int:
    """Send the method without waiting for a result."""
    from messaging.exceptions import MessageUndeliverable

    ctxt = parse_object(args.context, "CONTEXT_JSON")
    kwargs = parse_object(args.args, "ARGS_JSON")
    client = _client(args, session, None, fanout=args.fanout)
    try:
        client.cast(ctxt, args.method, **kwargs)
    except MessageUndeliverable as exc:
        raise _nobody(args) from exc
    return ExitCode.OK


def run_ping(args: argparse.Namespace, session: Session) -> int:
    """Ping a server and print how long the answer took."""
    client = _client(args, session, args.timeout)
    started = time.monotonic()
    try:
        answer = _invoke(args, session, client, {}, PING_METHOD, {})
    except CliError as exc:
        if "NoSuchMethod" in str(exc):
            raise CliError(
                f"the server on {_where(args)} does not answer pings: set [DEFAULT] "
                "rpc_ping_enabled = true in its configuration"
            ) from exc
        raise
    elapsed_ms = (time.monotonic() - started) * 1000
    print(f"{answer} from {_where(args)} in {elapsed_ms:.1f} ms", file=sys.stdout, flush=True)
    return ExitCode.OK
