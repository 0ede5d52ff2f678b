"""``messaging notify`` and ``messaging listen`` as real processes, on sqlite and RabbitMQ."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli


def test_notify_then_listen_prints_one_line_per_notification(
    cli: Cli, names: dict[str, str]
) -> None:
    topic = names["notifications"]
    sent = cli.run(
        "notify", "--topic", topic, "--publisher-id", "compute.host1", "compute.x.end", '{"id": 1}'
    )
    assert sent.code == 0, sent.stderr
    assert sent.stdout == ""
    sent = cli.run("notify", "--topic", topic, "--priority", "error", "compute.y.error")
    assert sent.code == 0, sent.stderr

    # Sent before anyone listened: the default queues kept them.
    result = cli.run(
        "listen", "--topic", topic, "--shared-queues", "--count", "2", "--timeout", "30"
    )
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, lines
    info = next(line for line in lines if " INFO " in line)
    assert info.split()[3:] == ["compute.x.end", "compute.host1", '{"id":', "1}"]
    error = next(line for line in lines if " ERROR " in line)
    assert "compute.y.error" in error and error.endswith(" {}")


def test_listen_json_gives_one_object_per_line(cli: Cli, names: dict[str, str]) -> None:
    topic = names["notifications"]
    listener = cli.start("listen", "--topic", topic, "--count", "3", "--json", "--timeout", "60")
    listener.wait_ready()
    for n in range(3):
        payload = json.dumps({"n": n, "nested": {"list": [1, "two"]}})
        sent = cli.run("notify", "--topic", topic, "--priority", "warn", "app.tick", payload)
        assert sent.code == 0, sent.stderr
    result = listener.finish()
    assert result.code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["payload"]["n"] for r in records) == [0, 1, 2]
    for record in records:
        assert record["priority"] == "WARN"
        assert record["event_type"] == "app.tick"
        assert record["payload"]["nested"] == {"list": [1, "two"]}
        assert record["message_id"] and record["timestamp"]
        assert record["publisher_id"].startswith("messaging-cli.")


def test_listen_times_out_before_its_count(cli: Cli, names: dict[str, str]) -> None:
    result = cli.run("listen", "--topic", names["notifications"], "--count", "1", "--timeout", "1")
    assert result.code == 4
    assert result.stderr_lines[-1] == "messaging listen: received 0 of 1 notifications within 1s"


def test_listen_timeout_without_count_is_a_normal_end(cli: Cli, names: dict[str, str]) -> None:
    result = cli.run("listen", "--topic", names["notifications"], "--timeout", "1")
    assert result.code == 0, result.stderr
    assert result.stdout == ""


def test_listen_priority_subscribes_to_that_priority_only(cli: Cli, names: dict[str, str]) -> None:
    topic = names["notifications"]
    for priority in ("info", "error", "critical"):
        sent = cli.run("notify", "--topic", topic, "--priority", priority, f"ev.{priority}")
        assert sent.code == 0, sent.stderr
    errors = cli.run(
        "listen",
        "--topic",
        topic,
        "--shared-queues",
        "--priority",
        "error",
        "--count",
        "1",
        "--timeout",
        "30",
    )
    assert errors.code == 0, errors.stderr
    assert "ev.error" in errors.stdout
    # The other two were left in their queues for whoever subscribes to them.
    rest = cli.run("listen", "--topic", topic, "--shared-queues", "--count", "2", "--timeout", "30")
    assert rest.code == 0, rest.stderr
    assert sorted(line.split()[3] for line in rest.stdout.splitlines()) == [
        "ev.critical",
        "ev.info",
    ]


def test_listen_event_type_glob_skips_only_in_its_own_copy(cli: Cli, names: dict[str, str]) -> None:
    topic = names["notifications"]
    tap = cli.start(
        "listen",
        "--topic",
        topic,
        "--event-type",
        "compute.instance.*",
        "--count",
        "2",
        "--timeout",
        "30",
    )
    tap.wait_ready()
    sent_types = ("compute.instance.create", "network.port.update", "compute.instance.del")
    for event_type in sent_types:
        sent = cli.run("notify", "--topic", topic, event_type)
        assert sent.code == 0, sent.stderr
    result = tap.finish()
    assert result.code == 0, result.stderr
    printed = sorted(line.split()[3] for line in result.stdout.splitlines())
    assert printed == ["compute.instance.create", "compute.instance.del"]
    assert "1 notification(s) whose event type did not match 'compute.instance.*'" in (
        result.stderr
    )
    # The services' queues still hold all three, the skipped one too.
    shared = cli.run(
        "listen", "--topic", topic, "--shared-queues", "--count", "3", "--timeout", "30"
    )
    assert shared.code == 0, shared.stderr
    assert sorted(line.split()[3] for line in shared.stdout.splitlines()) == sorted(sent_types)


def test_listen_pools_each_get_a_copy(cli: Cli, names: dict[str, str]) -> None:
    topic = names["notifications"]
    pools = [
        cli.start("listen", "--topic", topic, "--pool", pool, "--count", "2", "--timeout", "60")
        for pool in ("audit-log", "billing")
    ]
    for listener in pools:
        listener.wait_ready()
    for n in range(2):
        sent = cli.run("notify", "--topic", topic, "pool.event", json.dumps({"n": n}))
        assert sent.code == 0, sent.stderr
    for listener in pools:
        result = listener.finish()
        assert result.code == 0, result.stderr
        assert sorted(line.split()[-1] for line in result.stdout.splitlines()) == ["0}", "1}"]


def test_listen_stops_cleanly_on_sigterm(cli: Cli, names: dict[str, str]) -> None:
    listener = cli.start("listen", "--topic", names["notifications"])
    listener.wait_ready()
    result = listener.terminate()
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_config_file_is_read_as_a_service_reads_it(
    bus_url: str, cli_env: dict[str, str], tmp_path: Path, names: dict[str, str]
) -> None:
    # The oslo.messaging spelling of the group: an existing service's file works.
    conf = tmp_path / "service.conf"
    conf.write_text(
        f"[DEFAULT]\ntransport_url = {bus_url}\n\n"
        f"[oslo_messaging_notifications]\ntopics = {names['notifications']}\n"
    )
    cli = Cli(cli_env, None, cwd=tmp_path)
    sent = cli.run("--config-file", str(conf), "notify", "from.config", '{"ok": true}')
    assert sent.code == 0, sent.stderr
    assert "embedded transport" not in sent.stderr
    # Read back with the URL given directly and the topic named: the same queue.
    direct = Cli(cli_env, bus_url, cwd=tmp_path)
    result = direct.run(
        "listen",
        "--topic",
        names["notifications"],
        "--shared-queues",
        "--count",
        "1",
        "--timeout",
        "30",
    )
    assert result.code == 0, result.stderr
    assert "from.config" in result.stdout and '{"ok": true}' in result.stdout


def test_environment_variable_names_the_transport(
    bus_url: str, cli_env: dict[str, str], tmp_path: Path, names: dict[str, str]
) -> None:
    env_cli = Cli({**cli_env, "MESSAGING_TRANSPORT_URL": bus_url}, None, cwd=tmp_path)
    topic = names["notifications"]
    sent = env_cli.run("notify", "--topic", topic, "from.env")
    assert sent.code == 0, sent.stderr
    assert "embedded transport" not in sent.stderr
    result = env_cli.run(
        "listen", "--topic", topic, "--shared-queues", "--count", "1", "--timeout", "30"
    )
    assert result.code == 0, result.stderr
    assert "from.env" in result.stdout
