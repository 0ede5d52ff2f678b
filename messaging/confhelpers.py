"""The bottom of the configuration: helpers for option groups and transport URLs.

:mod:`messaging.conf` (the core's options), :mod:`messaging.transport` and every
driver's options module use these; this module imports none of them, nor any
driver, so that no import circle runs through the configuration.

- :class:`OptionGroup`: one group of options (a driver's), built once, with
  the deprecated ``[messaging_*]`` name of the group still read, registered on
  the caller's ``ConfigOpts`` and read with a transport URL's query on top.
- :func:`register_group`, :func:`deprecated_group`, :func:`apply_query_overrides`:
  the same, for groups that are not an :class:`OptionGroup`.
- :func:`redact_url`: a URL with its passwords hidden, for messages.
- :func:`warn_without_effect`: the warning for options accepted for
  oslo.messaging's sake that do nothing here.

oslo.config is imported lazily: ``import messaging`` stays cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from messaging.exceptions import ConfigurationError, InvalidTransportURL

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from oslo_config import cfg

__all__ = [
    "OptionGroup",
    "apply_query_overrides",
    "deprecated_group",
    "old_group_name",
    "redact_url",
    "register_group",
    "warn_without_effect",
]

LOG = logging.getLogger(__name__)


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


def redact_url(url: str) -> str:
    """Return ``url`` with the password of every host replaced by ``****``, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    hosts = []
    for chunk in netloc.split(","):
        creds, at, hostport = chunk.rpartition("@")
        user, colon, _password = creds.partition(":")
        hosts.append(f"{user}:****@{hostport}" if at and colon else chunk)
    return f"{scheme}://{','.join(hosts)}{slash}{tail}"


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


class OptionGroup:
    """A driver's option group: its name and its options, built once on first use.

    Each option is also read from the group's deprecated ``[messaging_*]`` name.

    Args:
        name: the group's name (``oslo_messaging_...``).
        build: returns the options; called once, when they are first needed.
    """

    def __init__(self, name: str, build: Callable[[], list[cfg.Opt]]) -> None:
        self.name = name
        self._build = build

    @functools.cached_property
    def _opts(self) -> list[cfg.Opt]:
        return deprecated_group(self._build(), self.name)

    def opts(self) -> list[cfg.Opt]:
        """The options (the same objects each time; do not change them)."""
        return self._opts

    def list_opts(self) -> list[tuple[str, list[cfg.Opt]]]:
        """The group for ``oslo-config-generator``: ``[(name, options)]``."""
        return [(self.name, self.opts())]

    def register(self, conf: cfg.ConfigOpts) -> None:
        """Register the options on ``conf`` (again is harmless)."""
        register_group(conf, self.name, self.opts())

    def read(self, conf: cfg.ConfigOpts, query: Mapping[str, str], url: str) -> dict[str, Any]:
        """The values on ``conf`` with a URL's query on top (:func:`apply_query_overrides`)."""
        return apply_query_overrides(conf, self.name, self.opts(), query, url)


S = TypeVar("S", bound="DataclassInstance")


def settings_of(cls: type[S], values: Mapping[str, Any]) -> S:
    """Build the settings dataclass ``cls`` from the option values named like its fields."""
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})


def refuse_invalid(what: str, group: str, problems: Sequence[str]) -> None:
    """Raise one ConfigurationError that names every problem, if there is any.

    Args:
        what: whose options (``RabbitMQ driver``), for the message.
        group: the options' group, for the message.
        problems: what is wrong, one sentence fragment each.
    """
    if problems:
        raise ConfigurationError(f"Invalid {what} options ([{group}]): " + "; ".join(problems))


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def warn_without_effect(
    group: str, values: Mapping[str, Any], reasons: Mapping[str, tuple[Any, str]]
) -> list[str]:
    """Log a WARNING, once per process and option, for each option set that does nothing.

    Args:
        group: the options' group, for the message.
        values: option name to value, as read.
        reasons: option name to ``(default, why it has no effect)``; an option
            whose value differs from its default is warned about.

    Returns:
        The names warned about by this call.
    """
    warned = []
    for name, (default, why) in reasons.items():
        if name not in values or values[name] == default:
            continue
        with _warned_lock:
            if (group, name) in _warned:
                continue
            _warned.add((group, name))
        LOG.warning(
            "[%s] %s = %r has no effect in messaging (it is accepted for oslo.messaging "
            "compatibility): %s",
            group,
            name,
            values[name],
            why,
        )
        warned.append(name)
    return warned


def forget_warnings(names: Iterable[tuple[str, str]] | None = None) -> None:
    """Let :func:`warn_without_effect` warn again (all, or the ``(group, name)`` given)."""
    with _warned_lock:
        if names is None:
            _warned.clear()
        else:
            _warned.difference_update(names)
