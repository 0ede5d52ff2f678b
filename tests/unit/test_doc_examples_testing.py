"""Every example of ``doc/source/user/testing.rst``, run by pytest with the plugin as installed."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "doc" / "source" / "user" / "testing.rst"
pytest_plugins = ["pytester"]


def examples() -> dict[str, str]:
    """The literal blocks introduced by "The ... example::", by their ordinal."""
    text = PAGE.read_text()
    found = {}
    for match in re.finditer(r"The (\w+)\s+example::\n", text):
        block: list[str] = []
        for line in text[match.end() :].split("\n")[1:]:
            if line.strip() and not line.startswith("    "):
                break
            block.append(line)
        found[match.group(1)] = textwrap.dedent("\n".join(block)).strip() + "\n"
    return found


def test_the_page_has_its_three_examples() -> None:
    assert sorted(examples()) == ["first", "second", "third"]


@pytest.mark.parametrize(
    ("name", "tests"), [("first", 1), ("second", 1), ("third", 3)], ids=["first", "second", "third"]
)
def test_an_example_passes_as_written(pytester: pytest.Pytester, name: str, tests: int) -> None:
    pytester.makepyfile(**{f"test_{name}_example": examples()[name]})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=tests)


def test_a_listener_that_never_gets_its_notification_fails_in_bounded_time(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_silent="""
        def test_waits(messaging_listener):
            messaging_listener(topics=["nobody-sends-here"]).wait_for(1, timeout=0.2)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*0 of 1 notifications arrived within 0.2 s*"])


def test_each_test_starts_with_an_empty_broker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_isolation="""
        def test_one_sends_unheard(messaging_notifier):
            messaging_notifier.info({}, "left.behind", {})

        def test_two_hears_nothing_left(messaging_notifier, messaging_listener):
            received = messaging_listener(topics=["notifications"])
            messaging_notifier.info({}, "fresh", {})
            assert [n.event_type for n in received.wait_for(1)] == ["fresh"]
            assert [n.event_type for n in received.notifications] == ["fresh"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)
