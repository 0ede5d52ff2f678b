"""``messaging status`` as a process, against ``messaging serve`` on sqlite and RabbitMQ."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, Running

ENDPOINTS = textwrap.dedent(
    """\
    class Shop:
        def put(self, ctxt, name):
            return name
    """
)


def serve(cli: Cli, tmp_path: Path, topic: str, server: str) -> Running:
    (tmp_path / "status_endpoints.py").write_text(ENDPOINTS)
    running = cli.start("serve", "--topic", topic, "--server", server, "status_endpoints:Shop")
    running.wait_ready()
    return running


def test_status_lists_the_servers_that_answer(
    cli: Cli, tmp_path: Path, names: dict[str, str], bus_url: str
) -> None:
    topic = names["topic"]
    first = serve(cli, tmp_path, topic, "shop1")
    second = serve(cli, tmp_path, topic, "shop2")
    gone = serve(cli, tmp_path, topic, "shop3")
    assert gone.terminate().code == 0
    result = cli.run("status", "--topic", topic, "--timeout", "2", "--json")
    assert result.code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert sorted(a["server"] for a in report["answers"]) == ["shop1", "shop2"]
    assert {a["pid"] for a in report["answers"]} == {first.process.pid, second.process.pid}
    assert all(a["known"] and 0 < a["elapsed"] < 2 for a in report["answers"])
    assert report["ok"] is True and report["problems"] == []
    if bus_url.startswith("rabbit"):
        by_name = {q["name"]: q for q in report["queues"]}
        assert (by_name[topic]["messages"], by_name[topic]["consumers"]) == (0, 2)
        assert by_name[f"{topic}.shop1"]["consumers"] == 1
    else:
        assert report["queues"] is None
        assert "cannot count its queues" in report["queues_unavailable"]


def test_status_as_a_table(cli: Cli, tmp_path: Path, names: dict[str, str]) -> None:
    topic = names["topic"]
    serve(cli, tmp_path, topic, "shop1")
    result = cli.run("status", "--topic", topic, "--expect", "1")
    assert result.code == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"topic '{topic}': 1 server(s) answered within 3 s (ok)"
    assert lines[2].split() == [
        "SERVER", "HOST", "PID", "TIME", "STATE", "CONSUMING", "LAST", "MESSAGE", "BUSY",
        "RECONNECTS",
    ]  # fmt: skip
    row = lines[3].split()
    assert row[0] == "shop1" and row[4:6] == ["ms", "running"], lines


def test_status_of_a_topic_nobody_serves(cli: Cli, names: dict[str, str]) -> None:
    result = cli.run("status", "--topic", names["topic"], "--timeout", "0.5")
    assert result.code == 4, result.stdout + result.stderr
    assert f"no server of topic '{names['topic']}' answered within 0.5 s" in result.stdout


@pytest.mark.broker
def test_status_reports_an_expected_server_that_is_gone(
    rabbit_module_url: str, cli_env: dict[str, str], tmp_path: Path, names: dict[str, str]
) -> None:
    cli = Cli(cli_env, rabbit_module_url, cwd=tmp_path)
    topic = names["topic"]
    try:
        serve(cli, tmp_path, topic, "shop1")
        gone = serve(cli, tmp_path, topic, "shop2")
        assert gone.terminate().code == 0
        cast = cli.run("cast", "--topic", topic, "--server", "shop2", "put", '{"name": "x"}')
        assert cast.code == 0, cast.stderr
        result = cli.run(
            "status", "--topic", topic, "--server", "shop1", "--server", "shop2", "--timeout", "1"
        )
    finally:
        cli.close()
    assert result.code == 1, result.stdout + result.stderr
    assert "- server 'shop2' did not answer within 1 s" in result.stdout
    assert f"- queue '{topic}.shop2' has no consumer (1 message(s) waiting)" in result.stdout
    (row,) = [line for line in result.stdout.splitlines() if line.startswith(f"{topic}.shop2 ")]
    assert row.split() == [f"{topic}.shop2", "1", "0", "UNUSED"]


def test_status_options_are_checked(cli: Cli) -> None:
    result = cli.run("status", "--timeout", "0")
    assert result.code == 2
    assert result.stderr.strip().endswith("--timeout must be more than 0 seconds")
