"""The driver tests again, each module in a process that eventlet monkey-patched first.

Most OpenStack services still call ``eventlet.monkey_patch()`` before anything
else; everything here must work there too. Monkey-patching cannot be undone,
so each module runs in a subprocess (``python -m tests.eventlet_pytest``),
with the executor the harness should use:

- the conformance suite of every driver, with the ``eventlet`` executor (what
  a patched service picks by default); on RabbitMQ with ``threading`` too;
- RabbitMQ's resilience (recovery from closed connections, failover, fork),
  publishing and TLS tests, the conformance suite on RabbitMQ 4, the poison
  notification tests (delayed requeues and parking on green threads), the
  fault, network, outbox, cluster, health (canary) and trace tests;
- ``tests/eventlet``: what only means something patched (native I/O threads,
  heartbeats while green threads hold the CPU, forked workers).

``MESSAGING_REQUIRE_BROKERS`` passes through, so a missing broker fails the
subprocess as it would fail this run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("eventlet")

ROOT = Path(__file__).resolve().parents[2]
#: The bound of one subprocess run, in seconds.
RUN_TIMEOUT = 600

CONFORMANCE = [
    "test_memory_conformance.py",
    "test_sqlite_conformance.py",
    "test_kombu_memory_conformance.py",
    "test_kombu_redis_conformance.py",
    "test_stomp_rabbit_conformance.py",
    "test_stomp_coilmq_conformance.py",
]
RABBIT_CONFORMANCE = ["test_rabbit_conformance.py", "test_rabbit_quorum_conformance.py"]
RABBIT_OTHERS = [
    "test_rabbit_resilience.py",
    "test_rabbit_publishing.py",
    "test_rabbit_tls.py",
    "test_rabbit4_conformance.py",
    "test_rabbit_poison.py",
    "test_rabbit_faults.py",
    "test_rabbit_network.py",
    "test_rabbit_outbox.py",
    "test_rabbit_cluster.py",
    "test_rabbit_health.py",
    "test_rabbit_tracing.py",
]

RUNS = (
    [(f"tests/drivers/{m}", "eventlet") for m in CONFORMANCE + RABBIT_CONFORMANCE]
    + [(f"tests/drivers/{m}", "threading") for m in RABBIT_CONFORMANCE]
    + [(f"tests/drivers/{m}", "eventlet") for m in RABBIT_OTHERS]
    + [("tests/eventlet", "eventlet")]
)


@pytest.mark.parametrize(("path", "executor"), RUNS, ids=[f"{p}-{e}" for p, e in RUNS])
def test_monkey_patched(path: str, executor: str) -> None:
    env = {**os.environ, "MESSAGING_TEST_EXECUTOR": executor}
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore::DeprecationWarning",
            "-m",
            "tests.eventlet_pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-ra",
            path,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{path} failed monkey-patched:\n{output[-20000:]}"
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) > 0, f"nothing passed in {path}:\n{output[-5000:]}"
