"""What the trace tests share: the process's in-memory span exporter, and reading a trace.

The OpenTelemetry API lets a process set its global TracerProvider once; the
tests set an SDK provider with an :class:`InMemorySpanExporter` the first time
one is asked for, and clear the exporter before each test.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from oslo_context import context as oslo_context

_LOCK = threading.Lock()
_EXPORTER: InMemorySpanExporter | None = None


def span_exporter() -> InMemorySpanExporter:
    """The exporter every span of this process ends in (the global provider set up once)."""
    global _EXPORTER
    with _LOCK:
        if _EXPORTER is None:
            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            if trace.get_tracer_provider() is not provider:
                raise RuntimeError("another TracerProvider was set in this test process first")
            _EXPORTER = exporter
        return _EXPORTER


def wait_for_spans(
    exporter: InMemorySpanExporter,
    predicate: Callable[[Sequence[ReadableSpan]], bool],
    timeout: float,
    what: str,
) -> list[ReadableSpan]:
    """The finished spans once ``predicate`` holds for them; fails after ``timeout`` seconds.

    A handling span ends after the reply or acknowledgement, a moment after the
    sender saw the result, so tests wait for it (polling: the exporter has no
    notification to wait on).
    """
    deadline = time.monotonic() + timeout
    while True:
        spans = list(exporter.get_finished_spans())
        if predicate(spans):
            return spans
        if time.monotonic() > deadline:
            names = [span.name for span in spans]
            raise AssertionError(f"no {what} within {timeout} s; finished spans: {names}")
        time.sleep(0.01)


def named(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    """The one span called ``name``."""
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name!r} in {[s.name for s in spans]}"
    return found[0]


def has_names(*names: str) -> Callable[[Sequence[ReadableSpan]], bool]:
    """A predicate for :func:`wait_for_spans`: spans of each of these names have finished."""

    def check(spans: Sequence[ReadableSpan]) -> bool:
        present = {span.name for span in spans}
        return all(name in present for name in names)

    return check


def assert_child(child: ReadableSpan, parent: ReadableSpan) -> None:
    """``child``'s parent is ``parent``, in the same trace."""
    assert child.context is not None and parent.context is not None
    assert child.context.trace_id == parent.context.trace_id, (child.name, parent.name)
    assert child.parent is not None, f"{child.name} has no parent"
    assert child.parent.span_id == parent.context.span_id, (child.name, parent.name)


def attributes(span: ReadableSpan) -> dict[str, Any]:
    """The span's attributes, as a plain dict."""
    return dict(span.attributes or {})


class Relay:
    """An RPC endpoint that sends a notification while it handles ``work``.

    It records the span current in the endpoint (the server's handling span
    must be), and the context it received.
    """

    def __init__(self, notifier: Any) -> None:
        self.notifier = notifier
        self.seen: queue.Queue[tuple[Any, Any]] = queue.Queue()

    def work(self, ctxt: Any, value: Any) -> Any:
        self.seen.put((trace.get_current_span().get_span_context(), ctxt))
        # As a service does: its context object, built from the dict received
        # (trace keys included), is what it notifies with.
        request = oslo_context.RequestContext.from_dict(ctxt)
        self.notifier.info(request, "relay.done", {"value": value})
        return value


class Sink:
    """A notification endpoint recording the current span and the context of each ``info``."""

    def __init__(self) -> None:
        self.seen: queue.Queue[tuple[Any, Any]] = queue.Queue()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.seen.put((trace.get_current_span().get_span_context(), ctxt))


def take(seen: queue.Queue[Any], timeout: float, what: str) -> Any:
    """The next item of ``seen``; fails after ``timeout`` seconds."""
    try:
        return seen.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no {what} within {timeout} s") from None


def call_then_notify(
    rpc: Any, notifications: Any, executor: str, timeout: float
) -> dict[str, ReadableSpan]:
    """An RPC call whose endpoint sends a notification to a listener, all traced.

    Checks that the four spans (call, its handling, the notification sent from
    inside it, its handling) form one trace, each the parent of the next, each
    current where an endpoint runs; returns them by role.
    """
    import messaging

    token = uuid.uuid4().hex[:8]
    topic, notify_topic = f"trace-{token}", f"trace-n-{token}"
    exporter = span_exporter()
    notifier = messaging.Notifier(
        notifications, "relay.host", driver="messagingv2", topics=[notify_topic]
    )
    relay, sink = Relay(notifier), Sink()
    server = messaging.get_rpc_server(
        rpc, messaging.Target(topic=topic, server="s1"), [relay], executor=executor
    )
    listener = messaging.get_notification_listener(
        notifications, [messaging.Target(topic=notify_topic)], [sink], executor=executor
    )
    listener.start()
    server.start()
    try:
        client = messaging.get_rpc_client(rpc, messaging.Target(topic=topic), timeout=timeout)
        ctxt = {"request_id": f"req-{token}", "user": "alice"}
        assert client.call(ctxt, "work", value=7) == 7
        assert ctxt == {"request_id": f"req-{token}", "user": "alice"}, "the caller's dict changed"
        in_server, server_ctxt = take(relay.seen, timeout, "call in the endpoint")
        in_listener, listener_ctxt = take(sink.seen, timeout, "notification in the listener")
    finally:
        server.stop()
        listener.stop()
        server.wait()
        listener.wait()
    call, handle = f"{topic}.work", "work receive"
    sent, received = "relay.done send", "relay.done receive"
    spans = wait_for_spans(
        exporter, has_names(call, handle, sent, received), timeout, "four spans of the trace"
    )
    found = {
        "call": named(spans, call),
        "handle": named(spans, handle),
        "sent": named(spans, sent),
        "received": named(spans, received),
    }
    assert_child(found["handle"], found["call"])
    assert_child(found["sent"], found["handle"])
    assert_child(found["received"], found["sent"])
    assert found["call"].kind == trace.SpanKind.PRODUCER
    assert found["handle"].kind == trace.SpanKind.CONSUMER
    assert found["sent"].kind == trace.SpanKind.PRODUCER
    assert found["received"].kind == trace.SpanKind.CONSUMER
    handle_context = found["handle"].context
    received_context = found["received"].context
    assert handle_context is not None and received_context is not None
    assert in_server.span_id == handle_context.span_id, "handling span not current in endpoint"
    assert in_listener.span_id == received_context.span_id, "listener span not current"
    assert server_ctxt["request_id"] == f"req-{token}"
    assert listener_ctxt["request_id"] == f"req-{token}", listener_ctxt
    return found
