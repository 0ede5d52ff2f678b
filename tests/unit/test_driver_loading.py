"""Transport factories: driver loading by entry point and the choice of URL."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from messaging import _plugins
from messaging.conf import NOTIFICATIONS_GROUP, register_notification_opts
from messaging.drivers.base import Driver, Listener
from messaging.exceptions import DriverLoadFailure, InvalidTarget, InvalidTransportURL
from messaging.target import Target
from messaging.transport import (
    NotificationTransport,
    RPCTransport,
    Transport,
    TransportURL,
    get_notification_transport,
    get_rpc_transport,
    get_transport,
    set_transport_defaults,
)


class StubDriver(Driver):
    """Records how it was built and what it was asked to send."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[Target, dict[str, Any]]] = []

    def send_notification(
        self, target: Target, ctxt: Any, message: dict[str, Any], version: float, retry: int | None
    ) -> None:
        self.sent.append((target, message))

    def listen_for_notifications(
        self,
        targets_and_priorities: Iterable[tuple[Target, str]],
        pool: str | None,
        batch_size: int,
        batch_timeout: float | None,
    ) -> Listener:
        raise AssertionError("not reached in these tests")

    def cleanup(self) -> None:
        pass


@pytest.fixture
def stub_driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make every driver name load StubDriver; yields the names asked for."""
    names: list[str] = []

    def load(namespace: str, name: str) -> type[Driver]:
        assert namespace == "messaging.drivers"
        names.append(name)
        return StubDriver

    monkeypatch.setattr(_plugins, "load_plugin", load)
    yield names


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def driver_of(transport: Transport) -> StubDriver:
    driver = transport.driver
    assert isinstance(driver, StubDriver)
    return driver


# --- real entry points ---------------------------------------------------------------------------


def test_known_driver_names_come_from_entry_points() -> None:
    assert {"fake", "memory"} <= set(_plugins.known_plugins("messaging.drivers"))
    assert {"messagingv2", "messaging", "log", "noop", "routing", "test"} <= set(
        _plugins.known_plugins("messaging.notify.drivers")
    )
    assert _plugins.known_plugins("messaging.no_such_namespace") == []


def test_unknown_driver_is_a_clear_error(conf: cfg.ConfigOpts) -> None:
    with pytest.raises(DriverLoadFailure) as info:
        get_rpc_transport(conf, "nosuch://")
    text = str(info.value)
    assert "nosuch" in text
    assert "fake" in text
    assert "memory" in text
    assert info.value.driver == "nosuch"


def test_unknown_plugin_lookup_error_lists_names(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LookupError, match=r"known names: .*fake.*memory"):
        _plugins.load_plugin("messaging.drivers", "nosuch")
    # stevedore's own warning ("Could not load nosuch") would repeat the error.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
    with pytest.raises(LookupError, match=r"\(none installed\)"):
        _plugins.load_plugin("messaging.no_such_namespace", "x")


def test_fake_scheme_loads_the_in_process_driver(conf: cfg.ConfigOpts) -> None:
    transport = get_rpc_transport(conf, "fake://", allowed_remote_exmods=["myapp.exceptions"])
    try:
        assert isinstance(transport, RPCTransport)
        assert type(transport.driver).__module__ == "messaging.drivers.memory"
        assert transport.driver.url.transport == "fake"
        assert transport.driver.default_exchange == "openstack"
        assert transport.driver.allowed_remote_exmods == ["myapp.exceptions"]
        assert transport.conf is conf
    finally:
        transport.cleanup()


# --- driver name and URL selection (stub driver) ----------------------------------------------


def test_driver_import_error_becomes_driver_load_failure(
    conf: cfg.ConfigOpts, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(namespace: str, name: str) -> Any:
        raise ImportError("No module named 'kombu'")

    monkeypatch.setattr(_plugins, "load_plugin", broken)
    with pytest.raises(DriverLoadFailure, match="kombu") as info:
        get_rpc_transport(conf, "rabbit://h1")
    assert info.value.driver == "rabbit"
    assert isinstance(info.value.__cause__, ImportError)


def test_driver_is_built_with_url_exchange_and_exmods(
    conf: cfg.ConfigOpts, stub_driver: list[str]
) -> None:
    transport = get_rpc_transport(conf, "rabbit://u:p@h1:5672/vh", ["a.b"])
    driver = driver_of(transport)
    assert stub_driver == ["rabbit"]
    assert driver.conf is conf
    assert driver.url == TransportURL.parse(conf, "rabbit://u:p@h1:5672/vh")
    assert driver.default_exchange == "openstack"
    assert driver.allowed_remote_exmods == ["a.b"]
    assert isinstance(transport, RPCTransport)


def test_kombu_plus_scheme_loads_the_kombu_driver(
    conf: cfg.ConfigOpts, stub_driver: list[str]
) -> None:
    transport = get_rpc_transport(conf, "kombu+redis://h1:6379/0")
    assert stub_driver == ["kombu"]
    assert driver_of(transport).url.transport == "kombu+redis"


def test_parsed_url_object_is_accepted(conf: cfg.ConfigOpts, stub_driver: list[str]) -> None:
    url = TransportURL.parse(conf, "fake://")
    assert driver_of(get_rpc_transport(conf, url)).url is url


def test_bad_url_fails_before_loading(conf: cfg.ConfigOpts, stub_driver: list[str]) -> None:
    with pytest.raises(InvalidTransportURL, match="port"):
        get_rpc_transport(conf, "rabbit://h:99999")
    assert stub_driver == []


def test_rpc_transport_defaults_to_default_transport_url(
    conf: cfg.ConfigOpts, stub_driver: list[str]
) -> None:
    register_notification_opts(conf)
    conf.set_override("transport_url", "rabbit://default-host")
    conf.set_override("transport_url", "rabbit://notify-host", group=NOTIFICATIONS_GROUP)
    assert driver_of(get_rpc_transport(conf)).url.hosts[0].hostname == "default-host"


def test_custom_transport_class(conf: cfg.ConfigOpts, stub_driver: list[str]) -> None:
    class MyTransport(Transport):
        pass

    assert isinstance(get_rpc_transport(conf, "fake://", transport_cls=MyTransport), MyTransport)


def test_notification_transport_uses_its_own_url(
    conf: cfg.ConfigOpts, stub_driver: list[str]
) -> None:
    register_notification_opts(conf)
    conf.set_override("transport_url", "rabbit://default-host")
    conf.set_override("transport_url", "rabbit://notify-host", group=NOTIFICATIONS_GROUP)
    transport = get_notification_transport(conf)
    assert isinstance(transport, NotificationTransport)
    assert driver_of(transport).url.hosts[0].hostname == "notify-host"


def test_notification_transport_reads_oslo_group_from_file(
    tmp_path: Path, stub_driver: list[str]
) -> None:
    path = tmp_path / "service.conf"
    path.write_text(
        "[DEFAULT]\n"
        "transport_url = rabbit://default-host\n"
        "[oslo_messaging_notifications]\n"
        "transport_url = rabbit://oslo-notify-host\n"
    )
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(path)])
    transport = get_notification_transport(conf)
    assert driver_of(transport).url.hosts[0].hostname == "oslo-notify-host"
    assert driver_of(get_rpc_transport(conf)).url.hosts[0].hostname == "default-host"


def test_notification_transport_falls_back_to_default(
    tmp_path: Path, stub_driver: list[str]
) -> None:
    path = tmp_path / "service.conf"
    path.write_text("[DEFAULT]\ntransport_url = rabbit://default-host\n")
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(path)])
    transport = get_notification_transport(conf)
    assert driver_of(transport).url.hosts[0].hostname == "default-host"


def test_empty_notification_url_falls_back_to_default(
    tmp_path: Path, stub_driver: list[str]
) -> None:
    path = tmp_path / "service.conf"
    path.write_text(
        "[DEFAULT]\ntransport_url = rabbit://default-host\n"
        "[oslo_messaging_notifications]\ntransport_url =\n"
    )
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(path)])
    assert driver_of(get_notification_transport(conf)).url.hosts[0].hostname == "default-host"


def test_explicit_url_wins(conf: cfg.ConfigOpts, stub_driver: list[str]) -> None:
    register_notification_opts(conf)
    conf.set_override("transport_url", "rabbit://notify-host", group=NOTIFICATIONS_GROUP)
    transport = get_notification_transport(conf, "rabbit://explicit")
    assert driver_of(transport).url.hosts[0].hostname == "explicit"


def test_control_exchange_reaches_the_driver(stub_driver: list[str]) -> None:
    set_transport_defaults("nova")
    try:
        conf = cfg.ConfigOpts()
        conf([])
        assert driver_of(get_rpc_transport(conf, "fake://")).default_exchange == "nova"
    finally:
        set_transport_defaults("openstack")
    fresh = cfg.ConfigOpts()
    fresh([])
    assert driver_of(get_rpc_transport(fresh, "fake://")).default_exchange == "openstack"


def test_foreign_transport_url_opt_does_not_break_loading(stub_driver: list[str]) -> None:
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.StrOpt("transport_url", default="rabbit://oslo-host", help="oslo"))
    conf([])
    assert driver_of(get_rpc_transport(conf)).url.hosts[0].hostname == "oslo-host"
    assert driver_of(get_notification_transport(conf)).url.hosts[0].hostname == "oslo-host"


def test_get_transport_is_deprecated(conf: cfg.ConfigOpts, stub_driver: list[str]) -> None:
    with pytest.warns(DeprecationWarning, match="get_rpc_transport"):
        transport = get_transport(conf, "fake://")
    assert isinstance(transport, RPCTransport)


def test_transport_checks_targets(conf: cfg.ConfigOpts, stub_driver: list[str]) -> None:
    transport = get_notification_transport(conf, "fake://")
    with pytest.raises(InvalidTarget, match="topic"):
        transport.send_notification(Target(), {}, {}, 2.0)
    with pytest.raises(InvalidTarget, match="topic"):
        transport.send(Target(server="s"), {}, {})
    with pytest.raises(InvalidTarget, match="server"):
        transport.listen(Target(topic="t"))
    with pytest.raises(InvalidTarget, match="topic"):
        transport.listen_for_notifications([(Target(), "info")])
    transport.send_notification(Target(topic="notifications.info"), {}, {"a": 1}, 2.0)
    assert driver_of(transport).sent == [(Target(topic="notifications.info"), {"a": 1})]
