"""Loading of plugins through stevedore, failing loudly with the known names."""

from __future__ import annotations

from typing import Any


def known_plugins(namespace: str) -> list[str]:
    """The names registered under an entry-point namespace.

    The names come from the entry points alone: no plugin module is imported, so
    a plugin that fails to import is still listed (loading it shows why). They
    are read again on each call (see :func:`_remembered` for the cached ones).
    """
    from importlib import metadata  # not at module level: costs ~20 ms of import time

    names = sorted({entry_point.name for entry_point in metadata.entry_points(group=namespace)})
    _REMEMBERED[namespace] = names
    return names


#: The names last read per namespace. Kept, as stevedore keeps its entry points,
#: so that a process that can no longer read its installation (a child that
#: dropped its privileges) still finds the plugins it found before.
_REMEMBERED: dict[str, list[str]] = {}


def _remembered(namespace: str) -> list[str]:
    found = _REMEMBERED.get(namespace)
    return found if found is not None else known_plugins(namespace)


def load_plugin(namespace: str, name: str) -> Any:
    """Return the object an entry point names (a class, usually), without calling it.

    Raises:
        LookupError: no plugin of that name; the message lists the known names.
        ImportError: the plugin exists but its module fails to import (chained).
    """
    from stevedore import DriverManager

    # Checked first: stevedore would log a warning of its own about a missing
    # name (its DriverManager drops the callback that silences it).
    known = _remembered(namespace)
    if name not in known:
        known = known_plugins(namespace)  # installed since they were read?
    if name not in known:
        raise LookupError(
            f"no plugin named {name!r} in {namespace}; "
            f"known names: {', '.join(known) or '(none installed)'}"
        )
    manager: Any = DriverManager(namespace, name, invoke_on_load=False)
    return manager.driver
