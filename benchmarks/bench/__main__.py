"""Command line: ``python -m benchmarks.bench [options]`` from the repository root.

Examples::

    python -m benchmarks.bench --url rabbit://guest:guest@127.0.0.1:5672/ \
        --repeat 5 --json bench.json --plot bench.png
    python -m benchmarks.bench --quick --no-oslo
    python -m benchmarks.bench --only notify,drain --repeat 3
    python -m benchmarks.bench --eventlet --only notify,drain,rpc --repeat 5
    python -m benchmarks.bench --from-json bench.json --plot bench.png --rst table.rst
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.bench import broker, report
from benchmarks.bench.runner import GROUPS, QUICK, Config, Runner, Side, Sizes

DEFAULT_URL = "rabbit://guest:guest@127.0.0.1:5672/"


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description="Benchmark messaging against oslo.messaging and the raw kombu floor.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("MESSAGING_TRANSPORT_URL", DEFAULT_URL),
        help="transport URL (default: $MESSAGING_TRANSPORT_URL or %(default)s)",
    )
    parser.add_argument("--repeat", type=int, help="repetitions (default 5; 1 with --quick)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write a PNG here (needs matplotlib)")
    parser.add_argument("--rst", type=Path, help="write the tables as reStructuredText here")
    parser.add_argument(
        "--only",
        help=f"comma-separated groups among {','.join(GROUPS)} (default: all)",
    )
    parser.add_argument(
        "--threads", type=int, help="client threads of the concurrent RPC workload (default 8)"
    )
    parser.add_argument("--no-oslo", action="store_true", help="measure messaging only")
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="measure messaging with Prometheus metrics on too, against off (needs the "
        "metrics extra)",
    )
    parser.add_argument(
        "--oslo-python",
        help="interpreter with oslo.messaging (default: the interop tests' virtualenv, "
        "created if missing)",
    )
    parser.add_argument("--quick", action="store_true", help="1 repetition, smaller counts")
    parser.add_argument(
        "--no-vhost",
        action="store_true",
        help="use the URL's virtual host instead of one made per repetition",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="run the checkout as it is at each moment, not a copy taken at the start",
    )
    parser.add_argument(
        "--eventlet",
        action="store_true",
        help="run both libraries monkey-patched by eventlet, with their eventlet executors",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        help="do not measure: print, plot and tabulate a previous run's JSON",
    )
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 5
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    groups = tuple(GROUPS)
    if args.only:
        groups = tuple(g.strip() for g in args.only.split(",") if g.strip())
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            parser.error(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    args.groups = groups
    return args


def _sides(args: argparse.Namespace) -> list[Side]:
    from importlib import metadata

    ours = Side("messaging", "messaging", "messaging", sys.executable)
    with contextlib.suppress(metadata.PackageNotFoundError):
        ours = replace(ours, versions={"version": metadata.version("messaging-fleet")})
    sides = [ours]
    if args.metrics:
        sides.append(
            replace(ours, key="metrics", label="messaging, metrics on", worker_args=("--metrics",))
        )
    if args.no_oslo:
        return sides
    if not broker.is_rabbit(args.url):
        _log(f"oslo.messaging side skipped: it is compared on RabbitMQ only, not {args.url!r}")
        return sides
    if args.oslo_python:
        return [*sides, Side("oslo", "oslo.messaging", "oslo_messaging", args.oslo_python)]
    from tests.interop.oslo_env import OsloEnvError, ensure_oslo_env

    try:
        env = ensure_oslo_env()
    except OsloEnvError as exc:
        _log(f"oslo.messaging side skipped: no oslo virtualenv ({exc})")
        return sides
    _log(env.describe())
    versions = {"version": env.oslo_messaging_version, **env.versions}
    return [*sides, Side("oslo", "oslo.messaging", "oslo_messaging", str(env.python), versions)]


def _config(args: argparse.Namespace, argv: list[str]) -> Config:
    rabbit = broker.is_rabbit(args.url)
    vhosts = rabbit and not args.no_vhost and broker.Rabbitmqctl().available()
    if rabbit and not args.no_vhost and not vhosts:
        _log("rabbitmqctl unavailable: running on the URL's virtual host, no connection counts")
    sizes = QUICK if args.quick else Sizes()
    if args.threads:
        sizes = replace(sizes, threads=args.threads)
    return Config(
        url=args.url,
        repeat=args.repeat,
        sizes=sizes,
        groups=args.groups,
        sides=_sides(args),
        vhosts=vhosts,
        raw=rabbit,
        command=shlex.join(["python", "-m", "benchmarks.bench", *argv]),
        live=args.live,
        eventlet=args.eventlet,
    )


def write_outputs(result: dict[str, Any], args: argparse.Namespace) -> None:
    """Print the report and write the files asked for."""
    sys.stdout.write(report.text(result))
    if args.json and not args.from_json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        _log(f"wrote {args.json}")
    if args.rst:
        args.rst.write_text(report.rst(result))
        _log(f"wrote {args.rst}")
    if args.plot:
        from benchmarks.bench.plot import plot

        plot(result, args.plot)
        _log(f"wrote {args.plot}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or re-render a previous one); 1 if any workload failed."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.from_json:
        result = json.loads(args.from_json.read_text())
    else:
        config = _config(args, argv)
        _log(
            f"{len(config.sides)} librar{'y' if len(config.sides) == 1 else 'ies'}, "
            f"{config.repeat} repetition(s), groups {','.join(config.groups)}, "
            f"{'a virtual host per repetition' if config.vhosts else 'no virtual hosts'}"
        )
        result = Runner(config, _log).run()
    write_outputs(result, args)
    return 1 if any(rep["errors"] for rep in result["repetitions"]) else 0


if __name__ == "__main__":
    sys.exit(main())
