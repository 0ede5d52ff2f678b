"""oslo.messaging's documented RPC examples, run with ``import messaging as oslo_messaging``.

The examples are those of the module docstrings of ``oslo_messaging/rpc/server.py``
(the ServerControlEndpoint/TestEndpoint server) and ``oslo_messaging/rpc/client.py``
(the TestClient wrapper, ``prepare(version=...)``, ``prepare(timeout=...)``, direct
use, and ``retry``). Their code is kept as written; each adaptation is marked
``# ADAPTED:`` with the reason. The common ones:

- ``cfg.CONF`` is a private ``ConfigOpts`` whose ``transport_url`` is ``fake://``
  (through a stand-in ``cfg`` object, so the lines reading ``cfg.CONF`` are
  unchanged): a test must not configure the process-wide ``cfg.CONF``.
- The server example's ``while True: time.sleep(1)`` loop, ended by Ctrl-C, is
  replaced by the test's own calls to the running server: the stop condition.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Iterator
from typing import Any

import pytest

import messaging as oslo_messaging
from messaging.drivers.memory import reset_brokers
from tests.unit.rpc_support import TIMEOUT, Calls, broker, make_conf


@pytest.fixture(autouse=True)
def fresh_broker() -> Iterator[None]:
    reset_brokers()
    yield
    reset_brokers()


@pytest.fixture
def cfg() -> types.SimpleNamespace:
    # ADAPTED: stands for ``from oslo_config import cfg``; see the module docstring.
    return types.SimpleNamespace(CONF=make_conf(transport_url="fake://"))


def test_the_rpc_server_example(cfg: types.SimpleNamespace) -> None:
    answers: dict[str, Any] = {}

    def while_serving() -> None:
        # ADAPTED: stands for ``while True: time.sleep(1)``: call the running server.
        transport = oslo_messaging.get_rpc_transport(cfg.CONF)
        try:
            client = oslo_messaging.get_rpc_client(
                transport, oslo_messaging.Target(topic="test"), timeout=TIMEOUT
            )
            answers["test"] = client.call({}, "test", arg="hello")
            answers["direct"] = client.prepare(server="server1").call({}, "test", arg=[1, 2])
            control = client.prepare(namespace="control", version="2.0")
            answers["stop"] = control.call({}, "stop")
            with pytest.raises(oslo_messaging.RemoteError) as info:
                # TestEndpoint is version 1.0 in the null namespace.
                client.prepare(version="2.0").call({}, "test", arg="x")
            answers["unsupported"] = info.value.exc_type
        finally:
            transport.cleanup()

    # ---- the example, from oslo_messaging/rpc/server.py -------------------------
    # ADAPTED: ``import eventlet; eventlet.monkey_patch()`` is left out and the
    # executor is 'threading': monkey-patching would change the whole test process,
    # and oslo.messaging deprecates the eventlet executor for the threading one.

    class ServerControlEndpoint:
        target = oslo_messaging.Target(namespace="control", version="2.0")

        def __init__(self, server: Any) -> None:
            self.server = server

        def stop(self, ctx: Any) -> None:
            if self.server:
                self.server.stop()

    class TestEndpoint:
        def test(self, ctx: Any, arg: Any) -> Any:
            return arg

    transport = oslo_messaging.get_rpc_transport(cfg.CONF)
    target = oslo_messaging.Target(topic="test", server="server1")
    endpoints = [
        ServerControlEndpoint(None),
        TestEndpoint(),
    ]
    server = oslo_messaging.get_rpc_server(transport, target, endpoints, executor="threading")
    try:
        server.start()
        while_serving()  # ADAPTED: the stop condition (see above)
    except KeyboardInterrupt:
        print("Stopping server")

    server.stop()
    server.wait()
    # ---- end of the example ------------------------------------------------------
    transport.cleanup()

    assert answers == {
        "test": "hello",
        "direct": [1, 2],
        "stop": None,
        "unsupported": "UnsupportedVersion",
    }


class VersionedTestEndpoint:
    """The server side the client examples talk to: API version 2.5 of topic 'test'."""

    target = oslo_messaging.Target(version="2.5")

    def __init__(self) -> None:
        self.calls = Calls()

    def test(self, ctxt: Any, arg: Any) -> Any:
        self.calls.put(("test", arg))
        return arg

    def sync(self, ctxt: Any) -> str:
        self.calls.put(("sync", None))
        return "synced"

    def ping(self, ctxt: Any) -> None:
        self.calls.put(("ping", None))


def test_the_rpc_client_examples(
    cfg: types.SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = VersionedTestEndpoint()
    server_transport = oslo_messaging.get_rpc_transport(cfg.CONF)
    server = oslo_messaging.get_rpc_server(
        server_transport,
        oslo_messaging.Target(topic="test", server="server1"),
        [endpoint],
        executor="blocking",  # in order, so that what was not handled is known
    )
    server.start()
    try:
        ctxt: dict[str, Any] = {"request_id": "req-1"}  # ADAPTED: the examples' free names
        arg = {"name": "vm1"}
        LOG = logging.getLogger("doc.example")  # noqa: N806

        # ---- from oslo_messaging/rpc/client.py (RPCClient docstring) -------------
        class TestClient:
            def __init__(self, transport: Any) -> None:
                target = oslo_messaging.Target(topic="test", version="2.0")
                self._client = oslo_messaging.get_rpc_client(transport, target)

            def test(self, ctxt: Any, arg: Any) -> Any:
                return self._client.call(ctxt, "test", arg=arg)

        # "An example of using the prepare() method to override some attributes
        # of the default target" (ADAPTED: a subclass holds each variant of test()).
        class TestClientV25(TestClient):
            def test(self, ctxt: Any, arg: Any) -> Any:
                cctxt = self._client.prepare(version="2.5")
                return cctxt.call(ctxt, "test", arg=arg)

        class TestClientTimeout(TestClient):
            def test(self, ctxt: Any, arg: Any) -> Any:
                cctxt = self._client.prepare(timeout=10)
                return cctxt.call(ctxt, "test", arg=arg)

        transport = oslo_messaging.get_rpc_transport(cfg.CONF)
        wrapped = [TestClient(transport), TestClientV25(transport), TestClientTimeout(transport)]
        results = [c.test(ctxt, arg) for c in wrapped]

        # "this class can be used directly without wrapping it another class"
        transport = oslo_messaging.get_rpc_transport(cfg.CONF)
        target = oslo_messaging.Target(topic="test", version="2.0")
        client = oslo_messaging.get_rpc_client(transport, target)
        results.append(client.call(ctxt, "test", arg=arg))

        # The retry example. ADAPTED: the broker loses the connection once first,
        # so that the retry=0 cast fails as the example expects it may.
        broker().fail_next_sends(1)
        client = oslo_messaging.get_rpc_client(transport, target, retry=None)
        synced = client.call(ctxt, "sync")
        broker().fail_next_sends(1)
        try:
            client.prepare(retry=0).cast(ctxt, "ping")
        except oslo_messaging.MessageDeliveryFailure:
            LOG.error("Failed to send ping message")
        # ---- end of the examples --------------------------------------------------

        client.prepare(timeout=TIMEOUT).call(ctxt, "sync")  # everything before is handled
        transport.cleanup()
    finally:
        server.stop(timeout=TIMEOUT)
        server.wait(timeout=TIMEOUT)
        server_transport.cleanup()

    assert results == [arg, arg, arg, arg]
    assert synced == "synced"
    assert [r.getMessage() for r in caplog.records if r.name == "doc.example"] == [
        "Failed to send ping message"
    ]
    handled = [name for name, _arg in endpoint.calls.pending()]
    # The ping whose send failed never reached the server.
    assert handled == ["test", "test", "test", "test", "sync", "sync"]


# The examples of this project's own guide, doc/source/user/rpc.rst.


class ComputeEndpoint:
    """The guide's first endpoint (no target: version 1.0)."""

    def reboot(self, ctxt: Any, name: str, hard: bool = False) -> None:
        return None


