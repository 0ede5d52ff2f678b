"""``messaging listen`` takes nothing from anyone unless told to, and leaves no queue behind."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
import urllib.parse
from collections.abc import Callable

from messaging.cli.listen import TAP_POOL_PREFIX
from tests.cli.conftest import Cli

#: Seconds RabbitMQ may take to remove an auto-delete queue after its consumer left.
QUEUE_GONE_TIMEOUT = 10.0


def queue_names(url: str) -> set[str]:
    """The queues that exist now on the transport at ``url`` (sqlite or RabbitMQ)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "sqlite":
        with sqlite3.connect(parsed.path) as conn:
            return {row[0] for row in conn.execute("SELECT name FROM queues")}
    vhost = urllib.parse.unquote(parsed.path.lstrip("/"))
    ctl = shutil.which("rabbitmqctl")
    assert ctl is not None, "rabbitmqctl is needed to list a virtual host's queues"
    listed = subprocess.run(
        [ctl, "list_queues", "-p", vhost, "-q", "--no-table-headers", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {line.strip() for line in listed.stdout.splitlines() if line.strip()}


def eventually(check: Callable[[], bool], timeout: float = QUEUE_GONE_TIMEOUT) -> bool:
    """Whether ``check()`` became true within ``timeout`` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def taps(url: str) -> set[str]:
    return {q for q in queue_names(url) if q.startswith(TAP_POOL_PREFIX)}


def test_a_tap_takes_nothing_from_the_shared_queues_and_leaves_no_queue(
    cli: Cli, bus_url: str, names: dict[str, str]
) -> None:
    topic = names["notifications"]
    tap = cli.start("listen", "--topic", topic, "--count", "1", "--timeout", "30")
    tap.wait_ready()
    assert len(taps(bus_url)) == 1
    sent = cli.run("notify", "--topic", topic, "tapped.event")
    assert sent.code == 0, sent.stderr
    result = tap.finish()
    assert result.code == 0, result.stderr
    assert "tapped.event" in result.stdout
    assert eventually(lambda: not taps(bus_url)), taps(bus_url)
    # The copy the services' listeners share is still there.
    shared = cli.run(
        "listen", "--topic", topic, "--shared-queues", "--count", "1", "--timeout", "30"
    )
    assert shared.code == 0, shared.stderr
    assert "tapped.event" in shared.stdout


def test_a_pool_queue_is_removed_on_exit_unless_kept(
    cli: Cli, bus_url: str, names: dict[str, str]
) -> None:
    topic = names["notifications"]
    removed, kept = f"{topic}-gone", f"{topic}-kept"
    result = cli.run("listen", "--topic", topic, "--pool", removed, "--timeout", "0.5")
    assert result.code == 0, result.stderr
    result = cli.run("listen", "--topic", topic, "--pool", kept, "--keep-queue", "--timeout", "0.5")
    assert result.code == 0, result.stderr
    assert eventually(lambda: removed not in queue_names(bus_url))
    assert kept in queue_names(bus_url)
    # What collects in a kept pool waits for its next member.
    sent = cli.run("notify", "--topic", topic, "kept.event")
    assert sent.code == 0, sent.stderr
    again = cli.run(
        "listen",
        "--topic",
        topic,
        "--pool",
        kept,
        "--keep-queue",
        "--count",
        "1",
        "--timeout",
        "30",
    )
    assert again.code == 0, again.stderr
    assert "kept.event" in again.stdout


def test_options_that_would_take_from_others_are_refused(cli: Cli, names: dict[str, str]) -> None:
    topic = names["notifications"]
    for args, words in (
        (("--keep-queue",), "--keep-queue needs --pool NAME"),
        (("--pool", "p", "--event-type", "a.*"), "--event-type filters this command's own copy"),
        (("--shared-queues", "--event-type", "a.*"), "--event-type filters"),
    ):
        result = cli.run("listen", "--topic", topic, *args, "--timeout", "1")
        assert result.code == 2, result.stderr
        assert words in result.stderr
