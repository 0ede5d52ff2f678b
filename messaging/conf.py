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
gathers the drivers' options through the ``messaging.driver_opts`` entry points,
so this module imports no driver.

oslo.config is imported lazily: ``import messaging`` stays cheap.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.wire import Limits

__all__ = [
    "DRIVER_OPTS_NAMESPACE",
    "NOTIFICATIONS_GROUP",
    "OSLO_NOTIFICATIONS_GROUP",
    "apply_query_overrides",
    "deprecated_group",
    "list_opts",
    "message_limits",
    "register_group",
    "register_notification_opts",
    "register_transport_opts",
    "set_defaults",
]

NOTIFICATIONS_GROUP = "oslo_messaging_notifications"
#: The same group: oslo.messaging's name is the group's name.
OSLO_NOTIFICATIONS_GROUP = NOTIFICATIONS_GROUP
#: Where drivers declare their options: each entry point names a function that
#: returns ``[(group, options)]``.
DRIVER_OPTS_NAMESPACE = "messaging.driver_opts"


def old_group_name(group: str) -> str:
    """The name this package gave ``group`` before it took oslo.messaging's names.

    ``oslo_messaging_rabbit`` was ``messaging_rabbit``, and so on.
    """
    return group.removeprefix("oslo_")


def deprecated_group(opts: list[cfg.Opt], group: str) -> list[cfg.Opt]:
    """Make each option also read from the group's old ``messaging_*`` name.

    A value found there is used (when the group itself lacks one) and oslo.config
    logs that the section is deprecated. Options are changed in place.

    Args:
        opts: the options of ``group``.
        group: the group's name (``oslo_messaging_...``).

    Returns:
        ``opts``, for chaining.
    """
    from oslo_config import cfg

    old = old_group_name(group)
    for opt in opts:
        opt.deprecated_opts = [*opt.deprecated_opts, cfg.DeprecatedOpt(opt.name, group=old)]
    return opts


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


@functools.cache
def _notification_opts() -> list[cfg.Opt]:
    from oslo_config import cfg

    from messaging.notify.outbox import outbox_opts
    from messaging.poison import poison_opts

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
        *poison_opts(),
        *outbox_opts(),
    ]
    return deprecated_group(opts, NOTIFICATIONS_GROUP)


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Return every option, grouped, for ``oslo-config-generator``.

    The drivers' groups come from the ``messaging.driver_opts`` entry points, in
    the order of their names.

    Returns:
        ``(group name, options)`` pairs; ``None`` is ``[DEFAULT]``. The options are
        copies, so a caller may change them freely.
    """
    from importlib import metadata

    groups: list[tuple[str | None, list[cfg.Opt]]] = [
        (None, copy.deepcopy(_default_opts())),
        (NOTIFICATIONS_GROUP, copy.deepcopy(_notification_opts())),
    ]
    entry_points = metadata.entry_points(group=DRIVER_OPTS_NAMESPACE)
    for entry_point in sorted(entry_points, key=lambda ep: ep.name):
        for group, opts in entry_point.load()():
            groups.append((group, copy.deepcopy(list(opts))))
    return groups


def register_group(conf: cfg.ConfigOpts, group: str | None, opts: Sequence[cfg.Opt]) -> None:
    """Register options on ``conf``, tolerating ones that another library registered.

    A process may hold oslo.messaging too (during a migration): it registers
    ``[DEFAULT] transport_url`` with other help text, which oslo.config would
    refuse as a duplicate. An option already present under the same name is kept.
    """
    from oslo_config import cfg

    for opt in opts:
        with contextlib.suppress(cfg.DuplicateOptError):
            conf.register_opt(opt, group=group)


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


def apply_query_overrides(
    conf: cfg.ConfigOpts, group: str, opts: Sequence[cfg.Opt], query: Mapping[str, str], url: str
) -> dict[str, Any]:
    """Read a driver's option group with a transport URL's query string on top.

    Args:
        conf: the configuration holding ``group`` (registered here if needed).
        group: the driver's option group.
        opts: the options of that group.
        query: the URL's query parameters; each must name an option of the group.
        url: the URL, for error messages (its passwords are hidden there).

    Returns:
        Option name to value, the query's values converted with each option's type.

    Raises:
        InvalidTransportURL: a query key names no option of the group, or its
            value does not convert.
    """
    from messaging.exceptions import InvalidTransportURL
    from messaging.transport import redact_url

    shown = redact_url(url)
    register_group(conf, group, opts)
    values = {opt.dest: getattr(conf[group], opt.dest) for opt in opts}
    by_name = {opt.name: opt for opt in opts}
    for key, raw in query.items():
        opt = by_name.get(key)
        if opt is None:
            raise InvalidTransportURL(
                url,
                f"Unknown option {key!r} in the query of transport URL {shown!r}; "
                f"options of [{group}]: {', '.join(sorted(by_name)) or '(none)'}",
            )
        try:
            values[opt.dest] = opt.type(raw)
        except (ValueError, TypeError) as exc:
            raise InvalidTransportURL(
                url, f"Bad value {raw!r} for option {key!r} in transport URL {shown!r}: {exc}"
            ) from exc
    return values
