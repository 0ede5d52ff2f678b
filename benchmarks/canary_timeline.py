"""A deaf RPC server, found and repaired by the canary: the timeline of the operating page.

    python -m benchmarks.canary_timeline [--png doc/source/_static/canary.png] [--json F]

On the local RabbitMQ (a virtual host of its own, made with rabbitmqctl), an RPC
server runs with ``rpc_canary_interval = 1`` while a client calls it every 0.1 s
(timeout 1 s). After a few seconds the ``openstack`` exchange is deleted
broker-side: the connections stay up, the server's bindings are gone, and
requests go nowhere, which is the "RPC-deaf" incident. The script records
every call's outcome and the server's health ten times a second until the
canary has repaired the path, prints the moments (fault, not ready, ready again,
first call answered again) and, with ``--png``, plots them (needs matplotlib).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import amqp
from oslo_config import cfg

import messaging
from tests.brokers import RABBIT_HOST, RABBIT_PORT, rabbit_url, rabbit_vhost

CALL_EVERY = 0.1
CALL_TIMEOUT = 1.0
SAMPLE_EVERY = 0.1
FAULT_AT = 4.0
AFTER_REPAIR = 4.0
GIVE_UP_AT = 90.0


class Echo:
    """The server's endpoint."""

    def echo(self, ctxt: Any, value: int) -> int:
        """Return ``value``."""
        return value


@dataclass
class Timeline:
    """What happened, in seconds since the start."""

    calls: list[tuple[float, float | None, str]] = field(default_factory=list)
    health: list[tuple[float, bool, int, int]] = field(default_factory=list)
    fault_at: float | None = None
    not_ready_at: float | None = None
    ready_again_at: float | None = None
    answered_again_at: float | None = None


def _call_loop(client: Any, start: float, timeline: Timeline, stop: threading.Event) -> None:
    value = 0
    while not stop.is_set():
        began = time.monotonic()
        value += 1
        try:
            client.call({}, "echo", value=value)
            timeline.calls.append((began - start, (time.monotonic() - began) * 1000, "ok"))
        except messaging.MessagingTimeout:
            timeline.calls.append((began - start, None, "timeout"))
        except messaging.MessagingException as exc:
            timeline.calls.append((began - start, None, type(exc).__name__))
        stop.wait(max(0.0, CALL_EVERY - (time.monotonic() - began)))


def record(vhost: str) -> Timeline:
    """Run the incident on ``vhost`` and return its timeline."""
    conf = cfg.ConfigOpts()
    conf([])
    transport = messaging.get_rpc_transport(conf, rabbit_url(vhost))
    conf.set_override("rpc_canary_interval", 1.0)
    topic = f"deaf-{uuid.uuid4().hex[:8]}"
    server = messaging.get_rpc_server(
        transport, messaging.Target(topic=topic, server="s1"), [Echo()], executor="threading"
    )
    server.start()
    timeline = Timeline()
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 30
        while server.health().canary is None or server.health().canary.last_answer_age is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the canary never answered")
            time.sleep(0.05)
        client = messaging.get_rpc_client(
            transport, messaging.Target(topic=topic, server="s1"), timeout=CALL_TIMEOUT
        )
        start = time.monotonic()
        caller = threading.Thread(target=_call_loop, args=(client, start, timeline, stop))
        caller.start()
        while True:
            now = time.monotonic() - start
            state = server.health()
            canary = state.canary
            assert canary is not None
            timeline.health.append((now, state.ready, canary.failures, canary.repairs))
            if timeline.fault_at is None and now >= FAULT_AT:
                _delete_exchange(vhost, "openstack")
                timeline.fault_at = time.monotonic() - start
            if timeline.fault_at is not None:
                if timeline.not_ready_at is None and not state.ready:
                    timeline.not_ready_at = now
                elif (
                    timeline.not_ready_at is not None
                    and timeline.ready_again_at is None
                    and state.ready
                ):
                    timeline.ready_again_at = now
            if timeline.ready_again_at is not None and now > timeline.ready_again_at + AFTER_REPAIR:
                break
            if now > GIVE_UP_AT:
                raise RuntimeError(f"not repaired within {GIVE_UP_AT} s: {state.problems}")
            time.sleep(SAMPLE_EVERY)
        stop.set()
        caller.join(CALL_TIMEOUT * 5)
    finally:
        stop.set()
        server.stop()
        server.wait()
        transport.cleanup()
    fault = timeline.fault_at or 0.0
    timeline.answered_again_at = next(
        (
            t
            for t, _ms, outcome in timeline.calls
            if outcome == "ok"
            and t > fault
            and any(o != "ok" for s, _m, o in timeline.calls if fault <= s < t)
        ),
        None,
    )
    return timeline


def _delete_exchange(vhost: str, name: str) -> None:
    connection = amqp.Connection(
        f"{RABBIT_HOST}:{RABBIT_PORT}", userid="guest", password="guest", virtual_host=vhost
    )
    connection.connect()
    try:
        connection.channel().exchange_delete(name)
    finally:
        connection.close()


def plot(timeline: Timeline, path: Path) -> None:
    """Draw the calls and the server's readiness over time, with the moments marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 4.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ok = [(t, ms) for t, ms, outcome in timeline.calls if outcome == "ok" and ms is not None]
    failed = [t for t, _ms, outcome in timeline.calls if outcome != "ok"]
    top.scatter([t for t, _ in ok], [ms for _, ms in ok], s=6, color="#2ca02c", label="answered")
    top.scatter(
        failed,
        [CALL_TIMEOUT * 1000] * len(failed),
        s=14,
        marker="x",
        color="#d62728",
        label="failed (timeout or unroutable)",
    )
    top.set_yscale("log")
    top.set_ylabel("call latency (ms)")
    top.legend(loc="upper right", fontsize=8)
    times = [t for t, *_ in timeline.health]
    bottom.step(times, [1 if ready else 0 for _, ready, *_ in timeline.health], where="post")
    bottom.set_yticks([0, 1], ["not ready", "ready"])
    bottom.set_xlabel("seconds")
    marks = (
        (timeline.fault_at, "exchange deleted"),
        (timeline.not_ready_at, "canary failed: /readyz 503"),
        (timeline.ready_again_at, "repaired: ready"),
    )
    for moment, label in marks:
        if moment is None:
            continue
        for axis in (top, bottom):
            axis.axvline(moment, color="#7f7f7f", linestyle="--", linewidth=0.8)
        top.annotate(
            label,
            (moment, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
        )
    top.set_title("A deaf RPC server (its exchange deleted broker-side), canary every 1 s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    """Record the incident, print its moments, and write what was asked."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.canary_timeline")
    parser.add_argument("--png", type=Path, help="write the plot here (needs matplotlib)")
    parser.add_argument("--json", type=Path, help="write the timeline here")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with rabbit_vhost("messaging-canary-timeline") as vhost:
        timeline = record(vhost)
    fault = timeline.fault_at or 0.0
    failed = sum(1 for t, _ms, outcome in timeline.calls if outcome != "ok" and t >= fault)
    print(f"calls made: {len(timeline.calls)}, failed after the fault: {failed}")
    for label, moment in (
        ("not ready (canary failed)", timeline.not_ready_at),
        ("ready again (repaired)", timeline.ready_again_at),
        ("calls answered again", timeline.answered_again_at),
    ):
        shown = "never" if moment is None else f"{moment - fault:.1f} s after the fault"
        print(f"{label}: {shown}")
    if args.json:
        args.json.write_text(json.dumps(asdict(timeline), indent=1) + "\n")
    if args.png:
        plot(timeline, args.png)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
