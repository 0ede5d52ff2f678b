"""Handing the name ``oslo_messaging`` to this package, for every library of a process.

Libraries that a service uses import ``oslo_messaging`` themselves
(keystonemiddleware's audit middleware, osprofiler, oslo.log's error publisher...).
After :func:`install_as_oslo_messaging`, ``import oslo_messaging`` and
``import oslo_messaging.<module>`` give ``messaging`` and ``messaging.<module>``
(the same module objects), even when oslo.messaging is installed: a finder placed
first on ``sys.meta_path`` answers for the name before the installed package is
looked at. Modules this package lacks (oslo's private ``_drivers``, ``_utils``...)
are not found, rather than taken from oslo.messaging: one process never runs two
messaging libraries.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["ALIAS", "install_as_oslo_messaging", "is_installed", "uninstall"]

#: The name handed to this package.
ALIAS = "oslo_messaging"
_REAL = "messaging"
_lock = threading.Lock()


def _real_name(fullname: str) -> str | None:
    if fullname == ALIAS:
        return _REAL
    if fullname.startswith(ALIAS + "."):
        return _REAL + fullname[len(ALIAS) :]
    return None


class _AliasLoader(importlib.abc.Loader):
    """Loads an ``oslo_messaging`` name as the module of ``messaging`` it stands for."""

    def __init__(self, real: str) -> None:
        self.real = real
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.real)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The module is ``messaging``'s own, already executed by create_module;
        # importlib gave it the alias's spec meanwhile: it keeps its own.
        if self._spec is not None:
            module.__spec__ = self._spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Answers for ``oslo_messaging`` and its submodules with ``messaging``'s."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        real = _real_name(fullname)
        if real is None:
            return None
        if importlib.util.find_spec(real) is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: messaging, which stands for oslo_messaging "
                f"in this process (install_as_oslo_messaging()), has no {real!r}",
                name=fullname,
            )
        return importlib.util.spec_from_loader(fullname, _AliasLoader(real))


def _finder() -> _AliasFinder | None:
    return next((f for f in sys.meta_path if isinstance(f, _AliasFinder)), None)


def is_installed() -> bool:
    """Whether ``oslo_messaging`` stands for this package in this process."""
    return _finder() is not None


def install_as_oslo_messaging() -> None:
    """Make ``import oslo_messaging`` (and its submodules) give this package.

    Call it once at start-up, before anything imports ``oslo_messaging``: a module
    that imported the real oslo.messaging earlier keeps it. In that case a
    ``RuntimeWarning`` names the modules already imported, and they are dropped
    from ``sys.modules`` so that later imports get this package. Calling it again
    does nothing.

    Submodules keep their oslo.messaging paths (``oslo_messaging.notify.notifier``,
    ``oslo_messaging.rpc.server``, ``oslo_messaging.conffixture``,
    ``oslo_messaging.notify._impl_test``...); oslo's private modules
    (``_drivers``, ``_utils``) do not exist here and fail to import.
    """
    with _lock:
        if is_installed():
            return
        earlier = sorted(
            name
            for name, module in sys.modules.items()
            if _real_name(name) is not None and not _is_ours(module)
        )
        if earlier:
            warnings.warn(
                "install_as_oslo_messaging(): oslo.messaging was imported before "
                f"({', '.join(earlier[:5])}{'...' if len(earlier) > 5 else ''}); code that "
                "imported it keeps it, later imports get messaging",
                RuntimeWarning,
                stacklevel=2,
            )
            for name in earlier:
                del sys.modules[name]
        sys.meta_path.insert(0, _AliasFinder())
        sys.modules[ALIAS] = importlib.import_module(_REAL)


def _is_ours(module: ModuleType | None) -> bool:
    name = getattr(module, "__name__", "") or ""
    return name == _REAL or name.startswith(_REAL + ".")


def uninstall() -> None:
    """Undo :func:`install_as_oslo_messaging` (for tests): the name is free again."""
    with _lock:
        finder = _finder()
        if finder is not None:
            sys.meta_path.remove(finder)
        for name in [n for n, m in sys.modules.items() if _real_name(n) and _is_ours(m)]:
            del sys.modules[name]
