"""What the broker at the other end of a connection is, from its server properties.

RabbitMQ announces its product name and version in ``connection.start``. The
driver reads them on every connection (a failover may land on a node of another
version during a rolling upgrade) to choose the declarations that broker accepts:
RabbitMQ 4.3 refuses transient non-exclusive queues and global QoS by default,
and 4.0 and later can be configured to (see
:meth:`~messaging.drivers.rabbit.options.RabbitSettings.on_rabbitmq4`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["BrokerInfo"]

_VERSION = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if value is not None else ""


@dataclass(frozen=True)
class BrokerInfo:
    """The product and version a broker announces.

    Attributes:
        product: the product name (``RabbitMQ``), empty when not announced.
        version: the version as announced (``4.0.5``), empty when not announced.
    """

    product: str = ""
    version: str = ""

    @classmethod
    def from_server_properties(cls, properties: Mapping[str, Any] | None) -> BrokerInfo:
        """Read the ``product`` and ``version`` server properties."""
        properties = properties or {}
        return cls(_text(properties.get("product")), _text(properties.get("version")))

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        """``(major, minor, patch)``; ``(0, 0, 0)`` when the version is unknown."""
        match = _VERSION.match(self.version)
        if match is None:
            return (0, 0, 0)
        major, minor, patch = match.groups()
        return (int(major), int(minor or 0), int(patch or 0))

    @property
    def rabbitmq4(self) -> bool:
        """Whether the broker is RabbitMQ 4.0 or later."""
        return self.product == "RabbitMQ" and self.version_tuple >= (4, 0, 0)

    def __str__(self) -> str:
        return f"{self.product or 'an unknown broker'} {self.version or '(version unknown)'}"
