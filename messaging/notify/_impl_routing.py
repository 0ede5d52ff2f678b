"""The ``routing`` notification driver: sends each notification to the drivers its rules pick.

The rules are a YAML file named by ``[oslo_messaging_notifications] routing_config``::

    group_1:
      messagingv2:
        accepted_events:
          - compute.instance.*
      log:
        accepted_priorities:
          - error
          - critical

Each driver entry lists ``accepted_events`` (fnmatch patterns) and/or
``accepted_priorities``; when both are given both must match. A notification
goes to every driver whose entry matches in any group, once per driver.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from messaging import _plugins
from messaging.conf import NOTIFICATIONS_GROUP
from messaging.exceptions import ConfigurationError, DriverLoadFailure
from messaging.notify.drivers.base import Driver

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.transport import Transport

__all__ = ["RoutingDriver", "load_rules"]

LOG = logging.getLogger(__name__)
NAMESPACE = "messaging.notify.drivers"

Rule = tuple[str, list[str] | None, list[str] | None]  # driver, events, priorities


def load_rules(path: str) -> list[Rule]:
    """Read a routing file into ``(driver, accepted_events, accepted_priorities)`` rules.

    Raises:
        ConfigurationError: the file cannot be read or does not have the expected shape.
    """
    import yaml

    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(
            f"Cannot read notification routing config {path!r}: {exc}"
        ) from exc
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"Notification routing config {path!r} must map group names to drivers"
        )
    rules: list[Rule] = []
    for group, drivers in data.items():
        if not isinstance(drivers, dict):
            raise ConfigurationError(f"Group {group!r} of {path!r} must map driver names to rules")
        for name, spec in drivers.items():
            spec = spec or {}
            if not isinstance(spec, dict) or set(spec) - {"accepted_events", "accepted_priorities"}:
                raise ConfigurationError(
                    f"Driver {name!r} in group {group!r} of {path!r} may only have "
                    "accepted_events and accepted_priorities"
                )
            where = f"driver {name!r} in group {group!r} of {path!r}"
            events = _string_list(spec, "accepted_events", where)
            priorities = _string_list(spec, "accepted_priorities", where)
            rules.append(
                (
                    str(name),
                    events,
                    None if priorities is None else [p.lower() for p in priorities],
                )
            )
    return rules


def _string_list(spec: dict[str, Any], key: str, where: str) -> list[str] | None:
    # A bare string would otherwise be iterated character by character, and a
    # "*" among them would accept every notification.
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{key} of {where} must be a list of strings, not {value!r}")
    return value


class RoutingDriver(Driver):
    """Routes notifications to other drivers by event type and priority.

    Raises:
        ConfigurationError: the routing file is unreadable or malformed, or
            routes to the routing driver.
        DriverLoadFailure: a rule names an unknown driver.
    """

    def __init__(self, conf: cfg.ConfigOpts, topics: Sequence[str], transport: Transport) -> None:
        super().__init__(conf, topics, transport)
        path = conf[NOTIFICATIONS_GROUP].routing_config
        self.rules: list[Rule] = load_rules(path) if path else []
        if not path:
            LOG.warning(
                "The routing notification driver has no routing_config: it will send nothing"
            )
        self._drivers: dict[str, Driver] = {}
        for name, _events, _priorities in self.rules:
            if name == "routing":
                raise ConfigurationError(
                    f"Notification routing config {path!r} routes to the routing driver itself"
                )
            if name not in self._drivers:
                try:
                    cls = _plugins.load_plugin(NAMESPACE, name)
                except (LookupError, ImportError) as exc:
                    raise DriverLoadFailure(name, str(exc)) from exc
                self._drivers[name] = cls(conf, topics=topics, transport=transport)

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str, retry: int | None) -> None:
        """Send through every driver whose rule matches; raise the first failure after all."""
        event_type = str(message.get("event_type", ""))
        chosen: list[str] = []
        for name, events, priorities in self.rules:
            if name in chosen:
                continue
            if events is not None and not any(fnmatch.fnmatch(event_type, e) for e in events):
                continue
            if priorities is not None and priority.lower() not in priorities:
                continue
            chosen.append(name)
        failures: list[Exception] = []
        for name in chosen:
            try:
                self._drivers[name].notify(ctxt, message, priority, retry)
            except Exception as exc:
                exc.add_note(f"in routed driver {name!r}")
                failures.append(exc)
        if failures:
            raise failures[0]
