"""The driver conformance suite on Redis (127.0.0.1:6379) through ``kombu+redis://``.

Each test gets a key prefix of its own (kombu's ``global_keyprefix`` transport
option, given in the URL's query) in database :data:`REDIS_DB` (which may hold
other keys: only the test's own are looked at and deleted), so tests never
see each other's messages nor anything else the server holds. After a test,
nothing of it may be left unacknowledged (kombu's ``unacked`` hash), and every
key under its prefix is deleted.
"""

from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import pytest
import redis
import redis.exceptions
from oslo_config import cfg

import messaging
from messaging.drivers.base import Capabilities
from tests.brokers import closed_port, require_service, unavailable
from tests.drivers.conformance import WRONG_PASSWORD, DriverHarness, RPCConformance
from tests.drivers.conformance_asyncio import AsyncioConformance
from tests.drivers.test_kombu_memory_conformance import (
    KombuGiveBackChecks,
    kombu_publish_raw,
    wait_for_closing_consumers,
)

pytestmark = pytest.mark.broker

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
#: The database the tests use; their keys all start with a prefix of their own.
REDIS_DB = 15

KOMBU_REDIS_CAPABILITIES = Capabilities(requeue=True, pools=True, fanout=True, rpc=True)


class KombuRedisBroker(DriverHarness):
    """The local Redis, under a key prefix of each test's own."""

    capabilities: ClassVar[Capabilities | None] = KOMBU_REDIS_CAPABILITIES

    def setup_broker(self) -> None:
        require_service(REDIS_HOST, REDIS_PORT, "Redis")
        self.prefix = f"messaging-conformance-{uuid.uuid4().hex[:12]}:"
        self.redis = redis.Redis(REDIS_HOST, REDIS_PORT, db=REDIS_DB, socket_timeout=5)

    def transport_url(self) -> str:
        # polling_interval is kombu's BRPOP timeout: closing a consumer waits for
        # the BRPOP in flight, so a short one keeps the tests' teardowns short.
        return (
            f"kombu+redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
            f"?global_keyprefix={self.prefix}&polling_interval=0.2"
        )

    def inject_raw(
        self, transport: messaging.Transport, topic: str, rpc: bool, bodies: Sequence[str]
    ) -> None:
        kombu_publish_raw(transport, topic if rpc else f"{topic}.info", bodies)

    def refused_url(self) -> str:
        # The server has no password, but refuses a user it does not know.
        return f"kombu+redis://conformance:{WRONG_PASSWORD}@{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"

    def unreachable_url(self, publish_timeout: float) -> str:
        return (
            f"kombu+redis://{REDIS_HOST}:{closed_port()}/{REDIS_DB}"
            f"?publish_timeout={publish_timeout}&interval_start=0.2&interval_step=0.2"
        )

    def teardown_broker(self) -> None:
        wait_for_closing_consumers(self.wait_timeout)
        try:
            unacked = self.redis.hgetall(self.prefix + "unacked")
            keys = list(self.redis.scan_iter(match=self.prefix + "*", count=500))
            if keys:
                self.redis.delete(*keys)
        finally:
            self.redis.close()
        assert unacked == {}, f"messages were left unacknowledged: {unacked}"


class TestKombuRedisNotifications(KombuRedisBroker, KombuGiveBackChecks):
    """Notifications on Redis."""


class TestKombuRedisRPC(KombuRedisBroker, RPCConformance):
    """RPC on Redis."""


class TestKombuRedisAsyncio(KombuRedisBroker, AsyncioConformance):
    """Async endpoints and clients on Redis through kombu."""


@pytest.mark.parametrize(("retry", "tries"), [(0, 1), (2, 3)])
def test_unreachable_redis_fails_after_retry_plus_one_tries(
    retry: int, tries: int, caplog: pytest.LogCaptureFixture
) -> None:
    conf = cfg.ConfigOpts()
    url = (
        f"kombu+redis://{REDIS_HOST}:{closed_port()}/{REDIS_DB}"
        "?interval_start=0.01&interval_step=0&interval_max=0.01"
    )
    transport = messaging.get_notification_transport(conf, url)
    try:
        notifier = messaging.Notifier(
            transport, "p", driver="messagingv2", topics=["t"], retry=retry, raise_errors=True
        )
        with (
            caplog.at_level(logging.WARNING, "messaging.drivers.kombu_transport"),
            pytest.raises(messaging.MessageDeliveryFailure, match=f"after {tries} tries") as caught,
        ):
            notifier.info({}, "test.unreachable", {})
    finally:
        transport.cleanup()
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
    retried = [r for r in caplog.records if "Trying again" in r.getMessage()]
    assert len(retried) == tries - 1


class PrivateRedis:
    """A redis-server of the test's own on a free port, that keeps nothing on disk."""

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            unavailable("redis-server is not installed: cannot restart a Redis of the test's own")
        self.executable = executable
        self.port = closed_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.executable, "--bind", REDIS_HOST, "--port", str(self.port), "--save", ""],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        try:
            _wait_until(lambda: _answers(client), f"redis-server on port {self.port} to start")
        finally:
            client.close()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            process.wait(timeout=10)

    def client(self) -> redis.Redis:
        return redis.Redis(REDIS_HOST, self.port, socket_timeout=1)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Inbox:
    """Endpoint that puts each ``info`` payload in a queue."""

    def __init__(self) -> None:
        self.received: queue.Queue[Any] = queue.Queue()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.received.put(payload)


def test_listener_resumes_after_redis_restarts_empty(private_redis: PrivateRedis) -> None:
    url = (
        f"kombu+redis://{REDIS_HOST}:{private_redis.port}/0"
        "?interval_start=0.1&interval_step=0.1&interval_max=0.5&polling_interval=0.2"
    )
    transport = messaging.get_notification_transport(cfg.ConfigOpts(), url)
    inbox = Inbox()
    server = messaging.get_notification_listener(
        transport, [messaging.Target(topic="resume")], [inbox], executor="threading"
    )
    server.start()
    watcher = private_redis.client()
    try:
        notifier = messaging.Notifier(
            transport, "p", driver="messagingv2", topics=["resume"], retry=5, raise_errors=True
        )
        notifier.info({}, "test.before", {"n": 1})
        assert inbox.received.get(timeout=10) == {"n": 1}
        private_redis.stop()
        private_redis.start()
        # The restarted Redis lost every queue and binding: the listener binds
        # its queue again once it has reconnected.
        _wait_until(
            lambda: bool(watcher.exists("_kombu.binding.openstack")), "the listener to bind again"
        )
        notifier.info({}, "test.after", {"n": 2})
        assert inbox.received.get(timeout=10) == {"n": 2}
    finally:
        watcher.close()
        server.stop()
        server.wait()
        transport.cleanup()
