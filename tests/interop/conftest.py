"""Fixtures of the interop tests: the broker, the oslo virtualenv, peers and our side.

- ``rabbit_url`` (session): RabbitMQ at 127.0.0.1:5672 (guest/guest) on a vhost
  made for this session and deleted, with everything in it, at the end
  (``tests.brokers.rabbit_vhost``: skips when the broker or ``rabbitmqctl`` is
  missing, fails instead with ``MESSAGING_REQUIRE_BROKERS=1``).
- ``oslo_env`` (session): the virtualenv with the real oslo.messaging.
- ``names`` / ``oslo_peers``: unique names and the oslo peers of one test.
- ``our_conf``: a config as a service reads it; ``stack``: cleanups.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

from tests import brokers

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    # ``interop_errors`` must be importable under that top-level name, as in the oslo peer.
    sys.path.insert(0, str(HERE))

from tests.interop.oslo_env import (  # noqa: E402
    InteropNames,
    OsloEnv,
    OsloPeers,
    ensure_oslo_env,
)

_oslo_envs: list[OsloEnv] = []


@pytest.fixture(scope="session")
def rabbit_url() -> Iterator[str]:
    """The transport URL both sides use: a vhost of this session, deleted at the end."""
    with brokers.rabbit_vhost("messaging-interop") as vhost:
        yield brokers.rabbit_url(vhost)


@pytest.fixture(scope="session")
def oslo_env() -> OsloEnv:
    """The virtualenv with the real oslo.messaging (created on first use, then reused)."""
    env = ensure_oslo_env()
    _oslo_envs.append(env)
    return env


@pytest.fixture
def names() -> InteropNames:
    """Unique topic, exchange, server and pool names for one test."""
    return InteropNames()


@pytest.fixture
def oslo_peers(oslo_env: OsloEnv, rabbit_url: str, names: InteropNames) -> Iterator[OsloPeers]:
    """Starts oslo peers for one test; every one is stopped (or killed) afterwards."""
    peers = OsloPeers(oslo_env, rabbit_url, names.exchange)
    try:
        yield peers
    finally:
        peers.close()


@pytest.fixture
def our_conf(tmp_path: Path, names: InteropNames) -> cfg.ConfigOpts:
    """Our side's configuration, read from a config file as a service reads it."""
    path = tmp_path / "service.conf"
    path.write_text(f"[DEFAULT]\ncontrol_exchange = {names.exchange}\n")
    conf = cfg.ConfigOpts()
    conf(
        ["--config-file", str(path)],
        project="messaging-interop",
        default_config_files=[],
        default_config_dirs=[],
    )
    return conf


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    """Cleanups of our side (listeners, servers, transports), run last-in first-out."""
    with contextlib.ExitStack() as exit_stack:
        yield exit_stack


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which oslo.messaging the interop tests ran against."""
    for env in _oslo_envs:
        terminalreporter.write_line(f"interop peer: {env.describe()}")
