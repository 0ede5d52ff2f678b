r"""Side-by-side benchmark of messaging, oslo.messaging and the raw kombu floor.

Run it from the repository root::

    python -m benchmarks.bench --url rabbit://guest:guest@127.0.0.1:5672/ \
        --repeat 5 --json bench.json --plot bench.png

Every workload runs in processes of its own (sender and listener apart, client
and server apart); the oslo.messaging side runs with the interpreter of the
interop tests' virtualenv (see ``tests/interop/oslo_env.py``). See
``benchmarks/README.md`` and ``doc/source/user/performance.rst``.

The modules: :mod:`.payload` (the message every workload sends),
:mod:`.stats` (percentiles and summaries), :mod:`.workloads` (the library
workloads, run by :mod:`.worker`), :mod:`.raw_kombu` (the kombu floor),
:mod:`.procs` (the worker processes), :mod:`.broker` (virtual hosts and
connection counts), :mod:`.runner` (repetitions and ratios), :mod:`.report`
(tables), :mod:`.plot` (the PNG).

Nothing here is imported by the ``messaging`` package, and the modules a worker
imports use the standard library only, so they run under either virtualenv.
"""
