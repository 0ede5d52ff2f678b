"""Every configuration option of ``messaging``, defined once.

Options are registered only on the ``ConfigOpts`` object a caller passes in,
never on the global ``cfg.CONF`` behind its back. Options and groups carry
oslo.messaging's names (``[DEFAULT] transport_url``,
``[oslo_messaging_notifications]``, ``[oslo_messaging_rabbit]``...), so that an
oslo.messaging configuration file, and code that addresses a group by name
(``conf.set_override(..., group='oslo_messaging_rabbit')``), work unchanged. Our
own drivers' groups follow the pattern (``[oslo_messaging_sqlite]``...). Files
written for earlier versions of this package, with ``[messaging_*]`` sections,
are still read, with oslo.config's deprecation warning.

``list_opts()`` feeds ``oslo-config-generator --namespace messaging``; it
gathers the drivers' options through their ``messaging.drivers`` entry points
(the module of each entry point may define ``list_opts()``), so this module
imports no driver. The helpers that drivers share for their own groups (and the
URL redaction that messages use) are in :mod:`messaging.confhelpers`, below this
module and :mod:`messaging.transport` alike.

oslo.config is imported lazily: ``import messaging`` stays cheap.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from messaging.confhelpers import (
    apply_query_overrides,
    deprecated_group,
    old_group_name,
    register_group,
)

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.wire import Limits

__all__ = [
    "DRIVER_NAMESPACE",
    "METRICS_GROUP",
    "NOTIFICATIONS_GROUP",
    "OSLO_NOTIFICATIONS_GROUP",
    "OUTBOX_WHEN_FULL",
    "TRACING_GROUP",
    "apply_query_overrides",
    "deprecated_group",
    "list_opts",
    "message_limits",
    "metrics_daemon_defaults",
    "old_group_name",
    "register_group",
    "register_metrics_opts",
    "register_notification_opts",
    "register_tracing_opts",
    "register_transport_opts",
    "set_control_exchange_default",
    "set_defaults",
]

NOTIFICATIONS_GROUP = "oslo_messaging_notifications"
#: oslo.messaging's metrics group (see :mod:`messaging.metrics`).
METRICS_GROUP = "oslo_messaging_metrics"
#: oslo.messaging's tracing group (see :mod:`messaging.tracing`).
TRACING_GROUP = "oslo_messaging_tracing"
#: The same group: oslo.messaging's name is the group's name.
OSLO_NOTIFICATIONS_GROUP = NOTIFICATIONS_GROUP
#: The drivers' entry points; the module of each may define ``list_opts()``,
#: returning ``[(group, options)]``.
DRIVER_NAMESPACE = "messaging.drivers"
#: What a full notification outbox may drop (``outbox_when_full``).
OUTBOX_WHEN_FULL = ("drop-newest", "drop-oldest")


@functools.cache
def _default_opts() -> list[cfg.Opt]:
    from oslo_config import cfg

    return [
        cfg.StrOpt(
            "transport_url",
            default="rabbit://",
            secret=True,
            help="The URL of the messaging transport: "
            "driver://[user:pass@]host:port[,[userN:passN@]hostN:portN]/virtual_host?query. "
            "Query parameters override options of the driver's group.",
        ),
        cfg.StrOpt(
            "control_exchange",
            default="openstack",
            help="The default exchange that targets without an exchange of their own use.",
        ),
        cfg.IntOpt(
            "rpc_response_timeout",
            default=60,
            help="Seconds to wait for a response from an RPC call.",
        ),
        cfg.IntOpt(
            "executor_thread_pool_size",
            default=64,
            min=1,
            deprecated_name="rpc_thread_pool_size",
            help="Size of the worker pool of a server using the threading or eventlet executor.",
        ),
        cfg.BoolOpt(
            "rpc_ping_enabled",
            default=False,
            help="Add an endpoint answering 'oslo_rpc_server_ping' to every RPC server.",
        ),
        cfg.FloatOpt(
            "rpc_canary_interval",
            default=0.0,
            min=0.0,
            help="Seconds between the calls an RPC server makes to itself through the broker "
            "(ours; not an oslo.messaging option). A call not answered within the interval "
            "is reported in the server's health and logged, and the transport sets up again "
            "everything the process consumes from and replies through. 0: no canary.",
        ),
        cfg.IntOpt(
            "max_message_size",
            default=128 * 1024 * 1024,
            min=0,
            help="The largest message, in bytes of encoded JSON, that a transport sends or "
            "decodes (ours; not an oslo.messaging option). A larger notification, request or "
            "reply is refused to its sender with MessageTooLarge; a larger one received is "
            "logged and discarded (acknowledged, or parked where the driver can park). The "
            "default is RabbitMQ 3's own bound. 0: no bound.",
        ),
        cfg.IntOpt(
            "max_message_depth",
            default=128,
            min=0,
            help="How deeply arrays and objects may nest in a received message (ours). A "
            "deeper one is logged and discarded before it is parsed, so that it cannot exhaust "
            "the parser's recursion. 0: no bound (Python's recursion limit then decides).",
        ),
    ]


def _poison_opts() -> list[cfg.Opt]:
    """The options of poison handling (:mod:`messaging.poison`), in the notifications group."""
    from oslo_config import cfg

    return [
        cfg.IntOpt(
            "max_delivery_attempts",
            default=8,
            min=1,
            help="How many times a notification listener tries to handle a notification "
            "(an endpoint raising, or returning REQUEUE, is a failed attempt) before it parks "
            "it with the failure attached (RabbitMQ: in the queue messaging.parked; list and "
            "replay with 'messaging parked'). Keep it under RabbitMQ 4's quorum queue delivery "
            "limit (20), past which the broker drops a message (ours).",
        ),
        cfg.FloatOpt(
            "requeue_backoff",
            default=1.0,
            min=0.0,
            help="Seconds before a failed notification is requeued the first time; doubled "
            "for each further attempt up to requeue_backoff_max. The notification waits in "
            "the listener, unacknowledged, meanwhile (ours).",
        ),
        cfg.FloatOpt(
            "requeue_backoff_max",
            default=60.0,
            min=0.0,
            help="Longest wait in seconds before requeueing a failed notification (ours).",
        ),
    ]


def _outbox_opts() -> list[cfg.Opt]:
    """The outbox's options (:mod:`messaging.notify.outbox`), in the notifications group."""
    from oslo_config import cfg

    return [
        cfg.StrOpt(
            "outbox",
            default="none",
            choices=["none", "memory", "sqlite"],
            help="Keep notifications in an outbox and send them from a thread of the "
            "transport, so that sending returns at once while no broker is reachable: "
            "none (oslo.messaging's behaviour), memory, or sqlite (a local file that "
            "survives a restart; see outbox_path). Ours.",
        ),
        cfg.StrOpt(
            "outbox_path",
            default="",
            help="The sqlite outbox's file; required with outbox = sqlite. Its directory "
            "is created readable by its owner only. Ours.",
        ),
        cfg.IntOpt(
            "outbox_max_messages",
            default=10000,
            min=1,
            help="How many notifications the outbox holds at most. Ours.",
        ),
        cfg.IntOpt(
            "outbox_max_bytes",
            default=64 * 1024 * 1024,
            min=1,
            help="How many bytes of notifications the outbox holds at most. Ours.",
        ),
        cfg.StrOpt(
            "outbox_when_full",
            default="drop-newest",
            choices=list(OUTBOX_WHEN_FULL),
            help="What a full outbox drops: drop-newest refuses the new notification "
            "(its sender gets the error), drop-oldest drops the oldest waiting ones. "
            "Every drop is logged at ERROR. Ours.",
        ),
        cfg.FloatOpt(
            "outbox_retry_interval",
            default=1.0,
            min=0.01,
            help="Seconds between attempts to send what waits while the broker is away. Ours.",
        ),
    ]


