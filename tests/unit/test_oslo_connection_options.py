"""oslo.messaging's connection options: those without effect warn, the queue manager counts.

``rpc_conn_pool_size``, ``conn_pool_min_size`` and ``conn_pool_ttl`` do nothing
here (one connection per broker and process) and say so, in their help and in a
WARNING logged once when set. ``use_queue_manager`` names queues as oslo does.
(``kombu_reconnect_delay`` and ``kombu_reconnect_splay`` are tested against
RabbitMQ in ``tests/drivers/test_rabbit_connection_options.py``.)
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

from messaging.confhelpers import forget_warnings
from messaging.drivers.rabbit import queue_manager
from messaging.drivers.rabbit.options import (
    RABBIT_GROUP,
    WITHOUT_EFFECT,
    RabbitSettings,
    rabbit_opts,
)
from messaging.transport import TransportURL

POOL_OPTIONS = ("rpc_conn_pool_size", "conn_pool_min_size", "conn_pool_ttl")
LOGGER = "messaging.confhelpers"


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
    forget_warnings()
    yield
    forget_warnings()


def _conf(tmp_path: Path, text: str = "") -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    args = []
    if text:
        path = tmp_path / "service.conf"
        path.write_text(text)
        args = ["--config-file", str(path)]
    conf(args=args)
    return conf


def _settings(conf: cfg.ConfigOpts, url: str = "rabbit://") -> RabbitSettings:
    return RabbitSettings.from_conf(conf, TransportURL.parse(conf, url))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]


def test_the_pool_options_say_they_have_no_effect() -> None:
    helps = {opt.name: opt.help for opt in rabbit_opts()}
    for name in POOL_OPTIONS:
        assert "No effect in messaging" in helps[name], name
    assert set(WITHOUT_EFFECT) == set(POOL_OPTIONS)


def test_defaults_warn_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, LOGGER):
        _settings(_conf(tmp_path))
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    ("name", "value"), [(n, 7) for n in POOL_OPTIONS[1:]] + [(POOL_OPTIONS[0], 50)]
)
def test_a_value_from_the_file_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, value: int
) -> None:
    conf = _conf(tmp_path, f"[{RABBIT_GROUP}]\n{name} = {value}\n")
    with caplog.at_level(logging.WARNING, LOGGER):
        settings = _settings(conf)
        _settings(conf)
    assert getattr(settings, name) == value
    warned = _warnings(caplog)
    assert len(warned) == 1, warned
    assert f"[{RABBIT_GROUP}] {name} = {value} has no effect" in warned[0]


def test_set_override_and_the_url_query_warn_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = _conf(tmp_path)
    _settings(conf)  # registers the group
    conf.set_override("conn_pool_ttl", 60, group=RABBIT_GROUP)
    with caplog.at_level(logging.WARNING, LOGGER):
        _settings(conf, "rabbit://h/?rpc_conn_pool_size=40")
    warned = "\n".join(_warnings(caplog))
    assert "conn_pool_ttl = 60" in warned
    assert "rpc_conn_pool_size = 40" in warned
    assert "conn_pool_min_size" not in warned


def test_the_deprecated_group_warns_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    conf = _conf(tmp_path, "[messaging_rabbit]\nconn_pool_min_size = 0\n")
    with caplog.at_level(logging.WARNING, LOGGER):
        _settings(conf)
    assert any("conn_pool_min_size = 0" in w for w in _warnings(caplog))


def test_other_changed_options_do_not_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = _conf(
        tmp_path,
        f"[{RABBIT_GROUP}]\nkombu_reconnect_delay = 0.5\nkombu_reconnect_splay = 2\n"
        "use_queue_manager = true\n",
    )
    with caplog.at_level(logging.WARNING, LOGGER):
        settings = _settings(conf)
    assert _warnings(caplog) == []
    assert (settings.kombu_reconnect_delay, settings.kombu_reconnect_splay) == (0.5, 2.0)


def test_queue_unique_is_random_without_the_queue_manager() -> None:
    first = queue_manager.queue_unique(RabbitSettings())
    second = queue_manager.queue_unique(RabbitSettings())
    assert re.fullmatch("[0-9a-f]{32}", first)
    assert first != second


def test_the_queue_manager_counts_in_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "count"
    monkeypatch.setattr(queue_manager, "counter_path", lambda host, proc: str(path))
    settings = RabbitSettings(use_queue_manager=True, hostname="h1", processname="nova-api")
    names = [queue_manager.queue_unique(settings) for _ in range(3)]
    assert names == ["h1:nova-api:1", "h1:nova-api:2", "h1:nova-api:3"]
    assert path.read_text().split(":")[:2] == [str(os.getpgid(0)), "3"]
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_the_count_starts_again_for_another_process_group(tmp_path: Path) -> None:
    path = tmp_path / "count"
    path.write_text("1:41:12345")  # another group's count (pid 1 leads no group of ours)
    assert queue_manager.next_counter(str(path)) == 1
    assert queue_manager.next_counter(str(path)) == 2
    path.write_text("garbage")
    assert queue_manager.next_counter(str(path)) == 1


def test_the_count_file_is_named_after_host_and_process() -> None:
    path = queue_manager.counter_path("node1.example.com", "nova api/x")
    assert os.path.basename(path) == "messaging_qmanager_node1.example.com_nova_api_x"
