"""Runs oslo.messaging's own unit tests on ``messaging``, through the oslo_messaging alias.

Run by :mod:`tests.interop.oslo_suite` with the oslo virtualenv's python (which has
oslo.messaging, its test tools and the project on ``PYTHONPATH``)::

    python oslo_suite_worker.py --tests-root DIR --out RESULT.json [--shard I/N] MODULE...

``DIR`` holds oslo.messaging's source tree (``DIR/oslo_messaging/tests``). The
process monkey-patches with eventlet first (as oslo's ``tests/__init__.py``
does, and as a service would before its imports), installs
``messaging.install_as_oslo_messaging()``, then makes ``oslo_messaging.tests``
importable from ``DIR``. Each module is loaded with unittest (oslo's modules
use the ``load_tests`` protocol of testscenarios); with ``--shard I/N`` only
the tests whose position in the whole selection is I modulo N run, so that N
workers share the selection. Every test's outcome is written to
``RESULT.json`` as ``{test id: [outcome, detail, seconds]}``. A test that runs
longer than ``--test-timeout`` seconds is interrupted and counted as an error.
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import fnmatch  # noqa: E402
import importlib.abc  # noqa: E402
import importlib.machinery  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import unittest  # noqa: E402
from pathlib import Path  # noqa: E402
from types import FrameType, ModuleType  # noqa: E402
from typing import Any  # noqa: E402

import messaging  # noqa: E402

TESTS_PACKAGE = "oslo_messaging.tests"
SHIMS = Path(__file__).resolve().parent / "oslo_suite_shims"
#: Modules of oslo's private tree that its test utilities import, supplied here.
SHIMMED = {
    "oslo_messaging._drivers.kafka_driver.kafka_options": SHIMS / "kafka_options.py",
    "oslo_messaging._metrics.client": SHIMS / "metrics_client.py",
}
#: The packages above them, empty here.
SHIM_PACKAGES = {
    name.rsplit(".", depth)[0]
    for name in SHIMMED
    for depth in range(1, name.count("."))
    if name.rsplit(".", depth)[0] != "oslo_messaging"
}


class _EmptyPackage(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        return None


class _TestsFinder(importlib.abc.MetaPathFinder):
    """Finds ``oslo_messaging.tests.*`` in oslo's source tree, and the shims."""

    def __init__(self, tests_dir: Path) -> None:
        self.tests_dir = tests_dir

    def find_spec(
        self, fullname: str, path: Any, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in SHIMMED:
            return importlib.util.spec_from_file_location(fullname, SHIMMED[fullname])
        if fullname in SHIM_PACKAGES:
            return importlib.machinery.ModuleSpec(fullname, _EmptyPackage(), is_package=True)
        if fullname != TESTS_PACKAGE and not fullname.startswith(TESTS_PACKAGE + "."):
            return None
        parts = fullname.split(".")[2:]
        base = self.tests_dir.joinpath(*parts)
        if base.is_dir():
            return importlib.util.spec_from_file_location(
                fullname, base / "__init__.py", submodule_search_locations=[str(base)]
            )
        source = base.with_suffix(".py")
        if source.is_file():
            return importlib.util.spec_from_file_location(fullname, source)
        return None


class _TestTimeout(Exception):
    pass


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _TestTimeout("the test ran past the worker's per-test timeout")


class _Recorder(unittest.TestResult):
    def __init__(self, timeout: int) -> None:
        super().__init__()
        self.outcomes: dict[str, list[str]] = {}
        self.timeout = timeout

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._started = time.monotonic()
        signal.alarm(self.timeout)

    def stopTest(self, test: unittest.TestCase) -> None:
        signal.alarm(0)
        entry = self.outcomes.get(test.id())
        if entry is not None:
            entry[2] = round(time.monotonic() - self._started, 2)
        super().stopTest(test)

    def _put(self, test: Any, outcome: str, detail: str = "") -> None:
        previous = self.outcomes.get(test.id())
        # A failing cleanup after a pass turns the pass into an error.
        if previous is None or outcome in ("error", "failure"):
            self.outcomes[test.id()] = [outcome, detail[-1500:], 0.0]

    def addSuccess(self, test: unittest.TestCase) -> None:
        self._put(test, "pass")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        self._put(test, "failure", "".join(traceback.format_exception(*err)))

    def addError(self, test: Any, err: Any) -> None:
        self._put(test, "error", "".join(traceback.format_exception(*err)))

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        self._put(test, "skip", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        self._put(test, "pass")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        self._put(test, "failure", "unexpected success")


def _flatten(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    tests: list[unittest.TestCase] = []
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            tests.extend(_flatten(item))
        else:
            tests.append(item)
    return tests


def main() -> int:
    """Run the modules given; write the outcomes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests-root", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--test-timeout", type=int, default=60)
    parser.add_argument("--shard", default="0/1", help="I/N: run every Nth test from the Ith")
    parser.add_argument(
        "--skip", action="append", default=[], help="fnmatch pattern of test ids not to run"
    )
    parser.add_argument("modules", nargs="+")
    args = parser.parse_args()
    from importlib import metadata

    if "fake" not in {ep.name for ep in metadata.entry_points(group="messaging.drivers")}:
        print(
            "messaging's entry points are not visible: run 'pip install -e .' in the checkout "
            "(it writes messaging_fleet.egg-info) and put the checkout on PYTHONPATH",
            file=sys.stderr,
        )
        return 2
    messaging.install_as_oslo_messaging()
    sys.meta_path.insert(0, _TestsFinder(args.tests_root / "oslo_messaging" / "tests"))
    signal.signal(signal.SIGALRM, _on_alarm)
    recorder = _Recorder(args.test_timeout)
    index, count = (int(part) for part in args.shard.split("/"))
    started = time.monotonic()
    selected = unittest.TestSuite()
    position = 0
    for name in args.modules:
        try:
            loaded = unittest.defaultTestLoader.loadTestsFromName(name)
        except Exception:
            if index == 0:
                recorder.outcomes[name] = ["error", traceback.format_exc()[-1500:], 0.0]
            continue
        for test in _flatten(loaded):
            if position % count == index:
                if any(fnmatch.fnmatchcase(test.id(), skip) for skip in args.skip):
                    recorder.outcomes[test.id()] = ["not-run", "skipped by the runner", 0.0]
                else:
                    selected.addTest(test)
            position += 1
    selected.run(recorder)
    args.out.write_text(
        json.dumps({"seconds": time.monotonic() - started, "outcomes": recorder.outcomes})
    )
    sys.stdout.flush()
    # Servers and threads the tests left behind must not keep the worker alive.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