class ComputeAPIv5:
    target = oslo_messaging.Target(version="5.2")

    def build_instance(self, ctxt: Any, name: str, flavor: str, volume: str | None = None) -> Any:
        return {"name": name, "flavor": flavor, "volume": volume}


def test_the_guide_testing_example() -> None:
    from oslo_config import cfg

    import messaging

    def test_reboot() -> None:
        conf = cfg.ConfigOpts()
        conf([])
        transport = messaging.get_rpc_transport(conf, "fake://")
        target = messaging.Target(topic="compute", server="host1")
        server = messaging.get_rpc_server(transport, target, [ComputeEndpoint()])
        server.start()
        try:
            client = messaging.get_rpc_client(transport, messaging.Target(topic="compute"))
            assert client.call({}, "reboot", name="vm1") is None
        finally:
            server.stop()
            server.wait()
            transport.cleanup()

    test_reboot()


@pytest.mark.parametrize(("cap", "volume_sent"), [("5.2", "v1"), ("5.1", None)])
def test_the_guide_version_cap_fallback(
    cfg: types.SimpleNamespace, cap: str, volume_sent: str | None
) -> None:
    import messaging

    class ComputeAPI:
        def __init__(self, transport: Any) -> None:
            target = messaging.Target(topic="compute", version="5.0")
            self._client = messaging.get_rpc_client(transport, target, version_cap=cap)

        def build_instance(
            self, ctxt: Any, name: str, flavor: str, volume: str | None = None
        ) -> Any:
            if self._client.can_send_version("5.2"):
                cctxt = self._client.prepare(version="5.2")
                return cctxt.call(ctxt, "build_instance", name=name, flavor=flavor, volume=volume)
            cctxt = self._client.prepare(version="5.0")
            return cctxt.call(ctxt, "build_instance", name=name, flavor=flavor)

    transport = messaging.get_rpc_transport(cfg.CONF)
    target = messaging.Target(topic="compute", server="host1")
    server = messaging.get_rpc_server(transport, target, [ComputeAPIv5()])
    server.start()
    try:
        built = ComputeAPI(transport).build_instance({}, "vm1", "m1.small", volume="v1")
    finally:
        server.stop(timeout=TIMEOUT)
        server.wait(timeout=TIMEOUT)
        transport.cleanup()
    assert built == {"name": "vm1", "flavor": "m1.small", "volume": volume_sent}
