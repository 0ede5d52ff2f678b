"""Traces on the real RabbitMQ: client -> server -> notification -> listener, one trace.

The executor is ``MESSAGING_TEST_EXECUTOR``'s (threading by default), so that
``test_under_eventlet.py`` runs this module monkey-patched, with ``eventlet``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from oslo_config import cfg

pytest.importorskip("opentelemetry.sdk")

import messaging
from messaging.conf import TRACING_GROUP, register_tracing_opts
from tests.brokers import rabbit_url, rabbit_vhost
from tests.tracing_support import attributes, call_then_notify, span_exporter

pytestmark = pytest.mark.broker
TIMEOUT = 30.0
EXECUTOR = os.environ.get("MESSAGING_TEST_EXECUTOR", "threading")


@pytest.fixture
def vhost() -> Iterator[str]:
    with rabbit_vhost("messaging-tracing") as name:
        yield name


def traced_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="messaging-tests", default_config_files=[], default_config_dirs=[])
    register_tracing_opts(conf)
    conf.set_override("tracing_enabled", True, group=TRACING_GROUP)
    return conf


def test_one_trace_from_client_through_server_and_notification_to_listener(vhost: str) -> None:
    span_exporter().clear()
    conf = traced_conf()
    rpc = messaging.get_rpc_transport(conf, rabbit_url(vhost))
    notifications = messaging.get_notification_transport(conf, rabbit_url(vhost))
    try:
        found = call_then_notify(rpc, notifications, EXECUTOR, TIMEOUT)
    finally:
        rpc.cleanup()
        notifications.cleanup()
    assert {attributes(span)["messaging.system"] for span in found.values()} == {"rabbitmq"}
    trace_ids = {span.context.trace_id for span in found.values() if span.context is not None}
    assert len(trace_ids) == 1
