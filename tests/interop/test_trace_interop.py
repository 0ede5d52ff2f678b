"""One trace across oslo.messaging 18.3 and this project, over RabbitMQ, both ways.

oslo.messaging 18.3 traces RPC only: its client injects the W3C trace context
into the serialized request context (``_context_traceparent`` on the wire) and
its server continues it. Both processes export into the OpenTelemetry SDK's
in-memory exporter; the oslo peer prints its spans (``span`` lines).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from oslo_config import cfg

pytest.importorskip("opentelemetry.sdk")

from messaging.conf import TRACING_GROUP, register_tracing_opts
from tests.interop.oslo_env import InteropNames, OsloPeers
from tests.interop.test_rpc_interop import our_client, start_our_server
from tests.tracing_support import (
    attributes,
    has_names,
    named,
    span_exporter,
    wait_for_spans,
)

pytestmark = pytest.mark.broker
TIMEOUT = 30.0


@pytest.fixture
def traced_conf(our_conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    register_tracing_opts(our_conf)
    our_conf.set_override("tracing_enabled", True, group=TRACING_GROUP)
    span_exporter().clear()
    return our_conf


def hex_ids(span: Any) -> tuple[str, str]:
    """``(trace_id, span_id)`` of one of our spans, as the peer prints them."""
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def test_our_call_continues_in_the_oslo_servers_span(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    traced_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic, server = names.topic("m2otrace"), names.server("oslo")
    peer = oslo_peers.rpc_server(topic, server, trace=True)
    client = our_client(stack, traced_conf, rabbit_url, topic)

    assert client.call({"request_id": "req-m2o"}, "add", a=2, b=3) == 5
    client.cast({}, "record", n=1)
    peer.wait_event("invoked", TIMEOUT, method="record")
    peer.stop()

    ours = wait_for_spans(
        span_exporter(), has_names(f"{topic}.add", f"{topic}.record"), TIMEOUT, "our spans"
    )
    oslo_spans = {
        line["name"]: line
        for line in peer.lines
        if isinstance(line, dict) and line["event"] == "span"
    }
    for method in ("add", "record"):
        sent = named(ours, f"{topic}.{method}")
        trace_id, span_id = hex_ids(sent)
        handled = oslo_spans.get(f"{method} receive")
        assert handled is not None, peer.diagnostics()
        assert (handled["trace_id"], handled["parent_id"]) == (trace_id, span_id), handled
        assert handled["kind"] == "CONSUMER"
    assert oslo_spans["add receive"]["attributes"]["openstack.request_id"] == "req-m2o"
    assert attributes(named(ours, f"{topic}.add"))["messaging.system"] == "rabbitmq"


def test_an_oslo_call_continues_in_our_servers_span(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    traced_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic, server = names.topic("o2mtrace"), names.server("ours")
    endpoint = start_our_server(stack, traced_conf, rabbit_url, topic, server)
    spans: list[dict[str, Any]] = []

    add, cast = oslo_peers.rpc_client(
        topic,
        [
            {"kind": "call", "method": "add", "args": {"a": 1, "b": 2}},
            {"kind": "cast", "method": "record", "args": {"n": 2}},
        ],
        spans=spans,
    )
    assert (add["event"], add["result"], cast["event"]) == ("result", 3, "result"), (add, cast)
    recorded = endpoint.wait_for("record", timeout=TIMEOUT)

    ours = wait_for_spans(
        span_exporter(), has_names("add receive", "record receive"), TIMEOUT, "our spans"
    )
    oslo_spans = {line["name"]: line for line in spans}
    for method, operation in (("add", "call"), ("record", "cast")):
        sent = oslo_spans[f"{topic}.{method}"]
        assert (sent["kind"], sent["attributes"]["messaging.operation"]) == (
            "PRODUCER",
            operation,
        )
        handled = named(ours, f"{method} receive")
        assert handled.parent is not None and handled.context is not None
        assert f"{handled.context.trace_id:032x}" == sent["trace_id"]
        assert f"{handled.parent.span_id:016x}" == sent["span_id"]
    # The context oslo sent reaches our endpoint with its trace keys, as in oslo.
    assert "traceparent" in recorded["ctxt"]
