"""The pytest plugin's fixtures against a real RabbitMQ (``--messaging-url``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.brokers import rabbit_url, rabbit_vhost
from tests.unit.test_doc_examples_testing import examples

pytestmark = pytest.mark.broker
pytest_plugins = ["pytester"]


@pytest.fixture
def url() -> Iterator[str]:
    with rabbit_vhost("messaging-plugin") as vhost:
        yield rabbit_url(vhost)


@pytest.mark.parametrize(("name", "tests"), [("first", 1), ("third", 3)])
def test_the_guide_examples_pass_on_rabbitmq(
    pytester: pytest.Pytester, url: str, name: str, tests: int
) -> None:
    pytester.makepyfile(**{f"test_{name}_example": examples()[name]})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "--messaging-url", url)
    result.assert_outcomes(passed=tests)


def test_a_collecting_listener_takes_nothing_from_the_services_queue(
    pytester: pytest.Pytester, url: str
) -> None:
    pytester.makepyfile(
        test_tap="""
        import threading

        import messaging

        def test_both_get_it(messaging_transport, messaging_notifier, messaging_listener):
            received = messaging_listener(topics=["notifications"])
            seen = []
            got = threading.Event()

            class Service:
                def info(self, ctxt, publisher_id, event_type, payload, metadata):
                    seen.append(event_type)
                    got.set()

            service = messaging.get_notification_listener(
                messaging_transport, [messaging.Target(topic="notifications")], [Service()]
            )
            service.start()
            try:
                messaging_notifier.info({}, "shared", {})
                assert [n.event_type for n in received.wait_for(1)] == ["shared"]
                assert got.wait(10)
            finally:
                service.stop()
                service.wait()
            assert seen == ["shared"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "--messaging-url", url)
    result.assert_outcomes(passed=1)