@functools.cache
def _notification_opts() -> list[cfg.Opt]:
    from oslo_config import cfg

    opts = [
        cfg.MultiStrOpt(
            "driver",
            default=[],
            help="Notification drivers: messagingv2, messaging, log, routing, test, noop. "
            "With none, a Notifier warns once and sends nothing.",
        ),
        cfg.StrOpt(
            "transport_url",
            secret=True,
            help="Transport URL for notifications; [DEFAULT] transport_url when unset.",
        ),
        cfg.ListOpt(
            "topics",
            default=["notifications"],
            help="Topics on which notifications are sent.",
        ),
        cfg.IntOpt(
            "retry",
            default=-1,
            help="Connection retries for a notification that fails to send: 0 none, -1 forever.",
        ),
        cfg.StrOpt(
            "routing_config",
            default="",
            help="YAML file of notification routing rules, for the routing driver.",
        ),
        *_poison_opts(),
        *_outbox_opts(),
    ]
    return deprecated_group(opts, NOTIFICATIONS_GROUP)


def _metrics_opts() -> list[cfg.Opt]:
    from oslo_config import cfg

    return [
        cfg.BoolOpt(
            "metrics_enabled",
            default=False,
            help="Count messages sent, received and handled, and time calls and handling, as "
            "Prometheus metrics (needs the prometheus_client extra: messaging-fleet[metrics]).",
        ),
        cfg.StrOpt(
            "metrics_process_name",
            default="",
            help="A 'process' label on every metric ('' for none).",
        ),
        cfg.StrOpt(
            "metrics_socket_file",
            default="/var/tmp/metrics_collector.sock",
            help="oslo.messaging's socket of the oslo.metrics daemon. No effect in messaging "
            "(Prometheus scrapes the process: see metrics_http_port); warned about when set.",
        ),
        cfg.IntOpt(
            "metrics_buffer_size",
            default=1000,
            help="oslo.messaging's buffer of metrics for the daemon. No effect in messaging; "
            "warned about when set.",
        ),
        cfg.IntOpt(
            "metrics_thread_stop_timeout",
            default=10,
            help="oslo.messaging's wait for its metrics thread. No effect in messaging; "
            "warned about when set.",
        ),
        cfg.PortOpt(
            "metrics_http_port",
            default=None,
            help="Answer Prometheus scrapes on this port (ours; not an oslo.messaging option). "
            "Unset: metrics are counted (when enabled) but not served; 0: any free port.",
        ),
        cfg.StrOpt(
            "metrics_http_host",
            default="127.0.0.1",
            help="The address of the metrics endpoint (ours).",
        ),
    ]


