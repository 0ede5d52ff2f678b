"""A benchmark worker in a process that eventlet monkey-patched first.

``python -m benchmarks.bench.green_worker ROLE ...`` takes the arguments of
:mod:`benchmarks.bench.worker`; it calls ``eventlet.monkey_patch()`` before
anything else is imported, as OpenStack services do, so threads are green and
each library runs the way it runs in such a service (both pick their eventlet
executor by default then).
"""

import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402

from benchmarks.bench import worker  # noqa: E402

if __name__ == "__main__":
    sys.exit(worker.main())
