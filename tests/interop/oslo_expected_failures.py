"""The tests of oslo.messaging's own suite that fail on ``messaging``, and why.

Each entry is a pattern of test ids (``fnmatch``; scenarios add ``(...)`` to an
id) with what the tests reach into: a private module or attribute of
oslo.messaging, which this package does not have, or a deliberate difference
(the migration page gives the reasons). ``test_oslo_suite`` fails on a failure
that no entry covers, and on a test an entry covers that passes, so the list
stays exact. Entries marked ``run=False`` are not run at all: they wait for
something that never happens here and would only cost their timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EXPECTED_FAILURES", "Expected"]


@dataclass(frozen=True)
class Expected:
    """Tests expected to fail.

    Attributes:
        pattern: ``fnmatch`` pattern of test ids.
        reason: the private thing reached into, or the deliberate difference.
        run: False when the tests are not run at all (they would hang).
    """

    pattern: str
    reason: str
    run: bool = True


_T = "oslo_messaging.tests."
_FAKE_EXCHANGES = (
    "setUp patches oslo_messaging._drivers.impl_fake.FakeExchangeManager._exchanges "
    "(oslo's fake driver; ours is messaging.drivers.memory)"
)

EXPECTED_FAILURES: tuple[Expected, ...] = (
    # -- oslo.messaging's private modules and attributes ------------------------------------
    Expected(
        "unittest.loader._FailedTest.test_exception_serialization",
        "the module imports oslo_messaging._drivers.common (failure (de)serialisation; ours "
        "is messaging.wire, tested in tests/unit/test_wire.py)",
    ),
    Expected(_T + "notify.test_listener.TestNotifyListener.*", _FAKE_EXCHANGES),
    Expected(_T + "rpc.test_server.TestRPCServer.*", _FAKE_EXCHANGES),
    Expected(_T + "rpc.test_server.TestMultipleServers.*", _FAKE_EXCHANGES),
    Expected(
        _T + "rpc.test_server.TestServerLocking.*",
        "setUp replaces MessageHandlingServer._executor_cls with a futurist-like fake "
        "(submit/shutdown); our executors are messaging.executors (serve/stop)",
        run=False,
    ),
    Expected(
        _T + "notify.test_notifier.TestRoutingNotifier.*",
        "patches Notifier._driver_mgr, oslo's stevedore NamedExtensionManager of drivers",
    ),
    Expected(
        _T + "test_transport.GetTransportTestCase.test_get_transport(*)",
        "replaces stevedore.driver.DriverManager and expects oslo's namespace "
        "'oslo.messaging.drivers' (ours: messaging.drivers)",
    ),
    Expected(
        _T + "test_transport.TestSetDefaults.test_set_default_control_exchange",
        "reads oslo_messaging.transport._transport_opts (ours: messaging.conf)",
    ),
    Expected(
        _T + "notify.test_notifier.TestMessagingNotifierRetry."
        "test_notifier_retry_connection_fails_rabbit",
        "patches kombu.connection.Connection._establish_connection, which oslo's kombu-based "
        "driver calls; our RabbitMQ driver speaks py-amqp directly",
    ),
    Expected(
        _T + "rpc.test_client.TestClientMetrics.test_metrics",
        "oslo.metrics support (oslo_messaging._metrics, [oslo_messaging_metrics]): not provided",
    ),
    Expected(
        _T + "functional.test_functional.MetricsTestCase.test_functional",
        "oslo.metrics support (oslo_messaging._metrics, [oslo_messaging_metrics]): not provided",
    ),
    Expected(
        _T + "notify.test_notifier.TestMessagingNotifierRetry."
        "test_notifier_retry_connection_fails_kafka",
        "the Kafka driver (oslo_messaging._drivers.impl_kafka): not provided",
    ),
    # -- deliberate differences --------------------------------------------------------------
    *(
        Expected(
            _T + f"test_opts.OptsTestCase.{name}",
            "list_opts() has 5 groups: ours adds oslo_messaging_sqlite and oslo_messaging_stomp "
            "and has no oslo_messaging_kafka (oslo: exactly 4)",
        )
        for name in ("test_list_opts", "test_entry_point")
    ),
    Expected(
        _T + "test_urls.TestFormatURL.test_parse_url(host)",
        "str(TransportURL) masks passwords (to_string(include_password=True) shows them)",
    ),
    Expected(
        _T + "test_urls.TestFormatURL.test_parse_url(multi_host)",
        "str(TransportURL) masks passwords (to_string(include_password=True) shows them)",
    ),
    Expected(
        _T + "test_urls.TestFormatURL.test_parse_url(quoting)",
        "str(TransportURL) masks passwords (to_string(include_password=True) shows them)",
    ),
    Expected(
        _T + "rpc.test_dispatcher.TestDispatcherWithPingEndpoint.test_dispatcher_with_ping",
        "a hand-built RPCDispatcher does not read rpc_ping_enabled from the global cfg.CONF; "
        "get_rpc_server adds the ping endpoint from the transport's configuration",
    ),
)
