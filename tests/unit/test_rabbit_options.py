"""Options, settings, TLS parameters and broker identity of the RabbitMQ driver.

Facts (names, types, defaults, bounds) are oslo.messaging 18.x's
``[oslo_messaging_rabbit]`` group, from the reference notes.
"""

from __future__ import annotations

import dataclasses
import inspect
import ssl
from pathlib import Path
from typing import Any

import pytest
from amqp.transport import SSLTransport
from oslo_config import cfg

from messaging import conf as messaging_conf
from messaging.drivers.rabbit import options
from messaging.drivers.rabbit.options import (
    OSLO_RABBIT_GROUP,
    RABBIT_GROUP,
    BrokerHost,
    RabbitSettings,
    broker_hosts,
    broker_key,
    rabbit_opts,
    ssl_options,
    ssl_options_for_host,
    ssl_protocol,
)
from messaging.exceptions import ConfigurationError, InvalidTransportURL
from messaging.transport import TransportHost, TransportURL

# name -> (oslo.config type, default) as oslo.messaging 18.x declares them
OSLO_DEFAULTS: dict[str, tuple[type[cfg.Opt], Any]] = {
    "amqp_durable_queues": (cfg.BoolOpt, False),
    "amqp_auto_delete": (cfg.BoolOpt, False),
    "rpc_conn_pool_size": (cfg.IntOpt, 30),
    "conn_pool_min_size": (cfg.IntOpt, 2),
    "conn_pool_ttl": (cfg.IntOpt, 1200),
    "ssl": (cfg.BoolOpt, False),
    "ssl_version": (cfg.StrOpt, ""),
    "ssl_key_file": (cfg.StrOpt, ""),
    "ssl_cert_file": (cfg.StrOpt, ""),
    "ssl_ca_file": (cfg.StrOpt, ""),
    "ssl_enforce_hostname_verification": (cfg.BoolOpt, True),
    "ssl_enforce_fips_mode": (cfg.BoolOpt, False),
    "kombu_reconnect_delay": (cfg.FloatOpt, 1.0),
    "kombu_reconnect_splay": (cfg.FloatOpt, 0.0),
    "kombu_compression": (cfg.StrOpt, None),
    "kombu_missing_consumer_retry_timeout": (cfg.IntOpt, 60),
    "kombu_failover_strategy": (cfg.StrOpt, "round-robin"),
    "rabbit_login_method": (cfg.StrOpt, "AMQPLAIN"),
    "rabbit_retry_interval": (cfg.IntOpt, 1),
    "rabbit_retry_backoff": (cfg.IntOpt, 2),
    "rabbit_interval_max": (cfg.IntOpt, 30),
    "rabbit_ha_queues": (cfg.BoolOpt, False),
    "rabbit_quorum_queue": (cfg.BoolOpt, False),
    "rabbit_transient_quorum_queue": (cfg.BoolOpt, False),
    "rabbit_quorum_delivery_limit": (cfg.IntOpt, 0),
    "rabbit_quorum_max_memory_length": (cfg.IntOpt, 0),
    "rabbit_quorum_max_memory_bytes": (cfg.IntOpt, 0),
    "rabbit_transient_queues_ttl": (cfg.IntOpt, 1800),
    "rabbit_qos_prefetch_count": (cfg.IntOpt, 0),
    "heartbeat_timeout_threshold": (cfg.IntOpt, 60),
    "heartbeat_rate": (cfg.IntOpt, 3),
    "direct_mandatory_flag": (cfg.BoolOpt, True),
    "enable_cancel_on_failover": (cfg.BoolOpt, False),
    "use_queue_manager": (cfg.BoolOpt, False),
    "rabbit_stream_fanout": (cfg.BoolOpt, False),
}
OUR_OPTIONS = {
    "notification_pipeline_depth": 1000,
    "notification_pipeline_bytes": 32 * 1024 * 1024,
    "publish_confirm_timeout": 30.0,
    "rabbit_auto_quorum": True,
}


def by_name() -> dict[str, cfg.Opt]:
    return {opt.name: opt for opt in rabbit_opts()}


def load(tmp_path: Path, text: str = "") -> cfg.ConfigOpts:
    path = tmp_path / "service.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    options.register_rabbit_opts(conf)
    conf(args=["--config-file", str(path)])
    return conf


def settings_for(tmp_path: Path, text: str = "", url: str = "rabbit://h1/") -> RabbitSettings:
    conf = load(tmp_path, text)
    return RabbitSettings.from_conf(conf, TransportURL.parse(conf, url))


