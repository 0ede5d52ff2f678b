"""``ConfFixture``: configures ``messaging`` for a test, usually on the in-memory transport.

With testtools/oslotest: ``self.useFixture(ConfFixture(cfg.CONF)).transport_url = 'fake:/'``.
With pytest or plain code: ``with ConfFixture(conf, transport_url='fake://') as fixture: ...``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import fixtures

from messaging.conf import NOTIFICATIONS_GROUP, list_opts, register_group

if TYPE_CHECKING:
    from oslo_config import cfg

__all__ = ["ConfFixture"]

# oslo.messaging's removed [DEFAULT] names, which old tests still override.
_LEGACY_NAMES = {
    "notification_driver": "driver",
    "notification_transport_url": "transport_url",
    "notification_topics": "topics",
}
_PATCHED = ("set_override", "clear_override")


def register_all_opts(conf: cfg.ConfigOpts) -> None:
    """Register every option of ``messaging`` on ``conf``: the core's and every driver's."""
    for group, opts in list_opts():
        register_group(conf, group, opts)


def _renamed(name: str, group: str | None) -> tuple[str, str | None]:
    if group is None and name in _LEGACY_NAMES:
        return _LEGACY_NAMES[name], NOTIFICATIONS_GROUP
    return name, group


def _wrap(real: Callable[..., None], takes_value: bool) -> Callable[..., None]:
    @functools.wraps(real)
    def wrapper(name: str, *args: Any, **kwargs: Any) -> None:
        group = kwargs.pop("group", None)
        positional = list(args)
        index = 1 if takes_value else 0
        if len(positional) > index:
            group = positional.pop(index)
        name, group = _renamed(name, group)
        real(name, *positional, group=group, **kwargs)

    # oslo.messaging's fixture marks its wrappers so; tests look for the mark.
    wrapper.wrapped = real  # type: ignore[attr-defined]
    return wrapper


class ConfFixture(fixtures.Fixture):
    """Registers every option on ``conf`` and sets test values; undoes it all on cleanup.

    Every group is registered (``[DEFAULT]``, ``[oslo_messaging_notifications]``,
    ``[oslo_messaging_rabbit]`` and the other drivers'), when the fixture is built,
    so options can be read or overridden before ``setUp``. While the fixture is in
    force, ``conf.set_override``/``clear_override`` also accept oslo.messaging's
    removed ``[DEFAULT]`` names (``notification_driver``...). Cleanup clears what
    the fixture overrode and calls ``conf.reset()``.

    Args:
        conf: the configuration to set up.
        transport_url: the transport URL to use (``fake://`` typically).

    Attributes:
        conf: the configuration.
    """

    def __init__(self, conf: cfg.ConfigOpts, transport_url: str | None = None) -> None:
        super().__init__()
        self.conf = conf
        self._initial_url = transport_url
        self._saved: dict[str, Any] | None = None
        register_all_opts(conf)

    def _setup_decorator(self) -> None:
        """Wrap ``conf.set_override``/``clear_override`` to accept the legacy names."""
        # What the instance held before (a fixture in force already, or nothing),
        # so that nested fixtures unwind in order.
        self._saved = {key: vars(self.conf)[key] for key in _PATCHED if key in vars(self.conf)}
        self.conf.set_override = _wrap(self.conf.set_override, takes_value=True)
        self.conf.clear_override = _wrap(self.conf.clear_override, takes_value=False)

    def _teardown_decorator(self) -> None:
        """Undo :meth:`_setup_decorator` (a second call does nothing)."""
        saved, self._saved = self._saved, None
        if saved is None:
            return
        for key in _PATCHED:
            if key in saved:
                setattr(self.conf, key, saved[key])
            else:
                vars(self.conf).pop(key, None)

    def _setUp(self) -> None:  # noqa: N802 - fixtures protocol
        self._setup_decorator()
        self.addCleanup(self._teardown_decorator)
        self.addCleanup(self.conf.reset)
        if self._initial_url is not None:
            self.transport_url = self._initial_url

    def cleanUp(self, raise_first: bool = True) -> Any:  # noqa: N802 - fixtures protocol
        """Undo everything; a second call (or one before ``setUp``) does nothing."""
        if getattr(self, "_cleanups", None) is None:
            return None
        return super().cleanUp(raise_first)

    @property
    def transport_url(self) -> str:
        """The ``[DEFAULT] transport_url`` in force."""
        return str(self.conf.transport_url)

    @transport_url.setter
    def transport_url(self, value: str) -> None:
        # conf.reset() at cleanup clears it, so this works before setUp() too.
        self.conf.set_override("transport_url", value)

    @property
    def response_timeout(self) -> int:
        """The ``[DEFAULT] rpc_response_timeout`` in force."""
        return int(self.conf.rpc_response_timeout)

    @response_timeout.setter
    def response_timeout(self, value: int) -> None:
        self.conf.set_override("rpc_response_timeout", value)
