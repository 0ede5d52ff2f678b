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

import bisect
import importlib
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from messaging import health
from messaging._extras import require
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
    return require("prometheus_client", "metrics")


@dataclass(frozen=True)
class _Family:
    """What one metric is called, says and is labelled with."""

    name: str
    doc: str
    labels: tuple[str, ...]


_SENT = _Family("messaging_sent", "Messages sent", ("kind", "topic", "priority"))
_SEND_FAILED = _Family(
    "messaging_send_failed",
    "Messages that could not be sent",
    ("kind", "topic", "priority", "exception"),
)
_RECEIVED = _Family(
    "messaging_received",
    "Messages received by servers and listeners",
    ("server", "kind", "priority"),
)
_HANDLED = _Family(
    "messaging_handled", "Messages handled, by outcome", ("server", "kind", "outcome")
)
_CALL_SECONDS = _Family(
    "messaging_call_seconds", "RPC call latency, from sending to the reply", ("topic", "outcome")
)
_HANDLING_SECONDS = _Family(
    "messaging_handling_seconds", "Time to handle a received batch", ("server", "kind")
)


class _Histogram:
    """Observations of one label set: a count per bucket (not cumulative) and their sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_CALL_BUCKETS) + 1)  # the last one: above every bound
        self.total = 0.0


class Metrics:
    """The counts and histograms, served to one Prometheus registry by a collector.

    Each hook takes one lock and updates a dictionary: prometheus_client's own
    instruments cost a look-up of the labelled child and a lock per series,
    which is several times as much on the path of every message.

    Args:
        registry: where the collector is registered (``prometheus_client.REGISTRY``
            by default).
        process: a ``process`` label on every series ('' for none).
    """

    def __init__(self, registry: Any = None, process: str = "") -> None:
        prom = _prometheus()
        self.registry = registry if registry is not None else prom.REGISTRY
        self.process = process
        self._extra = (process,) if process else ()
        self._lock = threading.Lock()
        self._sent: dict[tuple[str, ...], int] = {}
        self._send_failed: dict[tuple[str, ...], int] = {}
        self._received: dict[tuple[str, ...], int] = {}
        self._handled: dict[tuple[str, ...], int] = {}
        self._call_seconds: dict[tuple[str, ...], _Histogram] = {}
        self._handling_seconds: dict[tuple[str, ...], _Histogram] = {}
        self._counts = {
            _SENT: self._sent,
            _SEND_FAILED: self._send_failed,
            _RECEIVED: self._received,
            _HANDLED: self._handled,
        }
        self._histograms = {
            _CALL_SECONDS: self._call_seconds,
            _HANDLING_SECONDS: self._handling_seconds,
        }
        self._collectors = (
            _CountsCollector(self),
            _HealthCollector(("process",) if process else (), self._extra),
        )
        for collector in self._collectors:
            self.registry.register(collector)

    # -- hooks (called by the Transport and server layers) ---------------------------------

    # Each hook is written out, without a shared helper: on the path of every
    # message, a call less is a good part of what a hook costs.

    def count_sent(self, kind: str, topic: str, priority: str = "") -> None:
        """One message sent."""
        key, counts = (kind, topic, priority), self._sent
        with self._lock:
            counts[key] = counts.get(key, 0) + 1

    def count_send_failed(self, kind: str, topic: str, priority: str, error: BaseException) -> None:
        """One message that could not be sent."""
        key, counts = (kind, topic, priority, type(error).__name__), self._send_failed
        with self._lock:
            counts[key] = counts.get(key, 0) + 1

    def count_received(self, server: str, kind: str, priority: str = "") -> None:
        """One message received."""
        key, counts = (server, kind, priority), self._received
        with self._lock:
            counts[key] = counts.get(key, 0) + 1

    def count_handled(self, server: str, kind: str, outcome: str) -> None:
        """One message handled, with its outcome."""
        key, counts = (server, kind, outcome), self._handled
        with self._lock:
            counts[key] = counts.get(key, 0) + 1

    def observe_call(self, topic: str, outcome: str, seconds: float) -> None:
        """One RPC call ended after ``seconds``."""
        _observe(self._lock, self._call_seconds, (topic, outcome), seconds)

    def observe_handling(self, server: str, kind: str, seconds: float) -> None:
        """One batch handled in ``seconds``."""
        _observe(self._lock, self._handling_seconds, (server, kind), seconds)

    def snapshot(
        self,
    ) -> tuple[
        dict[_Family, dict[tuple[str, ...], int]],
        dict[_Family, dict[tuple[str, ...], tuple[list[int], float]]],
    ]:
        """A consistent copy of every count and histogram, for a scrape."""
        with self._lock:
            counts = {family: dict(series) for family, series in self._counts.items()}
            histograms = {
                family: {labels: (list(h.counts), h.total) for labels, h in series.items()}
                for family, series in self._histograms.items()
            }
        return counts, histograms

    def unregister(self) -> None:
        """Take the collectors off the registry."""
        for collector in self._collectors:
            self.registry.unregister(collector)


def _observe(
    lock: threading.Lock,
    series: dict[tuple[str, ...], _Histogram],
    labels: tuple[str, ...],
    seconds: float,
) -> None:
    index = bisect.bisect_left(_CALL_BUCKETS, seconds)  # buckets are "less or equal"
    with lock:
        found = series.get(labels)
        if found is None:
            found = series[labels] = _Histogram()
        found.counts[index] += 1
        found.total += seconds


class _CountsCollector:
    """Serves the counters and histograms of a :class:`Metrics` at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._core = importlib.import_module("prometheus_client.core")
        self._go_float = importlib.import_module("prometheus_client.utils").floatToGoString

    def collect(self) -> Iterator[Any]:
        extra = self._metrics._extra
        names = ("process",) if extra else ()
        counts, histograms = self._metrics.snapshot()
        for family, series in counts.items():
            made = self._core.CounterMetricFamily(
                family.name, family.doc, labels=(*family.labels, *names)
            )
            for labels, value in series.items():
                made.add_metric((*labels, *extra), value)
            yield made
        # Spelt as prometheus_client's own histograms spell them ("60.0"), which queries name.
        bounds = [self._go_float(bound) for bound in _CALL_BUCKETS] + ["+Inf"]
        for family, hseries in histograms.items():
            made = self._core.HistogramMetricFamily(
                family.name, family.doc, labels=(*family.labels, *names)
            )
            for labels, (per_bucket, total) in hseries.items():
                cumulative = list(itertools.accumulate(per_bucket))
                buckets = list(zip(bounds, cumulative, strict=True))
                made.add_metric((*labels, *extra), buckets, total)
            yield made

    def describe(self) -> list[Any]:
        return []  # series appear as they are counted: nothing fixed to check at registration


class _HealthCollector:
    """Gauges read from :func:`messaging.health.report` at each scrape."""

    def __init__(self, extra: tuple[str, ...], values: tuple[str, ...]) -> None:
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
