"""Broker availability for tests that need a real service (RabbitMQ, a STOMP broker...).

A test (or a conformance subclass's ``setup_broker``) calls :func:`require_rabbitmq`
or :func:`require_service`. When the service does not accept a TCP connection
within :data:`CONNECT_TIMEOUT` seconds the test is skipped with the reason, or
fails with it when the environment variable ``MESSAGING_REQUIRE_BROKERS=1`` is set
(as ``.ci/run`` does), so that a CI run cannot pass by skipping everything.
Mark such tests with ``@pytest.mark.broker``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from typing import NoReturn

import pytest

__all__ = [
    "CONNECT_TIMEOUT",
    "REQUIRE_BROKERS_ENV",
    "brokers_required",
    "closed_port",
    "cluster_url",
    "cluster_vhost",
    "rabbit4_url",
    "rabbit4_vhost",
    "rabbit_publish_raw",
    "rabbit_url",
    "rabbit_vhost",
    "require_cluster",
    "require_rabbitmq",
    "require_rabbitmq4",
    "require_service",
    "unavailable",
]

#: Seconds a service has to accept a TCP connection.
CONNECT_TIMEOUT = 2.0
#: The environment variable that turns a missing broker into a failure.
REQUIRE_BROKERS_ENV = "MESSAGING_REQUIRE_BROKERS"


def brokers_required() -> bool:
    """Whether a missing broker fails the test (``MESSAGING_REQUIRE_BROKERS=1``)."""
    return os.environ.get(REQUIRE_BROKERS_ENV, "").strip() == "1"


@functools.cache
def _probe(host: str, port: int) -> str | None:
    # Cached for the session: a broker that is down costs one connect timeout,
    # not one per test.
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def closed_port(host: str = "127.0.0.1") -> int:
    """A TCP port of ``host`` where nothing listens (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


def unavailable(reason: str) -> NoReturn:
    """Skip the current test for ``reason``, or fail it when brokers are required."""
    if brokers_required():
        pytest.fail(f"{reason} ({REQUIRE_BROKERS_ENV}=1, so this is a failure)", pytrace=False)
    pytest.skip(reason)


def require_service(host: str, port: int, name: str) -> None:
    """Skip (or fail) the current test unless ``host:port`` accepts a TCP connection.

    Args:
        host: the service's host name or address.
        port: its TCP port.
        name: what the service is, for the reason (``RabbitMQ``, ``STOMP broker``...).
    """
    error = _probe(host, port)
    if error is not None:
        unavailable(
            f"{name} is not reachable at {host}:{port} within {CONNECT_TIMEOUT:g}s ({error})"
        )


def require_rabbitmq(host: str = "127.0.0.1", port: int = 5672) -> None:
    """Skip (or fail) the current test unless RabbitMQ listens on ``host:port``."""
    require_service(host, port, "RabbitMQ")


RABBIT_HOST = "127.0.0.1"
RABBIT_PORT = 5672


def _rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        unavailable("rabbitmqctl is not installed: cannot make a test virtual host")
    result = subprocess.run(
        [ctl, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        unavailable(
            f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip() or result.stdout}"
        )


@contextlib.contextmanager
def rabbit_vhost(prefix: str = "messaging-tests") -> Iterator[str]:
    """A RabbitMQ virtual host of its own, with guest allowed, deleted afterwards.

    Whatever the tests leave behind (queues of pools, notification queues the
    publisher declared) goes with it.
    """
    require_rabbitmq(RABBIT_HOST, RABBIT_PORT)
    vhost = f"{prefix}-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield vhost
    finally:
        ctl = shutil.which("rabbitmqctl")
        if ctl is not None:
            subprocess.run(
                [ctl, "delete_vhost", vhost],
                capture_output=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
                check=False,
            )


def rabbit_url(vhost: str) -> str:
    """The transport URL of the local RabbitMQ on ``vhost``."""
    return f"rabbit://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/{urllib.parse.quote(vhost, safe='')}"


# -- RabbitMQ 4, in the chroot of tests/rabbitmq_nodes.py ------------------------------------


@functools.cache
def _rabbitmq4_problem() -> str | None:
    # Once per session: the node is started by the first test that needs it.
    from tests import rabbitmq_nodes

    try:
        rabbitmq_nodes.ensure_running()
    except (rabbitmq_nodes.NodeError, OSError, subprocess.SubprocessError) as exc:
        return f"RabbitMQ 4 ({rabbitmq_nodes.RABBIT4.nodename}) could not be started: {exc}"
    return None


def require_rabbitmq4() -> None:
    """Start the RabbitMQ 4 node of the chroot unless it runs; skip (or fail) if it cannot."""
    problem = _rabbitmq4_problem()
    if problem is not None:
        unavailable(problem)


def _rabbitmq4ctl(*args: str) -> str:
    from tests import rabbitmq_nodes

    try:
        return rabbitmq_nodes.rabbitmqctl(*args)
    except rabbitmq_nodes.NodeError as exc:
        unavailable(str(exc))


@contextlib.contextmanager
def rabbit4_vhost(prefix: str = "messaging-tests") -> Iterator[str]:
    """A virtual host of its own on the RabbitMQ 4 node, with guest allowed, deleted afterwards."""
    require_rabbitmq4()
    vhost = f"{prefix}-{uuid.uuid4().hex[:12]}"
    _rabbitmq4ctl("add_vhost", vhost)
    try:
        _rabbitmq4ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield vhost
    finally:
        from tests import rabbitmq_nodes

        with contextlib.suppress(rabbitmq_nodes.NodeError, subprocess.SubprocessError):
            rabbitmq_nodes.rabbitmqctl("delete_vhost", vhost)


def rabbit4_url(vhost: str) -> str:
    """The transport URL of the RabbitMQ 4 node on ``vhost``."""
    from tests.rabbitmq_nodes import RABBIT4

    return (
        f"rabbit://guest:guest@127.0.0.1:{RABBIT4.amqp_port}/{urllib.parse.quote(vhost, safe='')}"
    )


def rabbit_publish_raw(
    vhost: str, queue: str, bodies: Sequence[str | bytes], port: int = RABBIT_PORT
) -> None:
    """Publish ``bodies`` as they are to ``queue`` of ``vhost`` with py-amqp, confirmed.

    What a peer without this library (or an attacker) could put in a queue; it
    returns once the broker (on ``port`` of this host) has confirmed every body.
    """
    import amqp

    connection = amqp.Connection(
        f"{RABBIT_HOST}:{port}", userid="guest", password="guest", virtual_host=vhost
    )
    connection.connect()
    try:
        channel = connection.channel()
        channel.confirm_select()
        for body in bodies:
            message = amqp.Message(body, content_type="application/json")
            channel.basic_publish(message, exchange="", routing_key=queue, mandatory=True)
    finally:
        connection.close()


# -- the 3-node RabbitMQ 4 cluster of tests/rabbitmq_nodes.py ------------------------------


@functools.cache
def _cluster_problem() -> str | None:
    from tests import rabbitmq_nodes

    try:
        rabbitmq_nodes.ensure_cluster()
    except (rabbitmq_nodes.NodeError, OSError, subprocess.SubprocessError) as exc:
        return f"the RabbitMQ 4 cluster could not be made ready: {exc}"
    return None


def require_cluster() -> None:
    """Start and join the 3-node cluster unless it runs; skip (or fail) if it cannot."""
    problem = _cluster_problem()
    if problem is not None:
        unavailable(problem)


@contextlib.contextmanager
def cluster_vhost(prefix: str = "messaging-cluster") -> Iterator[str]:
    """A virtual host of its own on the cluster, with guest allowed, deleted afterwards."""
    from tests import rabbitmq_nodes

    require_cluster()
    first = rabbitmq_nodes.CLUSTER[0]
    vhost = f"{prefix}-{uuid.uuid4().hex[:12]}"
    try:
        rabbitmq_nodes.rabbitmqctl("add_vhost", vhost, node=first)
        rabbitmq_nodes.rabbitmqctl(
            "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*", node=first
        )
    except rabbitmq_nodes.NodeError as exc:
        unavailable(str(exc))
    try:
        yield vhost
    finally:
        with contextlib.suppress(rabbitmq_nodes.NodeError, subprocess.SubprocessError):
            rabbitmq_nodes.rabbitmqctl("delete_vhost", vhost, node=first)


def cluster_url(vhost: str, ports: Sequence[int] | None = None) -> str:
    """A transport URL naming every node of the cluster (or ``ports`` of loopback)."""
    from tests.rabbitmq_nodes import CLUSTER

    hosts = ",".join(
        f"guest:guest@127.0.0.1:{port}" for port in (ports or [n.amqp_port for n in CLUSTER])
    )
    return f"rabbit://{hosts}/{urllib.parse.quote(vhost, safe='')}"
