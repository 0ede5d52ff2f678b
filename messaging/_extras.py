"""Which extra of ``messaging-fleet`` installs which optional module: written once, here.

Code that needs an optional module imports it with :func:`require`, which
turns its absence into a :class:`~messaging.exceptions.MissingExtra` naming
the ``pip install`` to run; :func:`missing_extra` finds such an absence in an
error raised elsewhere (a plugin's module that imports the package at its top).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from messaging.exceptions import MissingExtra

__all__ = ["EXTRAS", "install_hint", "missing_extra", "require"]

#: The extra (``[options.extras_require]`` of setup.cfg) that installs each
#: optional top-level module.
EXTRAS: dict[str, str] = {
    "eventlet": "eventlet",
    "redis": "redis",
    "packaging": "redis",  # kombu's redis transport imports it
    "stomp": "stomp",
    "prometheus_client": "metrics",
    "opentelemetry": "tracing",
    "oslo_context": "context",
    "webob": "middleware",
}


def install_hint(module: str) -> str:
    """``pip install 'messaging-fleet[EXTRA]'`` for the extra that installs ``module``."""
    return MissingExtra.install_command(EXTRAS[module.partition(".")[0]])


def require(module: str, needed_by: str) -> ModuleType:
    """Import ``module``, an optional one listed in :data:`EXTRAS`.

    Args:
        module: its dotted name.
        needed_by: what needs it, for the message (``"stomp://"``, ``"metrics"``...).

    Raises:
        MissingExtra: it is not installed; the message names the extra.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = missing_extra(exc, needed_by)
        if missing is None:
            raise
        raise missing from exc


def missing_extra(error: BaseException, needed_by: str) -> MissingExtra | None:
    """The :class:`MissingExtra` that ``error`` (or an error it came from) amounts to, if any.

    Args:
        error: an error, an ImportError of an optional module somewhere in its chain.
        needed_by: what needed the module, for the message.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MissingExtra):
            return current
        if isinstance(current, ImportError) and current.name:
            top = current.name.partition(".")[0]
            if top in EXTRAS:
                missing = MissingExtra(top, EXTRAS[top], needed_by)
                missing.__cause__ = current
                return missing
        current = current.__cause__ or current.__context__
    return None
