"""Prometheus metrics of sending, receiving and handling, opt-in (``prometheus_client`` extra).

Off until :func:`enable` (or ``[oslo_messaging_metrics] metrics_enabled``,
read when a transport is made); then the Transport and server layers count
into :data:`ACTIVE` and a scrape reads:

=============================================  =========  ==========================================
metric                                         type       labels
=============================================  =========  ==========================================
``messaging_sent_total``                       counter    kind (notification, cast, fanout, call),
                                                          topic, priority
``messaging_send_failed_total``                counter    kind, topic, priority, exception
``messaging_received_total``                   counter    server, kind (rpc, notification), priority
``messaging_handled_total``                    counter    server, kind, outcome (ok, failed,
                                                          requeued, parked, dropped)
``messaging_call_seconds``                     histogram  topic, outcome (ok, timeout, error)
``messaging_handling_seconds``                 histogram  server, kind (a batch's handling)
``messaging_unconfirmed_sends``                gauge      server (read from health at scrape)
``messaging_reconnects``                       gauge      server (connections made again)
``messaging_in_flight``                        gauge      server (batches being handled)
=============================================  =========  ==========================================

``process`` is added to every series when ``metrics_process_name`` is set.
:func:`serve_http` answers scrapes on a port of its own. With metrics off,
each hook costs one attribute read.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from messaging import health
from messaging.conf import METRICS_GROUP, metrics_daemon_defaults, register_metrics_opts
from messaging.confhelpers import warn_without_effect

if TYPE_CHECKING:
    from oslo_config import cfg

__all__ = ["ACTIVE", "Metrics", "disable", "enable", "enable_from_conf", "serve_http"]

#: The metrics being counted into, or None while metrics are off.
ACTIVE: Metrics | None = None
_LOCK = threading.Lock()
_CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:  # the optional extra
        raise ImportError(
            "metrics need prometheus_client: pip install 'messaging-fleet[metrics]'"
        ) from exc
    return prometheus_client


class Metrics:
    """The instruments, on one Prometheus registry.

    Args:
        registry: where they are registered (``prometheus_client.REGISTRY`` by default).
        process: a ``process`` label on every series ('' for none).
    """

    def __init__(self, registry: Any = None, process: str = "") -> None:
        prom = _prometheus()
        self.registry = registry if registry is not None else prom.REGISTRY
        self.process = process
        extra = ("process",) if process else ()
        self._extra = (process,) if process else ()
        reg = self.registry

        def counter(name: str, doc: str, *labels: str) -> Any:
            return prom.Counter(name, doc, (*labels, *extra), registry=reg)

        def histogram(name: str, doc: str, *labels: str) -> Any:
            return prom.Histogram(name, doc, (*labels, *extra), buckets=_CALL_BUCKETS, registry=reg)

        self.sent = counter("messaging_sent", "Messages sent", "kind", "topic", "priority")
        self.send_failed = counter(
            "messaging_send_failed",
            "Messages that could not be sent",
            *("kind", "topic", "priority", "exception"),
        )
        self.received = counter(
            "messaging_received",
            "Messages received by servers and listeners",
            *("server", "kind", "priority"),
        )
        self.handled = counter(
            "messaging_handled", "Messages handled, by outcome", "server", "kind", "outcome"
        )
        self.call_seconds = histogram(
            "messaging_call_seconds",
            "RPC call latency, from sending to the reply",
            *("topic", "outcome"),
        )
        self.handling_seconds = histogram(
            "messaging_handling_seconds", "Time to handle a received batch", "server", "kind"
        )
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._collector = _HealthCollector(prom, extra, self._extra)
        reg.register(self._collector)

    # -- hooks (called by the Transport and server layers) ---------------------------------

    def _child(self, metric: Any, *labels: str) -> Any:
        # prometheus_client's labels() takes a lock and checks every label on
        # each call; the children are looked up once per label set instead.
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels, *self._extra)
        return child

    def count_sent(self, kind: str, topic: str, priority: str = "") -> None:
        """One message sent."""
        self._child(self.sent, kind, topic, priority).inc()

    def count_send_failed(self, kind: str, topic: str, priority: str, error: BaseException) -> None:
        """One message that could not be sent."""
        self._child(self.send_failed, kind, topic, priority, type(error).__name__).inc()

    def observe_call(self, topic: str, outcome: str, seconds: float) -> None:
        """One RPC call ended after ``seconds``."""
        self._child(self.call_seconds, topic, outcome).observe(seconds)

    def count_received(self, server: str, kind: str, priority: str = "") -> None:
        """One message received."""
        self._child(self.received, server, kind, priority).inc()

    def count_handled(self, server: str, kind: str, outcome: str) -> None:
        """One message handled, with its outcome."""
        self._child(self.handled, server, kind, outcome).inc()

    def observe_handling(self, server: str, kind: str, seconds: float) -> None:
        """One batch handled in ``seconds``."""
        self._child(self.handling_seconds, server, kind).observe(seconds)

    def unregister(self) -> None:
        """Take every instrument off the registry."""
        for collector in (
            self.sent,
            self.send_failed,
            self.received,
            self.handled,
            self.call_seconds,
            self.handling_seconds,
            self._collector,
        ):
            self.registry.unregister(collector)


class _HealthCollector:
    """Gauges read from :func:`messaging.health.report` at each scrape."""

    def __init__(self, prom: Any, extra: tuple[str, ...], values: tuple[str, ...]) -> None:
        self._gauge = importlib.import_module("prometheus_client.core").GaugeMetricFamily
        self._labels = ("server", *extra)
        self._values = values

    def collect(self) -> Iterator[Any]:
        report = health.report()
        families = {
            "messaging_unconfirmed_sends": "Messages sent and not yet confirmed by the broker",
            "messaging_reconnects": "Connections made again after a loss",
            "messaging_in_flight": "Batches being handled now",
        }
        made = {
            name: self._gauge(name, text, labels=self._labels) for name, text in families.items()
        }
        for server in report.servers:
            labels = [server.name, *self._values]
            made["messaging_unconfirmed_sends"].add_metric(labels, server.link.unconfirmed)
            made["messaging_reconnects"].add_metric(labels, server.link.reconnects)
            made["messaging_in_flight"].add_metric(labels, server.in_flight)
        yield from made.values()

    def describe(self) -> list[Any]:
        return []  # collected on each scrape only: no fixed series to check at registration


def enable(registry: Any = None, process: str = "") -> Metrics:
    """Start counting (once per process; later calls return the first :class:`Metrics`).

    Args:
        registry: the Prometheus registry (the default one when None).
        process: a ``process`` label on every series.

    Raises:
        ImportError: ``prometheus_client`` is not installed (the ``metrics`` extra).
    """
    global ACTIVE
    with _LOCK:
        if ACTIVE is None:
            ACTIVE = Metrics(registry, process)
        return ACTIVE


def disable() -> None:
    """Stop counting and take the instruments off their registry."""
    global ACTIVE
    with _LOCK:
        active, ACTIVE = ACTIVE, None
    if active is not None:
        active.unregister()


def enable_from_conf(conf: cfg.ConfigOpts) -> None:
    """Enable metrics when ``[oslo_messaging_metrics] metrics_enabled`` (and serve them if asked).

    ``metrics_process_name`` labels the series; ``metrics_http_port`` (ours) serves
    them. oslo's socket options (``metrics_socket_file``, ``metrics_buffer_size``,
    ``metrics_thread_stop_timeout``) have no effect: nothing is sent to an
    oslo.metrics daemon; Prometheus scrapes the process instead.
    """
    register_metrics_opts(conf)
    group = conf[METRICS_GROUP]
    daemon = metrics_daemon_defaults()
    warn_without_effect(
        METRICS_GROUP,
        {name: group[name] for name in daemon},
        {name: (default, _NO_DAEMON) for name, default in daemon.items()},
    )
    if not group.metrics_enabled:
        return
    enable(process=group.metrics_process_name or "")
    port = group.metrics_http_port
    if port is not None:
        serve_http(port, group.metrics_http_host)


_NO_DAEMON = "metrics are not sent to an oslo.metrics daemon; Prometheus scrapes the process"
_SERVED: dict[tuple[str, int, int], Any] = {}


def serve_http(port: int = 0, host: str = "127.0.0.1") -> int:
    """Answer Prometheus scrapes on ``host:port`` (metrics enabled first); return the port.

    The endpoint stays up for the life of the process; a second call with the
    same host, port and registry serves nothing more.
    """
    metrics = enable()
    prom = _prometheus()
    key = (host, port, id(metrics.registry))
    with _LOCK:
        found = _SERVED.get(key)
        if found is not None:
            return int(found.server_address[1])
        server, _thread = prom.start_http_server(port, addr=host, registry=metrics.registry)
        _SERVED[key] = server
        return int(server.server_address[1])
