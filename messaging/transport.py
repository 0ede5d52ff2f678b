"""Transports: the URL that names a broker, and the object that talks to its driver.

``get_rpc_transport(conf)`` and ``get_notification_transport(conf)`` read the
transport URL from the caller's configuration, load the driver named by the
URL's scheme through stevedore (namespace ``messaging.drivers``) and wrap it in a
:class:`Transport`, which the RPC and notification layers use.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from messaging import _plugins, metrics, tracing
from messaging._extras import missing_extra
from messaging.conf import (
    NOTIFICATIONS_GROUP,
    register_notification_opts,
    register_transport_opts,
    set_control_exchange_default,
)
from messaging.confhelpers import redact_url
from messaging.exceptions import (
    DriverLoadFailure,
    InvalidTarget,
    InvalidTransportURL,
    MessageDeliveryFailure,
    MessageSerializationError,
    MessageUndeliverable,
    MessagingTimeout,
)
from messaging.target import Target

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.drivers.base import Capabilities, Driver, Listener
    from messaging.notify.outbox import Outbox, OutboxSettings

__all__ = [
    "NotificationTransport",
    "RPCTransport",
    "Transport",
    "TransportHost",
    "TransportOptions",
    "TransportURL",
    "get_notification_transport",
    "get_rpc_transport",
    "get_transport",
    "redact_url",
    "set_transport_defaults",
]

LOG = logging.getLogger(__name__)
#: Seconds the outbox's thread waits for the confirms of one round.
OUTBOX_CONFIRM_TIMEOUT = 30.0
#: Seconds a transport's cleanup lets its outbox send what waits.
OUTBOX_CLEANUP_TIMEOUT = 10.0
DRIVER_NAMESPACE = "messaging.drivers"

#: What a notifier or notification listener built on an RPC transport logs
#: (oslo.messaging's words, which services' tests assert).
RPC_TRANSPORT_FOR_NOTIFICATIONS = (
    "Using RPC transport for notifications. Please use get_notification_transport to "
    "obtain a notification transport instance."
)
#: What an RPC client or server built on a notification transport logs.
NOTIFICATION_TRANSPORT_FOR_RPC = (
    "Using notification transport for RPC. Please use get_rpc_transport to obtain an "
    "RPC transport instance."
)


@dataclass(frozen=True)
class TransportOptions:
    """Per-client transport options.

    Attributes:
        at_least_once: publish RPC requests as mandatory, so that a request nobody
            can receive raises ``MessageUndeliverable`` instead of vanishing.
    """

    at_least_once: bool = False


class TransportHost:
    """One broker host of a transport URL.

    Args:
        hostname: host name or address (IPv6 without brackets).
        port: the port, or None for the driver's default.
        username: the user name, percent-decoded.
        password: the password, percent-decoded.
    """

    def __init__(
        self,
        hostname: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.hostname = hostname
        self.port = port
        self.username = username
        self.password = password

    def _key(self) -> tuple[Any, ...]:
        return (self.hostname, self.port, self.username, self.password)

    def netloc(self, redact: bool = False, keep_empty: bool = False) -> str:
        """``user:password@host:port``, percent-encoded, an IPv6 address in brackets.

        Args:
            redact: show the password as ``****``.
            keep_empty: keep an empty user name or password (``:@host``) instead of
                leaving it out.
        """
        username, password = self.username, self.password
        if not keep_empty:
            username, password = username or None, password or None
        cred = ""
        if username is not None or password is not None:
            cred = urllib.parse.quote(username or "", safe="")
            if password is not None:
                cred += ":" + ("****" if redact else urllib.parse.quote(password, safe=""))
            cred += "@"
        name = self.hostname or ""
        if ":" in name:
            name = f"[{name}]"
        if self.port is not None:
            name += f":{self.port}"
        return cred + name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransportHost) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        shown = {k: v for k, v in vars(self).items() if v is not None}
        if "password" in shown:
            shown["password"] = "****"
        return "<TransportHost " + ", ".join(f"{k}={v}" for k, v in shown.items()) + ">"


def _parse_host_port(text: str, url: str) -> tuple[str | None, int | None]:
    if not text:
        return None, None
    shown = redact_url(url)
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise InvalidTransportURL(url, f"Invalid IPv6 host {text!r} in transport URL {shown!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidTransportURL(url, f"Invalid host {text!r} in transport URL {shown!r}")
        port_text = rest[1:]
    elif text.count(":") > 1:  # bare IPv6 address, no port
        host, port_text = text, ""
    else:
        host, _, port_text = text.partition(":")
    if not port_text:
        return host or None, None
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise InvalidTransportURL(url, f"Invalid port {port_text!r} in transport URL {shown!r}")
    return host or None, port


class TransportURL:
    """A parsed transport URL.

    ``driver://[user:pass@]host:port[,[userN:passN@]hostN:portN]/virtual_host?query``

    Args:
        conf: the configuration the URL belongs to.
        transport: the scheme, which names the driver (``rabbit``, ``kombu+redis``...).
        virtual_host: the path without its leading slash, percent-decoded.
        hosts: the broker hosts.
        query: query parameters, which override options of the driver's group.
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts | None,
        transport: str | None = None,
        virtual_host: str | None = None,
        hosts: Sequence[TransportHost] | None = None,
        query: dict[str, str] | None = None,
    ) -> None:
        self.conf = conf
        self.transport = transport
        self.virtual_host = virtual_host
        self.hosts = list(hosts or [])
        self.query = dict(query or {})

    @property
    def driver_name(self) -> str:
        """The name the driver is loaded by: the scheme up to a ``+``."""
        return (self.transport or "").split("+", 1)[0]

    def _key(self) -> tuple[Any, ...]:
        return (self.transport, self.virtual_host, tuple(self.hosts))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransportURL) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"<TransportURL {self.redacted()}>"

    def _netloc(self, redact: bool) -> str:
        return ",".join(host.netloc(redact) for host in self.hosts)

    def _render(self, redact: bool) -> str:
        # oslo.messaging's format: always a "/" after the hosts, then the virtual
        # host quoted with "/" kept ("rabbit:///", "rabbit://u:p@h:5672//").
        text = f"{self.transport}://{self._netloc(redact)}/"
        if self.virtual_host:
            text += urllib.parse.quote(self.virtual_host)
        if self.query:
            text += "?" + urllib.parse.urlencode(self.query)
        return text

    def __str__(self) -> str:
        """oslo.messaging's format, with every password shown as ``****``.

        oslo.messaging shows passwords here; this package never puts a secret in a
        string that may reach a log. :meth:`to_string` gives the full URL.
        """
        return self._render(redact=True)

    def to_string(self, include_password: bool = False) -> str:
        """The URL as text; with ``include_password``, the real passwords.

        Args:
            include_password: show passwords instead of ``****``. Only for code
                that hands the URL to something that connects with it.
        """
        return self._render(redact=not include_password)

    def redacted(self) -> str:
        """The URL with passwords hidden, for logs and errors."""
        return self._render(redact=True)

    @classmethod
    def parse(cls, conf: cfg.ConfigOpts | None, url: str | None = None) -> TransportURL:
        """Parse a transport URL; with ``url`` None, read ``[DEFAULT] transport_url``.

        Raises:
            InvalidTransportURL: the URL is not a string, has no scheme, or has a
                malformed host or port; the message names the part at fault.
        """
        if url is None or url == "":
            # oslo.messaging reads the configuration for an empty URL too, which an
            # empty ``transport_url =`` line in a notifications section yields.
            if conf is None:
                raise InvalidTransportURL(url, "No transport URL given and no configuration")
            register_transport_opts(conf)
            url = conf.transport_url
        if not isinstance(url, str):
            raise InvalidTransportURL(url, f"Wrong URL type: {type(url).__name__}, expected str")
        shown = redact_url(url)
        scheme, sep, rest = url.partition("://")
        short_form = not sep
        if short_form:
            # "fake:/" and "fake:" are accepted as oslo.messaging accepts them: no
            # hosts, and a path (the virtual host, '' for "fake:/") only after a "/".
            scheme, sep, rest = url.partition(":")
            if not sep:
                raise InvalidTransportURL(url, f"No scheme specified in transport URL {shown!r}")
        if not scheme or not all(c.isalnum() or c in "+-." for c in scheme):
            raise InvalidTransportURL(url, f"Invalid scheme {scheme!r} in transport URL {shown!r}")
        if short_form:
            if rest and not rest.startswith("/"):
                raise InvalidTransportURL(
                    url, f"Transport URL {shown!r} lacks '//' after {scheme + ':'!r}"
                )
            rest = "/" + rest.lstrip("/") if rest else ""
        # The query goes first: its values may hold a "/" (x://h?path=/var/bus).
        before_query, _, query_text = rest.partition("?")
        netloc, slash, path_text = before_query.partition("/")
        path = urllib.parse.unquote(path_text) if slash else None
        hosts = []
        for chunk in netloc.split(",") if netloc else []:
            creds, at, hostport = chunk.rpartition("@")
            username = password = None
            if at:
                user, colon, pw = creds.partition(":")
                username = urllib.parse.unquote(user)
                password = urllib.parse.unquote(pw) if colon else None
            hostname, port = _parse_host_port(hostport, url)
            hosts.append(TransportHost(hostname, port, username, password))
        with_creds = sum(1 for h in hosts if h.username is not None)
        if 0 < with_creds < len(hosts):
            LOG.warning("Some hosts of transport URL %s have credentials and some do not", shown)
        query: dict[str, str] = {}
        for key, values in urllib.parse.parse_qs(query_text).items():
            query[key] = ",".join(values)
        return cls(conf, scheme, path, hosts, query)


