"""From a ``kombu+<transport>://`` URL to what kombu needs: its URL, its options, our settings.

``kombu+redis://user:pass@h1:6379,h2:6379/0?visibility_timeout=600`` becomes the
kombu URL ``redis://user:pass@h1:6379/0;redis://h2:6379/0`` (kombu fails over
between ``;``-separated URLs) and the transport options
``{"visibility_timeout": 600.0}``. A URL without hosts gives ``<transport>://``
(plus ``/<virtual host>`` if it has one), as oslo.messaging passes it on.
``kombu://`` alone means ``kombu+amqp://``, as oslo's alias of its rabbit driver.

The query holds two kinds of parameters:

- the driver's own (:data:`DRIVER_OPTIONS`): ``prefetch_count``, ``prefetch_bytes``,
  ``connect_timeout``, the reconnection backoff ``interval_start``,
  ``interval_step``, ``interval_max``, and ``publish_timeout`` (how long a send
  may try, whatever its ``retry``);
- the transport's options, handed to kombu as ``transport_options``: those the
  transport's channel reads (``Channel.from_transport_options``), ``polling_interval``
  for virtual transports, and the few others listed in :data:`EXTRA_TRANSPORT_OPTIONS`.

Any other key is an :class:`~messaging.exceptions.InvalidTransportURL` naming it
and the accepted ones. Values are converted by :data:`OPTION_TYPES`; an option not
listed there is converted by its look (``true``/``false``, an integer, a decimal
number, else the text).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from messaging._extras import require
from messaging.drivers.base import Capabilities
from messaging.exceptions import DriverLoadFailure, InvalidTransportURL, MissingExtra

if TYPE_CHECKING:
    from messaging.transport import TransportURL

__all__ = [
    "DRIVER_OPTIONS",
    "EXTRA_TRANSPORT_OPTIONS",
    "OPTION_TYPES",
    "KombuSettings",
    "kombu_url",
    "transport_name",
]

DEFAULT_TRANSPORT = "amqp"


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _by_look(text: str) -> Any:
    if text.strip().lower() in ("true", "false", "yes", "no", "on", "off"):
        return _bool(text)
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


#: The driver's own query parameters (not passed to kombu), with their defaults.
DRIVER_OPTIONS: dict[str, float] = {
    "prefetch_count": 64,
    "prefetch_bytes": 16 * 1024 * 1024,
    "connect_timeout": 5.0,
    "interval_start": 1.0,
    "interval_step": 2.0,
    "interval_max": 30.0,
    "publish_timeout": 30.0,
}

#: Transport options that a transport reads without listing them in
#: ``Channel.from_transport_options``, by kombu transport module.
EXTRA_TRANSPORT_OPTIONS: dict[str, tuple[str, ...]] = {
    "kombu.transport.pyamqp": ("confirm_publish", "read_timeout", "write_timeout"),
    "kombu.transport.filesystem": (
        "data_folder_in",
        "data_folder_out",
        "store_processed",
        "processed_folder",
        "control_folder",
    ),
    "kombu.transport.redis": ("reauth_check_interval",),
}

#: How query values are converted, by option name; others go by their look.
OPTION_TYPES: dict[str, Callable[[str], Any]] = {
    "prefetch_count": int,
    "prefetch_bytes": int,
    "connect_timeout": float,
    "interval_start": float,
    "interval_step": float,
    "interval_max": float,
    "publish_timeout": float,
    "polling_interval": float,
    "confirm_publish": _bool,
    "read_timeout": float,
    "write_timeout": float,
    "ack_emulation": _bool,
    "fanout_prefix": _by_look,
    "fanout_patterns": _bool,
    "socket_keepalive": _bool,
    "retry_on_timeout": _bool,
    "store_processed": _bool,
    "visibility_timeout": float,
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "unacked_mutex_expire": int,
    "unacked_restore_limit": int,
    "unacked_restore_interval": float,
    "unacked_restore_throttle": int,
    "max_connections": int,
    "health_check_interval": int,
    "reauth_check_interval": float,
    "priority_steps": _int_list,
    "sep": str,
    "global_keyprefix": str,
    "unacked_key": str,
    "unacked_index_key": str,
    "unacked_mutex_key": str,
    "queue_order_strategy": str,
    "client_name": str,
    "body_encoding": str,
    "deadletter_queue": str,
    "data_folder_in": str,
    "data_folder_out": str,
    "processed_folder": str,
    "control_folder": str,
}

#: Options that hold objects or dicts, which a URL cannot express.
NOT_IN_A_URL = frozenset({"socket_keepalive_options", "sentinel_kwargs", "client_properties"})

#: Transport options set unless the URL gives them, by kombu transport module:
#: the memory transport polls its queues, so it polls often; py-amqp waits
#: for the broker's confirm of every publish, as oslo.messaging does.
TRANSPORT_DEFAULTS: dict[str, dict[str, Any]] = {
    "kombu.transport.memory": {"polling_interval": 0.01},
    "kombu.transport.pyamqp": {"confirm_publish": True},
}

#: kombu transports whose virtual host is a database number.
_NUMBERED_DATABASES = ("redis", "rediss", "sentinel")


def transport_name(url: TransportURL) -> str:
    """The kombu transport of ``url``: what follows ``kombu+`` (``amqp`` for bare ``kombu``)."""
    scheme = url.transport or ""
    _, plus, name = scheme.partition("+")
    if not plus:
        return DEFAULT_TRANSPORT
    if not name:
        raise InvalidTransportURL(
            str(url), f"No kombu transport after 'kombu+' in transport URL {url.redacted()!r}"
        )
    return name


def kombu_url(url: TransportURL, transport: str) -> str:
    """The kombu URL of ``url``: one ``<transport>://`` URL per host, joined by ``;``."""
    path = ""
    if url.virtual_host:
        path = "/" + urllib.parse.quote(url.virtual_host, safe="")
    if not url.hosts:
        return f"{transport}://{path}"
    return ";".join(f"{transport}://{host.netloc(keep_empty=True)}{path}" for host in url.hosts)


