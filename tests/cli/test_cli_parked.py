"""``messaging parked list|replay`` on RabbitMQ 3.10 and RabbitMQ 4: what listeners parked."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import RABBIT_PORT, rabbit4_url, rabbit4_vhost, rabbit_url, rabbit_vhost
from tests.cli.conftest import Cli
from tests.drivers.test_rabbit_poison import (
    Broker,
    Failing,
    conf,
    listening,
    notify,
    queue_depth,
)
from tests.rabbitmq_nodes import RABBIT4

pytestmark = pytest.mark.broker


@pytest.fixture(params=["rabbitmq3", "rabbitmq4"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    if request.param == "rabbitmq3":
        with rabbit_vhost("messaging-cli-parked") as vhost:
            yield Broker(request.param, vhost, rabbit_url(vhost), RABBIT_PORT)
    else:
        with rabbit4_vhost("messaging-cli-parked") as vhost:
            yield Broker(request.param, vhost, rabbit4_url(vhost), RABBIT4.amqp_port)


def park_one(broker: Broker, topic: str) -> None:
    """Have a listener fail twice on a notification, which parks it."""
    endpoint = Failing()
    transport, stop = listening(broker, conf(2, 0.01), topic, endpoint)
    try:
        notify(transport, topic, 42)
        endpoint.wait_calls(2, 30)
    finally:
        stop()


def test_list_then_replay_what_was_parked(
    broker: Broker, cli_env: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(cli_env, broker.url, cwd=tmp_path)
    empty = cli.run("parked", "list")
    assert (empty.code, empty.stdout) == (0, "")
    topic = f"cli-parked-{uuid.uuid4().hex}"
    park_one(broker, topic)
    queue = f"{topic}.info"
    listed = cli.run("parked", "list", "--json")
    assert listed.code == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    parked = json.loads(line)
    assert parked["queue"] == queue
    assert parked["routing_key"] == queue
    assert parked["attempts"] == 2
    assert parked["exception"] == "builtins.ValueError"
    assert "cannot handle 42" in parked["failure"]
    assert '"n": 42' in parked["body"] or "42" in parked["body"]
    human = cli.run("parked", "list", "--traceback")
    assert f"queue {queue}" in human.stdout and "ValueError" in human.stdout
    assert queue_depth(broker, queue) == 0
    replayed = cli.run("parked", "replay", "--queue", queue)
    assert replayed.code == 0, replayed.stderr
    assert "1 replayed" in replayed.stderr
    assert queue_depth(broker, queue) == 1
    after = cli.run("parked", "list")
    assert (after.code, after.stdout) == (0, "")
