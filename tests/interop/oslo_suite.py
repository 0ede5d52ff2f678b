"""oslo.messaging's own test suite, run on ``messaging`` through the ``oslo_messaging`` alias.

The tests come from the sdist of the oslo.messaging release installed in the
interop virtualenv (:mod:`tests.interop.oslo_env`), fetched once with pip from
the package registry and kept beside the venv. The venv gets oslo's test tools
(oslotest, testscenarios, testtools, fixtures) on first use. Workers
(``oslo_suite_worker.py``) run with the venv's python and this checkout on
``PYTHONPATH``, so ``messaging`` and its entry points (``messaging_fleet.egg-info``,
written by ``pip install -e``) are this checkout's while oslo.messaging stays
installed: the alias has to win over it.

:data:`SELECTION` is the part of the suite that exercises oslo's public API,
plus the functional tests on RabbitMQ; the modules left out test oslo's
private drivers (``_drivers``: the kombu driver, the Kafka driver, the pool,
the AMQP driver base), its ``_utils``, its ``ConfigOptsProxy``, and a 3-node
RabbitMQ failover needing pifpaf.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.interop.oslo_env import OsloEnv, OsloEnvError, _file_lock, _run_logged, peer_environ

__all__ = ["SELECTION", "Outcome", "ensure_test_tools", "oslo_source", "run_suite"]

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
WORKER = HERE / "oslo_suite_worker.py"
TEST_TOOLS = ("oslotest", "testscenarios", "testtools", "fixtures")

#: The modules run, in oslo.messaging's package.
SELECTION = (
    "oslo_messaging.tests.test_exception_serialization",
    "oslo_messaging.tests.test_expected_exceptions",
    "oslo_messaging.tests.test_fixture",
    "oslo_messaging.tests.test_opts",
    "oslo_messaging.tests.test_target",
    "oslo_messaging.tests.test_transport",
    "oslo_messaging.tests.test_urls",
    "oslo_messaging.tests.notify.test_dispatcher",
    "oslo_messaging.tests.notify.test_listener",
    "oslo_messaging.tests.notify.test_log_handler",
    "oslo_messaging.tests.notify.test_logger",
    "oslo_messaging.tests.notify.test_middleware",
    "oslo_messaging.tests.notify.test_notifier",
    "oslo_messaging.tests.rpc.test_client",
    "oslo_messaging.tests.rpc.test_dispatcher",
    "oslo_messaging.tests.rpc.test_server",
    "oslo_messaging.tests.functional.test_functional",
    "oslo_messaging.tests.functional.notify.test_logger",
)

#: Workers run at once for the unit tests, and for the functional tests. They
#: never share a process: oslo's unit tests replace ``uuid.uuid4`` for good,
#: and the functional fixtures name their topics and servers with it. Most of
#: the functional tests' time is waiting (the notification ones wait 15 s for
#: stragglers each), not CPU.
UNIT_SHARDS = 2
FUNCTIONAL_SHARDS = 4
#: Seconds one test may run before its worker interrupts it.
TEST_TIMEOUT = 40
#: Seconds the whole run may take.
RUN_TIMEOUT = 600.0


@dataclass(frozen=True)
class Outcome:
    """What happened to one test.

    Attributes:
        status: ``pass``, ``failure``, ``error`` or ``skip``.
        detail: the end of the traceback, or the skip reason.
        seconds: how long it ran.
    """

    status: str  # pass, failure, error, skip, or not-run
    detail: str
    seconds: float

    @property
    def failed(self) -> bool:
        """Whether the test failed or errored."""
        return self.status in ("failure", "error")


def ensure_test_tools(env: OsloEnv) -> None:
    """Install oslo's test tools into the oslo venv if they are missing."""
    probe = ["-c", "import " + ", ".join(TEST_TOOLS)]
    if _imports(env, probe):
        return
    with _file_lock(env.venv.with_name(env.venv.name + ".lock"), 900):
        if _imports(env, probe):
            return
        log = env.venv.with_name(env.venv.name + "-install.log")
        _run_logged([str(env.python), "-m", "pip", "install", *TEST_TOOLS], log, 900)
    if not _imports(env, probe):
        raise OsloEnvError(f"{', '.join(TEST_TOOLS)} do not import in {env.venv}")


def _imports(env: OsloEnv, argv: list[str]) -> bool:
    done = subprocess.run(
        [str(env.python), *argv],
        capture_output=True,
        timeout=120,
        env=peer_environ(),
        check=False,
    )
    return done.returncode == 0