#: The optional modules a kombu transport needs (the extra is in messaging._extras).
#: Checked first: kombu's redis transport takes a missing ``redis`` for None and
#: fails later with an AttributeError that names nothing.
_CLIENT_MODULES: dict[str, tuple[str, ...]] = {
    name: ("redis", "packaging") for name in ("redis", "rediss", "sentinel")
}


def _load_transport(url: TransportURL, name: str) -> type[Any]:
    from kombu.transport import resolve_transport

    try:
        for module in _CLIENT_MODULES.get(name, ()):
            require(module, f"kombu+{name}://")
    except MissingExtra as exc:
        raise DriverLoadFailure("kombu", exc) from exc
    try:
        cls = resolve_transport(name)
    except KeyError as exc:
        # kombu's message suggests the closest name ("Did you mean redis?").
        raise InvalidTransportURL(
            str(url),
            f"Unknown kombu transport {name!r} in transport URL {url.redacted()!r}: "
            f"{exc.args[0] if exc.args else exc}",
        ) from exc
    except Exception as exc:
        # A transport whose client library is missing fails in many ways
        # (ImportError, AttributeError on a None module, NameError...).
        raise DriverLoadFailure(
            "kombu",
            f"the kombu transport {name!r} cannot be loaded ({type(exc).__name__}: {exc}); "
            f"is its client library installed?",
        ) from exc
    if not isinstance(cls, type):
        raise DriverLoadFailure("kombu", f"the kombu transport {name!r} is not a class: {cls!r}")
    return cls


def _accepted_transport_options(cls: type[Any], virtual: bool) -> set[str]:
    accepted = set(getattr(getattr(cls, "Channel", None), "from_transport_options", ()))
    if virtual:
        accepted.add("polling_interval")
    for klass in cls.__mro__:
        accepted.update(EXTRA_TRANSPORT_OPTIONS.get(klass.__module__, ()))
    return accepted - NOT_IN_A_URL


def _defaults(cls: type[Any]) -> dict[str, Any]:
    for klass in cls.__mro__:
        if klass.__module__ in TRANSPORT_DEFAULTS:
            return dict(TRANSPORT_DEFAULTS[klass.__module__])
    return {}


def _capabilities(cls: type[Any], virtual: bool) -> tuple[Capabilities, str]:
    types = frozenset(cls.implements.exchange_type)
    fanout = "fanout" in types and (
        not virtual or bool(getattr(cls.Channel, "supports_fanout", False))
    )
    # Every routing key the driver uses is exact, so a direct exchange routes
    # them as a topic exchange would where a transport lacks topic exchanges.
    exchange_type = "topic" if "topic" in types else "direct"
    return Capabilities(requeue=True, pools=True, fanout=fanout, rpc=True), exchange_type


