"""Fixtures of the driver conformance suite: no test may leave a messaging thread running."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

#: Threads of servers, executors and heartbeats are named ``messaging-...``.
THREAD_PREFIX = "messaging-"
#: How long threads started by a test get to finish after it, in seconds.
THREAD_GRACE = 5.0


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves behind a ``messaging-*`` thread it started.

    The harness stops every server and cleans up every transport after a test;
    a thread still alive past :data:`THREAD_GRACE` means something was not
    released (a stuck poll loop, a heartbeat that never stops...).
    """
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + THREAD_GRACE
    started = [
        t for t in threading.enumerate() if t not in before and t.name.startswith(THREAD_PREFIX)
    ]
    for thread in started:
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = sorted(t.name for t in started if t.is_alive())
    assert not alive, f"threads still running after the test: {alive}"
