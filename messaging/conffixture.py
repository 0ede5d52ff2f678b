"""``ConfFixture``: configures ``messaging`` for a test, usually on the in-memory transport.

With testtools/oslotest: ``self.useFixture(ConfFixture(cfg.CONF)).transport_url = 'fake:/'``.
With pytest or plain code: ``with ConfFixture(conf, transport_url='fake://') as fixture: ...``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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


class ConfFixture:
    """Registers every option on ``conf`` and sets test values; undoes it all on cleanup.

    Args:
        conf: the configuration to set up.
        transport_url: the transport URL to use (``fake://`` typically).

    Attributes:
        conf: the configuration.
    """

    def __init__(self, conf: cfg.ConfigOpts, transport_url: str | None = None) -> None:
        from messaging.conf import register_notification_opts

        self.conf = conf
        self._initial_url = transport_url
        self._cleanups: list[Callable[[], None]] = []
        # Registered now, as oslo.messaging's fixture does, so that options can be
        # read or overridden (``fixture.transport_url = ...``) before setUp().
        register_notification_opts(conf)

    # The fixtures-library protocol, so testtools' useFixture() accepts it.
    def setUp(self) -> None:
        """Install the test values and the override of oslo.messaging's option names."""
        from messaging.conf import NOTIFICATIONS_GROUP, OSLO_NOTIFICATIONS_GROUP

        real_set, real_clear = self.conf.set_override, self.conf.clear_override

        def rename(name: str, group: str | None) -> tuple[str, str | None]:
            if group is None and name in _LEGACY_NAMES:
                return _LEGACY_NAMES[name], NOTIFICATIONS_GROUP
            if group == OSLO_NOTIFICATIONS_GROUP:
                return name, NOTIFICATIONS_GROUP
            return name, group

        def set_override(name: str, override: Any, group: str | None = None) -> None:
            name, group = rename(name, group)
            real_set(name, override, group)

        def clear_override(name: str, group: str | None = None) -> None:
            real_clear(*rename(name, group))

        # What the instance held before (a fixture in force already, or nothing),
        # so that nested fixtures unwind in order.
        saved = {key: vars(self.conf)[key] for key in _PATCHED if key in vars(self.conf)}
        self.conf.set_override = set_override
        self.conf.clear_override = clear_override

        def restore() -> None:
            for key in _PATCHED:
                if key in saved:
                    setattr(self.conf, key, saved[key])
                else:
                    vars(self.conf).pop(key, None)

        self.addCleanup(restore)
        self.addCleanup(self.conf.reset)
        if self._initial_url is not None:
            self.transport_url = self._initial_url

    def addCleanup(self, fn: Callable[[], None]) -> None:  # noqa: N802 - fixtures protocol
        """Run ``fn`` at cleanup (last added, first run)."""
        self._cleanups.append(fn)

    def cleanUp(self) -> None:  # noqa: N802 - fixtures protocol
        """Undo everything :meth:`setUp` did."""
        while self._cleanups:
            self._cleanups.pop()()

    def getDetails(self) -> dict[str, Any]:  # noqa: N802 - fixtures protocol
        """No details to report (fixtures protocol)."""
        return {}

    def __enter__(self) -> ConfFixture:
        self.setUp()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanUp()

    @property
    def transport_url(self) -> str:
        """The ``[DEFAULT] transport_url`` in force."""
        return str(self.conf.transport_url)

    @transport_url.setter
    def transport_url(self, value: str) -> None:
        self.conf.set_override("transport_url", value)
        self.addCleanup(lambda: self.conf.clear_override("transport_url"))

    @property
    def response_timeout(self) -> int:
        """The ``[DEFAULT] rpc_response_timeout`` in force."""
        return int(self.conf.rpc_response_timeout)

    @response_timeout.setter
    def response_timeout(self, value: int) -> None:
        self.conf.set_override("rpc_response_timeout", value)
        self.addCleanup(lambda: self.conf.clear_override("rpc_response_timeout"))
