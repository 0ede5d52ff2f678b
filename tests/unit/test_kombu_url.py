"""``kombu+<transport>://`` URLs: translation to kombu's URL and options, and their errors."""

from __future__ import annotations

from typing import Any

import pytest
from kombu.transport import virtual
from oslo_config import cfg

import messaging
from messaging.drivers.base import Capabilities
from messaging.drivers.kombu_transport import KombuDriver, options
from messaging.drivers.kombu_transport.options import KombuSettings, kombu_url
from messaging.exceptions import DriverLoadFailure, InvalidTransportURL
from messaging.transport import TransportURL


def parse(url: str) -> TransportURL:
    return TransportURL.parse(cfg.ConfigOpts(), url)


def settings(url: str) -> KombuSettings:
    return KombuSettings.from_url(parse(url))


# -- the kombu URL ------------------------------------------------------------------------


def test_redis_host_port_and_database() -> None:
    got = settings("kombu+redis://127.0.0.1:6379/0")
    assert got.transport == "redis"
    assert got.url == "redis://127.0.0.1:6379/0"
    assert got.transport_options == {}


def test_credentials_are_quoted_again() -> None:
    url = parse("kombu+redis://us%40er:p%3Aw%2Fd@redis.example:6380/2")
    assert kombu_url(url, "redis") == "redis://us%40er:p%3Aw%2Fd@redis.example:6380/2"


def test_password_only() -> None:
    assert settings("kombu+redis://:secret@h:6379/1").url == "redis://:secret@h:6379/1"


def test_several_hosts_become_kombu_failover_urls() -> None:
    got = settings("kombu+redis://a:1@h1:6379,h2:6380/3")
    assert got.url == "redis://a:1@h1:6379/3;redis://h2:6380/3"


def test_ipv6_host_is_bracketed() -> None:
    assert settings("kombu+redis://[::1]:6379/0").url == "redis://[::1]:6379/0"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("kombu+memory://", "memory://"),
        ("kombu+memory:///", "memory://"),
        ("kombu+memory:///vh", "memory:///vh"),
    ],
)
def test_url_without_hosts(url: str, expected: str) -> None:
    assert settings(url).url == expected


def test_bare_kombu_means_amqp() -> None:
    got = settings("kombu://guest:guest@127.0.0.1:5672/vh")
    assert got.transport == "amqp"
    assert got.url == "amqp://guest:guest@127.0.0.1:5672/vh"
    assert got.virtual is False
    assert got.transport_options == {"confirm_publish": True}


def test_redacted_url_hides_the_password() -> None:
    got = settings("kombu+redis://user:secret@h:6379/0")
    assert "secret" not in got.redacted
    assert got.redacted.startswith("kombu+redis://user:****@h:6379")


# -- errors ---------------------------------------------------------------------------------


def test_nothing_after_the_plus() -> None:
    with pytest.raises(InvalidTransportURL, match=r"No kombu transport after 'kombu\+'"):
        settings("kombu+://h/")


def test_unknown_transport_is_named_with_a_suggestion() -> None:
    with pytest.raises(InvalidTransportURL, match=r"Unknown kombu transport 'rediz'.*redis"):
        settings("kombu+rediz://h:6379/0")


def test_transport_whose_library_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str) -> Any:
        raise ImportError("No module named 'pymongo'")

    monkeypatch.setattr("kombu.transport.resolve_transport", broken)
    with pytest.raises(DriverLoadFailure, match=r"'mongodb' cannot be loaded.*pymongo") as caught:
        settings("kombu+mongodb://h/db")
    assert isinstance(caught.value.__cause__, ImportError)


def test_redis_database_must_be_a_number() -> None:
    with pytest.raises(InvalidTransportURL, match="Redis database number, not 'cache'"):
        settings("kombu+redis://h:6379/cache")


def test_unknown_query_key_is_named_with_the_accepted_ones() -> None:
    with pytest.raises(InvalidTransportURL) as caught:
        settings("kombu+redis://h:6379/0?visibilty_timeout=10")
    message = str(caught.value)
    assert "'visibilty_timeout'" in message
    assert "is unknown for the kombu transport 'redis'" in message
    assert "visibility_timeout" in message.split("accepted:")[1]
    assert "prefetch_count" in message.split("accepted:")[1]


def test_option_of_another_transport_is_refused() -> None:
    with pytest.raises(InvalidTransportURL, match=r"'visibility_timeout'.*'memory'"):
        settings("kombu+memory://?visibility_timeout=10")


