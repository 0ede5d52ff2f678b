"""OpenTelemetry traces of RPC and notifications, opt-in (the ``tracing`` extra).

Off unless ``[oslo_messaging_tracing] tracing_enabled`` is set in the
configuration a transport is made with (:func:`from_conf`); the transport then
holds a :class:`Tracing` (``Transport.tracing``, None while off), and the
Transport and server layers make these spans:

==================================  ========  ============================================
span                                kind      made by
==================================  ========  ============================================
``<topic>.<method>``                PRODUCER  an RPC call, cast or fanout cast (as oslo 18.3)
``<method> receive``                CONSUMER  an RPC server handling a request (as oslo 18.3)
``<event_type> send``               PRODUCER  a notification sent
``<event_type> receive``            CONSUMER  a notification listener handling one
``notifications receive``           CONSUMER  a batch listener handling a batch (linked to
                                              each notification's sender)
==================================  ========  ============================================

The W3C trace context travels inside the message's serialized context, the
way oslo.messaging 18.3 carries it for RPC: the global propagator writes its
fields (``traceparent``, ``tracestate``, ``baggage``) into a copy of the
context dict, which the wire format flattens into ``_context_traceparent``...
A receiver extracts them from the context it decoded and starts its handling
span as their child; that span is current while the endpoint runs, so
whatever the endpoint sends (a notification, another call) continues the
trace. The keys stay in the context an endpoint receives, as in oslo;
oslo.context's ``RequestContext.from_dict`` ignores them, and a context sent
on replaces stale ones with the current span's.

With tracing off, or ``opentelemetry-api`` missing, each hook costs one
attribute read and a message is byte for byte what it was without this module.

If the process has no TracerProvider of its own when the first traced
transport is made, one is set up (the ``opentelemetry-sdk`` and the OTLP
exporter of ``otlp_protocol`` installed) exporting to
``otel_exporter_otlp_endpoint`` as ``tracing_service_name``; without those
packages a warning names what to install, and spans go to the global API
provider (no-ops until the process sets one), which still carries the
context of incoming messages on to outgoing ones.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from messaging._extras import install_hint
from messaging.conf import TRACING_GROUP, register_tracing_opts

if TYPE_CHECKING:
    from oslo_config import cfg

__all__ = ["TRACER_NAME", "Tracing", "from_conf", "messaging_system"]

LOG = logging.getLogger(__name__)
#: The instrumentation scope of the spans.
TRACER_NAME = "messaging"
#: ``messaging.system`` by transport URL scheme, where OpenTelemetry names it.
_SYSTEMS = {"rabbit": "rabbitmq", "kombu+amqp": "rabbitmq", "kombu+pyamqp": "rabbitmq"}
_EXTRA = install_hint("opentelemetry")
_EXPORTERS = {
    "http/protobuf": (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry-exporter-otlp-proto-http",
    ),
    "grpc": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry-exporter-otlp-proto-grpc",
    ),
}

_SETUP_LOCK = threading.Lock()
_provider_checked = False
_api_missing_warned = False


class _Target(Protocol):
    topic: str | None
    namespace: str | None


class _Incoming(Protocol):
    ctxt: Any
    message: dict[str, Any]


def messaging_system(scheme: str | None) -> str:
    """The ``messaging.system`` attribute of a transport URL scheme (``rabbit``: ``rabbitmq``)."""
    scheme = scheme or ""
    return _SYSTEMS.get(scheme, scheme.removeprefix("kombu+") or "unknown")


class Tracing:
    """Makes the spans of one transport, and carries their context in messages.

    Args:
        system: the ``messaging.system`` attribute (``rabbitmq``, ``memory``...).
        tracer_provider: where the spans go; the global provider when None (read
            at each span, so a provider set later is used).

    Raises:
        ImportError: ``opentelemetry-api`` is not installed.
    """

    def __init__(self, system: str, tracer_provider: Any = None) -> None:
        from opentelemetry import propagate, trace

        self.system = system
        self._propagate = propagate
        self._trace = trace
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    # -- sending ----------------------------------------------------------------------

    def _carrier(self, ctxt: Any) -> Any:
        """A copy of the wire context with the current trace context in it."""
        if ctxt is None:
            carrier: dict[str, Any] = {}
        elif isinstance(ctxt, Mapping):
            carrier = dict(ctxt)
        elif callable(getattr(ctxt, "to_dict", None)):
            carrier = dict(ctxt.to_dict())
        else:
            return ctxt  # nothing a trace context could travel in
        # A context passed on from a received message holds that message's
        # fields; the current span's replace them (or none, if it has no context).
        for key in self._propagate.get_global_textmap().fields:
            carrier.pop(key, None)
        self._propagate.inject(carrier)
        return carrier

    @contextmanager
    def send_rpc(
        self, target: _Target, ctxt: Any, message: Mapping[str, Any], call: bool
    ) -> Iterator[Any]:
        """A PRODUCER span around sending an RPC request; yields the context to send.

        Name and attributes are oslo.messaging 18.3's: ``<topic>.<method>``,
        ``messaging.system``, ``messaging.operation`` (``call`` or ``cast``),
        ``messaging.destination.name``, ``rpc.method``, ``rpc.service`` (the
        namespace) and ``openstack.request_id``. An exception (a timeout, a
        remote error) marks the span as failed and goes on.
        """
        method = str(message.get("method", ""))
        topic = str(target.topic)
        attributes = {
            "messaging.system": self.system,
            "messaging.operation": "call" if call else "cast",
            "messaging.destination.name": topic,
            "rpc.method": method,
        }
        if target.namespace:
            attributes["rpc.service"] = str(target.namespace)
        _add_request_id(attributes, ctxt)
        with self._tracer.start_as_current_span(
            f"{topic}.{method}", kind=self._trace.SpanKind.PRODUCER, attributes=attributes
        ):
            yield self._carrier(ctxt)

    @contextmanager
    def send_notification(
        self, target: _Target, ctxt: Any, message: Mapping[str, Any]
    ) -> Iterator[Any]:
        """A PRODUCER span ``<event_type> send`` around a notification; yields the context."""
        event_type = str(message.get("event_type", ""))
        attributes = {
            "messaging.system": self.system,
            "messaging.operation": "send",
            "messaging.destination.name": str(target.topic),
        }
        _add_notification(attributes, message)
        _add_request_id(attributes, ctxt)
        with self._tracer.start_as_current_span(
            f"{event_type} send", kind=self._trace.SpanKind.PRODUCER, attributes=attributes
        ):
            yield self._carrier(ctxt)

    # -- handling ---------------------------------------------------------------------

    def _parent(self, incoming: _Incoming) -> Any:
        ctxt = incoming.ctxt
        return self._propagate.extract(ctxt) if isinstance(ctxt, Mapping) else None

    def handle_rpc(self, incoming: _Incoming, target: _Target) -> Any:
        """A CONSUMER span ``<method> receive``, child of the sender's, current while it is open.

        Use it as a context manager around dispatching and replying; mark a failed
        request with :meth:`failed`.
        """
        body = incoming.message
        method = str(body.get("method", "unknown"))
        attributes = {
            "messaging.system": self.system,
            "messaging.operation": "receive",
            "messaging.destination.name": str(target.topic),
            "rpc.method": method,
        }
        namespace = body.get("namespace")
        if namespace:
            attributes["rpc.service"] = str(namespace)
        msg_id = getattr(incoming, "msg_id", None)
        if msg_id:
            attributes["messaging.message.id"] = str(msg_id)
        return self._receive_span(f"{method} receive", incoming, attributes)

    def handle_notification(self, incoming: _Incoming, pool: str | None = None) -> Any:
        """A CONSUMER span ``<event_type> receive``, child of the sender's (see handle_rpc)."""
        body = incoming.message
        attributes = {"messaging.system": self.system, "messaging.operation": "receive"}
        if pool:
            attributes["messaging.consumer.group.name"] = pool
        _add_notification(attributes, body)
        return self._receive_span(f"{body.get('event_type', '')} receive", incoming, attributes)

    def _receive_span(self, name: str, incoming: _Incoming, attributes: dict[str, Any]) -> Any:
        # A CONSUMER span, child of the sender's (carried in the context), made current.
        _add_request_id(attributes, incoming.ctxt)
        return self._tracer.start_as_current_span(
            name,
            context=self._parent(incoming),
            kind=self._trace.SpanKind.CONSUMER,
            attributes=attributes,
        )

    def handle_batch(self, incoming: Sequence[_Incoming], pool: str | None = None) -> Any:
        """A CONSUMER span ``notifications receive`` around a batch, linked to each sender's span.

        A batch has many parents; as the messaging conventions advise, its span
        starts a trace of its own and links to them.
        """
        links = []
        for message in incoming:
            parent = self._trace.get_current_span(self._parent(message)).get_span_context()
            if parent.is_valid:
                links.append(self._trace.Link(parent))
        attributes: dict[str, Any] = {
            "messaging.system": self.system,
            "messaging.operation": "receive",
            "messaging.batch.message_count": len(incoming),
        }
        if pool:
            attributes["messaging.consumer.group.name"] = pool
        return self._tracer.start_as_current_span(
            "notifications receive",
            context=self._trace.set_span_in_context(self._trace.INVALID_SPAN),
            kind=self._trace.SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )

    def failed(self, span: Any, error: BaseException | str | None) -> None:
        """Mark a handling span as failed (the endpoint raised, or asked for a requeue)."""
        from opentelemetry.trace import Status, StatusCode

        if isinstance(error, BaseException):
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        else:
            span.set_status(Status(StatusCode.ERROR, error or "failed"))


