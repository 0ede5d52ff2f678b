"""oslo.messaging 18.x's own tests, run on ``messaging`` through ``install_as_oslo_messaging()``.

The selection (:data:`tests.interop.oslo_suite.SELECTION`: the public-API unit
tests and the functional tests, on a RabbitMQ 3.10 vhost of this session) runs
in parallel workers with the interop venv's python. Every failure must be one
that :data:`~tests.interop.oslo_expected_failures.EXPECTED_FAILURES` lists with
its reason, and every test listed there must still fail: a test that starts to
pass fails this test too, so that the list is shortened.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator

import pytest

from tests import brokers
from tests.interop.oslo_env import OsloEnv
from tests.interop.oslo_expected_failures import EXPECTED_FAILURES, Expected
from tests.interop.oslo_suite import Outcome, ensure_test_tools, oslo_source, run_suite

pytestmark = pytest.mark.broker

#: At least this many tests must pass: a run that loads nothing cannot pass.
MIN_PASSED = 1400


@pytest.fixture(scope="module")
def suite_outcomes(oslo_env: OsloEnv) -> Iterator[tuple[dict[str, Outcome], float]]:
    ensure_test_tools(oslo_env)
    source = oslo_source(oslo_env)
    not_run = tuple(entry.pattern for entry in EXPECTED_FAILURES if not entry.run)
    with brokers.rabbit_vhost("oslo-suite") as vhost:
        yield run_suite(oslo_env, source, brokers.rabbit_url(vhost), skip=not_run)


def _entry(test_id: str) -> Expected | None:
    return next((e for e in EXPECTED_FAILURES if fnmatch.fnmatchcase(test_id, e.pattern)), None)


def test_oslo_messaging_suite_passes_but_for_the_listed_failures(
    suite_outcomes: tuple[dict[str, Outcome], float], oslo_env: OsloEnv
) -> None:
    outcomes, seconds = suite_outcomes
    unexpected_failures = []
    unexpected_passes = []
    for test_id, outcome in sorted(outcomes.items()):
        entry = _entry(test_id)
        if outcome.failed and entry is None:
            last = (outcome.detail.strip().splitlines() or [""])[-1]
            unexpected_failures.append(f"{test_id}: {last[:300]}")
        elif outcome.status == "pass" and entry is not None:
            unexpected_passes.append(f"{test_id} (listed: {entry.reason})")
    unmatched = [e.pattern for e in EXPECTED_FAILURES if not any(_entry(t) is e for t in outcomes)]
    passed = sum(1 for o in outcomes.values() if o.status == "pass")
    summary = f"{oslo_env.describe()}: {passed} passed of {len(outcomes)} in {seconds:.0f} s"
    assert not unexpected_failures, (
        summary + "\nunexpected failures:\n" + "\n".join(unexpected_failures)
    )
    assert not unexpected_passes, (
        summary
        + "\npassing now; remove from oslo_expected_failures.py:\n"
        + "\n".join(unexpected_passes)
    )
    assert not unmatched, summary + f"\nentries matching no test: {unmatched}"
    assert passed >= MIN_PASSED, summary


def test_functional_tests_ran_on_rabbitmq(suite_outcomes: tuple[dict[str, Outcome], float]) -> None:
    outcomes, _seconds = suite_outcomes
    functional = {
        test_id: outcome
        for test_id, outcome in outcomes.items()
        if ".functional." in test_id and _entry(test_id) is None
    }
    assert len(functional) >= 30
    assert {o.status for o in functional.values()} == {"pass"}
