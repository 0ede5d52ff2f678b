"""RabbitMQ over real TLS: certificates, host name checks and client certificates.

The local broker speaks plain AMQP, so each test puts a TLS-terminating proxy
(:class:`~tests.drivers.tls_support.TlsProxy`) in front of it and points the
driver at the proxy with ``?ssl=true&ssl_ca_file=...``. The certificates come
from a throwaway CA made with ``openssl`` once for the module.
"""

from __future__ import annotations

import dataclasses
import logging
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import messaging
from messaging.exceptions import MessageDeliveryFailure
from tests.brokers import RABBIT_HOST, RABBIT_PORT, rabbit_vhost, require_rabbitmq
from tests.drivers.test_rabbit_resilience import Adder, Counter, make_conf
from tests.drivers.tls_support import CertificateAuthority, KeyPair, TlsProxy

pytestmark = pytest.mark.broker
TIMEOUT = 20.0
#: A call that cannot connect fails within this many seconds (with retry=0, at once).
FAILING_CALL_TIMEOUT = 5.0
DRIVER_LOGGER = "messaging.drivers.rabbit"

StartProxy = Callable[..., TlsProxy]


@dataclasses.dataclass(frozen=True)
class Pki:
    """The module's certificates, all from one CA but ``rogue_ca``."""

    ca: CertificateAuthority
    localhost: KeyPair  # SAN DNS:localhost, IP:127.0.0.1
    otherhost: KeyPair  # SAN DNS:otherhost only
    client: KeyPair
    rogue_ca: CertificateAuthority  # signed none of the above


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.create(directory, "test")
    return Pki(
        ca=ca,
        localhost=ca.issue("localhost", "localhost", ["localhost", "127.0.0.1"]),
        otherhost=ca.issue("otherhost", "otherhost", ["otherhost"]),
        client=ca.issue("client", "messaging-test-client"),
        rogue_ca=CertificateAuthority.create(directory, "rogue"),
    )


@pytest.fixture
def vhost() -> Iterator[str]:
    with rabbit_vhost("messaging-tls") as name:
        yield name


@pytest.fixture
def start_proxy() -> Iterator[StartProxy]:
    """Start TLS proxies in front of the broker; all are closed after the test."""
    require_rabbitmq(RABBIT_HOST, RABBIT_PORT)
    proxies: list[TlsProxy] = []

    def start(server: KeyPair, client_ca: Path | None = None) -> TlsProxy:
        proxy = TlsProxy(server, (RABBIT_HOST, RABBIT_PORT), client_ca=client_ca)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()


def tls_url(host: str, proxy: TlsProxy, vhost: str, **options: str | Path) -> str:
    """A ``rabbit://`` URL to ``host:<proxy port>`` with ``ssl=true`` and ``options``."""
    query = urllib.parse.urlencode({"ssl": "true", **{k: str(v) for k, v in options.items()}})
    path = urllib.parse.quote(vhost, safe="")
    return f"rabbit://guest:guest@{host}:{proxy.port}/{path}?{query}"


def notify_and_call(url: str) -> None:
    """Send a notification and make an RPC call over ``url``; both must get through."""
    conf = make_conf()
    rpc = messaging.get_rpc_transport(conf, url)
    notifications = messaging.get_notification_transport(conf, url)
    topic = f"tls-{uuid.uuid4().hex}"
    server = messaging.get_rpc_server(rpc, messaging.Target(topic=topic, server="s1"), [Adder()])
    counter = Counter()
    listener = messaging.get_notification_listener(
        notifications, [messaging.Target(topic=topic)], [counter]
    )
    server.start()
    listener.start()
    try:
        notifier = messaging.Notifier(notifications, "tls", driver="messagingv2", topics=[topic])
        notifier.info({}, "tls.test", {"n": 7})
        client = messaging.get_rpc_client(rpc, messaging.Target(topic=topic), timeout=TIMEOUT)
        assert client.call({}, "add", a=2, b=3) == 5
        counter.wait_distinct(1, TIMEOUT)
        assert dict(counter.seen) == {7: 1}
    finally:
        for srv in (server, listener):
            srv.stop()
            srv.wait()
        rpc.cleanup()
        notifications.cleanup()