# -- option definitions --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OSLO_DEFAULTS))
def test_option_keeps_oslo_name_type_and_default(name: str) -> None:
    kind, default = OSLO_DEFAULTS[name]
    opt = by_name()[name]
    assert type(opt) is kind
    assert opt.default == default


def test_hostname_and_processname_default_to_this_process() -> None:
    import os
    import socket
    import sys

    opts = by_name()
    assert opts["hostname"].default == socket.gethostname()
    assert opts["processname"].default == os.path.basename(sys.argv[0])
    # a generated sample must not depend on the machine that generated it
    assert opts["hostname"].sample_default == "node1.example.com"
    assert opts["processname"].sample_default == "nova-api"


def test_our_own_options_and_no_others() -> None:
    opts = by_name()
    for name, default in OUR_OPTIONS.items():
        assert opts[name].default == default
        assert opts[name].help
    expected = set(OSLO_DEFAULTS) | set(OUR_OPTIONS) | {"hostname", "processname"}
    assert set(opts) == expected


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("rpc_conn_pool_size", 1, None),
        ("kombu_reconnect_delay", 0.0, 4.5),
        ("kombu_reconnect_splay", 0.0, None),
        ("rabbit_retry_interval", 1, None),
        ("rabbit_retry_backoff", 0, None),
        ("rabbit_interval_max", 1, None),
        ("rabbit_transient_queues_ttl", 0, None),
        ("conn_pool_min_size", None, None),
        ("heartbeat_rate", None, None),
    ],
)
def test_option_bounds_match_oslo(name: str, low: float | None, high: float | None) -> None:
    opt_type = by_name()[name].type
    assert opt_type.min == low
    assert opt_type.max == high


@pytest.mark.parametrize(
    ("name", "choices"),
    [
        ("kombu_failover_strategy", ("round-robin", "shuffle")),
        ("rabbit_login_method", ("PLAIN", "AMQPLAIN", "EXTERNAL", "RABBIT-CR-DEMO")),
    ],
)
def test_option_choices_match_oslo(name: str, choices: tuple[str, ...]) -> None:
    assert tuple(by_name()[name].type.choices) == choices


def test_group_is_oslos_and_every_option_is_read_from_the_former_group() -> None:
    assert RABBIT_GROUP == OSLO_RABBIT_GROUP == "oslo_messaging_rabbit"
    for opt in rabbit_opts():
        aliases = {(d.name, d.group) for d in opt.deprecated_opts}
        assert (opt.name, "messaging_rabbit") in aliases, opt.name


def test_rabbit_opts_is_built_once() -> None:
    assert rabbit_opts() is rabbit_opts()


def test_list_opts_has_the_rabbit_group_as_copies() -> None:
    listed = dict(messaging_conf.list_opts())
    assert {opt.name for opt in listed[RABBIT_GROUP]} == set(by_name())
    assert {id(o) for o in listed[RABBIT_GROUP]}.isdisjoint(id(o) for o in rabbit_opts())


def test_settings_fields_are_exactly_the_options() -> None:
    assert {f.name for f in dataclasses.fields(RabbitSettings)} == {o.dest for o in rabbit_opts()}


def test_settings_defaults_equal_option_defaults(tmp_path: Path) -> None:
    assert settings_for(tmp_path) == RabbitSettings()


# -- reading a configuration ---------------------------------------------------------


def test_oslo_group_in_a_config_file_is_read(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        "[oslo_messaging_rabbit]\n"
        "rabbit_quorum_queue = true\n"
        "rabbit_quorum_delivery_limit = 5\n"
        "heartbeat_timeout_threshold = 10\n"
        "kombu_failover_strategy = shuffle\n"
        "ssl_enforce_fips_mode = true\n",
    )
    assert settings.rabbit_quorum_queue is True
    assert settings.rabbit_quorum_delivery_limit == 5
    assert settings.heartbeat_timeout_threshold == 10
    assert settings.kombu_failover_strategy == "shuffle"
    assert settings.ssl_enforce_fips_mode is True


def test_oslo_old_name_kombu_reconnect_timeout_is_read(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "[oslo_messaging_rabbit]\nkombu_reconnect_timeout = 7\n")
    assert settings.kombu_missing_consumer_retry_timeout == 7


