"""Options of the STOMP driver (``[oslo_messaging_stomp]``) and the settings read from them.

A transport URL's query overrides any of them
(``stomp://guest:guest@host:61613/vhost?heartbeat_send=0&flavor=generic``).
Hosts, credentials and the virtual host (sent as STOMP's ``host`` header, which
RabbitMQ maps to its virtual host; see :mod:`.handshake` for what is sent when
the URL has no path) come from the URL; a host without a port gets
:data:`DEFAULT_PORT`, one without credentials those of the first host that has
some, or ``guest``/``guest``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from messaging.confhelpers import OptionGroup
from messaging.exceptions import ConfigurationError, InvalidTransportURL

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.transport import TransportURL

__all__ = [
    "DEFAULT_PORT",
    "FLAVORS",
    "STOMP_GROUP",
    "StompSettings",
    "list_opts",
    "register_stomp_opts",
    "stomp_opts",
]

STOMP_GROUP = "oslo_messaging_stomp"
DEFAULT_PORT = 61613
#: How destinations are named (see :mod:`messaging.drivers.stomp.destinations`).
FLAVORS = ("auto", "rabbitmq", "generic")
VERSIONS = ("1.2", "1.1")


def _build_opts() -> list[cfg.Opt]:
    from oslo_config import cfg

    opts = [
        cfg.StrOpt(
            "flavor",
            default="auto",
            choices=[
                ("auto", "rabbitmq when the broker's CONNECTED frame says RabbitMQ, else generic"),
                ("rabbitmq", "RabbitMQ's STOMP plugin: /topic/ routing to named shared queues"),
                ("generic", "any STOMP broker: /queue/ and /topic/ destinations only"),
            ],
            help="How targets map to STOMP destinations.",
        ),
        cfg.StrOpt(
            "stomp_version",
            default="1.2",
            choices=[("1.2", "STOMP 1.2"), ("1.1", "STOMP 1.1")],
            help="The STOMP protocol version to speak; a broker that refuses 1.2 is "
            "asked for 1.1 instead.",
        ),
        cfg.IntOpt(
            "heartbeat_send",
            default=10000,
            min=0,
            help="Milliseconds between the heart-beats this client offers to send (0: none).",
        ),
        cfg.IntOpt(
            "heartbeat_receive",
            default=10000,
            min=0,
            help="Milliseconds between the heart-beats this client wants from the broker "
            "(0: none); a broker silent for 1.5 times this is taken as gone.",
        ),
        cfg.IntOpt(
            "prefetch_count",
            default=64,
            min=1,
            help="Unacknowledged messages a subscription may hold (RabbitMQ's prefetch-count).",
        ),
        cfg.FloatOpt(
            "connect_timeout", default=5.0, min=0.1, help="Seconds to connect to one broker."
        ),
        cfg.FloatOpt(
            "send_timeout",
            default=10.0,
            min=0.1,
            help="Seconds to wait for the broker's RECEIPT of a sent message before the "
            "send is tried again on a new connection.",
        ),
        cfg.FloatOpt(
            "publish_timeout",
            default=30.0,
            min=0.001,
            help="Seconds a send may take, tries on new connections included, before it "
            "fails with MessageDeliveryFailure, whatever its retry says: a notification sent "
            "with the default retry (forever) gives up after this long. A call's send is "
            "bounded by the call's timeout too. The equivalent of RabbitMQ's "
            "publish_confirm_timeout.",
        ),
        cfg.FloatOpt(
            "reconnect_interval",
            default=1.0,
            min=0.01,
            help="Seconds before the first reconnection attempt; doubles up to "
            "reconnect_interval_max.",
        ),
        cfg.FloatOpt(
            "reconnect_interval_max",
            default=30.0,
            min=0.01,
            help="Longest wait between reconnection attempts, in seconds.",
        ),
        cfg.FloatOpt(
            "reply_queue_expiry",
            default=1800.0,
            min=1.0,
            help="RabbitMQ only: seconds a process's reply queue (which outlives a "
            "reconnection, so that no reply is lost) is kept once nothing consumes it.",
        ),
        cfg.BoolOpt("ssl", default=False, help="Connect with TLS."),
        cfg.StrOpt("ssl_ca_file", default="", help="CA bundle to verify the broker with."),
        cfg.StrOpt("ssl_cert_file", default="", help="Client certificate (PEM)."),
        cfg.StrOpt("ssl_key_file", default="", help="Private key of the client certificate."),
    ]
    return opts


#: ``[oslo_messaging_stomp]`` (also read from ``[messaging_stomp]``); ``list_opts`` is what
#: ``oslo-config-generator`` finds through the ``messaging.drivers`` entry point.
OPTIONS = OptionGroup(STOMP_GROUP, _build_opts)
stomp_opts, register_stomp_opts, list_opts = OPTIONS.opts, OPTIONS.register, OPTIONS.list_opts


@dataclass(frozen=True)
class StompSettings:
    """Where and how to connect, read once from the configuration and the URL.

    Attributes:
        hosts: ``(host, port)`` pairs, tried in order (failover).
        username: the login.
        password: the passcode.
        vhost: the STOMP ``host`` header (RabbitMQ's virtual host); None when the URL
            has no path (see :mod:`messaging.drivers.stomp.handshake`).
        redacted: the URL with its passwords hidden, for messages.
        The others are the options of the same name.
    """

    hosts: tuple[tuple[str, int], ...]
    username: str
    password: str
    vhost: str | None
    redacted: str
    flavor: str = "auto"
    stomp_version: str = "1.2"
    heartbeat_send: int = 10000
    heartbeat_receive: int = 10000
    prefetch_count: int = 64
    connect_timeout: float = 5.0
    send_timeout: float = 10.0
    publish_timeout: float = 30.0
    reconnect_interval: float = 1.0
    reconnect_interval_max: float = 30.0
    reply_queue_expiry: float = 1800.0
    ssl: bool = False
    ssl_ca_file: str = ""
    ssl_cert_file: str = ""
    ssl_key_file: str = ""

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, url: TransportURL) -> StompSettings:
        """Read ``[oslo_messaging_stomp]`` with ``url``'s query on top.

        Raises:
            InvalidTransportURL: a query key names no option, or a value does not convert.
            ConfigurationError: the options contradict each other.
        """
        values: dict[str, Any] = OPTIONS.read(conf, url.query, str(url))
        shown = url.redacted()
        for name, allowed in (("flavor", FLAVORS), ("stomp_version", VERSIONS)):
            if values[name] not in allowed:
                raise InvalidTransportURL(
                    str(url),
                    f"{name} {values[name]!r} in {shown!r} is not one of {', '.join(allowed)}",
                )
        if values["reconnect_interval_max"] < values["reconnect_interval"]:
            raise ConfigurationError(
                f"[{STOMP_GROUP}] reconnect_interval_max must not be below reconnect_interval"
            )
        hosts = tuple(
            (host.hostname or "localhost", host.port or DEFAULT_PORT) for host in url.hosts
        ) or (("localhost", DEFAULT_PORT),)
        username, password = "guest", "guest"
        for host in url.hosts:
            if host.username is not None:
                username, password = host.username, host.password or ""
                break
        vhost = url.virtual_host or None
        return cls(
            hosts=hosts,
            username=username,
            password=password,
            vhost=vhost,
            redacted=shown,
            **values,
        )

    def broker_key(self) -> Hashable:
        """What identifies a broker connection: drivers with equal keys share one."""
        return (
            self.hosts,
            self.username,
            self.password,
            self.vhost,
            self.flavor,
            self.stomp_version,
            self.heartbeat_send,
            self.heartbeat_receive,
            self.ssl,
            self.ssl_ca_file,
            self.ssl_cert_file,
            self.ssl_key_file,
        )

    def backoff(self, failures: int) -> float:
        """Seconds to wait before the next connection attempt after ``failures`` in a row."""
        wait = self.reconnect_interval * (2 ** max(0, failures - 1))
        return float(min(self.reconnect_interval_max, wait))
