"""The complete example of ``doc/source/user/asyncio.rst``, run as written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "doc" / "source" / "user" / "asyncio.rst"


def literal_block(text: str, introduction: str) -> str:
    """The indented block that follows the paragraph ending with ``introduction``."""
    start = text.index(introduction) + len(introduction)
    block: list[str] = []
    for line in text[start:].split("\n")[1:]:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip() + "\n"


def test_the_complete_example_prints_what_the_page_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = PAGE.read_text()
    example = literal_block(page, "The complete example::")
    printed = literal_block(page, "It prints::")
    assert 'executor="asyncio"' in example and "aio.AsyncNotifier" in example
    exec(compile(example, "asyncio.rst: the complete example", "exec"), {"__name__": "example"})
    assert capsys.readouterr().out == printed