def test_oslo_group_wins_over_the_former_group_name(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        "[oslo_messaging_rabbit]\nrabbit_qos_prefetch_count = 5\n"
        "[messaging_rabbit]\nrabbit_qos_prefetch_count = 9\nconn_pool_ttl = 10\n",
    )
    assert settings.rabbit_qos_prefetch_count == 5
    assert settings.conn_pool_ttl == 10


def test_out_of_bounds_value_in_a_file_is_refused(tmp_path: Path) -> None:
    conf = load(tmp_path, "[oslo_messaging_rabbit]\nkombu_reconnect_delay = 5.0\n")
    with pytest.raises(cfg.ConfigFileValueError, match="kombu_reconnect_delay"):
        RabbitSettings.from_conf(conf, TransportURL.parse(conf, "rabbit://h1/"))


def test_from_conf_registers_the_options_itself() -> None:
    conf = cfg.ConfigOpts()
    conf([])
    settings = RabbitSettings.from_conf(conf, TransportURL.parse(conf, "rabbit://h1/"))
    assert settings.heartbeat_rate == 3
    assert conf[RABBIT_GROUP].heartbeat_rate == 3


def test_query_parameters_override_with_conversion(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        "[oslo_messaging_rabbit]\nrabbit_qos_prefetch_count = 5\n",
        "rabbit://u:p@h1:5672/vh?rabbit_qos_prefetch_count=20&amqp_durable_queues=true"
        "&kombu_reconnect_delay=0.5&rabbit_login_method=PLAIN",
    )
    assert settings.rabbit_qos_prefetch_count == 20
    assert settings.amqp_durable_queues is True
    assert settings.kombu_reconnect_delay == 0.5
    assert settings.rabbit_login_method == "PLAIN"


def test_unknown_query_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidTransportURL) as info:
        settings_for(tmp_path, url="rabbit://u:secret@h1/?rabbit_quorum_queues=true")
    assert "'rabbit_quorum_queues'" in str(info.value)
    assert "rabbit_quorum_queue" in str(info.value)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    "query", ["kombu_reconnect_delay=9", "rabbit_login_method=plain", "heartbeat_rate=x"]
)
def test_bad_query_value_is_refused(tmp_path: Path, query: str) -> None:
    with pytest.raises(InvalidTransportURL, match=query.split("=")[0]):
        settings_for(tmp_path, url=f"rabbit://h1/?{query}")


def test_query_error_in_settings_names_the_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="rabbit_quorum_queue and rabbit_ha_queues"):
        settings_for(tmp_path, url="rabbit://h1/?rabbit_quorum_queue=1&rabbit_ha_queues=1")


# -- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"rabbit_quorum_queue": True, "rabbit_ha_queues": True}, ["rabbit_quorum_queue"]),
        (
            {"rabbit_transient_quorum_queue": True, "rabbit_ha_queues": True},
            ["rabbit_transient_quorum_queue", "rabbit_ha_queues"],
        ),
        (
            {"rabbit_stream_fanout": True, "rabbit_transient_quorum_queue": True},
            ["rabbit_stream_fanout", "rabbit_qos_prefetch_count"],
        ),
        (
            {"rabbit_stream_fanout": True, "rabbit_qos_prefetch_count": 10},
            ["rabbit_stream_fanout", "rabbit_transient_quorum_queue"],
        ),
        ({"rpc_conn_pool_size": 1, "conn_pool_min_size": 2}, ["rpc_conn_pool_size (1)"]),
        ({"heartbeat_rate": 0}, ["heartbeat_rate"]),
        ({"conn_pool_min_size": -1}, ["conn_pool_min_size"]),
        ({"rabbit_qos_prefetch_count": 70000}, ["rabbit_qos_prefetch_count"]),
        ({"rabbit_quorum_delivery_limit": -1}, ["rabbit_quorum_delivery_limit"]),
        ({"kombu_reconnect_delay": 4.6}, ["kombu_reconnect_delay"]),
        ({"publish_confirm_timeout": 0}, ["publish_confirm_timeout"]),
        ({"rabbit_login_method": "plain"}, ["rabbit_login_method", "AMQPLAIN"]),
        ({"kombu_failover_strategy": "random"}, ["kombu_failover_strategy"]),
        ({"kombu_compression": "bz2"}, ["kombu_compression", "gzip"]),
    ],
)
def test_inconsistent_options_are_refused_naming_them(
    values: dict[str, Any], names: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        RabbitSettings(**values)
    for name in names:
        assert name in str(info.value)
    assert RABBIT_GROUP in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        RabbitSettings(rabbit_quorum_queue=True, rabbit_ha_queues=True, heartbeat_rate=0)
    assert "rabbit_quorum_queue" in str(info.value)
    assert "heartbeat_rate" in str(info.value)


def test_valid_combinations_are_accepted() -> None:
    settings = RabbitSettings(
        rabbit_quorum_queue=True,
        rabbit_transient_quorum_queue=True,
        rabbit_stream_fanout=True,
        rabbit_qos_prefetch_count=10,
        rpc_conn_pool_size=2,
        conn_pool_min_size=2,
        kombu_compression="gzip",
    )
    assert settings.rabbit_stream_fanout is True


def test_replace_validates_too() -> None:
    with pytest.raises(ConfigurationError, match="rabbit_ha_queues"):
        dataclasses.replace(RabbitSettings(rabbit_quorum_queue=True), rabbit_ha_queues=True)


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RabbitSettings().ssl = True  # type: ignore[misc]


# -- TLS -----------------------------------------------------------------------------


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, str]:
    # ssl_options never reads the files; building the settings checks they exist.
    files = {}
    for name in ("key", "cert", "ca"):
        path = tmp_path / f"{name}.pem"
        path.write_text("-----BEGIN PLACEHOLDER-----\n")
        files[name] = str(path)
    return files


