"""JSON given on the command line: payloads, RPC arguments, contexts."""

from __future__ import annotations

import json
from typing import Any

from messaging.cli.errors import CliError, ExitCode

__all__ = ["parse_json", "parse_object"]

_SHOWN = 60


def parse_json(text: str, what: str) -> Any:
    """Parse ``text`` as JSON.

    Args:
        text: the argument as typed.
        what: its name in the usage line (``PAYLOAD_JSON``...), for the error.

    Raises:
        CliError: with :attr:`ExitCode.USAGE`, naming the argument, the position
            and the start of the text.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        shown = text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
        raise CliError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
            f"in {shown!r}",
            ExitCode.USAGE,
        ) from None


def parse_object(text: str, what: str) -> dict[str, Any]:
    """Parse ``text`` as a JSON object (``{"name": value, ...}``).

    Raises:
        CliError: with :attr:`ExitCode.USAGE` when it is not JSON, or not an object.
    """
    value = parse_json(text, what)
    if not isinstance(value, dict):
        raise CliError(
            f'{what} must be a JSON object such as {{"a": 1}}, not {_article(json_type(value))}',
            ExitCode.USAGE,
        )
    return value


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (object, array, string...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun
