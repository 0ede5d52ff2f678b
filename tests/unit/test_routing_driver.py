"""The routing notification driver: YAML rules pick the drivers of each notification."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.memory import get_broker, reset_brokers
from messaging.exceptions import ConfigurationError, DriverLoadFailure
from messaging.notify import _impl_test
from messaging.notify._impl_routing import RoutingDriver, load_rules

LOG_PREFIX = "oslo.messaging.notification"
ROUTING_LOG = "messaging.notify._impl_routing"

RULES = """\
group_1:
  test:
    accepted_events:
      - compute.instance.*
      - image.upload
  log:
    accepted_priorities:
      - ERROR
      - critical
group_2:
  messagingv2:
    accepted_events:
      - volume.*
    accepted_priorities:
      - info
  test:
    accepted_priorities:
      - critical
"""


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


@pytest.fixture
def transport(conf: cfg.ConfigOpts) -> Iterator[messaging.Transport]:
    transport = messaging.get_notification_transport(conf, "fake://")
    yield transport
    transport.cleanup()


def routing_notifier(
    conf: cfg.ConfigOpts, transport: messaging.Transport, path: Path, text: str
) -> messaging.Notifier:
    path.write_text(text)
    conf.set_override("routing_config", str(path), group="oslo_messaging_notifications")
    return messaging.Notifier(transport, "p", driver="routing")


def routed(caplog: pytest.LogCaptureFixture) -> dict[str, list[str]]:
    """Which drivers got which event types: test (capture), log (caplog), messagingv2 (broker)."""
    broker = get_broker()
    return {
        "test": [m["event_type"] for _c, m, _p, _r in _impl_test.NOTIFICATIONS],
        "log": [
            r.name[len(LOG_PREFIX) + 1 :] for r in caplog.records if r.name.startswith(LOG_PREFIX)
        ],
        "messagingv2": [name for name in broker.queues() if broker.queue_depth(name)],
    }


@pytest.fixture
def notifier(
    conf: cfg.ConfigOpts, transport: messaging.Transport, tmp_path: Path
) -> messaging.Notifier:
    return routing_notifier(conf, transport, tmp_path / "routing.yaml", RULES)


@pytest.mark.parametrize(
    ("priority", "event_type", "expected"),
    [
        # accepted_events alone, fnmatch patterns
        ("info", "compute.instance.create.end", {"test"}),
        ("debug", "image.upload", {"test"}),
        ("info", "image.upload.end", set()),
        ("info", "network.create", set()),
        # accepted_priorities alone, case-insensitive in the file
        ("error", "network.create", {"log"}),
        # both lists in one entry: AND
        ("info", "volume.attach", {"messagingv2"}),
        ("warn", "volume.attach", set()),
        ("info", "volumes", set()),
        # groups OR together
        ("error", "compute.instance.delete", {"test", "log"}),
    ],
)
def test_rules_pick_drivers(
    notifier: messaging.Notifier,
    caplog: pytest.LogCaptureFixture,
    priority: str,
    event_type: str,
    expected: set[str],
) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOG_PREFIX):
        getattr(notifier, priority)({}, event_type, {"x": 1})
    got = routed(caplog)
    assert {name for name, seen in got.items() if seen} == expected
    for name in expected - {"messagingv2"}:
        assert got[name] == [event_type]
    if "messagingv2" in expected:
        assert got["messagingv2"] == [f"notifications.{priority}"]


def test_a_driver_matched_by_two_groups_is_notified_once(
    notifier: messaging.Notifier, caplog: pytest.LogCaptureFixture
) -> None:
    # test matches in group_1 (event) and group_2 (critical); log matches (critical).
    with caplog.at_level(logging.DEBUG, logger=LOG_PREFIX):
        notifier.critical({}, "compute.instance.crash", {})
    got = routed(caplog)
    assert got["test"] == ["compute.instance.crash"]
    assert got["log"] == ["compute.instance.crash"]


def test_routed_drivers_get_the_message_priority_and_retry(
    conf: cfg.ConfigOpts, transport: messaging.Transport, tmp_path: Path
) -> None:
    notifier = routing_notifier(conf, transport, tmp_path / "r.yaml", RULES)
    notifier.prepare(retry=3).info({}, "compute.instance.create.end", {"x": 1})
    ((ctxt, message, priority, retry),) = _impl_test.NOTIFICATIONS
    assert (ctxt, priority, retry) == ({}, "INFO", 3)
    assert message["payload"] == {"x": 1}
    assert message["event_type"] == "compute.instance.create.end"


def test_oslo_group_name_in_a_config_file(tmp_path: Path) -> None:
    rules = tmp_path / "routing.yaml"
    rules.write_text(RULES)
    config_file = tmp_path / "svc.conf"
    config_file.write_text(
        f"[oslo_messaging_notifications]\ndriver = routing\nrouting_config = {rules}\n"
    )
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(config_file)], project="svc")
    transport = messaging.get_notification_transport(conf, "fake://")
    try:
        messaging.Notifier(transport, "p").info({}, "compute.instance.create.end", {})
    finally:
        transport.cleanup()
    assert len(_impl_test.NOTIFICATIONS) == 1


def test_missing_routing_config_warns_and_sends_nothing(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=ROUTING_LOG):
        notifier = messaging.Notifier(transport, "p", driver="routing")
    assert any("routing_config" in r.getMessage() for r in caplog.records)
    notifier.critical({}, "compute.instance.create.end", {})
    assert _impl_test.NOTIFICATIONS == []
    assert get_broker().queues() == []


def test_empty_file_routes_nothing(
    conf: cfg.ConfigOpts, transport: messaging.Transport, tmp_path: Path
) -> None:
    notifier = routing_notifier(conf, transport, tmp_path / "empty.yaml", "")
    notifier.critical({}, "anything", {})
    assert _impl_test.NOTIFICATIONS == []


def test_unreadable_file_is_a_configuration_error(
    conf: cfg.ConfigOpts, transport: messaging.Transport, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-routing.yaml"
    conf.set_override("routing_config", str(missing), group="oslo_messaging_notifications")
    with pytest.raises(ConfigurationError, match=r"no-such-routing\.yaml"):
        messaging.Notifier(transport, "p", driver="routing")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("group_1: [unclosed\n", ""),
        ("- just\n- a list\n", "must map group names"),
        ("group_1: test\n", "group_1"),
        ("group_1:\n  test:\n    accepted_colours: [red]\n", "accepted_events"),
        ("group_1:\n  test:\n    accepted_events: compute.*\n", "accepted_events"),
        ("group_1:\n  test:\n    accepted_priorities: 7\n", "accepted_priorities"),
    ],
)
def test_malformed_file_is_a_configuration_error(
    conf: cfg.ConfigOpts, transport: messaging.Transport, tmp_path: Path, text: str, complaint: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        routing_notifier(conf, transport, tmp_path / "bad-routing.yaml", text)
    assert "bad-routing.yaml" in str(caught.value)
    assert complaint in str(caught.value)


def test_unknown_driver_in_rules(
    conf: cfg.ConfigOpts, transport: messaging.Transport, tmp_path: Path
) -> None:
    text = "group_1:\n  messagingv9:\n    accepted_events: ['*']\n"
    with pytest.raises(DriverLoadFailure) as caught:
        routing_notifier(conf, transport, tmp_path / "r.yaml", text)
    assert "messagingv9" in str(caught.value)
    assert "messagingv2" in str(caught.value)  # the known names are listed


def test_routing_to_itself_is_a_configuration_error(
    conf: cfg.ConfigOpts, transport: messaging.Transport, tmp_path: Path
) -> None:
    # Each routing driver would build another from the same file, without end.
    text = "group_1:\n  routing:\n    accepted_events: ['*']\n"
    with pytest.raises(ConfigurationError, match="routing driver itself"):
        routing_notifier(conf, transport, tmp_path / "r.yaml", text)


def test_failure_of_a_routed_driver_reaches_the_notifier(
    conf: cfg.ConfigOpts,
    transport: messaging.Transport,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = "g:\n  messagingv2:\n    accepted_events: ['*']\n  test:\n    accepted_events: ['*']\n"
    notifier = routing_notifier(conf, transport, tmp_path / "r.yaml", text)
    with caplog.at_level(logging.ERROR, logger="messaging.notify.notifier"):
        notifier.info({}, "compute.odd", {"bad": object()})
    assert "compute.odd" in caplog.text
    assert len(_impl_test.NOTIFICATIONS) == 1  # the other routed driver still ran
    with pytest.raises(messaging.MessageSerializationError):
        notifier.prepare(raise_errors=True).info({}, "compute.odd", {"bad": object()})


def test_load_rules_shape(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RULES)
    assert load_rules(str(path)) == [
        ("test", ["compute.instance.*", "image.upload"], None),
        ("log", None, ["error", "critical"]),
        ("messagingv2", ["volume.*"], ["info"]),
        ("test", None, ["critical"]),
    ]


def test_routing_driver_loads_each_driver_once(
    conf: cfg.ConfigOpts, transport: messaging.Transport, tmp_path: Path
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RULES)
    conf.set_override("routing_config", str(path), group="oslo_messaging_notifications")
    from messaging.conf import register_notification_opts

    register_notification_opts(conf)
    driver = RoutingDriver(conf, topics=["notifications"], transport=transport)
    assert sorted(driver._drivers) == ["log", "messagingv2", "test"]