class Transport:
    """A handle on a transport driver, used by notifiers, listeners, clients and servers.

    Build one with :func:`get_notification_transport` or :func:`get_rpc_transport`.

    Args:
        driver: the loaded driver.
    """

    def __init__(self, driver: Driver) -> None:
        self.conf = driver.conf
        self._driver = driver
        self._outbox: Outbox | None = None
        self._outbox_lock = threading.Lock()
        #: The spans of this transport's sends (and of its servers' handling);
        #: None while tracing is off (see :mod:`messaging.tracing`).
        self.tracing: tracing.Tracing | None = None

    @property
    def driver(self) -> Driver:
        """The driver behind this transport."""
        return self._driver

    @property
    def capabilities(self) -> Capabilities:
        """What the driver supports."""
        return self._driver.capabilities

    def require_features(self, requeue: bool = False, pools: bool = False) -> None:
        """Raise NotImplementedError if the driver lacks a capability."""
        self._driver.require_features(requeue=requeue, pools=pools)

    # The work is done by oslo.messaging's method names (_send...), which services'
    # tests patch; the public names call them, so a patch sees every send.
    def _send(
        self,
        target: Target,
        ctxt: Any,
        message: dict[str, Any],
        wait_for_reply: bool | None = None,
        timeout: float | None = None,
        call_monitor_timeout: float | None = None,
        retry: int | None = None,
        transport_options: TransportOptions | None = None,
    ) -> Any:
        if not target.topic:
            raise InvalidTarget("A topic is required to send", target)
        traced = self.tracing
        sending = (
            contextlib.nullcontext(ctxt)
            if traced is None
            else traced.send_rpc(target, ctxt, message, bool(wait_for_reply))
        )
        with sending as ctxt:
            return self._send_counted(
                target,
                ctxt,
                message,
                wait_for_reply,
                timeout,
                call_monitor_timeout,
                retry,
                transport_options,
            )

    def _send_counted(
        self,
        target: Target,
        ctxt: Any,
        message: dict[str, Any],
        wait_for_reply: bool | None,
        timeout: float | None,
        call_monitor_timeout: float | None,
        retry: int | None,
        transport_options: TransportOptions | None,
    ) -> Any:
        counting = metrics.ACTIVE
        started = time.monotonic() if counting is not None else 0.0
        try:
            result = self._driver.send(
                target,
                ctxt,
                message,
                wait_for_reply=wait_for_reply,
                timeout=timeout,
                call_monitor_timeout=call_monitor_timeout,
                retry=retry,
                transport_options=transport_options,
            )
        except BaseException as exc:
            if counting is not None:
                _count_request(counting, target, bool(wait_for_reply), started, exc)
            raise
        if counting is not None:
            _count_request(counting, target, bool(wait_for_reply), started, None)
        return result

    def send(
        self, target: Target, ctxt: Any, message: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Send an RPC request through the driver (see :meth:`Driver.send`).

        The other arguments are :meth:`_send`'s (``wait_for_reply``, ``timeout``,
        ``call_monitor_timeout``, ``retry``, ``transport_options``), passed on as
        given.
        """
        return self._send(target, ctxt, message, *args, **kwargs)

    def _send_notification(
        self,
        target: Target,
        ctxt: Any,
        message: dict[str, Any],
        version: float,
        retry: int | None = None,
    ) -> None:
        if not target.topic:
            raise InvalidTarget("A topic is required to send", target)
        traced = self.tracing
        if traced is not None:
            with traced.send_notification(target, ctxt, message) as ctxt:
                self._send_notification_counted(target, ctxt, message, version, retry)
            return
        self._send_notification_counted(target, ctxt, message, version, retry)

    def _send_notification_counted(
        self,
        target: Target,
        ctxt: Any,
        message: dict[str, Any],
        version: float,
        retry: int | None,
    ) -> None:
        outbox = self._outbox
        if outbox is not None:
            outbox.put(str(target.topic), ctxt, message, version, retry)
            return
        self._deliver_notification(target, ctxt, message, version, retry)

    def _deliver_notification(
        self, target: Target, ctxt: Any, message: dict[str, Any], version: float, retry: int | None
    ) -> None:
        # To the driver, counted in metrics (also what the outbox sends with).
        counting = metrics.ACTIVE
        if counting is None:
            self._driver.send_notification(target, ctxt, message, version, retry=retry)
            return
        priority = str(message.get("priority", "")).lower()
        topic = str(target.topic)
        # The notifier's target is <topic>.<priority>: the label is the topic alone.
        topic = topic.removesuffix(f".{priority}") if priority else topic
        try:
            self._driver.send_notification(target, ctxt, message, version, retry=retry)
        except Exception as exc:
            counting.count_send_failed("notification", topic, priority, exc)
            raise
        counting.count_sent("notification", topic, priority)

    def send_notification(
        self,
        target: Target,
        ctxt: Any,
        message: dict[str, Any],
        version: float,
        retry: int | None = None,
    ) -> None:
        """Send a notification through the driver, or put it in the outbox if there is one.

        Raises:
            OutboxFull: the outbox is full and refuses the newest notification.
        """
        self._send_notification(target, ctxt, message, version=version, retry=retry)

    def use_outbox(self, settings: OutboxSettings) -> None:
        """Send notifications through an outbox from now on (once; later calls keep the first).

        See :mod:`messaging.notify.outbox`.
        """
        from messaging.notify.outbox import Outbox

        with self._outbox_lock:
            if self._outbox is not None:
                return

            def send(
                topic: str, ctxt: Any, message: dict[str, Any], v: float, r: int | None
            ) -> None:
                self._deliver_notification(Target(topic=topic), ctxt, message, v, r)

            self._outbox = Outbox(settings, send, self._driver.flush, OUTBOX_CONFIRM_TIMEOUT)

    def _listen(
        self, target: Target, batch_size: int = 1, batch_timeout: float | None = None
    ) -> Listener:
        if not (target.topic and target.server):
            raise InvalidTarget(
                "A server's target must have topic and server names specified", target
            )
        return self._driver.listen(target, batch_size, batch_timeout)

    def listen(
        self, target: Target, batch_size: int = 1, batch_timeout: float | None = None
    ) -> Listener:
        """Subscribe an RPC server to ``target``."""
        return self._listen(target, batch_size, batch_timeout)

    def _listen_for_notifications(
        self,
        targets_and_priorities: Iterable[tuple[Target, str]],
        pool: str | None = None,
        batch_size: int = 1,
        batch_timeout: float | None = None,
        temporary: bool = False,
    ) -> Listener:
        pairs = list(targets_and_priorities)
        for target, _priority in pairs:
            if not target.topic:
                raise InvalidTarget("A target must have topic specified", target)
        if temporary:
            # Asked for only when wanted: a driver written before temporary
            # pools existed still serves every other listener.
            return self._driver.listen_for_notifications(
                pairs, pool, batch_size, batch_timeout, temporary=True
            )
        return self._driver.listen_for_notifications(pairs, pool, batch_size, batch_timeout)

    def listen_for_notifications(
        self,
        targets_and_priorities: Iterable[tuple[Target, str]],
        pool: str | None = None,
        batch_size: int = 1,
        batch_timeout: float | None = None,
        temporary: bool = False,
    ) -> Listener:
        """Subscribe a notification listener to each ``(target, priority)``.

        Args:
            targets_and_priorities: the targets, each with a priority.
            pool: the listener pool; None shares the default queues.
            batch_size: how many notifications a poll may return.
            batch_timeout: how long a poll waits for a batch to fill.
            temporary: ``pool``'s queue goes away with the listener (see
                :meth:`messaging.drivers.base.Driver.listen_for_notifications`).
        """
        return self._listen_for_notifications(
            targets_and_priorities, pool, batch_size, batch_timeout, temporary
        )

    def flush(self, timeout: float | None = None) -> int:
        """Wait until notifications handed to the driver are confirmed by the broker.

        With an outbox, until the outbox is empty too.

        Returns:
            How many are still unconfirmed (or in the outbox) after ``timeout``.
        """
        outbox = self._outbox
        if outbox is None:
            return self._driver.flush(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        left = outbox.drain(timeout)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return left + self._driver.flush(remaining)

    def cleanup(self) -> None:
        """Release the driver's connections and threads (sending what the outbox holds first)."""
        outbox, self._outbox = self._outbox, None
        if outbox is not None:
            outbox.close(OUTBOX_CLEANUP_TIMEOUT)
        self._driver.cleanup()


