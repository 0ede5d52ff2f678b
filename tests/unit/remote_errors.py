"""Exception classes that the failure round-trip tests allow to be rebuilt."""

from __future__ import annotations

from typing import Any


class QuotaError(Exception):
    """An application error carrying keyword arguments, as nova's exceptions do."""

    def __init__(self, message: str = "quota exceeded", **kwargs: Any) -> None:
        self.kwargs = kwargs
        super().__init__(message)


class NeedsTwoArgs(Exception):
    """An exception that cannot be rebuilt from the single argument it was given."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first}/{second}")


NOT_AN_EXCEPTION = "a string"
