"""Bounded excerpts of message bodies and payloads, for log lines and errors.

A message may be megabytes long; a log line about it shows its beginning and
says how long it is, so that one bad message costs one readable line, not a
log file. :func:`excerpt` takes raw bodies (text or bytes) and any other value
(a decoded message, whose repr is built with bounded depth and length);
:func:`log_exception` logs an exception whose text may hold a payload (an
endpoint raising ``ValueError(payload)``) with each line of its traceback bounded.
"""

from __future__ import annotations

import logging
import reprlib
import sys
import traceback

__all__ = ["EXCERPT_CHARS", "TRACEBACK_LINE", "excerpt", "log_exception", "shortened"]

#: How many characters of a body or a repr a log line shows.
EXCERPT_CHARS = 300
#: The longest line of a logged traceback, in characters.
TRACEBACK_LINE = 2000


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


def shortened(text: str, limit: int) -> str:
    """``text`` itself when it has at most ``limit`` characters, else its start and its length.

    Unlike :func:`excerpt`, a text within the bound comes back unchanged (no
    quotes, no escapes), for log lines whose format readers parse.

    Args:
        text: the text to bound.
        limit: how many characters to keep.

    Returns:
        ``text``, or its first ``limit`` characters followed by
        ``... (N characters in all)``.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters in all)"


def _longest_text(error: BaseException | None) -> int:
    longest, seen = 0, 0
    while error is not None and seen < 8:  # the chain of causes, a few deep
        longest = max(longest, len(str(error)))
        error = error.__cause__ or error.__context__
        seen += 1
    return longest


def log_exception(logger: logging.Logger, msg: str, *args: object) -> None:
    """``logger.exception(msg, *args)`` (call it in an ``except`` block), bounded.

    When the exception's text (or a cause's) is longer than
    :data:`TRACEBACK_LINE`, the traceback is logged as text with each line cut to
    that length, saying how long it was; otherwise it is the usual record with
    ``exc_info``.
    """
    error = sys.exc_info()[1]
    if error is None or _longest_text(error) <= TRACEBACK_LINE:
        logger.exception(msg, *args, stacklevel=2)
        return
    lines = []
    for line in traceback.format_exception(error):
        if len(line) > TRACEBACK_LINE:
            line = f"{line[:TRACEBACK_LINE]}... ({len(line)} characters in all)\n"
        lines.append(line)
    logger.error(f"{msg}\n%s", *args, "".join(lines).rstrip(), stacklevel=2)
