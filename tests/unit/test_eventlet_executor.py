"""The eventlet executor, in a fresh interpreter that monkey-patches before anything else.

Monkey-patching cannot be undone, so the listener runs in a subprocess
(``eventlet_listener_script.py``); this test checks its exit code and output.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("eventlet")

SCRIPT = pathlib.Path(__file__).with_name("eventlet_listener_script.py")
COUNT = 40


def test_listener_under_eventlet_picks_and_uses_the_eventlet_executor() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", str(SCRIPT), str(COUNT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"default executor=EventletExecutor received={COUNT}" in lines, result.stdout
    assert f"explicit executor=EventletExecutor received={COUNT}" in lines, result.stdout
