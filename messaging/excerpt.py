"""Bounded excerpts of message bodies and payloads, for log lines and errors.

A message may be megabytes long; a log line about it shows its beginning and
says how long it is, so that one bad message costs one readable line, not a
log file. :func:`excerpt` takes raw bodies (text or bytes) and any other value
(a decoded message, whose repr is built with bounded depth and length).
"""

from __future__ import annotations

import reprlib

__all__ = ["EXCERPT_CHARS", "excerpt"]

#: How many characters of a body or a repr a log line shows.
EXCERPT_CHARS = 300


def _bounded_repr() -> reprlib.Repr:
    shown = reprlib.Repr()
    shown.maxlevel = 4
    shown.maxdict = shown.maxlist = shown.maxtuple = shown.maxset = 12
    shown.maxstring = shown.maxother = 120
    return shown


_REPR = _bounded_repr()


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """The start of ``value``, at most about ``limit`` characters, saying what was cut.

    Args:
        value: a raw body (``str`` or ``bytes``) or any other value.
        limit: how many characters to show.

    Returns:
        ``repr`` of the body's first ``limit`` characters (bytes: decoded as
        UTF-8, undecodable bytes escaped), followed by ``... (N bytes in all)``
        when it was cut; for other values a repr bounded in depth and length.
    """
    raw = isinstance(value, str | bytes | bytearray)
    if isinstance(value, bytes | bytearray):
        text = bytes(value[: limit * 4]).decode("utf-8", "backslashreplace")
        whole, total, unit = len(value) <= limit * 4, len(value), "bytes"
    elif isinstance(value, str):
        text, whole, total, unit = value, True, len(value), "characters"
    else:
        try:
            text = _REPR.repr(value)
        except Exception as exc:  # a broken __repr__ must not break the log line
            text = f"<{type(value).__name__} whose repr failed: {type(exc).__name__}>"
        whole, total, unit = True, len(text), "characters of repr"
    if whole and len(text) <= limit:
        return repr(text) if raw else text
    shown = repr(text[:limit]) if raw else text[:limit]
    return f"{shown}... ({total} {unit} in all)"