def failing_call(url: str, caplog: pytest.LogCaptureFixture) -> tuple[str, str]:
    """Make a call with ``retry=0`` that must fail to connect.

    Returns:
        The error's message and the driver's ERROR log lines.
    """
    rpc = messaging.get_rpc_transport(make_conf(), url)
    try:
        client = messaging.get_rpc_client(rpc, messaging.Target(topic=f"tls-{uuid.uuid4().hex}"))
        with (
            caplog.at_level(logging.ERROR, logger=DRIVER_LOGGER),
            pytest.raises(MessageDeliveryFailure) as failure,
        ):
            client.prepare(timeout=FAILING_CALL_TIMEOUT, retry=0).call({}, "add", a=1, b=1)
    finally:
        rpc.cleanup()
    logged = "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(DRIVER_LOGGER) and r.levelno >= logging.ERROR
    )
    return str(failure.value), logged


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_notifications_and_calls_over_tls_with_a_verified_certificate(
    host: str, pki: Pki, vhost: str, start_proxy: StartProxy
) -> None:
    """The certificate names both, so the host name check passes either way."""
    proxy = start_proxy(pki.localhost)
    notify_and_call(tls_url(host, proxy, vhost, ssl_ca_file=pki.ca.cert))
    assert proxy.relayed >= 1
    assert proxy.handshake_errors == []
    assert set(proxy.versions) == {"TLSv1.3"}  # nothing forced: the best both sides know


@pytest.mark.parametrize(
    ("host", "mismatch"), [("localhost", "Hostname mismatch"), ("127.0.0.1", "IP address mismatch")]
)
def test_a_certificate_for_another_host_is_refused(
    host: str,
    mismatch: str,
    pki: Pki,
    vhost: str,
    start_proxy: StartProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = start_proxy(pki.otherhost)
    error, logged = failing_call(tls_url(host, proxy, vhost, ssl_ca_file=pki.ca.cert), caplog)
    for text in (error, logged):
        assert "CERTIFICATE_VERIFY_FAILED" in text
        assert f"{mismatch}, certificate is not valid for '{host}'" in text
    assert proxy.relayed == 0


def test_another_hosts_certificate_passes_without_hostname_verification(
    pki: Pki, vhost: str, start_proxy: StartProxy
) -> None:
    """The chain is still checked against the CA; only the name is not."""
    proxy = start_proxy(pki.otherhost)
    url = tls_url(
        "127.0.0.1",
        proxy,
        vhost,
        ssl_ca_file=pki.ca.cert,
        ssl_enforce_hostname_verification="false",
    )
    notify_and_call(url)
    assert proxy.relayed >= 1


@pytest.mark.filterwarnings("ignore:ssl.PROTOCOL_TLSv1_2 is deprecated:DeprecationWarning")
def test_ssl_version_forces_the_protocol(pki: Pki, vhost: str, start_proxy: StartProxy) -> None:
    proxy = start_proxy(pki.localhost)
    url = tls_url("localhost", proxy, vhost, ssl_ca_file=pki.ca.cert, ssl_version="TLSv1_2")
    notify_and_call(url)
    assert proxy.versions and set(proxy.versions) == {"TLSv1.2"}


def test_without_a_ca_file_the_certificate_is_still_checked_against_the_system_cas(
    pki: Pki, vhost: str, start_proxy: StartProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """py-amqp 5 verifies against the default trust store: TLS is never silently unverified."""
    proxy = start_proxy(pki.localhost)
    error, logged = failing_call(tls_url("localhost", proxy, vhost), caplog)
    for text in (error, logged):
        assert "CERTIFICATE_VERIFY_FAILED" in text
    assert proxy.relayed == 0


def test_a_certificate_from_an_unknown_ca_is_refused(
    pki: Pki, vhost: str, start_proxy: StartProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = start_proxy(pki.localhost)
    url = tls_url(
        "localhost",
        proxy,
        vhost,
        ssl_ca_file=pki.rogue_ca.cert,
        ssl_enforce_hostname_verification="false",  # the chain alone must fail it
    )
    error, logged = failing_call(url, caplog)
    for text in (error, logged):
        assert "CERTIFICATE_VERIFY_FAILED" in text
        assert "unable to get local issuer certificate" in text
    assert proxy.relayed == 0


def test_a_proxy_requiring_a_client_certificate_accepts_ours(
    pki: Pki, vhost: str, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(pki.localhost, client_ca=pki.ca.cert)
    url = tls_url(
        "localhost",
        proxy,
        vhost,
        ssl_ca_file=pki.ca.cert,
        ssl_cert_file=pki.client.cert,
        ssl_key_file=pki.client.key,
    )
    notify_and_call(url)
    assert proxy.relayed >= 1
    assert proxy.handshake_errors == []


def test_a_proxy_requiring_a_client_certificate_refuses_a_client_without_one(
    pki: Pki, vhost: str, start_proxy: StartProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = start_proxy(pki.localhost, client_ca=pki.ca.cert)
    error, logged = failing_call(
        tls_url("localhost", proxy, vhost, ssl_ca_file=pki.ca.cert), caplog
    )
    assert "Unable to connect" in error
    assert "unreachable" in logged
    assert proxy.relayed == 0
    assert proxy.handshake_errors, "the proxy saw no failed handshake"
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in str(proxy.handshake_errors[0])
