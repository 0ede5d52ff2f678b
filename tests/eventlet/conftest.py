"""Tests that only mean something in a process eventlet monkey-patched first.

They are collected only there: ``tests/drivers/test_under_eventlet.py`` runs this
directory through ``python -m tests.eventlet_pytest``. A plain ``pytest`` run
skips collecting it (no skip noise: it is run, patched, by that test).
"""

from __future__ import annotations

from pathlib import Path

from messaging import green


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Collect this directory only in a monkey-patched process."""
    return None if green.monkey_patched() else True
