"""``messaging serve``, ``call``, ``cast`` and ``ping`` as processes, on sqlite and RabbitMQ."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import closed_port
from tests.cli.conftest import Cli, Running

ENDPOINTS = textwrap.dedent(
    """\
    import sys


    class Inventory:
        def __init__(self):
            self.items = {}

        def put(self, ctxt, name, count):
            self.items[name] = self.items.get(name, 0) + count
            print(f"put {name} {count} user={ctxt.get('user')}", flush=True)
            return self.items[name]

        def get(self, ctxt, name):
            return {"name": name, "count": self.items.get(name, 0)}

        def fail(self, ctxt):
            raise KeyError("no such shelf")


    class Watcher:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            print(f"notification {event_type} {payload}", flush=True)
    """
)


@pytest.fixture
def server(cli: Cli, tmp_path: Path, names: dict[str, str]) -> Iterator[Running]:
    """``messaging serve`` of a module in its working directory, ready."""
    (tmp_path / "shop_endpoints.py").write_text(ENDPOINTS)
    running = cli.start(
        "serve",
        "--topic",
        names["topic"],
        "--server",
        "shop1",
        "--notification-topic",
        names["notifications"],
        "shop_endpoints:Inventory",
        "shop_endpoints:Watcher",
    )
    running.wait_ready()
    yield running
    running.kill()


def test_call_prints_the_result_as_json(cli: Cli, server: Running, names: dict[str, str]) -> None:
    topic = names["topic"]
    first = cli.run("call", "--topic", topic, "put", '{"name": "apple", "count": 2}')
    assert first.code == 0, first.stderr
    assert json.loads(first.stdout) == 2
    assert server.next_line() == "put apple 2 user=None"
    second = cli.run(
        "call",
        "--topic",
        topic,
        "--server",
        "shop1",
        "--context",
        '{"user": "alice"}',
        "put",
        '{"name": "apple", "count": 3}',
    )
    assert second.code == 0, second.stderr
    assert json.loads(second.stdout) == 5
    assert server.next_line() == "put apple 3 user=alice"
    got = cli.run("call", "--topic", topic, "get", '{"name": "apple"}')
    assert got.code == 0, got.stderr
    assert json.loads(got.stdout) == {"name": "apple", "count": 5}


def test_cast_returns_without_waiting_and_the_server_runs_it(
    cli: Cli, server: Running, names: dict[str, str]
) -> None:
    result = cli.run("cast", "--topic", names["topic"], "put", '{"name": "pear", "count": 1}')
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    assert server.next_line() == "put pear 1 user=None"


def test_ping_answers_from_serve(cli: Cli, server: Running, names: dict[str, str]) -> None:
    result = cli.run("ping", "--topic", names["topic"], "--server", "shop1")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith(f"pong from topic '{names['topic']}', server 'shop1' in ")


def test_a_remote_exception_is_one_line(cli: Cli, server: Running, names: dict[str, str]) -> None:
    result = cli.run("call", "--topic", names["topic"], "fail")
    assert result.code == 1
    assert result.stderr_lines == [
        "messaging call: fail failed on the server: KeyError: 'no such shelf'"
    ]


def test_an_unknown_method_is_one_line(cli: Cli, server: Running, names: dict[str, str]) -> None:
    result = cli.run("call", "--topic", names["topic"], "restock")
    assert result.code == 1
    assert result.stderr_lines == [
        "messaging call: restock failed on the server: NoSuchMethod: "
        "Endpoint does not support RPC method restock"
    ]


def test_serve_receives_notifications_for_priority_methods(
    cli: Cli, server: Running, names: dict[str, str]
) -> None:
    sent = cli.run("notify", "--topic", names["notifications"], "shop.opened", '{"door": 1}')
    assert sent.code == 0, sent.stderr
    assert server.next_line() == "notification shop.opened {'door': 1}"


def test_serve_stops_cleanly_on_sigterm(cli: Cli, server: Running) -> None:
    result = server.terminate()
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_call_to_a_server_that_is_not_there(cli: Cli, names: dict[str, str]) -> None:
    result = cli.run("call", "--topic", names["topic"], "--timeout", "5", "put")
    assert result.code == 6, result.stderr
    assert result.stderr_lines == [f"messaging call: no server listens on topic '{names['topic']}'"]


def test_ping_of_a_stopped_server(cli: Cli, server: Running, names: dict[str, str]) -> None:
    assert server.terminate().code == 0
    result = cli.run("ping", "--topic", names["topic"], "--server", "shop1", "--timeout", "3")
    assert result.code in (4, 6), result.stderr
    assert len(result.stderr_lines) == 1 and "Traceback" not in result.stderr


def test_cast_to_a_server_that_is_not_there(cli: Cli, names: dict[str, str]) -> None:
    result = cli.run("cast", "--topic", names["topic"], "put")
    assert result.code == 6, result.stderr
    assert result.stderr_lines == [f"messaging cast: no server listens on topic '{names['topic']}'"]


def test_fanout_cast_reaches_every_server(
    cli: Cli, server: Running, tmp_path: Path, names: dict[str, str]
) -> None:
    second = cli.start(
        "serve", "--topic", names["topic"], "--server", "shop2", "shop_endpoints:Inventory"
    )
    second.wait_ready()
    result = cli.run(
        "cast", "--topic", names["topic"], "--fanout", "put", '{"name": "fig", "count": 1}'
    )
    assert result.code == 0, result.stderr
    assert server.next_line() == "put fig 1 user=None"
    assert second.next_line() == "put fig 1 user=None"


@pytest.mark.broker
def test_demo_on_the_transport_of_the_environment(
    rabbit_module_url: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli({**cli_env, "MESSAGING_TRANSPORT_URL": rabbit_module_url}, None, cwd=tmp_path)
    result = cli.run("demo", timeout=120)
    assert result.code == 0, result.stdout + result.stderr
    assert "[demo] transport: rabbit://guest:****@" in result.stdout
    assert "[rpc server] received add(a=2, b=3) -> 5" in result.stdout
    assert result.stdout.count("[listener] ") == 3


def test_serve_answers_health_probes_that_health_reads(
    cli: Cli, tmp_path: Path, names: dict[str, str]
) -> None:
    (tmp_path / "shop_endpoints.py").write_text(ENDPOINTS)
    running = cli.start(
        "serve",
        "--topic",
        names["topic"],
        "--server",
        "shop1",
        "--health-port",
        "0",
        "shop_endpoints:Inventory",
    )
    try:
        running.wait_ready()
        (ready,) = [line for line in running.stderr_seen if "health probes on" in line]
        match = re.search(r"health probes on (http://127\.0\.0\.1:\d+)/livez", ready)
        assert match, ready
        result = cli.run("health", "--url", match.group(1))
        assert result.code == 0, result
        assert result.stdout.startswith("process: ready, 1 server(s)")
        assert f"- RPC server on {names['topic']}.shop1: running" in result.stdout
        assert "connected yes, consuming yes" in result.stdout
        as_json = json.loads(cli.run("health", "--url", match.group(1), "--json").stdout)
        assert as_json["ready"] is True and as_json["live"] is True
    finally:
        running.kill()


def test_health_of_a_process_that_does_not_answer_exits_5(cli: Cli) -> None:
    result = cli.run("health", "--port", str(closed_port()))
    assert result.code == 5
    assert "no health report from http://127.0.0.1:" in result.stderr


ASYNC_ENDPOINTS = textwrap.dedent(
    """\
    import asyncio


    class Clock:
        async def later(self, ctxt, value):
            await asyncio.sleep(0)
            return {"value": value, "loop": asyncio.get_running_loop().is_running()}
    """
)


def test_serve_runs_async_endpoints_on_the_asyncio_executor_by_itself(
    cli: Cli, tmp_path: Path, names: dict[str, str]
) -> None:
    (tmp_path / "clock_endpoints.py").write_text(ASYNC_ENDPOINTS)
    running = cli.start("serve", "--topic", names["topic"], "clock_endpoints:Clock")
    try:
        running.wait_ready()
        assert any("(asyncio executor)" in line for line in running.stderr_seen), (
            running.stderr_seen
        )
        result = cli.run("call", "--topic", names["topic"], "later", '{"value": 7}')
        assert result.code == 0, result.stderr
        assert json.loads(result.stdout) == {"value": 7, "loop": True}
    finally:
        running.kill()
