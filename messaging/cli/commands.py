"""How each subcommand of ``messaging`` is added to the command's parser."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from messaging.cli.session import Session

__all__ = ["Commands", "Run"]

#: What runs a subcommand: its parsed arguments and session in, an exit code out.
Run = Callable[[argparse.Namespace, "Session"], int]


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
            description: the paragraph of ``messaging NAME --help``.
            long_running: it runs until stopped (it logs as a service does).
        """
        parser: argparse.ArgumentParser = self._subparsers.add_parser(
            name, parents=self._parents, help=summary, description=description
        )
        parser.set_defaults(run=run, long_running=long_running)
        return parser
