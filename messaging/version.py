"""The package's version, at oslo.messaging's path (``oslo_messaging.version``).

``version_info`` answers what pbr's ``VersionInfo`` answers for the calls code
makes of it (``version_string()``, ``release_string()``).
"""

from __future__ import annotations

from importlib import metadata

__all__ = ["VersionInfo", "version_info"]

DISTRIBUTION = "messaging-fleet"


class VersionInfo:
    """The installed version of a distribution.

    Args:
        package: the distribution's name.
    """

    def __init__(self, package: str) -> None:
        self.package = package

    def release_string(self) -> str:
        """The full version, e.g. ``0.1.0``."""
        return metadata.version(self.package)

    def version_string(self) -> str:
        """The version without pre-release or local parts, e.g. ``0.1.0``."""
        release = self.release_string()
        digits = []
        for part in release.split("."):
            if not part.isdigit():
                break
            digits.append(part)
        return ".".join(digits) or release

    def __str__(self) -> str:
        return self.release_string()

    def __repr__(self) -> str:
        return f"VersionInfo({self.package!r}: {self.release_string()})"


version_info = VersionInfo(DISTRIBUTION)
