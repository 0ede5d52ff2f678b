"""TransportURL.parse, rendering and equality (reference §1.2)."""

from __future__ import annotations

import logging

import pytest
from oslo_config import cfg

from messaging.conf import register_transport_opts
from messaging.exceptions import InvalidTransportURL
from messaging.transport import TransportHost, TransportURL


def parse(url: str | None) -> TransportURL:
    return TransportURL.parse(cfg.ConfigOpts(), url)


def test_several_hosts_with_credentials_and_vhost() -> None:
    url = parse("rabbit://u1:p1@h1:5672,u2:p2@h2:5673/vh")
    assert url.transport == "rabbit"
    assert url.driver_name == "rabbit"
    assert url.virtual_host == "vh"
    assert url.hosts == [
        TransportHost("h1", 5672, "u1", "p1"),
        TransportHost("h2", 5673, "u2", "p2"),
    ]
    assert url.query == {}


def test_credentials_are_percent_decoded() -> None:
    url = parse("rabbit://a%40b:p%3Aw%2Fd@host:5672/")
    (host,) = url.hosts
    assert host.username == "a@b"
    assert host.password == "p:w/d"
    assert host.hostname == "host"
    assert host.port == 5672
    assert url.virtual_host == ""


def test_password_may_contain_at_sign_split_at_last_one() -> None:
    (host,) = parse("rabbit://user:p@ss@host").hosts
    assert (host.username, host.password, host.hostname) == ("user", "p@ss", "host")


def test_user_without_password() -> None:
    (host,) = parse("rabbit://user@host").hosts
    assert (host.username, host.password) == ("user", None)


def test_mixed_credentials_parse_and_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="messaging.transport"):
        url = parse("rabbit://u:p@h1,h2:5673")
    assert url.hosts == [TransportHost("h1", None, "u", "p"), TransportHost("h2", 5673)]
    assert any("credentials" in record.getMessage() for record in caplog.records)


def test_same_credentials_everywhere_do_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="messaging.transport"):
        parse("rabbit://u:p@h1,u:p@h2")
    assert caplog.records == []


@pytest.mark.parametrize(
    ("text", "hostname", "port"),
    [
        ("rabbit://[::1]:5673", "::1", 5673),
        ("rabbit://[::1]", "::1", None),
        ("rabbit://u:p@[fe80::1]:15672/", "fe80::1", 15672),
        ("rabbit://h1", "h1", None),
        ("rabbit://h1:5672", "h1", 5672),
    ],
)
def test_host_and_port(text: str, hostname: str, port: int | None) -> None:
    (host,) = parse(text).hosts
    assert (host.hostname, host.port) == (hostname, port)


@pytest.mark.parametrize(
    ("text", "vhost"),
    [
        ("rabbit://h1", None),
        ("rabbit:///", ""),
        ("rabbit://h1/", ""),
        ("rabbit://u:p@h:5672//", "/"),
        ("rabbit://h1/my%2Fvhost", "my/vhost"),
        ("rabbit://h1/%2F", "/"),
        ("rabbit://h1/nova", "nova"),
    ],
)
def test_virtual_host_forms(text: str, vhost: str | None) -> None:
    assert parse(text).virtual_host == vhost


def test_query_multi_values_joined_with_comma() -> None:
    # Blank values are dropped, as oslo.messaging's parser drops them.
    url = parse("rabbit://h1/vh?a=1&b=x&a=2&empty=")
    assert url.query == {"a": "1,2", "b": "x"}
    assert url.virtual_host == "vh"
    assert url.hosts == [TransportHost("h1")]


def test_query_without_path() -> None:
    url = parse("rabbit://h1:5672?heartbeat_timeout_threshold=30")
    assert url.query == {"heartbeat_timeout_threshold": "30"}
    assert url.hosts == [TransportHost("h1", 5672)]
    assert url.virtual_host is None


def test_fake_single_slash() -> None:
    url = parse("fake:/")
    assert url.transport == "fake"
    assert url.hosts == []
    assert url.virtual_host == ""


def test_fake_double_slash() -> None:
    url = parse("fake://")
    assert url.transport == "fake"
    assert url.hosts == []
    assert url.virtual_host is None


def test_kombu_plus_scheme_driver_name_is_before_plus() -> None:
    url = parse("kombu+memory:////")
    assert url.transport == "kombu+memory"
    assert url.driver_name == "kombu"
    assert url.hosts == []
    assert url.virtual_host == "/"


@pytest.mark.parametrize("bad", [42, b"rabbit://h", ["rabbit://h"]])
def test_non_string_url_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidTransportURL, match="Wrong URL type") as info:
        TransportURL.parse(cfg.ConfigOpts(), bad)  # type: ignore[arg-type]
    assert info.value.url == bad


@pytest.mark.parametrize("bad", ["just-a-host", "//h1:5672/vh"])
def test_url_without_scheme_is_rejected(bad: str) -> None:
    with pytest.raises(InvalidTransportURL, match=r"No scheme|Invalid scheme") as info:
        parse(bad)
    assert bad in str(info.value)


