"""Option registration, defaults and URL query overrides (messaging.conf)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

from messaging import conf as messaging_conf
from messaging.exceptions import InvalidTransportURL
from messaging.transport import set_transport_defaults

GROUP = "test_driver"
URL = "rabbit://user:s3cret@h1:5672/vh"


def driver_opts() -> list[cfg.Opt]:
    return [
        cfg.IntOpt("heartbeat_timeout", default=60, min=0, max=600),
        cfg.BoolOpt("ssl", default=False),
        cfg.StrOpt("login_method", default="AMQPLAIN"),
        cfg.ListOpt("hosts", default=[]),
    ]


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def test_query_values_are_converted_with_the_option_type(conf: cfg.ConfigOpts) -> None:
    query = {"heartbeat_timeout": "5", "ssl": "true", "hosts": "a,b"}
    values = messaging_conf.apply_query_overrides(conf, GROUP, driver_opts(), query, URL)
    assert values == {
        "heartbeat_timeout": 5,
        "ssl": True,
        "login_method": "AMQPLAIN",
        "hosts": ["a", "b"],
    }


def test_query_wins_over_configuration(conf: cfg.ConfigOpts) -> None:
    opts = driver_opts()
    messaging_conf.register_group(conf, GROUP, opts)
    conf.set_override("heartbeat_timeout", 30, group=GROUP)
    conf.set_override("login_method", "PLAIN", group=GROUP)
    values = messaging_conf.apply_query_overrides(
        conf, GROUP, opts, {"heartbeat_timeout": "7"}, URL
    )
    assert values["heartbeat_timeout"] == 7
    assert values["login_method"] == "PLAIN"
    assert conf[GROUP].heartbeat_timeout == 30, "the configuration itself must not change"


def test_unknown_query_key_names_it_and_the_known_options(conf: cfg.ConfigOpts) -> None:
    with pytest.raises(InvalidTransportURL) as info:
        messaging_conf.apply_query_overrides(conf, GROUP, driver_opts(), {"no_such": "1"}, URL)
    text = str(info.value)
    assert "'no_such'" in text
    assert f"[{GROUP}]" in text
    for name in ("heartbeat_timeout", "hosts", "login_method", "ssl"):
        assert name in text
    assert info.value.url == URL


@pytest.mark.parametrize(
    ("key", "value"),
    [("heartbeat_timeout", "abc"), ("heartbeat_timeout", "601"), ("ssl", "maybe")],
)
def test_bad_query_value_names_key_and_value(conf: cfg.ConfigOpts, key: str, value: str) -> None:
    with pytest.raises(InvalidTransportURL) as info:
        messaging_conf.apply_query_overrides(conf, GROUP, driver_opts(), {key: value}, URL)
    text = str(info.value)
    assert repr(key) in text
    assert repr(value) in text
    assert isinstance(info.value.__cause__, ValueError)


def test_query_errors_hide_the_password(conf: cfg.ConfigOpts) -> None:
    for query in ({"no_such": "1"}, {"ssl": "maybe"}):
        with pytest.raises(InvalidTransportURL) as info:
            messaging_conf.apply_query_overrides(conf, GROUP, driver_opts(), query, URL)
        assert "s3cret" not in str(info.value)
        assert "rabbit://user:****@h1:5672/vh" in str(info.value)


def test_default_options(conf: cfg.ConfigOpts) -> None:
    messaging_conf.register_transport_opts(conf)
    assert conf.transport_url == "rabbit://"
    assert conf.control_exchange == "openstack"
    assert conf.rpc_response_timeout == 60
    assert conf.executor_thread_pool_size == 64
    assert conf.rpc_ping_enabled is False


def test_notification_options_and_defaults(conf: cfg.ConfigOpts) -> None:
    messaging_conf.register_notification_opts(conf)
    group = conf[messaging_conf.NOTIFICATIONS_GROUP]
    assert group.driver == []
    assert group.transport_url is None
    assert group.topics == ["notifications"]
    assert group.retry == -1
    assert conf.control_exchange == "openstack"


def test_registering_twice_is_harmless(conf: cfg.ConfigOpts) -> None:
    messaging_conf.register_notification_opts(conf)
    messaging_conf.register_notification_opts(conf)
    assert conf.transport_url == "rabbit://"


def test_foreign_transport_url_opt_is_tolerated(conf: cfg.ConfigOpts) -> None:
    # oslo.messaging, in the same process, registered its own definition first.
    conf.register_opt(cfg.StrOpt("transport_url", default="fake://", help="oslo's help text"))
    messaging_conf.register_transport_opts(conf)
    messaging_conf.register_notification_opts(conf)
    assert conf.transport_url == "fake://"
    assert conf.control_exchange == "openstack"
    assert conf[messaging_conf.NOTIFICATIONS_GROUP].topics == ["notifications"]


def test_deprecated_pool_size_name_is_read(tmp_path: Path) -> None:
    path = tmp_path / "old.conf"
    path.write_text("[DEFAULT]\nrpc_thread_pool_size = 7\n")
    conf = cfg.ConfigOpts()
    messaging_conf.register_transport_opts(conf)
    conf(["--config-file", str(path)])
    assert conf.executor_thread_pool_size == 7


@pytest.fixture
def restore_control_exchange() -> Iterator[None]:
    try:
        yield
    finally:
        set_transport_defaults("openstack")


@pytest.mark.usefixtures("restore_control_exchange")
def test_set_transport_defaults_changes_fresh_configurations() -> None:
    set_transport_defaults("nova")
    conf = cfg.ConfigOpts()
    messaging_conf.register_transport_opts(conf)
    conf([])
    assert conf.control_exchange == "nova"
    override = cfg.ConfigOpts()
    messaging_conf.register_transport_opts(override)
    override([])
    override.set_override("control_exchange", "neutron")
    assert override.control_exchange == "neutron"


def test_control_exchange_default_is_openstack_again() -> None:
    # Guards the fixture above: a leaked default would show up here.
    conf = cfg.ConfigOpts()
    messaging_conf.register_transport_opts(conf)
    conf([])
    assert conf.control_exchange == "openstack"


def test_set_defaults_changes_pool_size(conf: cfg.ConfigOpts) -> None:
    messaging_conf.set_defaults(conf, executor_thread_pool_size=8)
    assert conf.executor_thread_pool_size == 8
    other = cfg.ConfigOpts()
    messaging_conf.register_transport_opts(other)
    other([])
    assert other.executor_thread_pool_size == 64, "set_defaults must not leak to other confs"


def test_list_opts_groups_and_copies() -> None:
    listed = dict(messaging_conf.list_opts())
    assert set(listed) >= {None, messaging_conf.NOTIFICATIONS_GROUP}
    names = {opt.name for opt in listed[None]}
    assert {"transport_url", "control_exchange", "rpc_response_timeout"} <= names
    first = next(opt for opt in listed[None] if opt.name == "control_exchange")
    first.default = "changed"
    again = dict(messaging_conf.list_opts())
    assert next(o for o in again[None] if o.name == "control_exchange").default == "openstack"
