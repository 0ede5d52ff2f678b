"""How each subcommand of ``messaging`` is added to the command's parser."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from messaging.cli.session import Session

__all__ = ["Commands", "Run", "plain"]

#: What runs a subcommand: its parsed arguments and session in, an exit code out.
Run = Callable[[argparse.Namespace, "Session"], int]


# reStructuredText's inline markup, for texts that come from docstrings:
# :role:`~a.b.Name` (Name), :role:`a.b` or :role:`title <target>`, ``literal``,
# `title <url>`_ and *emphasis*.
_ROLE = re.compile(r":[\w:.-]+:`(?:~[\w.]*\.)?([^`<]+?)\s*(?:<[^>]*>)?`")
_LITERAL = re.compile(r"``(.+?)``")
_LINK = re.compile(r"`([^`<]+?)\s*(?:<[^>]*>)?`_{1,2}")
_EMPHASIS = re.compile(r"(?<![\w*])\*{1,2}([^*\s][^*]*?)\*{1,2}(?![\w*])")


def plain(text: str) -> str:
    """``text`` without reStructuredText's inline markup, for a terminal.

    Args:
        text: a paragraph written for Sphinx (a module's docstring, say).

    Returns:
        The words as a reader of ``--help`` should see them.
    """
    for pattern in (_ROLE, _LITERAL, _LINK, _EMPHASIS):
        text = pattern.sub(r"\1", text)
    return text


class Commands:
    """The subcommands of ``messaging``, each with the options every command takes.

    Args:
        subparsers: the command parser's subparsers.
        parents: the parsers of the options every subcommand takes.
    """

    def __init__(self, subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
        self._subparsers = subparsers
        self._parents = parents

    def add(
        self,
        name: str,
        run: Run,
        summary: str,
        description: str | None = None,
        long_running: bool = False,
    ) -> argparse.ArgumentParser:
        """Add the subcommand ``name`` and return its parser, for its own options.

        Args:
            name: what the user types.
            run: what runs it.
            summary: one line for ``messaging --help``.
            description: the paragraph of ``messaging NAME --help`` (reStructuredText's
                inline markup is taken out, so a docstring may serve).
            long_running: it runs until stopped (it logs as a service does).
        """
        parser: argparse.ArgumentParser = self._subparsers.add_parser(
            name,
            parents=self._parents,
            help=plain(summary),
            description=None if description is None else plain(description),
        )
        parser.set_defaults(run=run, long_running=long_running)
        return parser