class RPCTransport(Transport):
    """A transport obtained for RPC."""


class NotificationTransport(Transport):
    """A transport obtained for notifications."""


#: Errors that mean a request did not leave (the rest: it left, and the call failed).
_NOT_SENT = (
    MessageDeliveryFailure,
    MessageSerializationError,
    MessageUndeliverable,
    InvalidTarget,
)


def _count_request(
    counting: metrics.Metrics,
    target: Target,
    call: bool,
    started: float,
    error: BaseException | None,
) -> None:
    kind = "call" if call else ("fanout" if target.fanout else "cast")
    topic = str(target.topic)
    if isinstance(error, _NOT_SENT):
        counting.count_send_failed(kind, topic, "", error)
        return
    counting.count_sent(kind, topic)
    if call:
        outcome = (
            "ok" if error is None else "timeout" if isinstance(error, MessagingTimeout) else "error"
        )
        counting.observe_call(topic, outcome, time.monotonic() - started)


def _get_transport(
    conf: cfg.ConfigOpts,
    url: str | TransportURL | None,
    allowed_remote_exmods: Sequence[str] | None,
    transport_cls: type[Transport],
) -> Transport:
    register_transport_opts(conf)
    metrics.enable_from_conf(conf)
    parsed = url if isinstance(url, TransportURL) else TransportURL.parse(conf, url)
    name = parsed.driver_name
    try:
        driver_cls = _plugins.load_plugin(DRIVER_NAMESPACE, name)
    except LookupError as exc:
        raise DriverLoadFailure(name, str(exc)) from exc
    except ImportError as exc:
        missing = missing_extra(exc, f"{name}://")
        if missing is not None:
            raise DriverLoadFailure(name, missing) from missing
        raise DriverLoadFailure(name, exc) from exc
    driver = driver_cls(
        conf,
        parsed,
        default_exchange=conf.control_exchange,
        allowed_remote_exmods=list(allowed_remote_exmods or []),
    )
    transport = transport_cls(driver)
    transport.tracing = tracing.from_conf(conf, parsed.transport)
    return transport


