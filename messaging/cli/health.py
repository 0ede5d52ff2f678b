"""``messaging health``: read the health endpoint of a running process and say what it found."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from messaging.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from messaging.cli.commands import Commands
    from messaging.cli.session import Session

__all__ = ["add_parser", "describe", "run"]


def add_parser(commands: Commands) -> None:
    """Add ``health`` to the ``messaging`` command."""
    parser = commands.add(
        "health",
        run,
        summary="show the health of a running process (messaging serve --health-port, or "
        "messaging.health.serve_http in a service)",
        description="Read /health of a running process and print each server and listener: "
        "state, connected, consuming, last message, saturation, unconfirmed sends, "
        "reconnects and problems. Exit code 0 when the process is ready, 1 when not, 5 when "
        "its endpoint does not answer.",
    )
    parser.add_argument(
        "--url",
        default=None,
        help="the endpoint's base URL (default: http://127.0.0.1:PORT)",
    )
    parser.add_argument("--port", type=int, default=None, help="the endpoint's port on 127.0.0.1")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace, session: Session) -> int:
    """Fetch and print the report; the exit code says whether the process is ready."""
    if args.url is None and args.port is None:
        raise CliError("say where the process answers: --port PORT or --url URL", ExitCode.USAGE)
    base = (args.url or f"http://127.0.0.1:{args.port}").rstrip("/")
    try:
        with urllib.request.urlopen(base + "/health", timeout=args.timeout) as answer:
            report = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError(
            f"no health report from {base}/health: {reason}", ExitCode.UNREACHABLE
        ) from exc
    print(json.dumps(report, indent=1) if args.json else describe(report))
    return ExitCode.OK if report.get("ready") else ExitCode.FAILED


def describe(report: dict[str, Any]) -> str:
    """The report as lines a person reads: a verdict, then one block per server."""
    verdict = "ready" if report.get("ready") else "NOT READY"
    if not report.get("live", True):
        verdict += ", NOT LIVE"
    lines = [f"process: {verdict}, {len(report.get('servers', []))} server(s)"]
    for server in report.get("servers", []):
        link = server.get("link", {})
        age = server.get("last_message_age")
        last = "never" if age is None else f"{age:.1f} s ago"
        lines.append(f"- {server['name']}: {server['state']}")
        lines.append(
            f"    connected {yes(link.get('connected'))}, consuming {yes(server['consuming'])}, "
            f"last message {last}, {server['received']} received"
        )
        lines.append(
            f"    busy {server['in_flight']}/{server['max_workers']} "
            f"(saturation {server['saturation']:.0%}), {link.get('unconfirmed', 0)} unconfirmed "
            f"sends, {link.get('reconnects', 0)} reconnects"
        )
        lines.extend(f"    problem: {problem}" for problem in server.get("problems", []))
    return "\n".join(lines)


def yes(value: object) -> str:
    """``yes`` or ``NO``."""
    return "yes" if value else "NO"
