"""``[oslo_messaging_stomp]`` options and the STOMP driver's URL query overrides (no broker)."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from messaging.drivers.stomp.options import DEFAULT_PORT, StompSettings
from messaging.exceptions import ConfigurationError, InvalidTransportURL
from messaging.transport import TransportURL


def settings(url: str) -> StompSettings:
    conf = cfg.ConfigOpts()
    conf([], project="messaging-test", default_config_files=[], default_config_dirs=[])
    return StompSettings.from_conf(conf, TransportURL.parse(conf, url))


def test_defaults_and_url_parts() -> None:
    got = settings("stomp://u:s3cret@h1,h2:61614/vh")
    assert got.hosts == (("h1", DEFAULT_PORT), ("h2", 61614))
    assert (got.username, got.password, got.vhost) == ("u", "s3cret", "vh")
    assert (got.flavor, got.stomp_version, got.heartbeat_send) == ("auto", "1.2", 10000)
    assert "s3cret" not in got.redacted


@pytest.mark.parametrize("url", ["stomp://h1", "stomp://h1/"])
def test_no_credentials_or_path_gives_guest_and_no_vhost(url: str) -> None:
    got = settings(url)
    assert (got.username, got.password, got.vhost) == ("guest", "guest", None)


@pytest.mark.parametrize("url", ["stomp://h1//", "stomp://h1/%2F"])
def test_root_vhost_is_named_with_an_escaped_or_double_slash(url: str) -> None:
    assert settings(url).vhost == "/"


def test_query_overrides_are_converted() -> None:
    got = settings(
        "stomp://h1/?flavor=generic&heartbeat_send=0&send_timeout=2.5&ssl=true"
        "&reply_queue_expiry=60"
    )
    assert (got.flavor, got.heartbeat_send, got.send_timeout, got.ssl) == (
        "generic",
        0,
        2.5,
        True,
    )
    assert got.reply_queue_expiry == 60.0


def test_unknown_query_key_is_named() -> None:
    with pytest.raises(InvalidTransportURL, match="no_such_option"):
        settings("stomp://h1/?no_such_option=1")


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("flavor=activemq", "flavor"),
        ("stomp_version=1.0", "stomp_version"),
        ("heartbeat_send=x", "heartbeat_send"),
    ],
)
def test_bad_query_value_is_named(query: str, named: str) -> None:
    with pytest.raises(InvalidTransportURL, match=named):
        settings(f"stomp://h1/?{query}")


def test_interval_max_below_interval_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="reconnect_interval_max"):
        settings("stomp://h1/?reconnect_interval=5&reconnect_interval_max=1")


def test_backoff_doubles_up_to_the_maximum() -> None:
    got = settings("stomp://h1/?reconnect_interval=1&reconnect_interval_max=5")
    assert [got.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