def tls(pem: dict[str, str], **values: Any) -> RabbitSettings:
    return RabbitSettings(
        ssl=True,
        ssl_key_file=pem["key"],
        ssl_cert_file=pem["cert"],
        ssl_ca_file=pem["ca"],
        **values,
    )


def test_no_tls_gives_none() -> None:
    assert ssl_options(RabbitSettings(ssl_ca_file="/nowhere"), [TransportHost("h1")]) is None


def test_tls_without_parameters_is_true() -> None:
    assert ssl_options(RabbitSettings(ssl=True), [TransportHost("h1")]) is True


def test_tls_with_ca_requires_the_certificate_and_its_host(pem_files: dict[str, str]) -> None:
    params = ssl_options(tls(pem_files), [TransportHost("broker.example.org", 5671)])
    assert params == {
        "keyfile": pem_files["key"],
        "certfile": pem_files["cert"],
        "ca_certs": pem_files["ca"],
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": "broker.example.org",
    }


def test_several_hosts_let_kombu_fill_the_host_in(pem_files: dict[str, str]) -> None:
    params = ssl_options(tls(pem_files), [TransportHost("h1"), TransportHost("h2")])
    assert isinstance(params, dict)
    assert "server_hostname" in params
    assert params["server_hostname"] is None


def test_per_host_options_name_that_host(pem_files: dict[str, str]) -> None:
    settings = tls(pem_files)
    first = ssl_options_for_host(settings, "h1")
    second = ssl_options_for_host(settings, "h2")
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert (first["server_hostname"], second["server_hostname"]) == ("h1", "h2")
    assert first is not second


def test_hostname_verification_can_be_turned_off(pem_files: dict[str, str]) -> None:
    params = ssl_options(
        tls(pem_files, ssl_enforce_hostname_verification=False), [TransportHost("h1")]
    )
    assert isinstance(params, dict)
    assert "server_hostname" not in params
    assert params["cert_reqs"] == ssl.CERT_REQUIRED


def test_client_certificate_without_ca_checks_neither(pem_files: dict[str, str]) -> None:
    settings = RabbitSettings(
        ssl=True, ssl_key_file=pem_files["key"], ssl_cert_file=pem_files["cert"]
    )
    params = ssl_options(settings, [TransportHost("h1")])
    assert params == {"keyfile": pem_files["key"], "certfile": pem_files["cert"]}


@pytest.mark.parametrize(
    ("value", "constant"),
    [("TLSv1", "PROTOCOL_TLSv1"), ("sslv23", "PROTOCOL_SSLv23"), ("TLSv1_2", "PROTOCOL_TLSv1_2")],
)
def test_ssl_version_maps_to_the_ssl_constant(value: str, constant: str) -> None:
    expected = getattr(ssl, constant, None)
    if expected is None:
        pytest.skip(f"this Python's ssl has no {constant}")
    params = ssl_options(RabbitSettings(ssl=True, ssl_version=value), [TransportHost("h1")])
    assert params == {"ssl_version": expected}
    assert ssl_protocol(value) == expected


