"""Opening STOMP connections on real brokers: the ``host`` header, 1.1 fallback, failover, TLS.

RabbitMQ's STOMP plugin (127.0.0.1:61613) in a virtual host of this module's
own, and CoilMQ started by the tests (:mod:`tests.drivers.coilmq_support`). TLS
goes through a TLS-terminating proxy in front of the STOMP port
(:class:`~tests.drivers.tls_support.TlsProxy`), with the RabbitMQ TLS tests'
throwaway certificates.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import messaging
from messaging.drivers.stomp.connection import StompConnection
from messaging.drivers.stomp.handshake import CONNECTED_HOST, Hello
from messaging.exceptions import MessageDeliveryFailure
from tests.brokers import rabbit_vhost, require_service
from tests.drivers.coilmq_support import running_coilmq
from tests.drivers.test_rabbit_resilience import make_conf
from tests.drivers.test_rabbit_tls import Pki, pki  # noqa: F401  (pki: a fixture)
from tests.drivers.test_stomp_rabbit_conformance import STOMP_HOST, STOMP_PORT
from tests.drivers.tls_support import KeyPair, TlsProxy

pytestmark = pytest.mark.broker

TIMEOUT = 15.0
#: Fail fast where a connection cannot be made.
FAST = {"connect_timeout": "1", "reconnect_interval": "0.2", "reconnect_interval_max": "0.5"}


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    require_service(STOMP_HOST, STOMP_PORT, "RabbitMQ's STOMP plugin")
    with rabbit_vhost("messaging-stomp-connecting") as name:
        yield name


def stomp_url(hosts: str, vhost: str | None, **options: Any) -> str:
    """``stomp://guest:guest@<hosts>[/<vhost>]?<options>``."""
    path = "" if vhost is None else "/" + urllib.parse.quote(vhost, safe="")
    query = urllib.parse.urlencode({k: str(v) for k, v in options.items()})
    return f"stomp://guest:guest@{hosts}{path}" + (f"?{query}" if query else "")


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Inbox:
    """Notification endpoint putting each ``info`` payload in a queue."""

    def __init__(self) -> None:
        self.received: queue.Queue[Any] = queue.Queue()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.received.put(payload)


def round_trip(url: str) -> StompConnection:
    """Send a notification over ``url`` and receive it; return the connection it used.

    The returned connection is closed; its attributes tell how it was opened.
    """
    transport = messaging.get_notification_transport(make_conf(), url)
    inbox = Inbox()
    topic = f"connecting-{uuid.uuid4().hex}"
    server = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [inbox], executor="threading"
    )
    try:
        server.start()
        notifier = messaging.Notifier(
            transport, "t", driver="messagingv2", topics=[topic], retry=0, raise_errors=True
        )
        notifier.info({}, "connecting.test", {"topic": topic})
        assert inbox.received.get(timeout=TIMEOUT) == {"topic": topic}
        connection: StompConnection = transport.driver.connection  # type: ignore[attr-defined]
        return connection
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def refused(url: str) -> str:
    """Cast once over ``url`` (which must not connect); return the failure's message."""
    transport = messaging.get_rpc_transport(make_conf(), url)
    try:
        client = messaging.get_rpc_client(transport, messaging.Target(topic="refused"))
        with pytest.raises(MessageDeliveryFailure) as failure:
            client.prepare(retry=0).cast({}, "anything")
        return str(failure.value)
    finally:
        transport.cleanup()


# -- the host header -------------------------------------------------------------------------


def test_rabbitmq_without_a_vhost_gets_its_default_vhost() -> None:
    require_service(STOMP_HOST, STOMP_PORT, "RabbitMQ's STOMP plugin")
    # The host name is sent first (STOMP 1.2); RabbitMQ refuses it as an unknown
    # virtual host and is asked again without the header. A fanout cast leaves
    # nothing behind in the default virtual host.
    transport = messaging.get_rpc_transport(
        make_conf(), stomp_url(f"{STOMP_HOST}:{STOMP_PORT}", None)
    )
    try:
        client = messaging.get_rpc_client(
            transport, messaging.Target(topic=f"connecting-{uuid.uuid4().hex}", fanout=True)
        )
        client.prepare(retry=0).cast({}, "nobody_listens")
        connection = transport.driver.connection  # type: ignore[attr-defined]
        assert connection.hello == Hello("1.2", None)
        assert connection.server.startswith("RabbitMQ")
    finally:
        transport.cleanup()


def test_coilmq_without_a_vhost_accepts_its_own_host_name() -> None:
    with running_coilmq() as coilmq:
        try:
            resolved = socket.gethostbyname(coilmq.fqdn)
        except OSError as exc:
            pytest.skip(f"this machine's name {coilmq.fqdn!r} does not resolve: {exc}")
        if not resolved.startswith("127."):
            pytest.skip(f"this machine's name {coilmq.fqdn!r} is not a loopback address")
        # STOMP 1.2 with the name of the host connected to, as the specification asks.
        connection = round_trip(stomp_url(f"{coilmq.fqdn}:{coilmq.port}", None))
        assert connection.hello == Hello("1.2", CONNECTED_HOST)


