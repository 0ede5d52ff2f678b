"""What every subcommand works with: the configuration, the transport URL, the transports.

The transport URL is chosen, first match wins, from:

1. ``--transport-url``;
2. the environment variable ``MESSAGING_TRANSPORT_URL``;
3. the ``--config-file`` files, read as a service reads them (``[DEFAULT]
   transport_url``, and for notifications ``[oslo_messaging_notifications]
   transport_url`` or its oslo.messaging alias);
4. the embedded sqlite transport at :func:`default_bus_path`, announced on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from messaging.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from oslo_config import cfg

    from messaging.transport import Transport

__all__ = [
    "ENV_TRANSPORT_URL",
    "READY_PREFIX",
    "Session",
    "default_bus_path",
    "embedded_url",
]

LOG = logging.getLogger(__name__)

#: The environment variable naming the transport URL.
ENV_TRANSPORT_URL = "MESSAGING_TRANSPORT_URL"
#: Long-running commands print a line starting with this on stderr once subscribed.
READY_PREFIX = "ready:"


def default_bus_path(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user file of the embedded transport.

    ``$XDG_STATE_HOME/messaging/bus.db``, where ``XDG_STATE_HOME`` defaults to
    ``~/.local/state`` (a relative value is ignored, as the XDG specification
    says): the same file as the sqlite driver's default database.

    Args:
        environ: the environment to read (``os.environ`` by default).
    """
    env = os.environ if environ is None else environ
    state_home = env.get("XDG_STATE_HOME", "")
    if os.path.isabs(state_home):
        base = Path(state_home)
    else:
        home = Path(env["HOME"]) if env.get("HOME") else Path.home()
        base = home / ".local" / "state"
    return base / "messaging" / "bus.db"


def embedded_url(path: Path) -> str:
    """The URL of the embedded sqlite transport stored in ``path``.

    ``sqlite:///`` followed by the absolute path, so ``/home/u/bus.db`` gives
    ``sqlite:////home/u/bus.db``.
    """
    return "sqlite:///" + str(path.absolute())