def test_option_that_a_url_cannot_hold() -> None:
    with pytest.raises(InvalidTransportURL, match=r"'socket_keepalive_options'.*cannot be given"):
        settings("kombu+redis://h:6379/0?socket_keepalive_options=1")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("fanout_patterns=maybe", "Bad value 'maybe' for option 'fanout_patterns'"),
        ("visibility_timeout=soon", "Bad value 'soon' for option 'visibility_timeout'"),
        ("prefetch_count=x", "Bad value 'x' for option 'prefetch_count'"),
        ("prefetch_count=0", "prefetch_count must be at least 1"),
    ],
)
def test_bad_values(query: str, message: str) -> None:
    with pytest.raises(InvalidTransportURL, match=message):
        settings(f"kombu+redis://h:6379/0?{query}")


# -- options ---------------------------------------------------------------------------------


def test_transport_options_are_converted_by_type() -> None:
    got = settings(
        "kombu+redis://h:6379/0?visibility_timeout=600&fanout_patterns=false"
        "&global_keyprefix=123&priority_steps=0,5,9&max_connections=20"
    )
    assert got.transport_options == {
        "visibility_timeout": 600.0,
        "fanout_patterns": False,
        "global_keyprefix": "123",
        "priority_steps": [0, 5, 9],
        "max_connections": 20,
    }


def test_driver_options_stay_with_the_driver() -> None:
    got = settings(
        "kombu+redis://h:6379/0?prefetch_count=5&connect_timeout=2"
        "&interval_start=0.5&interval_step=1&interval_max=4"
    )
    assert got.transport_options == {}
    assert (got.prefetch_count, got.connect_timeout) == (5, 2.0)
    assert [got.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.5, 2.5, 3.5, 4.0]


def test_memory_polls_often_unless_told() -> None:
    assert settings("kombu+memory://").transport_options == {"polling_interval": 0.01}
    assert settings("kombu+memory://").poll_interval == 0.01
    polled = settings("kombu+memory://?polling_interval=0.5")
    assert polled.transport_options == {"polling_interval": 0.5}
    assert polled.poll_interval == 0.5


def test_redis_waits_for_the_server_instead_of_polling() -> None:
    assert settings("kombu+redis://h:6379/0").poll_interval is None
    assert settings("kombu+redis://h:6379/0?polling_interval=0.2").poll_interval is None


def test_broker_key_follows_url_and_transport_options() -> None:
    first = settings("kombu+redis://h:6379/0?global_keyprefix=a")
    assert first.broker_key() == settings("kombu+redis://h:6379/0?global_keyprefix=a").broker_key()
    assert first.broker_key() != settings("kombu+redis://h:6379/0?global_keyprefix=b").broker_key()
    assert first.broker_key() != settings("kombu+redis://h:6379/1?global_keyprefix=a").broker_key()


# -- capabilities ------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["kombu+memory://", "kombu+redis://h:6379/0", "kombu://h/"])
def test_transports_with_fanout(url: str) -> None:
    got = settings(url)
    assert got.capabilities == Capabilities(requeue=True, pools=True, fanout=True, rpc=True)
    assert got.exchange_type == "topic"


class _DirectOnlyChannel(virtual.Channel):
    supports_fanout = False


class _DirectOnlyTransport(virtual.Transport):
    Channel = _DirectOnlyChannel
    implements = virtual.Transport.implements.extend(exchange_type=frozenset(["direct"]))


def test_transport_without_fanout_or_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kombu.transport.resolve_transport", lambda name: _DirectOnlyTransport)
    got = settings("kombu+directonly://h/")
    assert got.capabilities == Capabilities(requeue=True, pools=True, fanout=False, rpc=True)
    assert got.exchange_type == "direct"


# -- loading through the public API ----------------------------------------------------


def test_driver_is_loaded_by_the_name_before_the_plus() -> None:
    conf = cfg.ConfigOpts()
    transport = messaging.get_notification_transport(conf, "kombu+memory://")
    try:
        assert isinstance(transport.driver, KombuDriver)
        assert (
            transport.capabilities
            == options.KombuSettings.from_url(parse("kombu+memory://")).capabilities
        )
    finally:
        transport.cleanup()


def test_bad_url_fails_when_the_transport_is_made() -> None:
    with pytest.raises(InvalidTransportURL, match="'nope'"):
        messaging.get_rpc_transport(cfg.ConfigOpts(), "kombu+memory://?nope=1")


def test_options_not_typed_here_are_converted_by_their_look() -> None:
    got = settings("kombu+redis://h:6379/0?fanout_prefix=false&client_name=1&sep=x")
    assert got.transport_options == {"fanout_prefix": False, "client_name": "1", "sep": "x"}
    url = parse("kombu+memory://?body_encoding=base64&deadletter_queue=7")
    assert KombuSettings.from_url(url).transport_options["deadletter_queue"] == "7"
    assert options._by_look("1") == 1
    assert options._by_look("0.5") == 0.5
    assert options._by_look("on") is True
    assert options._by_look("/prefix.") == "/prefix."
