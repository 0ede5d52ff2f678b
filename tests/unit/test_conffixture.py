"""ConfFixture: test configuration set up and undone, as oslo.messaging's fixture does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from oslo_config import cfg

import messaging
from messaging.conffixture import ConfFixture
from messaging.drivers.memory import MemoryDriver, get_broker, reset_brokers
from messaging.notify import _impl_test

GROUP = "oslo_messaging_notifications"


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    reset_brokers()
    _impl_test.reset()
    yield
    reset_brokers()
    _impl_test.reset()


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    return cfg.ConfigOpts()


def test_exported_at_top_level() -> None:
    assert messaging.ConfFixture is ConfFixture


def test_fixture_protocol(conf: cfg.ConfigOpts) -> None:
    fixture = ConfFixture(conf)
    fixture.setUp()
    fixture.transport_url = "fake:/"
    assert conf.transport_url == "fake:/"
    assert fixture.transport_url == "fake:/"
    assert fixture.getDetails() == {}
    fixture.cleanUp()
    assert conf.transport_url == "rabbit://"


def test_context_manager_and_constructor_url(conf: cfg.ConfigOpts) -> None:
    with ConfFixture(conf, transport_url="fake://") as fixture:
        assert conf.transport_url == "fake://"
        transport = messaging.get_notification_transport(conf)
        try:
            assert isinstance(transport.driver, MemoryDriver)
            messaging.Notifier(transport, "p", driver="messagingv2").info({}, "e", {})
        finally:
            transport.cleanup()
        assert fixture.conf is conf
    assert get_broker().queue_depth("notifications.info") == 1
    assert conf.transport_url == "rabbit://"


def test_transport_url_may_be_set_before_set_up(conf: cfg.ConfigOpts) -> None:
    fixture = ConfFixture(conf)
    fixture.transport_url = "fake:/"
    with fixture:
        assert conf.transport_url == "fake:/"
    assert conf.transport_url == "rabbit://"


def test_options_registered_on_construction(conf: cfg.ConfigOpts) -> None:
    ConfFixture(conf)
    assert conf[GROUP].topics == ["notifications"]
    assert conf.rpc_response_timeout == 60


def test_response_timeout(conf: cfg.ConfigOpts) -> None:
    with ConfFixture(conf) as fixture:
        fixture.response_timeout = 5
        assert conf.rpc_response_timeout == 5
        assert fixture.response_timeout == 5
    assert conf.rpc_response_timeout == 60


@pytest.mark.parametrize(
    ("legacy", "option", "value"),
    [
        ("notification_driver", "driver", ["test"]),
        ("notification_transport_url", "transport_url", "fake://other"),
        ("notification_topics", "topics", ["a", "b"]),
    ],
)
def test_legacy_names_map_to_the_notifications_group(
    conf: cfg.ConfigOpts, legacy: str, option: str, value: object
) -> None:
    with ConfFixture(conf):
        default = conf[GROUP][option]
        conf.set_override(legacy, value)
        assert conf[GROUP][option] == value
        conf.clear_override(legacy)
        assert conf[GROUP][option] == default


def test_oslo_group_name_is_the_notifications_group(conf: cfg.ConfigOpts) -> None:
    with ConfFixture(conf, transport_url="fake://"):
        conf.set_override("driver", ["test"], group="oslo_messaging_notifications")
        assert conf.oslo_messaging_notifications.driver == ["test"]
        assert conf[GROUP].driver == ["test"]
        transport = messaging.get_notification_transport(conf)
        try:
            messaging.Notifier(transport, "p").info({}, "e", {})
        finally:
            transport.cleanup()
        assert len(_impl_test.NOTIFICATIONS) == 1
        conf.clear_override("driver", group="oslo_messaging_notifications")
        assert conf[GROUP].driver == []


def test_other_overrides_pass_through(conf: cfg.ConfigOpts) -> None:
    with ConfFixture(conf):
        conf.set_override("control_exchange", "nova")
        conf.set_override("retry", 3, group=GROUP)
        assert (conf.control_exchange, conf[GROUP].retry) == ("nova", 3)


def test_cleanup_restores_everything(conf: cfg.ConfigOpts) -> None:
    original_set = conf.set_override
    with ConfFixture(conf, transport_url="fake://"):
        conf.set_override("notification_driver", ["test"])
        assert "set_override" in vars(conf)
    assert "set_override" not in vars(conf)
    assert "clear_override" not in vars(conf)
    assert conf.set_override == original_set
    assert conf[GROUP].driver == []
    with pytest.raises(cfg.NoSuchOptError):
        conf.set_override("notification_driver", ["test"])


def test_nested_fixtures(conf: cfg.ConfigOpts) -> None:
    outer = ConfFixture(conf, transport_url="fake://outer")
    outer.setUp()
    with ConfFixture(conf, transport_url="fake://inner"):
        assert conf.transport_url == "fake://inner"
        conf.set_override("notification_topics", ["inner"])
        assert conf[GROUP].topics == ["inner"]
    # The outer fixture is still in force: legacy names keep working.
    conf.set_override("notification_topics", ["outer"])
    assert conf[GROUP].topics == ["outer"]
    outer.cleanUp()
    assert "set_override" not in vars(conf)
    assert conf[GROUP].topics == ["notifications"]


def test_cleanup_twice_is_harmless(conf: cfg.ConfigOpts) -> None:
    fixture = ConfFixture(conf, transport_url="fake://")
    fixture.setUp()
    fixture.cleanUp()
    fixture.cleanUp()
    assert conf.transport_url == "rabbit://"


def test_is_a_fixtures_fixture_registering_every_group(conf: cfg.ConfigOpts) -> None:
    import fixtures

    fixture = ConfFixture(conf)
    assert isinstance(fixture, fixtures.Fixture)
    # Every group, as oslo.messaging's fixture registers its rabbit options.
    assert conf.oslo_messaging_rabbit.heartbeat_timeout_threshold == 60
    assert conf.oslo_messaging_sqlite.prefetch == 16
    assert conf.oslo_messaging_stomp.flavor == "auto"
    with fixture:
        conf.set_override("heartbeat_timeout_threshold", 0, group="oslo_messaging_rabbit")
        assert conf.oslo_messaging_rabbit.heartbeat_timeout_threshold == 0
        assert conf.set_override.wrapped is not None
    assert conf.oslo_messaging_rabbit.heartbeat_timeout_threshold == 60
    assert not hasattr(conf.set_override, "wrapped")


def test_use_fixture_with_testtools(conf: cfg.ConfigOpts) -> None:
    import testtools

    class Case(testtools.TestCase):
        def test(self) -> None:
            fixture = self.useFixture(ConfFixture(conf))
            fixture.transport_url = "fake:/vhost"
            assert conf.transport_url == "fake:/vhost"

    result = testtools.TestResult()
    Case("test").run(result)
    assert result.wasSuccessful(), result.errors + result.failures
    assert conf.transport_url == "rabbit://"