def get_rpc_transport(
    conf: cfg.ConfigOpts,
    url: str | TransportURL | None = None,
    allowed_remote_exmods: Sequence[str] | None = None,
    transport_cls: type[Transport] = RPCTransport,
) -> Transport:
    """Return a transport for RPC clients and servers.

    Args:
        conf: the caller's configuration (options are registered on it).
        url: the transport URL; ``[DEFAULT] transport_url`` when None.
        allowed_remote_exmods: modules whose exceptions clients may rebuild.
        transport_cls: the class to wrap the driver in.

    Raises:
        InvalidTransportURL: the URL is malformed.
        DriverLoadFailure: no driver has the URL's scheme as its name.
    """
    return _get_transport(conf, url, allowed_remote_exmods, transport_cls)


def get_notification_transport(
    conf: cfg.ConfigOpts,
    url: str | TransportURL | None = None,
    allowed_remote_exmods: Sequence[str] | None = None,
) -> Transport:
    """Return a transport for notifiers and notification listeners.

    With ``url`` None, ``[oslo_messaging_notifications] transport_url`` is used,
    then ``[DEFAULT] transport_url``.

    Raises:
        InvalidTransportURL: the URL is malformed.
        DriverLoadFailure: no driver has the URL's scheme as its name.
    """
    register_notification_opts(conf)
    if url is None:
        url = conf[NOTIFICATIONS_GROUP].transport_url
    return _get_transport(conf, url, allowed_remote_exmods, NotificationTransport)


def get_transport(
    conf: cfg.ConfigOpts,
    url: str | TransportURL | None = None,
    allowed_remote_exmods: Sequence[str] | None = None,
) -> Transport:
    """Deprecated alias of :func:`get_rpc_transport`, kept for oslo.messaging code."""
    import warnings

    warnings.warn(
        "get_transport() is deprecated; use get_rpc_transport() or get_notification_transport()",
        DeprecationWarning,
        stacklevel=2,
    )
    return get_rpc_transport(conf, url, allowed_remote_exmods)


def set_transport_defaults(control_exchange: str) -> None:
    """Change the default ``control_exchange`` for configurations registered from now on.

    Args:
        control_exchange: the exchange name, usually the project's (``nova``...).
    """
    set_control_exchange_default(control_exchange)
