"""OpenTelemetry traces (messaging.tracing) on the in-memory transport, in-memory exporter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg
from oslo_context import context as oslo_context

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

import messaging
from messaging import tracing
from messaging.conf import TRACING_GROUP, list_opts, register_tracing_opts
from messaging.drivers.memory import reset_brokers
from tests.tracing_support import (
    assert_child,
    attributes,
    call_then_notify,
    has_names,
    named,
    span_exporter,
    wait_for_spans,
)
from tests.unit.listener_support import TIMEOUT, InfoRecorder, make_conf, running

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    reset_brokers()
    found = span_exporter()
    found.clear()
    yield found
    found.clear()
    reset_brokers()


def traced_conf(**overrides: Any) -> cfg.ConfigOpts:
    conf = make_conf(**overrides)
    register_tracing_opts(conf)
    conf.set_override("tracing_enabled", True, group=TRACING_GROUP)
    return conf


class Calc:
    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b

    def fail(self, ctxt: Any) -> None:
        raise ValueError("no")

    def context(self, ctxt: Any) -> Any:
        return ctxt


# -- options ------------------------------------------------------------------------------


def test_the_options_are_registered_on_the_callers_conf_only() -> None:
    conf = make_conf()
    global_before = TRACING_GROUP in cfg.CONF  # other tests may use cfg.CONF themselves
    transport = messaging.get_rpc_transport(conf, "fake://")
    try:
        group = conf[TRACING_GROUP]
        assert group.tracing_enabled is False
        assert group.tracing_service_name == "openstack"
        assert group.otel_exporter_otlp_endpoint == "http://localhost:4318"
        assert group.otlp_protocol == "http/protobuf"
        assert group.insecure is False
        assert transport.tracing is None
        assert (TRACING_GROUP in cfg.CONF) == global_before
    finally:
        transport.cleanup()


def test_the_group_is_listed_for_the_sample_config() -> None:
    groups = dict(list_opts())
    names = [opt.name for opt in groups[TRACING_GROUP]]
    assert names == [
        "tracing_enabled",
        "tracing_service_name",
        "otel_exporter_otlp_endpoint",
        "otlp_protocol",
        "insecure",
    ]


def test_an_unknown_otlp_protocol_is_refused() -> None:
    conf = make_conf()
    tracing.from_conf(conf, "fake")
    with pytest.raises(ValueError):
        conf.set_override("otlp_protocol", "thrift", group=TRACING_GROUP)


@pytest.mark.parametrize(
    ("scheme", "system"),
    [("rabbit", "rabbitmq"), ("fake", "fake"), ("kombu+redis", "redis"), (None, "unknown")],
)
def test_messaging_system_names_the_broker(scheme: str | None, system: str) -> None:
    assert tracing.messaging_system(scheme) == system


# -- one trace from client to listener ---------------------------------------------------


@pytest.mark.parametrize("executor", ["threading", "blocking"])
def test_one_trace_runs_from_the_client_through_the_server_to_the_listener(
    exporter: InMemorySpanExporter, executor: str
) -> None:
    conf = traced_conf()
    rpc = messaging.get_rpc_transport(conf, "fake://")
    notifications = messaging.get_notification_transport(conf, "fake://")
    try:
        found = call_then_notify(rpc, notifications, executor, TIMEOUT)
    finally:
        rpc.cleanup()
        notifications.cleanup()
    call = attributes(found["call"])
    topic = found["call"].name.removesuffix(".work")
    assert call == {
        "messaging.system": "fake",
        "messaging.operation": "call",
        "messaging.destination.name": topic,
        "rpc.method": "work",
        "openstack.request_id": call["openstack.request_id"],
    }
    handle = attributes(found["handle"])
    assert handle["messaging.operation"] == "receive"
    assert handle["rpc.method"] == "work"
    assert handle["messaging.destination.name"] == topic
    assert handle["openstack.request_id"] == call["openstack.request_id"]
    assert handle["messaging.message.id"]
    sent = attributes(found["sent"])
    assert sent["messaging.operation"] == "send"
    assert sent["messaging.destination.name"].endswith(".info")
    assert sent["openstack.notification.event_type"] == "relay.done"
    assert sent["openstack.notification.priority"] == "INFO"
    assert sent["openstack.notification.publisher_id"] == "relay.host"
    received = attributes(found["received"])
    assert received["messaging.message.id"] == sent["messaging.message.id"]
    assert received["openstack.request_id"] == call["openstack.request_id"]


def test_a_cast_is_a_producer_span_and_its_handling_its_child(
    exporter: InMemorySpanExporter,
) -> None:
    conf = traced_conf()
    rpc = messaging.get_rpc_transport(conf, "fake://")
    target = messaging.Target(topic="calc", server="s1", namespace="math")
    recorder = InfoRecorder()
    try:
        server = messaging.get_rpc_server(rpc, target, [Casted(recorder)], executor="threading")
        with running(server):
            client = messaging.get_rpc_client(rpc, messaging.Target(topic="calc", namespace="math"))
            client.cast({}, "note", value=1)
            recorder.take(1)
            spans = wait_for_spans(exporter, has_names("calc.note", "note receive"), TIMEOUT, "")
    finally:
        rpc.cleanup()
    cast, handle = named(spans, "calc.note"), named(spans, "note receive")
    assert_child(handle, cast)
    assert attributes(cast)["messaging.operation"] == "cast"
    assert attributes(cast)["rpc.service"] == "math"
    assert attributes(handle)["rpc.service"] == "math"
    assert "messaging.message.id" not in attributes(handle)  # a cast has no msg_id
    assert "openstack.request_id" not in attributes(cast)


class Casted:
    def __init__(self, recorder: InfoRecorder) -> None:
        self.recorder = recorder
        self.target = messaging.Target(namespace="math")

    def note(self, ctxt: Any, value: int) -> None:
        self.recorder.record("note", ctxt, value)


def test_a_failed_call_marks_both_spans_as_errors(exporter: InMemorySpanExporter) -> None:
    conf = traced_conf()
    rpc = messaging.get_rpc_transport(conf, "fake://")
    try:
        server = messaging.get_rpc_server(
            rpc, messaging.Target(topic="calc", server="s1"), [Calc()], executor="threading"
        )
        with running(server):
            client = messaging.get_rpc_client(rpc, messaging.Target(topic="calc"), timeout=5)
            with pytest.raises(ValueError):
                client.call({}, "fail")
            spans = wait_for_spans(exporter, has_names("calc.fail", "fail receive"), TIMEOUT, "")
    finally:
        rpc.cleanup()
    for span in (named(spans, "calc.fail"), named(spans, "fail receive")):
        assert span.status.status_code == trace.StatusCode.ERROR, span.name
        assert "ValueError" in (span.status.description or ""), span.name
        assert [event.name for event in span.events] == ["exception"], span.name


def test_a_requeued_notification_marks_its_span_as_an_error(
    exporter: InMemorySpanExporter,
) -> None:
    conf = traced_conf()
    conf.set_override("requeue_backoff", 0.0, group="oslo_messaging_notifications")
    bus = messaging.get_notification_transport(conf, "fake://")
    endpoint = RequeueOnce()
    try:
        listener = messaging.get_notification_listener(
            bus, [messaging.Target(topic="r")], [endpoint], "threading", allow_requeue=True
        )
        with running(listener):
            messaging.Notifier(bus, "p", driver="messaging", topics=["r"]).info({}, "e.t", {})
            endpoint.take(2)
            spans = wait_for_spans(
                exporter,
                lambda s: sum(x.name == "e.t receive" for x in s) == 2,
                TIMEOUT,
                "two handling spans",
            )
    finally:
        bus.cleanup()
    sent = named(spans, "e.t send")
    handled = [span for span in spans if span.name == "e.t receive"]
    for span in handled:
        assert_child(span, sent)
    statuses = sorted(span.status.status_code.name for span in handled)
    assert statuses == ["ERROR", "UNSET"]


class RequeueOnce(InfoRecorder):
    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> Any:
        first = self.calls.empty() and not getattr(self, "_done", False)
        self._done = True
        super().info(ctxt, publisher_id, event_type, payload, md)
        return messaging.NotificationResult.REQUEUE if first else None


def test_a_batch_is_one_span_linked_to_each_sender(exporter: InMemorySpanExporter) -> None:
    conf = traced_conf()
    bus = messaging.get_notification_transport(conf, "fake://")
    endpoint = BatchRecorder()
    try:
        listener = messaging.get_batch_notification_listener(
            bus,
            [messaging.Target(topic="b")],
            [endpoint],
            "threading",
            batch_size=3,
            batch_timeout=TIMEOUT,
        )
        notifier = messaging.Notifier(bus, "p", driver="messaging", topics=["b"])
        with running(listener):
            for n in range(3):
                notifier.info({}, f"e{n}", {})
            endpoint.take(1)
            spans = wait_for_spans(exporter, has_names("notifications receive"), TIMEOUT, "")
    finally:
        bus.cleanup()
    batch = named(spans, "notifications receive")
    senders = {named(spans, f"e{n} send").context.span_id for n in range(3)}  # type: ignore[union-attr]
    assert {link.context.span_id for link in batch.links} == senders
    assert batch.parent is None
    assert attributes(batch)["messaging.batch.message_count"] == 3
    assert endpoint.current == batch.context.span_id  # type: ignore[union-attr]


class BatchRecorder(InfoRecorder):
    current: int | None = None

    def info(self, messages: list[dict[str, Any]]) -> None:  # type: ignore[override]
        self.current = trace.get_current_span().get_span_context().span_id
        self.record("info", messages)


# -- the context dict -----------------------------------------------------------------


def test_the_trace_keys_travel_in_the_context_and_from_dict_ignores_them(
    exporter: InMemorySpanExporter,
) -> None:
    conf = traced_conf()
    rpc = messaging.get_rpc_transport(conf, "fake://")
    sent = oslo_context.RequestContext(user_id="alice", request_id="req-1").to_dict()
    try:
        server = messaging.get_rpc_server(
            rpc, messaging.Target(topic="calc", server="s1"), [Calc()], executor="threading"
        )
        with running(server):
            client = messaging.get_rpc_client(rpc, messaging.Target(topic="calc"), timeout=5)
            received = client.call(sent, "context")
    finally:
        rpc.cleanup()
    assert set(received) - set(sent) == {"traceparent", "client_timeout"}
    assert {k: received[k] for k in sent} == sent
    rebuilt = oslo_context.RequestContext.from_dict(received)
    assert rebuilt.to_dict() == oslo_context.RequestContext.from_dict(sent).to_dict()
    assert "traceparent" not in sent


def test_a_context_sent_on_carries_the_current_span_not_the_received_one(
    exporter: InMemorySpanExporter,
) -> None:
    traced = tracing.Tracing("fake")
    stale = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01", "tracestate": "a=b"}
    with traced.send_rpc(messaging.Target(topic="t"), stale, {"method": "m"}, call=False) as ctxt:
        current = trace.get_current_span().get_span_context()
    flags = f"{current.trace_flags:02x}"
    assert ctxt["traceparent"] == f"00-{current.trace_id:032x}-{current.span_id:016x}-{flags}"
    assert "tracestate" not in ctxt
    assert stale["tracestate"] == "a=b", "the caller's dict changed"


def test_a_context_object_is_sent_as_its_dict_with_the_trace_keys(
    exporter: InMemorySpanExporter,
) -> None:
    traced = tracing.Tracing("fake")
    request = oslo_context.RequestContext(request_id="req-9")
    with traced.send_rpc(messaging.Target(topic="t"), request, {"method": "m"}, call=True) as ctxt:
        pass
    assert ctxt["request_id"] == "req-9" and "traceparent" in ctxt
    assert attributes(named(exporter.get_finished_spans(), "t.m"))["openstack.request_id"] == (
        "req-9"
    )


def test_with_tracing_off_the_context_is_untouched(exporter: InMemorySpanExporter) -> None:
    conf = make_conf()
    rpc = messaging.get_rpc_transport(conf, "fake://")
    sent = {"user": "alice", "request_id": "req-1", "roles": ["a"]}
    try:
        server = messaging.get_rpc_server(
            rpc, messaging.Target(topic="calc", server="s1"), [Calc()], executor="threading"
        )
        with running(server):
            client = messaging.get_rpc_client(rpc, messaging.Target(topic="calc"), timeout=5)
            received = client.call(sent, "context")
    finally:
        rpc.cleanup()
    assert received == {**sent, "client_timeout": None}
    assert exporter.get_finished_spans() == ()


# -- without the library, and the provider ------------------------------------------------


def run_python(*parts: str) -> subprocess.CompletedProcess[str]:
    code = "\n".join(textwrap.dedent(part) for part in parts)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )


PRIVATE_CONF = """
    from oslo_config import cfg
    import messaging
    conf = cfg.ConfigOpts()
    conf([], project="t", default_config_files=[], default_config_dirs=[])
    messaging.get_rpc_transport(conf, "fake://")
    conf.set_override("tracing_enabled", True, group="oslo_messaging_tracing")
