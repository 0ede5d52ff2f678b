"""How the STOMP driver opens a connection: protocol versions and ``host`` headers, in order.

STOMP 1.1 and 1.2 require a ``host`` header on CONNECT: the virtual host the
client wants. When the URL names one (``stomp://h:61613/vhost``, or ``//`` for
``/``) it is always sent. When it names none, the driver sends the name of the
broker host it connected to (what the specification recommends, and what a
strict broker such as CoilMQ insists on); a broker that refuses that name
(RabbitMQ takes the header for one of its virtual hosts) is asked again with no
``host`` header, which gives RabbitMQ its default virtual host. With
``flavor=rabbitmq`` the host name is not tried at all.

STOMP 1.2 is asked for first unless ``stomp_version=1.1``; a broker that refuses
every 1.2 attempt for its version or its host header is asked for 1.1. Other
refusals (credentials...) are final. The connection remembers the attempt that
was accepted and starts with it when it reconnects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from messaging.drivers.stomp.options import StompSettings

__all__ = ["CONNECTED_HOST", "Hello", "hellos", "worth_another_try"]

#: As :attr:`Hello.host`: the name of the broker host the socket is connected to.
CONNECTED_HOST = "<connected host>"


@dataclass(frozen=True)
class Hello:
    """One way of opening a STOMP connection.

    Attributes:
        version: the STOMP version asked for (``1.2`` or ``1.1``).
        host: the ``host`` header: a virtual host, :data:`CONNECTED_HOST`, or None for none.
    """

    version: str
    host: str | None

    def host_header(self, connected_host: str) -> str | None:
        """The ``host`` header to send when connected to ``connected_host``."""
        return connected_host if self.host == CONNECTED_HOST else self.host

    def __str__(self) -> str:
        shown = "no host header" if self.host is None else f"host {self.host}"
        return f"STOMP {self.version} with {shown}"


def hellos(settings: StompSettings) -> list[Hello]:
    """The attempts to open a connection with ``settings``, in order (see the module)."""
    versions = ("1.2", "1.1") if settings.stomp_version == "1.2" else ("1.1",)
    if settings.vhost is not None:
        return [Hello(version, settings.vhost) for version in versions]
    hosts: tuple[str | None, ...] = (
        (None,) if settings.flavor == "rabbitmq" else (CONNECTED_HOST, None)
    )
    return [Hello(version, host) for version in versions for host in hosts]


def worth_another_try(refusal: str) -> bool:
    """Whether a broker's refusal of a CONNECT is about the version or the ``host`` header."""
    text = refusal.lower()
    return "version" in text or "host" in text
