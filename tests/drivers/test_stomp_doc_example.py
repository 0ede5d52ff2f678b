"""The DIRAC-style example of ``doc/source/user/stomp.rst``, run as written.

The configuration file, the producer and the consumer are taken from the page's
literal blocks. Only the configuration's broker is changed: the local RabbitMQ
STOMP plugin on a virtual host of the test's own, without TLS. The producer
sends before the consumer starts, as the page says works.
"""

from __future__ import annotations

import queue
import re
import textwrap
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.brokers import rabbit_vhost, require_service

pytestmark = pytest.mark.broker

PAGE = Path(__file__).resolve().parents[2] / "doc" / "source" / "user" / "stomp.rst"
STOMP_HOST, STOMP_PORT = "127.0.0.1", 61613
TIMEOUT = 10.0


def literal_block(text: str, introduction: str) -> str:
    """The indented block that follows the paragraph ending with ``introduction``."""
    start = text.index(introduction) + len(introduction)
    lines = text[start:].split("\n")[1:]
    block: list[str] = []
    for line in lines:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip() + "\n"


@pytest.fixture
def vhost() -> Iterator[str]:
    require_service(STOMP_HOST, STOMP_PORT, "RabbitMQ's STOMP plugin")
    with rabbit_vhost("messaging-stomp-doc") as name:
        yield name


def test_the_dirac_style_producer_and_consumer_work_as_documented(
    vhost: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = PAGE.read_text()
    config = literal_block(page, "``mq.conf``::")
    producer = literal_block(page, "The producer::")
    consumer = literal_block(page, "The consumer::")
    assert "transport_url = stomp://" in config and "get_notification_listener" in consumer

    local = f"stomp://guest:guest@{STOMP_HOST}:{STOMP_PORT}/{urllib.parse.quote(vhost, safe='')}"
    config = re.sub(r"(?m)^transport_url = .*$", f"transport_url = {local}", config)
    config = re.sub(r"(?m)^ssl.*\n", "", config)
    (tmp_path / "mq.conf").write_text(config)
    monkeypatch.chdir(tmp_path)

    printed: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
    namespace: dict[str, Any] = {"print": lambda *args: printed.put(args)}
    try:
        exec(compile(producer, "stomp.rst: producer", "exec"), namespace)
        exec(compile(consumer, "stomp.rst: consumer", "exec"), namespace)
        assert printed.get(timeout=TIMEOUT) == ("job.done", {"job_id": 42})
    finally:
        if "listener" in namespace:
            namespace["listener"].stop()
            namespace["listener"].wait()
        if "transport" in namespace:
            namespace["transport"].cleanup()