def oslo_source(env: OsloEnv) -> Path:
    """The source tree of the installed oslo.messaging release (its tests included).

    Fetched with pip (``--no-binary :all:``, the sdist) on first use and kept in
    ``oslo-messaging-<version>-src`` beside the venv.
    """
    version = env.oslo_messaging_version
    root = env.venv.parent / f"oslo-messaging-{version}-src"
    tests = root / "oslo_messaging" / "tests"
    if tests.is_dir():
        return root
    with _file_lock(env.venv.with_name(env.venv.name + ".lock"), 900):
        if tests.is_dir():
            return root
        log = env.venv.with_name(env.venv.name + "-install.log")
        with tempfile.TemporaryDirectory(dir=env.venv.parent) as tmp:
            _run_logged(
                [
                    str(env.python),
                    "-m",
                    "pip",
                    "download",
                    f"oslo.messaging=={version}",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "-d",
                    tmp,
                ],
                log,
                600,
            )
            (archive,) = Path(tmp).glob("oslo*messaging-*.tar.gz")
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            (unpacked,) = (p for p in Path(tmp).iterdir() if p.is_dir())
            unpacked.rename(root)
    return root


def run_suite(
    env: OsloEnv,
    source: Path,
    transport_url: str,
    modules: tuple[str, ...] = SELECTION,
    skip: tuple[str, ...] = (),
) -> tuple[dict[str, Outcome], float]:
    """Run ``modules`` of oslo's suite in workers at once (:data:`UNIT_SHARDS` + ...).

    Args:
        env: the oslo venv (with the test tools).
        source: oslo.messaging's source tree (:func:`oslo_source`).
        transport_url: the RabbitMQ URL of the functional tests (RPC and notifications).
        modules: the modules to run.
        skip: ``fnmatch`` patterns of test ids not to run (their outcome is ``not-run``).

    Returns:
        Every test's outcome by test id, and the run's wall time in seconds.

    Raises:
        AssertionError: a worker failed, or the run took more than ``RUN_TIMEOUT``.
    """
    environ = peer_environ()
    environ["PYTHONPATH"] = str(REPO_ROOT)
    environ["RPC_TRANSPORT_URL"] = transport_url
    environ["NOTIFY_TRANSPORT_URL"] = transport_url
    started = time.monotonic()
    deadline = started + RUN_TIMEOUT
    with tempfile.TemporaryDirectory() as tmp:
        functional = tuple(m for m in modules if ".functional." in m)
        unit = tuple(m for m in modules if m not in functional)
        shards = [
            (group, index, count)
            for group, count in ((unit, UNIT_SHARDS), (functional, FUNCTIONAL_SHARDS))
            if group
            for index in range(count)
        ]
        workers = []
        for number, (group, index, count) in enumerate(shards):
            out = Path(tmp) / f"shard-{number}.json"
            log = (Path(tmp) / f"shard-{number}.log").open("w")
            argv = [
                str(env.python),
                str(WORKER),
                "--tests-root",
                str(source),
                "--out",
                str(out),
                "--test-timeout",
                str(TEST_TIMEOUT),
                "--shard",
                f"{index}/{count}",
                *(f"--skip={pattern}" for pattern in skip),
                *group,
            ]
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environ
            )
            workers.append((proc, out, log))
        outcomes: dict[str, Outcome] = {}
        problems = []
        for proc, out, log in workers:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
            log.close()
            if proc.returncode != 0 or not out.exists():
                tail = Path(log.name).read_text(errors="replace")[-3000:]
                problems.append(f"worker {out.stem} ended with {proc.returncode}:\n{tail}")
                continue
            result = json.loads(out.read_text())
            for test_id, (status, detail, seconds) in result["outcomes"].items():
                outcomes[test_id] = Outcome(status, detail, seconds)
    assert not problems, "\n".join(problems)
    return outcomes, time.monotonic() - started


def main() -> int:
    """Run the selection on a vhost of the local RabbitMQ; print the failures by reason."""
    from tests import brokers
    from tests.interop.oslo_env import ensure_oslo_env

    env = ensure_oslo_env()
    ensure_test_tools(env)
    source = oslo_source(env)
    from tests.interop.oslo_expected_failures import EXPECTED_FAILURES

    not_run = tuple(entry.pattern for entry in EXPECTED_FAILURES if not entry.run)
    with brokers.rabbit_vhost("oslo-suite") as vhost:
        outcomes, seconds = run_suite(env, source, brokers.rabbit_url(vhost), skip=not_run)
    counts: dict[str, int] = {}
    by_reason: dict[str, list[str]] = {}
    for test_id, outcome in sorted(outcomes.items()):
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if outcome.failed or outcome.status == "not-run":
            entry = next(
                (e for e in EXPECTED_FAILURES if fnmatch.fnmatchcase(test_id, e.pattern)), None
            )
            reason = entry.reason if entry is not None else "NOT LISTED"
            by_reason.setdefault(reason, []).append(f"{outcome.status} {test_id}")
    for reason, tests in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        print(f"{len(tests)} ({reason}):")
        for line in tests:
            print(f"    {line}")
    print(f"{env.describe()}: {counts} in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
