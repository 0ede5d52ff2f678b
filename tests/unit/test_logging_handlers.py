"""Logging handlers that turn log records into notifications."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.memory import get_broker, reset_brokers
from messaging.notify import _impl_test
from messaging.notify.log_handler import LoggingErrorNotificationHandler, PublishErrorsHandler
from messaging.notify.logger import LoggingNotificationHandler
from messaging.serializer import NoOpSerializer

PAYLOAD_KEYS = {
    "name",
    "levelno",
    "levelname",
    "exc_info",
    "pathname",
    "lineno",
    "msg",
    "funcName",
    "thread",
    "processName",
    "process",
    "extra",
}


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    reset_brokers()
    _impl_test.reset()
    yield
    reset_brokers()
    _impl_test.reset()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A private logger that does not propagate, with the handlers added by the test removed."""
    log = logging.getLogger(f"tests.handlers.{uuid.uuid4().hex}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def captured() -> list[tuple[Any, dict[str, Any], str, int | None]]:
    return list(_impl_test.NOTIFICATIONS)


# --- LoggingNotificationHandler -------------------------------------------------------------------


def test_record_becomes_notification_at_its_level(logger: logging.Logger) -> None:
    handler = LoggingNotificationHandler(
        "fake://", publisher_id="logs.host1", driver="test", conf=cfg.ConfigOpts()
    )
    logger.addHandler(handler)

    logger.debug("d")
    logger.info("i")
    logger.warning("w %s", "arg")
    logger.error("e")
    logger.critical("c")

    notes = captured()
    assert [priority for _c, _m, priority, _r in notes] == [
        "DEBUG",
        "INFO",
        "WARN",
        "ERROR",
        "CRITICAL",
    ]
    for ctxt, message, _p, _r in notes:
        assert ctxt == {}
        assert message["event_type"] == "logrecord"
        assert message["publisher_id"] == "logs.host1"
        assert set(message["payload"]) == PAYLOAD_KEYS
    warning = notes[2][1]["payload"]
    assert warning["msg"] == "w arg"
    assert warning["levelname"] == "WARNING"
    assert warning["levelno"] == logging.WARNING
    assert warning["name"] == logger.name
    assert warning["funcName"] == "test_record_becomes_notification_at_its_level"
    assert warning["pathname"] == __file__
    assert warning["exc_info"] is None


def test_exc_info_is_formatted(logger: logging.Logger) -> None:
    logger.addHandler(LoggingNotificationHandler("fake://", driver="test", conf=cfg.ConfigOpts()))
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it failed")
    ((_c, message, priority, _r),) = captured()
    assert priority == "ERROR"
    exc_text = message["payload"]["exc_info"]
    assert isinstance(exc_text, str)
    assert exc_text.startswith("Traceback (most recent call last):")
    assert "ValueError: boom" in exc_text
    assert message["payload"]["msg"] == "it failed"


def test_extra_is_carried(logger: logging.Logger) -> None:
    logger.addHandler(LoggingNotificationHandler("fake://", driver="test", conf=cfg.ConfigOpts()))
    logger.info("x", extra={"extra": {"request_id": "req-1"}})
    assert captured()[0][1]["payload"]["extra"] == {"request_id": "req-1"}


def test_payload_travels_as_json(logger: logging.Logger) -> None:
    conf = cfg.ConfigOpts()
    handler = LoggingNotificationHandler(
        "fake://", publisher_id="logs", driver="messagingv2", topic="logging", conf=conf
    )
    logger.addHandler(handler)
    try:
        raise KeyError("k")
    except KeyError:
        logger.error("failed", exc_info=True)
    (body,) = get_broker().messages("logging.error")
    message = json.loads(json.loads(body)["oslo.message"])
    assert message["event_type"] == "logrecord"
    assert "KeyError: 'k'" in message["payload"]["exc_info"]


def test_logging_while_sending_does_not_recurse(logger: logging.Logger) -> None:
    class ChattySerializer(NoOpSerializer):
        def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
            logger.warning("serialising %s", entity["msg"])
            return entity

    logger.addHandler(
        LoggingNotificationHandler(
            "fake://", driver="test", serializer=ChattySerializer(), conf=cfg.ConfigOpts()
        )
    )
    logger.error("original")
    assert [m["payload"]["msg"] for _c, m, _p, _r in captured()] == ["original"]
    logger.error("second")  # the guard is released after each record
    assert len(captured()) == 2


def test_log_driver_output_is_not_sent_again(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    # The log driver writes to oslo.messaging.notification.logrecord; with the
    # handler listening there too, that record must not become a notification.
    handler = LoggingNotificationHandler("fake://", driver=["log", "test"], conf=cfg.ConfigOpts())
    notification_logger = logging.getLogger("oslo.messaging.notification")
    logger.addHandler(handler)
    notification_logger.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="oslo.messaging.notification"):
            logger.error("once")
    finally:
        notification_logger.removeHandler(handler)
    assert [m["payload"]["msg"] for _c, m, _p, _r in captured()] == ["once"]
    logged = [r for r in caplog.records if r.name == "oslo.messaging.notification.logrecord"]
    assert len(logged) == 1


def test_handler_failure_goes_to_handle_error(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = LoggingNotificationHandler("fake://", driver="test", conf=cfg.ConfigOpts())
    errors: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", errors.append)

    def explode(*args: Any) -> None:
        raise RuntimeError("broken notifier")

    monkeypatch.setattr(handler._notifier, "error", explode)
    logger.addHandler(handler)
    logger.error("x")  # does not raise
    assert [r.getMessage() for r in errors] == ["x"]


def test_class_conf_is_used_when_none_given(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = cfg.ConfigOpts()
    from messaging.conf import register_notification_opts

    register_notification_opts(conf)
    conf.set_override("driver", ["test"], group="oslo_messaging_notifications")
    monkeypatch.setattr(LoggingNotificationHandler, "CONF", conf)
    handler = LoggingNotificationHandler("fake://")
    handler.handle(logging.makeLogRecord({"levelname": "INFO", "levelno": 20, "msg": "hi"}))
    assert [m["payload"]["msg"] for _c, m, _p, _r in captured()] == ["hi"]


def test_global_conf_is_read_when_nothing_else_is_given() -> None:
    # As oslo.messaging: a handler built from a logging configuration file reads
    # the service's configuration, oslo.config's global CONF.
    with messaging.ConfFixture(cfg.CONF):
        cfg.CONF.set_override("driver", ["test"], group="oslo_messaging_notifications")
        handler = LoggingNotificationHandler("fake://")
        handler.handle(logging.makeLogRecord({"levelname": "INFO", "levelno": 20, "msg": "g"}))
    assert [m["payload"]["msg"] for _c, m, _p, _r in captured()] == ["g"]


def test_unknown_level_name_is_not_sent() -> None:
    handler = LoggingNotificationHandler("fake://", driver="test", conf=cfg.ConfigOpts())
    handler.handle(logging.makeLogRecord({"levelname": "TRACE", "levelno": 5, "msg": "t"}))
    assert captured() == []


# --- LoggingErrorNotificationHandler / PublishErrorsHandler -------------------------------------


def error_conf(*drivers: str) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    from messaging.conf import register_notification_opts

    register_notification_opts(conf)
    conf.set_override("transport_url", "fake://")
    conf.set_override("driver", list(drivers), group="oslo_messaging_notifications")
    return conf


def test_publish_errors_handler_is_the_error_handler() -> None:
    assert PublishErrorsHandler is LoggingErrorNotificationHandler
    assert messaging.PublishErrorsHandler is LoggingErrorNotificationHandler


def test_only_errors_and_above_are_published(logger: logging.Logger) -> None:
    logger.addHandler(LoggingErrorNotificationHandler(conf=error_conf("test")))
    logger.info("fine")
    logger.warning("hmm")
    logger.error("disk %s is full", "sda")
    logger.critical("down")

    notes = captured()
    assert [m["payload"] for _c, m, _p, _r in notes] == [
        {"error": "disk sda is full"},
        {"error": "down"},
    ]
    for ctxt, message, priority, _r in notes:
        assert ctxt == {}
        assert priority == "ERROR"
        assert message["publisher_id"] == "error.publisher"
        assert message["event_type"] == "error_notification"


def test_level_may_be_given_positionally(logger: logging.Logger) -> None:
    # oslo.log builds it as PublishErrorsHandler(logging.ERROR) for publish_errors.
    handler = PublishErrorsHandler(logging.ERROR, conf=error_conf("test"))
    assert handler.level == logging.ERROR
    logger.addHandler(handler)
    logger.warning("no")
    logger.error("yes")
    assert [m["payload"] for _c, m, _p, _r in captured()] == [{"error": "yes"}]


def test_sent_through_the_transport(logger: logging.Logger) -> None:
    logger.addHandler(LoggingErrorNotificationHandler(conf=error_conf("messagingv2")))
    logger.error("broken")
    (body,) = get_broker().messages("notifications.error")
    message = json.loads(json.loads(body)["oslo.message"])
    assert message["payload"] == {"error": "broken"}
    assert message["publisher_id"] == "error.publisher"


def test_disabled_when_log_driver_configured(logger: logging.Logger) -> None:
    logger.addHandler(LoggingErrorNotificationHandler(conf=error_conf("log", "test")))
    logger.error("would loop")
    assert captured() == []


def test_log_driver_configured_later_disables_it(logger: logging.Logger) -> None:
    conf = error_conf("test")
    logger.addHandler(LoggingErrorNotificationHandler(conf=conf))
    logger.error("first")
    conf.set_override("driver", ["log", "test"], group="oslo_messaging_notifications")
    logger.error("second")
    assert [m["payload"] for _c, m, _p, _r in captured()] == [{"error": "first"}]


def test_error_handler_does_not_recurse(logger: logging.Logger) -> None:
    handler = LoggingErrorNotificationHandler(conf=error_conf("test"))

    class Chatty(NoOpSerializer):
        def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
            logger.error("while sending")
            return entity

    handler._notifier._serializer = Chatty()
    logger.addHandler(handler)
    logger.error("outer")
    assert [m["payload"] for _c, m, _p, _r in captured()] == [{"error": "outer"}]