def test_unknown_ssl_version_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        ssl_protocol("TLSv9")
    assert "'TLSv9'" in str(info.value)
    for name in options.ssl_versions():
        assert name in str(info.value)
    assert "tlsv1" in options.ssl_versions()


def test_unknown_ssl_version_is_refused_only_with_tls() -> None:
    assert RabbitSettings(ssl_version="TLSv9").ssl_version == "TLSv9"
    with pytest.raises(ConfigurationError, match="ssl_version"):
        RabbitSettings(ssl=True, ssl_version="TLSv9")


def test_missing_tls_file_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "ca.pem")
    with pytest.raises(ConfigurationError) as info:
        RabbitSettings(ssl=True, ssl_ca_file=missing)
    assert "ssl_ca_file" in str(info.value)
    assert missing in str(info.value)


def test_tls_parameters_are_ones_py_amqp_accepts(pem_files: dict[str, str]) -> None:
    params = ssl_options(tls(pem_files, ssl_version="TLSv1_2"), [TransportHost("h1")])
    assert isinstance(params, dict)
    # py-amqp passes the ssl dict as keyword arguments to this method
    signature = inspect.signature(SSLTransport._wrap_socket_sni)
    signature.bind(None, sock=None, **params)


# -- broker identity -----------------------------------------------------------------


def key(url: str, settings: RabbitSettings | None = None) -> tuple[Any, ...]:
    parsed = TransportURL.parse(None, url)
    return broker_key(parsed, settings or RabbitSettings())


def test_same_url_gives_the_same_hashable_key() -> None:
    url = "rabbit://u:p@h1:5672,u:p@h2:5672/vh"
    assert key(url) == key(url)
    assert {key(url): 1}[key(url)] == 1


def test_query_is_ignored_except_through_the_settings(tmp_path: Path) -> None:
    plain = settings_for(tmp_path, url="rabbit://u:p@h1/vh")
    queried = settings_for(tmp_path, url="rabbit://u:p@h1/vh?heartbeat_rate=4")
    assert broker_key(TransportURL.parse(None, "rabbit://u:p@h1/vh?x=1"), plain) == broker_key(
        TransportURL.parse(None, "rabbit://u:p@h1/vh"), queried
    )
    tls_on = settings_for(tmp_path, url="rabbit://u:p@h1/vh?ssl=true")
    assert broker_key(TransportURL.parse(None, "rabbit://u:p@h1/vh"), tls_on) != key(
        "rabbit://u:p@h1/vh"
    )


@pytest.mark.parametrize(
    "other",
    [
        "rabbit://u:p@h1:5672/other",
        "rabbit://v:p@h1:5672/vh",
        "rabbit://u:q@h1:5672/vh",
        "rabbit://u:p@h1:5673/vh",
        "rabbit://u:p@h3:5672/vh",
    ],
)
def test_different_vhost_user_password_port_or_host_differ(other: str) -> None:
    assert key(other) != key("rabbit://u:p@h1:5672/vh")


def test_host_order_matters() -> None:
    assert key("rabbit://h1,h2/") != key("rabbit://h2,h1/")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("rabbit://h1/", "rabbit://guest:guest@h1:5672/"),
        ("rabbit://", "rabbit://guest:guest@localhost:5672/"),
        ("rabbit://h1", "rabbit://h1//"),
        ("rabbit://H1/", "rabbit://h1/"),
    ],
)
def test_defaults_are_filled_in_as_kombu_does(first: str, second: str) -> None:
    assert key(first) == key(second)


def test_login_method_and_tls_settings_are_part_of_the_key(pem_files: dict[str, str]) -> None:
    url = "rabbit://h1/"
    assert key(url, RabbitSettings(rabbit_login_method="PLAIN")) != key(url)
    with_tls = tls(pem_files)
    assert key(url, with_tls) != key(url)
    assert key(url, with_tls) != key(
        url, dataclasses.replace(with_tls, ssl_enforce_hostname_verification=False)
    )
    # options that do not change the connection's identity do not split it
    assert key(url, RabbitSettings(heartbeat_timeout_threshold=5)) == key(url)


def test_broker_hosts_fill_defaults_and_hide_passwords() -> None:
    hosts = broker_hosts(TransportURL.parse(None, "rabbit://u:s3cret@h1,h2:5673/"))
    assert hosts == (
        BrokerHost("h1", 5672, "u", "s3cret"),
        BrokerHost("h2", 5673, "guest", "guest"),
    )
    assert "s3cret" not in repr(hosts)