def _add_request_id(attributes: dict[str, Any], ctxt: Any) -> None:
    if isinstance(ctxt, Mapping):
        request_id = ctxt.get("request_id")
    else:
        request_id = getattr(ctxt, "request_id", None)
    if request_id:
        attributes["openstack.request_id"] = str(request_id)


def _add_notification(attributes: dict[str, Any], body: Mapping[str, Any]) -> None:
    for key, name in (
        ("event_type", "openstack.notification.event_type"),
        ("priority", "openstack.notification.priority"),
        ("publisher_id", "openstack.notification.publisher_id"),
        ("message_id", "messaging.message.id"),
    ):
        value = body.get(key)
        if value:
            attributes[name] = str(value)


def from_conf(conf: cfg.ConfigOpts, scheme: str | None) -> Tracing | None:
    """The tracing of a transport made with ``conf``: None unless ``tracing_enabled``.

    Registers the ``[oslo_messaging_tracing]`` options on ``conf``. The first
    time tracing is on in a process without a TracerProvider of its own, sets
    one up (see the module's docstring).

    Args:
        conf: the caller's configuration.
        scheme: the transport URL's scheme, for ``messaging.system``.
    """
    global _api_missing_warned
    register_tracing_opts(conf)
    group = conf[TRACING_GROUP]
    if not group.tracing_enabled:
        return None
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        with _SETUP_LOCK:
            warn, _api_missing_warned = not _api_missing_warned, True
        if warn:
            LOG.warning(
                "[%s] tracing_enabled is set but opentelemetry-api is not installed: "
                "no spans, no trace context in messages (%s)",
                TRACING_GROUP,
                _EXTRA,
            )
        return None
    _set_up_provider(group)
    return Tracing(messaging_system(scheme))


