"""Exceptions that conformance endpoints raise, to check how RPC failures come back.

Clients list this module in ``allowed_remote_exmods`` to get the original class
back; without it they get a ``RemoteError``.
"""

from __future__ import annotations

from typing import Any


class ConformanceError(Exception):
    """An application error, as a service's own exception module defines them."""

    def __init__(self, message: str = "conformance failure", **kwargs: Any) -> None:
        self.kwargs = kwargs
        super().__init__(message)