@pytest.mark.parametrize("port", ["99999", "abc", "0", "-1"])
def test_bad_port_is_rejected_naming_it(port: str) -> None:
    text = f"rabbit://u:p@h:{port}/"
    with pytest.raises(InvalidTransportURL, match="port") as info:
        parse(text)
    assert repr(port) in str(info.value)
    assert info.value.url == text


@pytest.mark.parametrize("bad", ["rabbit:h1:5672", "localhost:5672"])
def test_scheme_without_slashes_before_a_host_is_rejected(bad: str) -> None:
    with pytest.raises(InvalidTransportURL, match="lacks '//'") as info:
        parse(bad)
    assert bad in str(info.value)


def test_unclosed_ipv6_bracket_is_rejected() -> None:
    with pytest.raises(InvalidTransportURL, match="IPv6"):
        parse("rabbit://[::1:5672/")


@pytest.mark.parametrize(
    "text",
    [
        "rabbit://u1:p1@h1:5672,u2:p2@h2:5673/vh",
        "rabbit://a%40b:p%3Aw%2Fd@host:5672/",
        "rabbit://[::1]:5673,[fe80::2]/",
        "rabbit://u:p@h:5672//",
        "rabbit://h1/my%2Fvhost?a=1&a=2&b=x",
        "rabbit://h1",
        "rabbit:///",
        "kombu+memory:////",
        "fake://",
    ],
    ids=lambda text: text.replace("memory", "mem"),  # kept by `-k 'not memory'`
)
def test_to_string_with_passwords_round_trips(text: str) -> None:
    url = parse(text)
    again = parse(url.to_string(include_password=True))
    # oslo.messaging's format writes no virtual host and an empty one alike.
    assert (again.transport, again.hosts, again.query) == (url.transport, url.hosts, url.query)
    assert (again.virtual_host or None) == (url.virtual_host or None)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("rabbit://", "rabbit:///"),
        ("rabbit:///", "rabbit:///"),
        ("rabbit://u:p@h:5672//", "rabbit://u:****@h:5672//"),
        ("rabbit://b%24:s%26@host:10//%24", "rabbit://b%24:****@host:10//%24"),
        ("rabbit://u1:p1@h1:1000,u2:p2@h2:2000/", "rabbit://u1:****@h1:1000,u2:****@h2:2000/"),
        ("rabbit://h1/vh?a=1", "rabbit://h1/vh?a=1"),
        ("rabbit://[::1]:5673/", "rabbit://[::1]:5673/"),
    ],
)
def test_str_is_oslos_format_with_passwords_masked(text: str, shown: str) -> None:
    assert str(parse(text)) == shown


def test_repr_and_redacted_hide_passwords() -> None:
    url = parse("rabbit://user:s3cret@h1:5672,other:t0psecret@h2/vh")
    for text in (repr(url), url.redacted(), repr(url.hosts[0])):
        assert "s3cret" not in text
        assert "t0psecret" not in text
    assert "user" in url.redacted()
    assert "h2" in repr(url)
    assert "s3cret" not in str(url)
    assert "s3cret" in url.to_string(include_password=True)


def test_equality_ignores_query_but_not_hosts_or_vhost() -> None:
    base = parse("rabbit://u:p@h1:5672/vh?a=1")
    assert base == parse("rabbit://u:p@h1:5672/vh?b=2")
    assert hash(base) == hash(parse("rabbit://u:p@h1:5672/vh"))
    assert base != parse("rabbit://u:p@h1:5673/vh")
    assert base != parse("rabbit://u:p@h1:5672/other")
    assert base != parse("rabbit://u:other@h1:5672/vh")
    assert base != parse("kombu://u:p@h1:5672/vh")


def test_none_reads_default_transport_url_from_conf() -> None:
    conf = cfg.ConfigOpts()
    conf([])
    default = TransportURL.parse(conf)
    assert default.transport == "rabbit"
    assert default.hosts == []
    conf.set_override("transport_url", "rabbit://u:p@broker:5672/vh")
    url = TransportURL.parse(conf)
    assert url.hosts == [TransportHost("broker", 5672, "u", "p")]
    assert url.virtual_host == "vh"
    assert url.conf is conf


def test_empty_string_reads_conf_as_oslo_does() -> None:
    conf = cfg.ConfigOpts()
    register_transport_opts(conf)
    conf([])
    conf.set_override("transport_url", "fake://")
    assert TransportURL.parse(conf, "").transport == "fake"


def test_no_url_and_no_conf_is_a_clear_error() -> None:
    with pytest.raises(InvalidTransportURL, match="No transport URL"):
        TransportURL.parse(None)


def test_a_query_value_may_hold_a_slash() -> None:
    url = parse("kombu+filesystem://?data_folder_in=/var/bus/in")
    assert url.hosts == []
    assert url.virtual_host is None
    assert url.query == {"data_folder_in": "/var/bus/in"}
    url = parse("rabbit://h1/vh?ssl_ca_file=/etc/ca.pem")
    assert url.virtual_host == "vh"
    assert url.query == {"ssl_ca_file": "/etc/ca.pem"}
