"""Run pytest in a process that eventlet monkey-patched first, as OpenStack services do.

``python -m tests.eventlet_pytest [pytest arguments]``: ``eventlet.monkey_patch()``
runs before anything else is imported (threads, sockets, locks and queues are
green from then on), then pytest runs with the given arguments. The driver tests
use it to run whole modules monkey-patched (see ``tests/drivers/test_under_eventlet.py``).
"""

import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402

import pytest  # noqa: E402

if __name__ == "__main__":
    sys.exit(pytest.main(sys.argv[1:]))
