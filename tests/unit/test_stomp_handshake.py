"""How the STOMP driver opens a connection: versions and host headers, in order (no broker)."""

from __future__ import annotations

import pytest

from messaging.drivers.stomp.handshake import CONNECTED_HOST, Hello, hellos, worth_another_try
from tests.unit.test_stomp_options import settings


def attempts(url: str) -> list[tuple[str, str | None]]:
    return [(hello.version, hello.host) for hello in hellos(settings(url))]


def test_a_named_vhost_is_always_the_host_header() -> None:
    assert attempts("stomp://h1/vh") == [("1.2", "vh"), ("1.1", "vh")]
    assert attempts("stomp://h1//?stomp_version=1.1") == [("1.1", "/")]


def test_without_a_vhost_the_host_name_comes_first_then_no_header() -> None:
    assert attempts("stomp://h1") == [
        ("1.2", CONNECTED_HOST),
        ("1.2", None),
        ("1.1", CONNECTED_HOST),
        ("1.1", None),
    ]


def test_rabbitmq_flavor_without_a_vhost_sends_no_host_header() -> None:
    # RabbitMQ takes the header for a virtual host: none means its default one.
    assert attempts("stomp://h1/?flavor=rabbitmq") == [("1.2", None), ("1.1", None)]


def test_the_connected_host_is_named_when_asked_for() -> None:
    assert Hello("1.2", CONNECTED_HOST).host_header("mq2.example.org") == "mq2.example.org"
    assert Hello("1.2", "vh").host_header("mq2.example.org") == "vh"
    assert Hello("1.1", None).host_header("mq2.example.org") is None


@pytest.mark.parametrize(
    ("refusal", "again"),
    [
        ("Bad CONNECT Virtual host 'mq1' access denied", True),  # RabbitMQ
        ("Virtual hosting is not supported or host is unknown", True),  # CoilMQ 1.2
        ("Supported protocol versions are 1.0 1.1", True),
        ("Bad CONNECT Access refused for user 'guest'", False),
    ],
)
def test_only_version_and_host_refusals_are_worth_another_try(refusal: str, again: bool) -> None:
    assert worth_another_try(refusal) is again