@dataclass(frozen=True)
class KombuSettings:
    """What a ``kombu+<transport>://`` driver instance works with, read once from its URL.

    Attributes:
        transport: the kombu transport alias (``redis``, ``memory``...).
        url: the kombu URL (``;``-separated failover URLs).
        redacted: the transport URL with passwords hidden, for messages.
        transport_options: kombu's ``transport_options``.
        virtual: the transport emulates AMQP in kombu (memory, Redis...) rather than
            speaking it to a broker.
        capabilities: what the driver can do over this transport.
        exchange_type: the type of the topic exchanges (``direct`` where the
            transport has no topic exchanges).
        prefetch_count: how many unacknowledged messages a listener may hold.
        prefetch_bytes: while the messages a listener holds add up to more bytes,
            it takes no more from the broker (0: no bound).
        connect_timeout: seconds to establish a connection.
        interval_start: the first wait before reconnecting, in seconds.
        interval_step: what each further wait adds.
        interval_max: the longest wait.
        publish_timeout: how long a send may take, tries included, whatever its
            ``retry`` says (the equivalent of RabbitMQ's ``publish_confirm_timeout``).
        poll_interval: for a transport that has to be polled (memory, filesystem...),
            the average wait between polls that find nothing; None for transports
            that wait for the broker (Redis's BRPOP, AMQP).
    """

    transport: str
    url: str
    redacted: str
    transport_options: dict[str, Any] = field(default_factory=dict, hash=False)
    virtual: bool = True
    capabilities: Capabilities = field(default_factory=Capabilities)
    exchange_type: str = "topic"
    prefetch_count: int = 64
    prefetch_bytes: int = 16 * 1024 * 1024
    connect_timeout: float = 5.0
    interval_start: float = 1.0
    interval_step: float = 2.0
    interval_max: float = 30.0
    publish_timeout: float = 30.0
    poll_interval: float | None = None

    @classmethod
    def from_url(cls, url: TransportURL) -> KombuSettings:
        """Read the settings of ``url``.

        Raises:
            InvalidTransportURL: the kombu transport is unknown, the virtual host
                is not a database number where it must be, or a query key is
                unknown or its value does not convert; the message names it.
            DriverLoadFailure: the kombu transport's client library is missing.
        """
        from kombu.transport import virtual as kombu_virtual

        name = transport_name(url)
        transport_cls = _load_transport(url, name)
        virtual = issubclass(transport_cls, kombu_virtual.Transport)
        shown = url.redacted()
        vhost = url.virtual_host or ""
        if name in _NUMBERED_DATABASES and vhost not in ("", "/") and not vhost.isdigit():
            raise InvalidTransportURL(
                str(url),
                f"The virtual host of {shown!r} must be a Redis database number, not {vhost!r}",
            )
        accepted = _accepted_transport_options(transport_cls, virtual)
        driver: dict[str, Any] = dict(DRIVER_OPTIONS)
        options = _defaults(transport_cls)
        for key, raw in url.query.items():
            if key in DRIVER_OPTIONS:
                driver[key] = _convert(url, key, raw)
            elif key in accepted:
                options[key] = _convert(url, key, raw)
            else:
                known = sorted(accepted | set(DRIVER_OPTIONS))
                where = "cannot be given in a URL" if key in NOT_IN_A_URL else "is unknown"
                raise InvalidTransportURL(
                    str(url),
                    f"Option {key!r} in the query of transport URL {shown!r} {where} for the "
                    f"kombu transport {name!r}; accepted: {', '.join(known)}",
                )
        if driver["prefetch_count"] < 1:
            raise InvalidTransportURL(
                str(url), f"prefetch_count must be at least 1 in transport URL {shown!r}"
            )
        if driver["prefetch_bytes"] < 0:
            raise InvalidTransportURL(
                str(url), f"prefetch_bytes must not be negative in transport URL {shown!r}"
            )
        if driver["publish_timeout"] <= 0:
            raise InvalidTransportURL(
                str(url), f"publish_timeout must be above 0 in transport URL {shown!r}"
            )
        capabilities, exchange_type = _capabilities(transport_cls, virtual)
        poll_interval = None
        if virtual and getattr(transport_cls, "polling_interval", None) is not None:
            poll_interval = float(options.get("polling_interval", transport_cls.polling_interval))
        return cls(
            transport=name,
            url=kombu_url(url, name),
            redacted=shown,
            transport_options=options,
            virtual=virtual,
            capabilities=capabilities,
            exchange_type=exchange_type,
            prefetch_count=int(driver["prefetch_count"]),
            prefetch_bytes=int(driver["prefetch_bytes"]),
            connect_timeout=float(driver["connect_timeout"]),
            interval_start=float(driver["interval_start"]),
            interval_step=float(driver["interval_step"]),
            interval_max=float(driver["interval_max"]),
            publish_timeout=float(driver["publish_timeout"]),
            poll_interval=poll_interval,
        )

    def broker_key(self) -> Hashable:
        """What identifies the broker: connections are shared between equal keys."""
        return (self.url, tuple(sorted((k, repr(v)) for k, v in self.transport_options.items())))

    def backoff(self, failures: int) -> float:
        """How long to wait before reconnecting after ``failures`` failures in a row."""
        return min(self.interval_max, self.interval_start + self.interval_step * (failures - 1))


def _convert(url: TransportURL, key: str, raw: str) -> Any:
    convert = OPTION_TYPES.get(key, _by_look)
    try:
        return convert(raw)
    except (ValueError, TypeError) as exc:
        raise InvalidTransportURL(
            str(url),
            f"Bad value {raw!r} for option {key!r} in transport URL {url.redacted()!r}: {exc}",
        ) from exc
