"""RPC API version strings: ``major.minor`` with an optional ``.revision``."""

from __future__ import annotations

__all__ = ["check_version", "version_is_compatible"]


def _parts(version: str) -> list[int]:
    return [int(p) for p in version.split(".")]


def check_version(version: str) -> None:
    """Raise ValueError unless ``version`` has integer major and minor parts."""
    try:
        parts = _parts(version)
    except (AttributeError, ValueError):
        parts = []
    if not 2 <= len(parts) <= 3:
        raise ValueError(f"Version must contain a major and minor integer, got {version!r}")


def version_is_compatible(imp_version: str | None, version: str | None) -> bool:
    """Whether an implementation at ``imp_version`` can serve a request for ``version``.

    Same major; requested minor at most the implemented one; when the minors
    are equal, a requested revision at most the implemented one. An unversioned
    implementation accepts everything; an unversioned request nothing.
    """
    if imp_version is None:
        return True
    if version is None:
        return False
    imp, req = _parts(imp_version), _parts(version)
    if imp[0] != req[0] or req[1] > imp[1]:
        return False
    imp_revision = imp[2] if len(imp) > 2 else 0
    return not (req[1] == imp[1] and len(req) > 2 and req[2] > imp_revision)
