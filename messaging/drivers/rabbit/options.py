"""Options of the RabbitMQ driver, and the typed settings the driver is built from.

The options live in oslo.messaging's group ``[oslo_messaging_rabbit]``, under
oslo's names (and oslo's older names where oslo kept them), so an oslo.messaging
configuration file works unchanged. ``[messaging_rabbit]``, this package's former
name of the group, is still read, with a deprecation warning. Names, types,
defaults and bounds are oslo.messaging 18.x's.
Four options are ours and have no oslo equivalent:

- ``notification_pipeline_depth``: how many notifications sent with the default
  ``retry`` (forever) may await the broker's confirm at once, so that a stream of
  notifications does not pay one broker round trip each (oslo waits for every
  confirm); ``notification_pipeline_bytes``: how many bytes of them.
- ``publish_confirm_timeout``: how long a publish waits for the broker's
  publisher confirm.
- ``rabbit_auto_quorum``: on RabbitMQ 4 and later, declare as quorum queues the
  queues that the other options leave transient, which RabbitMQ 4.3 refuses
  (:meth:`RabbitSettings.on_rabbitmq4`).

A driver reads the group once, with the transport URL's query parameters on top,
into a frozen :class:`RabbitSettings` (:meth:`RabbitSettings.from_conf`), which
checks the options that only make sense together. :func:`ssl_options` and
:func:`ssl_options_for_host` give what to pass as kombu's / py-amqp's ``ssl=``;
:func:`broker_key` names a broker for the process-wide connection manager.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import ssl as ssl_lib
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from messaging.confhelpers import OptionGroup, refuse_invalid, settings_of, warn_without_effect
from messaging.exceptions import ConfigurationError

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.transport import TransportURL

__all__ = [
    "DEFAULT_PORT",
    "FAILOVER_STRATEGIES",
    "LOGIN_METHODS",
    "OSLO_RABBIT_GROUP",
    "RABBIT_GROUP",
    "WITHOUT_EFFECT",
    "BrokerHost",
    "RabbitSettings",
    "broker_hosts",
    "broker_key",
    "list_opts",
    "rabbit_opts",
    "register_rabbit_opts",
    "ssl_options",
    "ssl_options_for_host",
    "ssl_protocol",
    "ssl_versions",
]

RABBIT_GROUP = "oslo_messaging_rabbit"
#: The same group: oslo.messaging's name is the group's name.
OSLO_RABBIT_GROUP = RABBIT_GROUP

DEFAULT_PORT = 5672
# What kombu/py-amqp use for a URL without user, password, host or virtual host.
_DEFAULT_CREDENTIAL = "guest"
_DEFAULT_HOSTNAME = "localhost"
_DEFAULT_VIRTUAL_HOST = "/"

LOGIN_METHODS = ("PLAIN", "AMQPLAIN", "EXTERNAL", "RABBIT-CR-DEMO")
FAILOVER_STRATEGIES = ("round-robin", "shuffle")
# oslo bounds the delay to 0.9 x the 5 s after which a listener flushes its
# pending acknowledgements, so that a reconnect delay never outlives them.
_MAX_RECONNECT_DELAY = 4.5
_MAX_PREFETCH = 65535  # basic.qos prefetch-count is an AMQP short

# ssl_version values oslo.messaging accepts (case-insensitive), with the ssl
# module constant each names; the ones this Python's ssl lacks are left out.
_SSL_VERSION_CONSTANTS = {
    "tlsv1": "PROTOCOL_TLSv1",
    "sslv23": "PROTOCOL_SSLv23",
    "sslv2": "PROTOCOL_SSLv2",
    "sslv3": "PROTOCOL_SSLv3",
    "tlsv1_1": "PROTOCOL_TLSv1_1",
    "tlsv1_2": "PROTOCOL_TLSv1_2",
}


def _process_name() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"


_DURABLE_HELP = (
    "Declare topic exchanges and RPC and notification queues durable (surviving a broker "
    "restart). Quorum queues are durable anyway."
)
_AUTO_DELETE_HELP = (
    "Declare topic exchanges and RPC and notification queues auto-delete (removed when "
    "their last consumer leaves)."
)
_SSL_VERSION_HELP = (
    "TLS protocol version to force: TLSv1 or SSLv23, and SSLv2, SSLv3, TLSv1_1 or TLSv1_2 "
    "where Python's ssl has them. Empty: ssl's default."
)
_HOSTNAME_HELP = (
    "With ssl_ca_file, also check that the broker's certificate names the host connected "
    "to. Without ssl_ca_file the host name is never checked."
)
_COMPRESSION_HELP = (
    "Compress bodies with this kombu codec (gzip, bzip2, lzma...), named in a "
    "'compression' header; every consumer must know it. Unset: none."
)
_HA_HELP = (
    "Declare queues with 'x-ha-policy: all' (classic mirroring; RabbitMQ 3.0 and later "
    "use policies instead, so it does nothing there). RabbitMQ 4 removed mirroring: with "
    "rabbit_auto_quorum the argument is left out of the quorum queues declared there. "
    "Excludes quorum queues."
)
_QUORUM_HELP = (
    "Declare RPC topic and notification queues as quorum queues (replicated, durable; "
    "RabbitMQ 3.8+), and their topic exchange durable. On RabbitMQ 4 rabbit_auto_quorum "
    "does this when amqp_durable_queues is off. Excludes rabbit_ha_queues."
)
_TRANSIENT_QUORUM_HELP = (
    "Declare reply and fanout queues as quorum queues too (durable, with x-expires), and "
    "fanout exchanges durable. On RabbitMQ 4 rabbit_auto_quorum does this."
)
_DELIVERY_LIMIT_HELP = (
    "x-delivery-limit of quorum queues; 0 leaves it out. On RabbitMQ 3.x that means no "
    "limit; on RabbitMQ 4 the broker then applies its default of 20, and drops a message "
    "returned more often (unless a dead-letter exchange is set by policy). Notification "
    "listeners park a notification after max_delivery_attempts failures, before that, and "
    "their requeues do not count towards it. Set the same value on every service of the "
    "queue: it is part of the queue's declaration."
)
_PREFETCH_HELP = (
    "Messages the broker sends ahead to each listener and RPC server (per-consumer "
    "basic.qos; global QoS, which RabbitMQ 4.3 refuses, is never used). 0 means 256, or "
    "twice a batch listener's batch_size (oslo.messaging: no limit)."
)
_TTL_HELP = (
    "Seconds an unused reply or fanout queue lives (x-expires); for a fanout stream, how "
    "long it keeps messages (x-max-age). 0: forever, leave it to a broker policy."
)
_HEARTBEAT_HELP = (
    "Seconds without AMQP heartbeat after which the connection counts as dead; 0 disables "
    "heartbeats."
)
_MANDATORY_HELP = (
    "Publish replies as mandatory, so that a reply to a vanished reply queue is noticed "
    "and retried for kombu_missing_consumer_retry_timeout."
)
_CANCEL_HELP = (
    "Ask the broker to cancel consumers of a mirrored queue that fails over "
    "(x-cancel-on-ha-failover), so that they subscribe again."
)
_QUEUE_MANAGER_HELP = (
    "Name reply and fanout queues <hostname>:<processname>:<n> instead of with a random id, "
    "as oslo.messaging does, so that a restarted service declares the same queues again; n "
    "counts the queues of the process group on the host (in a file under /dev/shm). Fanout "
    "queues are then kept when their server stops, for its next run (x-expires removes "
    "them if it never comes back)."
)
_NO_POOL_HELP = (
    "No effect in messaging (accepted for oslo.messaging configuration files; a WARNING is "
    "logged when set): a process publishes on one connection per broker, shared by all its "
    "transports, so there is no pool of sending connections to size or expire."
)
_RECONNECT_DELAY_HELP = (
    "Seconds to pause after a connection is lost before reconnecting; the next attempts, "
    "if that one fails, follow rabbit_retry_interval and rabbit_retry_backoff."
)
_RECONNECT_SPLAY_HELP = (
    "Up to this many random seconds added to each wait before reconnecting (the pause "
    "after a lost connection and each retry's), so that the clients a broker dropped "
    "together do not come back together. oslo.messaging only adds it to what it logs."
)
#: The options that do nothing here: their defaults, and why.
WITHOUT_EFFECT = {
    name: (default, "one connection per broker and process; no pool of sending connections")
    for name, default in (
        ("rpc_conn_pool_size", 30),
        ("conn_pool_min_size", 2),
        ("conn_pool_ttl", 1200),
    )
}
_STREAM_HELP = (
    "One shared stream queue per topic instead of a fanout queue per server (RabbitMQ "
    "3.9+; streams are durable, so RabbitMQ 4.3 accepts them). Needs "
    "rabbit_qos_prefetch_count > 0 and rabbit_transient_quorum_queue set explicitly. Not "
    "usable yet: a server that stops deletes the shared stream (see the RabbitMQ guide)."
)
_PIPELINE_HELP = (
    "How many notifications sent with retry -1 (forever, the default) may await the "
    "broker's publisher confirm at once; a sender waits beyond that. Each is kept and sent "
    "again until confirmed, failures are logged, and Notifier.flush() or the transport's "
    "cleanup waits for them. 0 waits for each confirm, as oslo.messaging does (ours)."
)
_PIPELINE_BYTES_HELP = (
    "How many bytes of notification bodies may await the broker's confirm at once (see "
    "notification_pipeline_depth), so that memory stays bounded however large the "
    "notifications while the broker is slow or away; a sender waits beyond that. 0: no "
    "bound but the count (ours)."
)
_AUTO_QUORUM_HELP = (
    "On RabbitMQ 4 and later (the version the broker announces on each connection), "
    "declare as quorum queues the queues that the other options leave transient (not "
    "durable and not exclusive), which RabbitMQ 4.3 refuses by default: RPC and "
    "notification queues as with rabbit_quorum_queue, reply and fanout queues as with "
    "rabbit_transient_quorum_queue, which is what oslo.messaging services on RabbitMQ 4 "
    "declare. rabbit_ha_queues is then left out (mirroring is gone in RabbitMQ 4). False "
    "declares exactly what the options say on every version (ours)."
)
_CONFIRM_TIMEOUT_HELP = (
    "Seconds a publish waits for the broker's publisher confirm before failing (ours; not "
    "an oslo.messaging option)."
)


def _build_opts() -> list[cfg.Opt]:
    from oslo_config import cfg

    def opt(kind: type[cfg.Opt], name: str, default: Any, help: str, **kw: Any) -> cfg.Opt:
        older = [cfg.DeprecatedOpt(n, group=RABBIT_GROUP) for n in kw.pop("older", ())]
        return kind(name, default=default, deprecated_opts=older, help=help, **kw)

    b, i, f, s = cfg.BoolOpt, cfg.IntOpt, cfg.FloatOpt, cfg.StrOpt
    opts = [
        opt(b, "amqp_durable_queues", False, _DURABLE_HELP),
        opt(b, "amqp_auto_delete", False, _AUTO_DELETE_HELP),
        opt(i, "rpc_conn_pool_size", 30, _NO_POOL_HELP, min=1),
        opt(i, "conn_pool_min_size", 2, _NO_POOL_HELP),
        opt(i, "conn_pool_ttl", 1200, _NO_POOL_HELP),
        opt(b, "ssl", False, "Connect to the broker over TLS."),
        opt(s, "ssl_version", "", _SSL_VERSION_HELP),
        opt(s, "ssl_key_file", "", "Private key of the client certificate (TLS)."),
        opt(s, "ssl_cert_file", "", "Client certificate presented to the broker (TLS)."),
        opt(s, "ssl_ca_file", "", "CA bundle; set, the broker's certificate is required."),
        opt(b, "ssl_enforce_hostname_verification", True, _HOSTNAME_HELP),
        opt(
            b,
            "ssl_enforce_fips_mode",
            False,
            "Accepted for oslo.messaging compatibility; it has no effect.",
            deprecated_for_removal=True,
            deprecated_reason="OpenSSL 3 removed the API it used; it does nothing.",
        ),
        opt(
            f,
            "kombu_reconnect_delay",
            1.0,
            _RECONNECT_DELAY_HELP,
            min=0.0,
            max=_MAX_RECONNECT_DELAY,
        ),
        opt(
            f,
            "kombu_reconnect_splay",
            0.0,
            _RECONNECT_SPLAY_HELP,
            min=0.0,
        ),
        opt(s, "kombu_compression", None, _COMPRESSION_HELP),
        opt(
            i,
            "kombu_missing_consumer_retry_timeout",
            60,
            "Seconds a server retries a reply to a missing reply queue before giving it up. "
            "Keep it at most rpc_response_timeout.",
            older=("kombu_reconnect_timeout",),
        ),
        opt(
            s,
            "kombu_failover_strategy",
            "round-robin",
            "How the next host of a multi-host URL is picked when one fails.",
            choices=[
                ("round-robin", "the next host of the URL, in order"),
                ("shuffle", "a host of the URL picked at random"),
            ],
        ),
        opt(
            s,
            "rabbit_login_method",
            "AMQPLAIN",
            "SASL mechanism used to log in to the broker.",
            choices=[
                ("PLAIN", "user and password in clear (protect them with TLS)"),
                ("AMQPLAIN", "user and password in an AMQP table (RabbitMQ's default)"),
                ("EXTERNAL", "the identity of the TLS client certificate"),
                ("RABBIT-CR-DEMO", "RabbitMQ's demonstration challenge-response"),
            ],
        ),
        opt(i, "rabbit_retry_interval", 1, "Seconds before reconnecting the first time.", min=1),
        opt(i, "rabbit_retry_backoff", 2, "Seconds added to the wait at each retry.", min=0),
        opt(i, "rabbit_interval_max", 30, "Longest wait in seconds between retries.", min=1),
        opt(b, "rabbit_ha_queues", False, _HA_HELP),
        opt(b, "rabbit_quorum_queue", False, _QUORUM_HELP),
        opt(b, "rabbit_transient_quorum_queue", False, _TRANSIENT_QUORUM_HELP),
        opt(i, "rabbit_quorum_delivery_limit", 0, _DELIVERY_LIMIT_HELP),
        opt(i, "rabbit_quorum_max_memory_length", 0, "x-max-in-memory-length; 0: none."),
        opt(i, "rabbit_quorum_max_memory_bytes", 0, "x-max-in-memory-bytes; 0: none."),
        opt(i, "rabbit_transient_queues_ttl", 1800, _TTL_HELP, min=0),
        opt(i, "rabbit_qos_prefetch_count", 0, _PREFETCH_HELP),
        opt(i, "heartbeat_timeout_threshold", 60, _HEARTBEAT_HELP),
        opt(i, "heartbeat_rate", 3, "Heartbeat checks per heartbeat_timeout_threshold."),
        opt(b, "direct_mandatory_flag", True, _MANDATORY_HELP),
        opt(b, "enable_cancel_on_failover", False, _CANCEL_HELP),
        opt(b, "use_queue_manager", False, _QUEUE_MANAGER_HELP),
        opt(
            s,
            "hostname",
            socket.gethostname(),
            "Host name in queue names with use_queue_manager.",
            sample_default="node1.example.com",
        ),
        opt(
            s,
            "processname",
            _process_name(),
            "Process name in queue names with use_queue_manager.",
            sample_default="nova-api",
        ),
        opt(b, "rabbit_stream_fanout", False, _STREAM_HELP),
        opt(i, "notification_pipeline_depth", 1000, _PIPELINE_HELP, min=0),
        opt(i, "notification_pipeline_bytes", 32 * 1024 * 1024, _PIPELINE_BYTES_HELP, min=0),
        opt(f, "publish_confirm_timeout", 30.0, _CONFIRM_TIMEOUT_HELP, min=0.001),
        opt(b, "rabbit_auto_quorum", True, _AUTO_QUORUM_HELP),
    ]
    return opts


#: ``[oslo_messaging_rabbit]`` (also read from ``[messaging_rabbit]``); ``list_opts`` is what
#: ``oslo-config-generator`` finds through the ``messaging.drivers`` entry point.
OPTIONS = OptionGroup(RABBIT_GROUP, _build_opts)
rabbit_opts, register_rabbit_opts, list_opts = OPTIONS.opts, OPTIONS.register, OPTIONS.list_opts


def ssl_versions() -> dict[str, int]:
    """The ``ssl_version`` values this Python supports, lower-case, with their constants."""
    known = {}
    for name, attr in _SSL_VERSION_CONSTANTS.items():
        constant = getattr(ssl_lib, attr, None)
        if constant is not None:
            known[name] = int(constant)
    return known


def ssl_protocol(version: str) -> int:
    """Map an ``ssl_version`` value to its ``ssl.PROTOCOL_*`` constant.

    Args:
        version: the option's value, any case (``TLSv1_2``, ``sslv23``...).

    Returns:
        The ``ssl`` module constant.

    Raises:
        ConfigurationError: the version is unknown or this Python lacks it.
    """
    known = ssl_versions()
    try:
        return known[version.lower()]
    except KeyError:
        raise ConfigurationError(
            f"Invalid ssl_version {version!r} for the RabbitMQ driver; "
            f"valid values here: {', '.join(sorted(known))}"
        ) from None


def _compression_codecs() -> list[str]:
    from kombu import compression

    encoders: Callable[[], Iterable[str]] = compression.encoders
    names = set(encoders())
    names.update(getattr(compression, "_aliases", {}))
    return sorted(names)


@dataclass(frozen=True)
class RabbitSettings:
    """The RabbitMQ driver's options, typed and checked, read once.

    Every field is the option of the same name (see :func:`rabbit_opts` for their
    meaning); the defaults are the options' defaults. Building one checks the
    options that depend on each other.

    Raises:
        ConfigurationError: options contradict each other or are out of range, or
            a TLS file is missing; the message names every option at fault.
    """

    amqp_durable_queues: bool = False
    amqp_auto_delete: bool = False
    rpc_conn_pool_size: int = 30
    conn_pool_min_size: int = 2
    conn_pool_ttl: int = 1200
    ssl: bool = False
    ssl_version: str = ""
    ssl_key_file: str = ""
    ssl_cert_file: str = ""
    ssl_ca_file: str = ""
    ssl_enforce_hostname_verification: bool = True
    ssl_enforce_fips_mode: bool = False
    kombu_reconnect_delay: float = 1.0
    kombu_reconnect_splay: float = 0.0
    kombu_compression: str | None = None
    kombu_missing_consumer_retry_timeout: int = 60
    kombu_failover_strategy: str = "round-robin"
    rabbit_login_method: str = "AMQPLAIN"
    rabbit_retry_interval: int = 1
    rabbit_retry_backoff: int = 2
    rabbit_interval_max: int = 30
    rabbit_ha_queues: bool = False
    rabbit_quorum_queue: bool = False
    rabbit_transient_quorum_queue: bool = False
    rabbit_quorum_delivery_limit: int = 0
    rabbit_quorum_max_memory_length: int = 0
    rabbit_quorum_max_memory_bytes: int = 0
    rabbit_transient_queues_ttl: int = 1800
    rabbit_qos_prefetch_count: int = 0
    heartbeat_timeout_threshold: int = 60
    heartbeat_rate: int = 3
    direct_mandatory_flag: bool = True
    enable_cancel_on_failover: bool = False
    use_queue_manager: bool = False
    hostname: str = field(default_factory=socket.gethostname)
    processname: str = field(default_factory=_process_name)
    rabbit_stream_fanout: bool = False
    notification_pipeline_depth: int = 1000
    notification_pipeline_bytes: int = 32 * 1024 * 1024
    publish_confirm_timeout: float = 30.0
    rabbit_auto_quorum: bool = True

    def __post_init__(self) -> None:
        refuse_invalid("RabbitMQ driver", RABBIT_GROUP, _problems(self))

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, url: TransportURL) -> RabbitSettings:
        """Read ``[oslo_messaging_rabbit]`` with ``url``'s query on top.

        Args:
            conf: the configuration; the options are registered on it if needed.
            url: the transport URL; each query parameter overrides the option of
                the same name (``rabbit://h/?rabbit_quorum_queue=true``).

        Returns:
            The settings.

        Raises:
            InvalidTransportURL: a query parameter names no option, or its value
                does not convert or is out of bounds.
            ConfigurationError: the options are inconsistent (see the class).
        """
        values = OPTIONS.read(conf, url.query, str(url))
        warn_without_effect(RABBIT_GROUP, values, WITHOUT_EFFECT)
        return settings_of(cls, values)

    def on_rabbitmq4(self) -> RabbitSettings:
        """The settings that declarations follow on RabbitMQ 4 and later.

        With ``rabbit_auto_quorum``, queues the options would make transient
        (refused by RabbitMQ 4.3) become quorum queues; ``amqp_auto_delete``
        queues become durable classic ones instead, since quorum queues cannot
        be auto-delete; ``rabbit_ha_queues`` is dropped. Otherwise, or when
        nothing would be transient, these settings themselves.
        """
        if not self.rabbit_auto_quorum:
            return self
        changes: dict[str, Any] = {}
        if not (self.amqp_durable_queues or self.rabbit_quorum_queue):
            changes["amqp_durable_queues" if self.amqp_auto_delete else "rabbit_quorum_queue"] = (
                True
            )
        if not self.rabbit_transient_quorum_queue:
            changes["rabbit_transient_quorum_queue"] = True
        if changes and self.rabbit_ha_queues:
            changes["rabbit_ha_queues"] = False
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def tls_identity(self) -> tuple[Any, ...] | None:
        """The TLS options that make two connections differ, or None without TLS."""
        if not self.ssl:
            return None
        return (
            self.ssl_version.lower(),
            self.ssl_key_file,
            self.ssl_cert_file,
            self.ssl_ca_file,
            self.ssl_enforce_hostname_verification,
        )


def _problems(s: RabbitSettings) -> list[str]:
    problems = [
        f"{quorum} and rabbit_ha_queues are both enabled; a queue is either quorum or "
        "classic mirrored, disable one"
        for quorum in ("rabbit_quorum_queue", "rabbit_transient_quorum_queue")
        if s.rabbit_ha_queues and getattr(s, quorum)
    ]
    if s.rabbit_stream_fanout and s.rabbit_qos_prefetch_count <= 0:
        problems.append("rabbit_stream_fanout needs rabbit_qos_prefetch_count above 0")
    if s.rabbit_stream_fanout and not s.rabbit_transient_quorum_queue:
        problems.append("rabbit_stream_fanout needs rabbit_transient_quorum_queue enabled")
    if s.rpc_conn_pool_size < s.conn_pool_min_size:
        problems.append(
            f"rpc_conn_pool_size ({s.rpc_conn_pool_size}) is below conn_pool_min_size "
            f"({s.conn_pool_min_size})"
        )
    lowest = {
        "rpc_conn_pool_size": 1,
        "conn_pool_min_size": 0,
        "heartbeat_timeout_threshold": 0,
        "heartbeat_rate": 1,
        "rabbit_retry_interval": 1,
        "rabbit_retry_backoff": 0,
        "rabbit_interval_max": 1,
        "rabbit_qos_prefetch_count": 0,
        "rabbit_quorum_delivery_limit": 0,
        "rabbit_quorum_max_memory_length": 0,
        "rabbit_quorum_max_memory_bytes": 0,
        "rabbit_transient_queues_ttl": 0,
        "kombu_reconnect_delay": 0,
        "kombu_reconnect_splay": 0,
        "notification_pipeline_depth": 0,
        "notification_pipeline_bytes": 0,
    }
    for name, low in lowest.items():
        value = getattr(s, name)
        if value < low:
            problems.append(f"{name} must be at least {low}, not {value!r}")
    if s.kombu_reconnect_delay > _MAX_RECONNECT_DELAY:
        problems.append(
            f"kombu_reconnect_delay must be at most {_MAX_RECONNECT_DELAY}, "
            f"not {s.kombu_reconnect_delay!r}"
        )
    if s.rabbit_qos_prefetch_count > _MAX_PREFETCH:
        problems.append(
            f"rabbit_qos_prefetch_count must be at most {_MAX_PREFETCH}, "
            f"not {s.rabbit_qos_prefetch_count}"
        )
    if s.publish_confirm_timeout <= 0:
        problems.append(
            f"publish_confirm_timeout must be above 0, not {s.publish_confirm_timeout!r}"
        )
    if s.rabbit_login_method not in LOGIN_METHODS:
        problems.append(
            f"rabbit_login_method {s.rabbit_login_method!r} is not one of "
            f"{', '.join(LOGIN_METHODS)}"
        )
    if s.kombu_failover_strategy not in FAILOVER_STRATEGIES:
        problems.append(
            f"kombu_failover_strategy {s.kombu_failover_strategy!r} is not one of "
            f"{', '.join(FAILOVER_STRATEGIES)}"
        )
    if s.kombu_compression:
        codecs = _compression_codecs()
        if s.kombu_compression not in codecs:
            problems.append(
                f"kombu_compression {s.kombu_compression!r} is not a kombu codec; "
                f"known: {', '.join(codecs)}"
            )
    if s.ssl:
        problems.extend(_tls_problems(s))
    return problems


def _tls_problems(s: RabbitSettings) -> list[str]:
    problems = []
    if s.ssl_version:
        try:
            ssl_protocol(s.ssl_version)
        except ConfigurationError as exc:
            problems.append(str(exc))
    # A missing file would otherwise surface at connect time, inside the
    # reconnect loop, as an error retried forever.
    for name in ("ssl_key_file", "ssl_cert_file", "ssl_ca_file"):
        path = getattr(s, name)
        if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            problems.append(f"{name} {path!r} is not a readable file")
    return problems


class _Host(Protocol):
    @property
    def hostname(self) -> str | None: ...


def ssl_options(settings: RabbitSettings, hosts: Sequence[_Host]) -> dict[str, Any] | bool | None:
    """What to pass as kombu's ``Connection(ssl=...)`` for a transport URL's hosts.

    As oslo.messaging: with one host, the certificate must name that host; with
    several, ``server_hostname`` is ``None``, which kombu (5.2 and later) replaces
    with the host it connects to. kombu writes that host into the very dict it was
    given and keeps it on failover, so code that fails over across hosts itself
    should build the options per host with :func:`ssl_options_for_host` instead.

    Args:
        settings: the driver settings.
        hosts: the URL's hosts (anything with a ``hostname``).

    Returns:
        None without TLS; True for TLS with nothing to configure; else the dict.

    Raises:
        ConfigurationError: ``ssl_version`` is unknown.
    """
    hostname = hosts[0].hostname if len(hosts) == 1 else None
    return ssl_options_for_host(settings, hostname)


def ssl_options_for_host(
    settings: RabbitSettings, hostname: str | None
) -> dict[str, Any] | bool | None:
    """The ``ssl=`` value for a connection to one host (kombu's or py-amqp's).

    The dict holds ``ssl_version`` (an ``ssl.PROTOCOL_*`` constant), ``keyfile``,
    ``certfile`` and ``ca_certs`` for the options that are set. With a CA file the
    broker's certificate is required (``cert_reqs=CERT_REQUIRED``) and, unless
    ``ssl_enforce_hostname_verification`` is off, must name ``hostname``
    (``server_hostname``). Without a CA file the host name is not checked, as in
    oslo.messaging.

    Args:
        settings: the driver settings.
        hostname: the host connected to; None lets kombu fill in its current host.

    Returns:
        None without TLS; True for TLS with nothing to configure; else the dict.

    Raises:
        ConfigurationError: ``ssl_version`` is unknown.
    """
    if not settings.ssl:
        return None
    params: dict[str, Any] = {}
    if settings.ssl_version:
        params["ssl_version"] = ssl_protocol(settings.ssl_version)
    if settings.ssl_key_file:
        params["keyfile"] = settings.ssl_key_file
    if settings.ssl_cert_file:
        params["certfile"] = settings.ssl_cert_file
    if settings.ssl_ca_file:
        params["ca_certs"] = settings.ssl_ca_file
        params["cert_reqs"] = ssl_lib.CERT_REQUIRED
        if settings.ssl_enforce_hostname_verification:
            params["server_hostname"] = hostname
    return params or True


@dataclass(frozen=True)
class BrokerHost:
    """One broker of a URL, with what kombu would use for the parts left out.

    Attributes:
        hostname: lower-case host name or address (``localhost`` when absent).
        port: the port (5672 when absent).
        username: the user (``guest`` when absent or empty).
        password: the password (``guest`` when absent or empty); hidden in repr.
    """

    hostname: str
    port: int
    username: str
    password: str = field(repr=False)


def broker_hosts(url: TransportURL) -> tuple[BrokerHost, ...]:
    """The brokers of ``url`` in its order, defaults filled in as kombu fills them.

    A URL without hosts (``rabbit://``) means ``guest:guest@localhost:5672``.
    """
    if not url.hosts:
        return (
            BrokerHost(_DEFAULT_HOSTNAME, DEFAULT_PORT, _DEFAULT_CREDENTIAL, _DEFAULT_CREDENTIAL),
        )
    return tuple(
        BrokerHost(
            (host.hostname or _DEFAULT_HOSTNAME).lower(),
            host.port or DEFAULT_PORT,
            host.username or _DEFAULT_CREDENTIAL,
            host.password or _DEFAULT_CREDENTIAL,
        )
        for host in url.hosts
    )


def broker_key(url: TransportURL, settings: RabbitSettings) -> tuple[Any, ...]:
    """The identity of a broker, for sharing connections across transports.

    Two transports get the same key when they would open the same connections: the
    same scheme, hosts in the same order with the same ports and credentials, the
    same virtual host, login method and TLS options. The query string matters only
    through the settings it changed. Hosts are not sorted: the first one is where
    connections go first.

    Args:
        url: the transport URL.
        settings: the settings built from it.

    Returns:
        A hashable tuple. It holds passwords: do not log it.
    """
    return (
        url.transport or "rabbit",
        broker_hosts(url),
        url.virtual_host or _DEFAULT_VIRTUAL_HOST,
        settings.rabbit_login_method,
        settings.tls_identity,
    )