def metrics_daemon_defaults() -> dict[str, Any]:
    """The options of oslo.messaging's metrics daemon (no effect here), with their defaults."""
    daemon = ("metrics_socket_file", "metrics_buffer_size", "metrics_thread_stop_timeout")
    return {opt.name: opt.default for opt in _metrics_opts() if opt.name in daemon}


def register_metrics_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[oslo_messaging_metrics]`` options on ``conf``."""
    register_group(conf, METRICS_GROUP, _metrics_opts())


def _tracing_opts() -> list[cfg.Opt]:
    from oslo_config import cfg

    return [
        cfg.BoolOpt(
            "tracing_enabled",
            default=False,
            help="Make OpenTelemetry spans of RPC calls and casts and of notifications, sent "
            "and handled, and carry the W3C trace context in each message (needs the "
            "opentelemetry-api extra: messaging-fleet[tracing]). Unlike oslo.messaging, "
            "notifications are traced too.",
        ),
        cfg.StrOpt(
            "tracing_service_name",
            default="openstack",
            help="The service.name of the spans, when messaging sets up the process's "
            "TracerProvider itself (the process has none of its own).",
        ),
        cfg.StrOpt(
            "otel_exporter_otlp_endpoint",
            default="http://localhost:4318",
            help="Where spans are exported over OTLP, when messaging sets up the process's "
            "TracerProvider. With http/protobuf, spans go to <endpoint>/v1/traces.",
        ),
        cfg.StrOpt(
            "otlp_protocol",
            default="http/protobuf",
            choices=[
                ("http/protobuf", "OTLP over HTTP (opentelemetry-exporter-otlp-proto-http)"),
                ("grpc", "OTLP over gRPC (opentelemetry-exporter-otlp-proto-grpc)"),
            ],
            help="The OTLP protocol of the exporter messaging sets up.",
        ),
        cfg.BoolOpt(
            "insecure",
            default=False,
            help="Connect to a gRPC OTLP endpoint without TLS (grpc protocol only).",
        ),
    ]


def register_tracing_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[oslo_messaging_tracing]`` options on ``conf``."""
    register_group(conf, TRACING_GROUP, _tracing_opts())


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Return every option, grouped, for ``oslo-config-generator``.

    The drivers' groups come from the modules of the ``messaging.drivers`` entry
    points (in the order of the entry points' names, each module once) that
    define ``list_opts()``.

    Returns:
        ``(group name, options)`` pairs; ``None`` is ``[DEFAULT]``. The options are
        copies, so a caller may change them freely.
    """
    groups: list[tuple[str | None, list[cfg.Opt]]] = [
        (None, copy.deepcopy(_default_opts())),
        (NOTIFICATIONS_GROUP, copy.deepcopy(_notification_opts())),
        (METRICS_GROUP, copy.deepcopy(_metrics_opts())),
        (TRACING_GROUP, copy.deepcopy(_tracing_opts())),
    ]
    for hook in _driver_option_hooks():
        for group, opts in hook():
            groups.append((group, copy.deepcopy(list(opts))))
    return groups


def _driver_option_hooks() -> list[Callable[[], Iterable[tuple[str, Iterable[cfg.Opt]]]]]:
    # The entry point's module, not its object: a driver whose library is an
    # optional extra (STOMP) still lists its options without that library.
    import importlib
    from importlib import metadata

    hooks = []
    seen: set[str] = set()
    for entry_point in sorted(metadata.entry_points(group=DRIVER_NAMESPACE), key=lambda e: e.name):
        if entry_point.module in seen:
            continue
        seen.add(entry_point.module)
        hook = getattr(importlib.import_module(entry_point.module), "list_opts", None)
        if callable(hook):
            hooks.append(hook)
    return hooks


def register_transport_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[DEFAULT]`` options on ``conf``."""
    register_group(conf, None, _default_opts())


def register_notification_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[DEFAULT]`` and ``[oslo_messaging_notifications]`` options on ``conf``."""
    register_transport_opts(conf)
    register_group(conf, NOTIFICATIONS_GROUP, _notification_opts())


def message_limits(conf: cfg.ConfigOpts) -> Limits:
    """The bounds on messages that ``conf`` sets (``max_message_size``, ``max_message_depth``)."""
    from messaging.wire import Limits

    register_transport_opts(conf)
    return Limits(max_size=conf.max_message_size, max_depth=conf.max_message_depth)


def set_defaults(conf: cfg.ConfigOpts, executor_thread_pool_size: int | None = None) -> None:
    """Change the defaults of options, as oslo.messaging's ``opts.set_defaults``.

    Args:
        conf: the configuration to change.
        executor_thread_pool_size: the new default worker pool size of servers.
    """
    register_transport_opts(conf)
    if executor_thread_pool_size is not None:
        conf.set_default("executor_thread_pool_size", executor_thread_pool_size)


def set_control_exchange_default(control_exchange: str) -> None:
    """Change the default of ``[DEFAULT] control_exchange`` for configurations registered later."""
    from oslo_config import cfg

    cfg.set_defaults(_default_opts(), control_exchange=control_exchange)