def test_a_strict_broker_refusing_the_host_name_is_asked_for_1_1() -> None:
    with running_coilmq() as coilmq:
        assert coilmq.fqdn != coilmq.host
        # CoilMQ's 1.2 wants its FQDN, not 127.0.0.1, and refuses no header at all;
        # its 1.1 takes any host.
        connection = round_trip(coilmq.url())
        assert connection.hello == Hello("1.1", CONNECTED_HOST)
        assert connection.version == "1.1"


# -- STOMP 1.1 -------------------------------------------------------------------------------


def test_a_broker_speaking_only_1_1_is_asked_for_1_1() -> None:
    with running_coilmq(stomp_11_only=True) as coilmq:
        connection = round_trip(coilmq.url(coilmq.fqdn))
        assert connection.hello == Hello("1.1", coilmq.fqdn)
        assert connection.server.startswith("coilmq")


# -- failover --------------------------------------------------------------------------------


def test_a_send_allowed_one_try_fails_with_the_connection_attempt_not_after_connect_timeout() -> (
    None
):
    # Nothing listens: each connection attempt is refused at once.
    url = stomp_url(f"127.0.0.1:{closed_port()}", None, flavor="rabbitmq", connect_timeout=10)
    transport = messaging.get_rpc_transport(make_conf(), url)
    try:
        client = messaging.get_rpc_client(transport, messaging.Target(topic="down"))
        for _ in range(2):  # the first attempt, then while the connection backs off
            started = time.monotonic()
            with pytest.raises(MessageDeliveryFailure) as failure:
                client.prepare(retry=0).cast({}, "anything")
            assert time.monotonic() - started < 2, "waited for connect_timeout (10 s)"
            assert "after 1 tries" in str(failure.value)
            assert "Connection refused" in str(failure.value)
        # Each retry waits for one more attempt (after the connection's backoff).
        started = time.monotonic()
        with pytest.raises(MessageDeliveryFailure, match="after 2 tries"):
            client.prepare(retry=1).cast({}, "anything")
        assert time.monotonic() - started < 10
    finally:
        transport.cleanup()


def test_failover_to_the_second_host_when_the_first_refuses(vhost: str) -> None:
    hosts = f"127.0.0.1:{closed_port()},{STOMP_HOST}:{STOMP_PORT}"
    connection = round_trip(stomp_url(hosts, vhost, **FAST))
    assert connection.generation == 1
    assert connection.server.startswith("RabbitMQ")


# -- TLS -------------------------------------------------------------------------------------


@contextlib.contextmanager
def tls_proxy(server: KeyPair, client_ca: Any = None) -> Iterator[TlsProxy]:
    """A TLS-terminating proxy in front of RabbitMQ's STOMP port."""
    require_service(STOMP_HOST, STOMP_PORT, "RabbitMQ's STOMP plugin")
    proxy = TlsProxy(server, (STOMP_HOST, STOMP_PORT), client_ca=client_ca)
    try:
        yield proxy
    finally:
        proxy.close()


def test_tls_with_a_verified_certificate(pki: Pki, vhost: str) -> None:  # noqa: F811
    with tls_proxy(pki.localhost) as proxy:
        url = stomp_url(f"127.0.0.1:{proxy.port}", vhost, ssl="true", ssl_ca_file=pki.ca.cert)
        round_trip(url)
        assert proxy.relayed >= 1
        assert proxy.handshake_errors == []
        assert all(version and version.startswith("TLS") for version in proxy.versions)


@pytest.mark.parametrize("case", ["another host's certificate", "an unknown CA"])
def test_tls_refuses_a_certificate_it_cannot_trust(
    pki: Pki,  # noqa: F811
    vhost: str,
    case: str,
) -> None:
    server, ca = (
        (pki.otherhost, pki.ca.cert)
        if case == "another host's certificate"
        else (pki.localhost, pki.rogue_ca.cert)
    )
    with tls_proxy(server) as proxy:
        url = stomp_url(
            f"127.0.0.1:{proxy.port}", vhost, ssl="true", ssl_ca_file=ca, flavor="rabbitmq", **FAST
        )
        assert "Unable to send" in refused(url)
        assert proxy.relayed == 0
        assert proxy.handshake_errors, "the client did not even try a handshake"


def test_tls_client_certificate_is_presented_when_required(pki: Pki, vhost: str) -> None:  # noqa: F811
    with tls_proxy(pki.localhost, client_ca=pki.ca.cert) as proxy:
        base = {"ssl": "true", "ssl_ca_file": pki.ca.cert}
        without = stomp_url(f"127.0.0.1:{proxy.port}", vhost, flavor="rabbitmq", **base, **FAST)
        assert "Unable to send" in refused(without)
        assert proxy.relayed == 0
        with_cert = stomp_url(
            f"127.0.0.1:{proxy.port}",
            vhost,
            ssl_cert_file=pki.client.cert,
            ssl_key_file=pki.client.key,
            **base,
        )
        round_trip(with_cert)
        assert proxy.relayed >= 1