class Session:
    """Configuration and transports of one run of the command.

    Args:
        transport_url: ``--transport-url``, or None.
        config_files: the ``--config-file`` paths.
        environ: the environment (``os.environ`` by default).
        stderr: where the notice about the embedded transport goes.
        prog: the command name, for that notice.
    """

    def __init__(
        self,
        transport_url: str | None = None,
        config_files: Sequence[str] = (),
        environ: Mapping[str, str] | None = None,
        stderr: TextIO | None = None,
        prog: str = "messaging",
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._stderr = stderr or sys.stderr
        self._prog = prog
        self._config_files = list(config_files)
        self._explicit_url = transport_url or self._environ.get(ENV_TRANSPORT_URL) or None
        self._conf: cfg.ConfigOpts | None = None
        self._transports: list[Transport] = []
        self._announced = False

    @property
    def conf(self) -> cfg.ConfigOpts:
        """The oslo.config object, loaded from the ``--config-file`` files (if any).

        Raises:
            CliError: a configuration file does not exist.
            oslo_config.cfg.Error: a configuration file is malformed.
        """
        if self._conf is None:
            from oslo_config import cfg

            from messaging.conf import register_notification_opts, register_transport_opts

            for path in self._config_files:
                if not os.path.isfile(path):
                    raise CliError(f"config file not found: {path}", ExitCode.CONFIG)
            conf = cfg.ConfigOpts()
            # An explicit list, even empty: oslo.config would otherwise search
            # /etc/messaging/ and ~/.messaging/ for files nobody asked for.
            conf(
                args=[],
                project="messaging",
                default_config_files=self._config_files,
                default_config_dirs=[],
            )
            register_transport_opts(conf)
            register_notification_opts(conf)
            self._conf = conf
            # Values are converted when read: a bad one would otherwise surface
            # in the middle of the command (during a call, say).
            invalid = self._invalid_value()
            if invalid is not None:
                raise invalid
        return self._conf

    def explain(self, error: BaseException) -> BaseException:
        """``error``, or a :class:`CliError` naming the option, group and file of a bad value.

        oslo.config says which option and file a value that does not convert
        came from, but not its group, and in a ``LocationInfo(...)`` repr; the
        options that drivers register when they are loaded are checked here, on
        failure.
        """
        from oslo_config import cfg

        if isinstance(error, cfg.ConfigSourceValueError) and self._conf is not None:
            invalid = self._invalid_value()
            if invalid is not None:
                invalid.__cause__ = error
                return invalid
        return error

    def _invalid_value(self) -> CliError | None:
        """The first option set in a config file to a value its type refuses, if any."""
        from oslo_config import cfg

        conf = self._conf
        assert conf is not None
        # The last file that sets an option is the one its value comes from.
        for path in reversed(self._config_files):
            sections: dict[str, dict[str, list[str]]] = {}
            cfg.ConfigParser(path, sections).parse()
            for section, values in sections.items():
                group = None if section == "DEFAULT" else section
                for name, raw in values.items():
                    try:
                        conf[name] if group is None else conf[group][name]
                    except (cfg.NoSuchOptError, cfg.NoSuchGroupError, KeyError):
                        continue  # not an option of this command
                    except cfg.ConfigSourceValueError as exc:
                        reason = exc.__context__ or exc
                        return CliError(
                            f"{path}: [{section}] {name} = {raw[-1]} is not a valid value: "
                            f"{reason}",
                            ExitCode.CONFIG,
                        )
        return None

    @property
    def explicit_url(self) -> str | None:
        """The URL from ``--transport-url`` or the environment, if either gave one."""
        return self._explicit_url

    def _url(self) -> str | None:
        """The URL to use, or None to read it from the configuration files."""
        if self._explicit_url:
            return self._explicit_url
        if self._config_files:
            return None
        path = default_bus_path(self._environ)
        url = embedded_url(path)
        if not self._announced:
            self._announced = True
            print(
                f"{self._prog}: using the embedded transport {url}; "
                f"set --transport-url or {ENV_TRANSPORT_URL} to use another",
                file=self._stderr,
                flush=True,
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(
                f"cannot create {path.parent} for the embedded transport: {exc.strerror}",
                ExitCode.CONFIG,
            ) from exc
        return url

    def describe_url(self, notifications: bool = False) -> str:
        """The URL in use, passwords hidden, for messages."""
        from messaging.conf import NOTIFICATIONS_GROUP
        from messaging.transport import redact_url

        url = self._url()
        if url is None:
            url = (
                notifications and self.conf[NOTIFICATIONS_GROUP].transport_url
            ) or self.conf.transport_url
        return redact_url(str(url))

    def rpc_transport(self) -> Transport:
        """A transport for RPC clients and servers, cleaned up by :meth:`close`."""
        from messaging.transport import get_rpc_transport

        transport = get_rpc_transport(self.conf, url=self._url())
        self._transports.append(transport)
        return transport

    def notification_transport(self) -> Transport:
        """A transport for notifiers and listeners, cleaned up by :meth:`close`."""
        from messaging.transport import get_notification_transport

        transport = get_notification_transport(self.conf, url=self._url())
        self._transports.append(transport)
        return transport

    def ready(self, what: str) -> None:
        """Say on stderr that a long-running command is subscribed and receiving."""
        print(f"{self._prog}: {READY_PREFIX} {what}", file=self._stderr, flush=True)

    def waiting(
        self, what: str, transport: Transport | None = None
    ) -> AbstractContextManager[None]:
        """Say on a terminal's stderr, while the block runs, that the command waits for ``what``.

        See :func:`messaging.cli.waiting.waiting` (nothing shows when stderr is
        not a terminal).
        """
        from messaging.cli.waiting import waiting

        return waiting(self._stderr, what, transport)

    def close(self) -> None:
        """Release every transport made by this session (a failure is logged, not raised)."""
        while self._transports:
            transport = self._transports.pop()
            try:
                transport.cleanup()
            except Exception:
                LOG.warning("Could not clean up the transport %r", transport, exc_info=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