"""


def test_messaging_works_without_opentelemetry_and_says_what_to_install() -> None:
    done = run_python(
        """
        import logging, sys
        sys.modules["opentelemetry"] = None
        logging.basicConfig(level=logging.WARNING)
        """,
        PRIVATE_CONF,
        """
        rpc = messaging.get_rpc_transport(conf, "fake://")
        assert rpc.tracing is None
        class E:
            def add(self, ctxt, a, b):
                return a + b
        server = messaging.get_rpc_server(
            rpc, messaging.Target(topic="t", server="s"), [E()], executor="threading")
        server.start()
        try:
            client = messaging.get_rpc_client(rpc, messaging.Target(topic="t"), timeout=10)
            assert client.call({}, "add", a=1, b=2) == 3
        finally:
            server.stop()
            server.wait()
        messaging.get_rpc_transport(conf, "fake://")
        print("ok", "opentelemetry" in [m.split(".")[0] for m in sys.modules if sys.modules[m]])
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "False"]
    warnings = [line for line in done.stderr.splitlines() if "opentelemetry-api" in line]
    assert len(warnings) == 1, done.stderr
    assert "messaging-fleet[tracing]" in warnings[0]


def test_without_a_provider_or_exporter_a_warning_names_the_package_and_context_still_flows() -> (
    None
):
    done = run_python(
        """
        import logging
        logging.basicConfig(level=logging.WARNING)
        """,
        PRIVATE_CONF,
        """
        from opentelemetry import trace
        rpc = messaging.get_rpc_transport(conf, "fake://")
        messaging.get_rpc_transport(conf, "fake://")
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        parent = trace.SpanContext(0xABC, 0xDEF, is_remote=True,
                                   trace_flags=trace.TraceFlags(1))
        with trace.use_span(trace.NonRecordingSpan(parent)):
            with rpc.tracing.send_rpc(messaging.Target(topic="t"), {}, {"method": "m"},
                                      call=False) as ctxt:
                pass
        print(ctxt["traceparent"])
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"00-{0xABC:032x}-{0xDEF:016x}-01"]
    warnings = [line for line in done.stderr.splitlines() if "TracerProvider" in line]
    assert len(warnings) == 1, done.stderr
    assert "opentelemetry-exporter-otlp-proto-http" in warnings[0]


@pytest.mark.parametrize(
    ("protocol", "module", "expected"),
    [
        (
            "http/protobuf",
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
            {"endpoint": "http://collector:4318/v1/traces"},
        ),
        (
            "grpc",
            "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
            {"endpoint": "http://collector:4318/", "insecure": True},
        ),
    ],
)
def test_without_a_provider_one_is_set_up_with_the_otlp_exporter(
    protocol: str, module: str, expected: dict[str, Any]
) -> None:
    done = run_python(
        f"""
        import json, sys, types
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
        made = []
        class OTLPSpanExporter(SpanExporter):
            def __init__(self, **kwargs):
                made.append(kwargs)
            def export(self, spans):
                return SpanExportResult.SUCCESS
        fake = types.ModuleType({module!r})
        fake.OTLPSpanExporter = OTLPSpanExporter
        sys.modules[{module!r}] = fake
        """,
        PRIVATE_CONF,
        f"""
        conf.set_override("otlp_protocol", {protocol!r}, group="oslo_messaging_tracing")
        conf.set_override("insecure", True, group="oslo_messaging_tracing")
        conf.set_override("tracing_service_name", "nova-compute",
                          group="oslo_messaging_tracing")
        conf.set_override("otel_exporter_otlp_endpoint", "http://collector:4318/",
                          group="oslo_messaging_tracing")
        from opentelemetry import trace
        messaging.get_rpc_transport(conf, "fake://")
        messaging.get_rpc_transport(conf, "fake://")
        provider = trace.get_tracer_provider()
        print(json.dumps({{
            "made": made,
            "service": provider.resource.attributes["service.name"],
        }}))
        """,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"made": [expected], "service": "nova-compute"}


def test_a_provider_of_the_process_is_kept() -> None:
    done = run_python(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        mine = TracerProvider()
        trace.set_tracer_provider(mine)
        """,
        PRIVATE_CONF,
        """
        messaging.get_rpc_transport(conf, "fake://")
        print(trace.get_tracer_provider() is mine)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]


def test_a_notification_through_the_outbox_still_continues_the_trace(
    exporter: InMemorySpanExporter,
) -> None:
    conf = traced_conf()
    conf.set_override("outbox", "memory", group="oslo_messaging_notifications")
    bus = messaging.get_notification_transport(conf, "fake://")
    endpoint = InfoRecorder()
    try:
        listener = messaging.get_notification_listener(
            bus, [messaging.Target(topic="o")], [endpoint], "threading"
        )
        with running(listener):
            notifier = messaging.Notifier(bus, "p", driver="messagingv2", topics=["o"])
            notifier.info({}, "out.box", {})
            endpoint.take(1)
            spans = wait_for_spans(
                exporter, has_names("out.box send", "out.box receive"), TIMEOUT, ""
            )
    finally:
        bus.cleanup()
    assert_child(named(spans, "out.box receive"), named(spans, "out.box send"))
