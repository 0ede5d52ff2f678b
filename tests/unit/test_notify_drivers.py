"""The log, noop and test notification drivers, and the test driver's oslo module path."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.memory import get_broker, reset_brokers
from messaging.notify import _impl_test
from messaging.notify import _impl_test as capture
from messaging.notify._impl_log import EVENT_TYPE_CHARS, LOG_LINE_CHARS, LogDriver, mask_secrets
from messaging.notify._impl_noop import NoOpDriver

LOG_PREFIX = "oslo.messaging.notification"


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    reset_brokers()
    _impl_test.reset()
    yield
    reset_brokers()
    _impl_test.reset()


@pytest.fixture
def transport() -> Iterator[messaging.Transport]:
    transport = messaging.get_notification_transport(cfg.ConfigOpts(), "fake://")
    yield transport
    transport.cleanup()


# --- log -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "level"),
    [
        ("debug", logging.DEBUG),
        ("info", logging.INFO),
        ("warn", logging.WARNING),
        ("warning", logging.WARNING),
        ("error", logging.ERROR),
        ("critical", logging.CRITICAL),
    ],
)
def test_log_driver_logger_and_level(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture, method: str, level: int
) -> None:
    notifier = messaging.Notifier(transport, "compute.host1", driver="log")
    with caplog.at_level(logging.DEBUG, logger=LOG_PREFIX):
        getattr(notifier, method)({}, "compute.instance.create.end", {"n": 1})

    (record,) = [r for r in caplog.records if r.name.startswith(LOG_PREFIX)]
    assert record.name == f"{LOG_PREFIX}.compute.instance.create.end"
    assert record.levelno == level
    logged = json.loads(record.getMessage())
    assert logged["payload"] == {"n": 1}
    assert logged["publisher_id"] == "compute.host1"
    assert logged["event_type"] == "compute.instance.create.end"
    assert logged["priority"] == method.upper().replace("WARNING", "WARN")
    assert get_broker().queues() == []  # logged, not sent


@pytest.mark.parametrize("method", ["audit", "sample"])
def test_log_driver_drops_audit_and_sample_as_oslo_does(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    notifier = messaging.Notifier(transport, "compute.host1", driver="log")
    with (
        caplog.at_level(logging.DEBUG, logger=LOG_PREFIX),
        pytest.warns(UserWarning, match=f"does not log '{method}'"),
    ):
        getattr(notifier, method)({}, "compute.instance.exists", {"n": 1})
    assert [r for r in caplog.records if r.name.startswith(LOG_PREFIX)] == []


def test_log_driver_masks_at_least_what_oslo_masks(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    from oslo_utils import strutils

    payload = {"admin_pass": "ap-1", "adminPass": "ap-2", "new_pass": "np-3", "note": "x"}
    with caplog.at_level(logging.INFO, logger=LOG_PREFIX):
        notifier = messaging.Notifier(transport, "p", driver="log")
        notifier.info({}, "e", payload)
        notifier.info({}, "e", "user=bob password=abc")
    dict_text, string_text = (r.getMessage() for r in caplog.records[-2:])
    for secret in ("ap-1", "ap-2", "np-3"):
        assert secret not in dict_text
    assert json.loads(dict_text)["payload"] == strutils.mask_dict_password(payload)
    assert "abc" not in string_text
    assert json.loads(string_text)["payload"] == strutils.mask_password("user=bob password=abc")


def test_log_driver_masks_secrets(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {
        "user": "alice",
        "password": "hunter2",
        "nested": {"auth_token": "tok-123", "admin_password": "pw-456", "size": 3},
        "servers": [{"name": "s1", "client_secret": "cs-789"}],
    }
    with caplog.at_level(logging.INFO, logger=LOG_PREFIX):
        messaging.Notifier(transport, "p", driver="log").info({}, "e", payload)

    text = caplog.records[-1].getMessage()
    for secret in ("hunter2", "tok-123", "pw-456", "cs-789"):
        assert secret not in text
    logged = json.loads(text)["payload"]
    assert logged["user"] == "alice"
    assert logged["password"] == "***"
    assert logged["nested"] == {"auth_token": "***", "admin_password": "***", "size": 3}
    assert logged["servers"] == [{"name": "s1", "client_secret": "***"}]
    assert payload["password"] == "hunter2"  # the caller's payload is not modified


def test_mask_secrets_leaves_other_values_alone() -> None:
    value = {"a": [1, (2, 3)], "b": None, "Private_Key_Path": "/k"}
    assert mask_secrets(value) == {"a": [1, [2, 3]], "b": None, "Private_Key_Path": "***"}
    assert mask_secrets("password") == "password"


def test_log_driver_skips_disabled_levels(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOG_PREFIX):
        notifier = messaging.Notifier(transport, "p", driver="log")
        notifier.debug({}, "quiet", {})
        notifier.error({}, "loud", {})
    assert [r.name for r in caplog.records if r.name.startswith(LOG_PREFIX)] == [
        f"{LOG_PREFIX}.loud"
    ]


def test_log_driver_does_not_log_the_context(caplog: pytest.LogCaptureFixture) -> None:
    driver = LogDriver(cfg.ConfigOpts(), topics=["n"], transport=None)  # type: ignore[arg-type]
    message = {"event_type": "e", "payload": {}, "priority": "INFO"}
    with caplog.at_level(logging.INFO, logger=LOG_PREFIX):
        driver.notify({"auth_token": "ctx-secret"}, message, "INFO", None)
    assert len(caplog.records) == 1
    assert "ctx-secret" not in caplog.text


def test_log_driver_bounds_the_line_of_a_large_notification(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = messaging.Notifier(transport, "p", driver="log")
    with caplog.at_level(logging.INFO, logger=LOG_PREFIX):
        notifier.info({}, "big", {"blob": "x" * 5_000_000})
        notifier.info({}, "e" * 100_000, {"n": 1})
    big, long_type = [r for r in caplog.records if r.name.startswith(LOG_PREFIX)]
    text = big.getMessage()
    assert len(text) < LOG_LINE_CHARS + 100
    assert '"blob": "xxxxxxxx' in text
    assert re.search(r"\.\.\. \(500\d{4} characters in all\)$", text), text[-80:]
    assert long_type.name == f"{LOG_PREFIX}.{'e' * EVENT_TYPE_CHARS}"
    assert len(long_type.getMessage()) < LOG_LINE_CHARS + 100


def test_log_driver_logs_a_notification_within_the_bound_whole(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {"blob": "y" * (LOG_LINE_CHARS - 1000)}
    with caplog.at_level(logging.INFO, logger=LOG_PREFIX):
        messaging.Notifier(transport, "p", driver="log").info({}, "e", payload)
    assert json.loads(caplog.records[-1].getMessage())["payload"] == payload


# --- noop ----------------------------------------------------------------------------------------


def test_noop_driver_does_nothing(
    transport: messaging.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        notifier = messaging.Notifier(transport, "p", driver="noop")
        notifier.info({}, "e", {"x": 1})
    assert get_broker().queues() == []
    assert _impl_test.NOTIFICATIONS == []
    assert not [r for r in caplog.records if r.name.startswith(LOG_PREFIX)]
    assert isinstance(notifier._drivers[0], NoOpDriver)


# --- test ----------------------------------------------------------------------------------------


def test_test_driver_captures_tuples(transport: messaging.Transport) -> None:
    notifier = messaging.Notifier(transport, "pub", driver="test", retry=2)
    notifier.info({}, "one", {"a": 1})
    notifier.prepare(publisher_id="other").error(None, "two", [1, 2])

    assert len(_impl_test.NOTIFICATIONS) == 2
    first, second = _impl_test.NOTIFICATIONS
    ctxt, message, priority, retry = first
    assert ctxt == {}
    assert priority == "INFO"
    assert retry == 2
    assert message["event_type"] == "one"
    assert message["payload"] == {"a": 1}
    assert message["publisher_id"] == "pub"
    assert set(message) == {
        "message_id",
        "publisher_id",
        "event_type",
        "priority",
        "payload",
        "timestamp",
    }
    assert second[1]["publisher_id"] == "other"
    assert second[2] == "ERROR"
    assert second[1]["payload"] == [1, 2]


def test_test_driver_reset(transport: messaging.Transport) -> None:
    notifier = messaging.Notifier(transport, "pub", driver="test")
    notifier.info({}, "e", {})
    captured = _impl_test.NOTIFICATIONS
    _impl_test.reset()
    assert _impl_test.NOTIFICATIONS == []
    # reset() empties the list in place, so references kept by tests see it too.
    assert captured is _impl_test.NOTIFICATIONS
    notifier.info({}, "again", {})
    assert [m["event_type"] for _c, m, _p, _r in captured] == ["again"]


def test_impl_test_is_the_capture_module() -> None:
    assert _impl_test.NOTIFICATIONS is capture.NOTIFICATIONS
    assert _impl_test.reset is capture.reset
    assert _impl_test.TestDriver is capture.TestDriver


def test_test_driver_keeps_payload_objects_unencoded(transport: messaging.Transport) -> None:
    # The test driver sees the message before any JSON encoding, as oslo's does.
    payload: dict[str, Any] = {"obj": object()}
    messaging.Notifier(transport, "p", driver="test").info({}, "e", payload)
    assert _impl_test.NOTIFICATIONS[0][1]["payload"] is payload
