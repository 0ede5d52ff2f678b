"""The seams oslo.messaging's tests and services' tests patch: patching them sees every send."""

from __future__ import annotations

from collections.abc import Iterator
from unittest import mock

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.memory import reset_brokers


@pytest.fixture
def conf() -> Iterator[cfg.ConfigOpts]:
    reset_brokers()
    conf = cfg.ConfigOpts()
    with messaging.ConfFixture(conf, transport_url="fake://"):
        yield conf
    reset_brokers()


def test_patched_send_sees_casts_and_calls_with_oslos_arguments(conf: cfg.ConfigOpts) -> None:
    transport = messaging.get_rpc_transport(conf)
    try:
        client = messaging.get_rpc_client(transport, messaging.Target(topic="t"), timeout=7)
        with mock.patch.object(transport, "_send", return_value="patched") as send:
            client.cast({}, "m", a=1)
            assert client.call({}, "m", b=2) == "patched"
        target = messaging.Target(topic="t")
        assert send.call_args_list == [
            mock.call(
                target, {}, {"method": "m", "args": {"a": 1}}, retry=None, transport_options=None
            ),
            mock.call(
                target,
                {},
                {"method": "m", "args": {"b": 2}},
                wait_for_reply=True,
                timeout=7,
                call_monitor_timeout=None,
                retry=None,
                transport_options=None,
            ),
        ]
    finally:
        transport.cleanup()


def test_patched_send_notification_sees_every_notification(conf: cfg.ConfigOpts) -> None:
    transport = messaging.get_notification_transport(conf)
    try:
        notifier = messaging.Notifier(transport, "p", driver=["messaging", "messagingv2"])
        with mock.patch.object(transport, "_send_notification") as send:
            notifier.info({}, "e.t", {"k": "v"})
        assert [c.kwargs for c in send.call_args_list] == [
            {"version": 1.0, "retry": -1},
            {"version": 2.0, "retry": -1},
        ]
        assert {c.args[0].topic for c in send.call_args_list} == {"notifications.info"}
    finally:
        transport.cleanup()


def test_patched_timeutils_and_uuid_make_the_notification(conf: cfg.ConfigOpts) -> None:
    import datetime
    import uuid

    from oslo_utils import timeutils

    transport = messaging.get_notification_transport(conf)
    try:
        notifier = messaging.Notifier(transport, "p", driver="messagingv2")
        frozen = datetime.datetime(2026, 1, 2, 3, 4, 5, 678)
        chosen = uuid.UUID("12345678-1234-4234-8234-123456789abc")
        with (
            mock.patch.object(transport, "_send_notification") as send,
            mock.patch.object(timeutils, "utcnow", return_value=frozen),
            mock.patch.object(uuid, "uuid4", return_value=chosen),
        ):
            notifier.info({}, "e.t", {})
        message = send.call_args.args[2]
        assert message["timestamp"] == "2026-01-02 03:04:05.000678"
        assert message["message_id"] == str(chosen)
    finally:
        transport.cleanup()