def _set_up_provider(group: Any) -> None:
    """Give the process a TracerProvider exporting over OTLP, once, if it has none."""
    global _provider_checked
    with _SETUP_LOCK:
        if _provider_checked:
            return
        _provider_checked = True
        from opentelemetry import trace

        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            return  # the process (or a library such as oslo.middleware) set its own
        module, package = _EXPORTERS[group.otlp_protocol]
        try:
            import importlib

            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            exporter_module = importlib.import_module(module)
        except ImportError:
            LOG.warning(
                "[%s] tracing_enabled is set and the process has no TracerProvider, but the "
                "OTLP exporter is not installed (pip install %s): spans are not exported "
                "unless the process sets a TracerProvider; trace context is still carried on",
                TRACING_GROUP,
                package,
            )
            return
        endpoint = str(group.otel_exporter_otlp_endpoint)
        try:
            if group.otlp_protocol == "grpc":
                exporter = exporter_module.OTLPSpanExporter(
                    endpoint=endpoint, insecure=bool(group.insecure)
                )
            else:
                exporter = exporter_module.OTLPSpanExporter(
                    endpoint=endpoint.rstrip("/") + "/v1/traces"
                )
            provider = TracerProvider(
                resource=Resource.create({"service.name": group.tracing_service_name})
            )
            provider.add_span_processor(BatchSpanProcessor(exporter))
        except Exception:
            LOG.warning("Could not set up the OTLP exporter of traces", exc_info=True)
            return
        trace.set_tracer_provider(provider)
        LOG.info(
            "Traces are exported over OTLP (%s) to %s as service %s",
            group.otlp_protocol,
            endpoint,
            group.tracing_service_name,
        )
