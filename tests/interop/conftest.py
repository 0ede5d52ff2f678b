"""Fixtures of the interop tests: the broker, the oslo virtualenv, peers and our side.

- ``interop_broker`` (session, two params): every interop test runs twice,
  on the machine's RabbitMQ 3.10 (127.0.0.1:5672) with oslo.messaging on its
  defaults, and on the RabbitMQ 4 node of ``tests/rabbitmq_nodes.py`` (which
  refuses what RabbitMQ 4.3 refuses), where oslo.messaging runs only with
  quorum and durable queues (:data:`OSLO_ON_RABBITMQ4`). Our side always uses
  its default options. Each broker gets a vhost made for the session and deleted,
  with everything in it, at the end (skipped when the broker is missing, failed
  instead with ``MESSAGING_REQUIRE_BROKERS=1``).
- ``rabbit_url``: the transport URL both sides use.
- ``oslo_env`` (session): the virtualenv with the real oslo.messaging.
- ``names`` / ``oslo_peers``: unique names and the oslo peers of one test.
- ``our_conf``: a config as a service reads it; ``stack``: cleanups.
"""

from __future__ import annotations

import contextlib
import dataclasses
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


#: How oslo.messaging must be configured to run on RabbitMQ 4.3 (and on our RabbitMQ 4).
OSLO_ON_RABBITMQ4 = (
    "[oslo_messaging_rabbit]\n"
    "rabbit_quorum_queue = true\n"
    "rabbit_transient_quorum_queue = true\n"
    "amqp_durable_queues = true\n"
)


@dataclasses.dataclass(frozen=True)
class InteropBroker:
    """A broker of the interop tests: the URL both sides use, and oslo's configuration file."""

    name: str
    url: str
    oslo_config: Path | None


@pytest.fixture(scope="session", params=["rabbitmq3", "rabbitmq4"])
def interop_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InteropBroker]:
    """A broker with a vhost of this session, deleted at the end."""
    if request.param == "rabbitmq3":
        with brokers.rabbit_vhost("messaging-interop") as vhost:
            yield InteropBroker(request.param, brokers.rabbit_url(vhost), None)
    else:
        oslo_config = tmp_path_factory.mktemp("oslo") / "oslo-on-rabbitmq4.conf"
        oslo_config.write_text(OSLO_ON_RABBITMQ4)
        with brokers.rabbit4_vhost("messaging-interop") as vhost:
            yield InteropBroker(request.param, brokers.rabbit4_url(vhost), oslo_config)


@pytest.fixture
def rabbit_url(interop_broker: InteropBroker) -> str:
    """The transport URL both sides use."""
    return interop_broker.url


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
def oslo_peers(
    oslo_env: OsloEnv, interop_broker: InteropBroker, names: InteropNames
) -> Iterator[OsloPeers]:
    """Starts oslo peers for one test; every one is stopped (or killed) afterwards."""
    peers = OsloPeers(oslo_env, interop_broker.url, names.exchange, interop_broker.oslo_config)
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
