"""The in-memory driver, through Transport: topology, wire fidelity, failures, RPC."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oslo_config import cfg

from messaging import exceptions, transport
from messaging.drivers import memory
from messaging.drivers.base import Deadline, IncomingMessage, RpcIncomingMessage
from messaging.target import Target

JOIN = 10.0  # seconds: bound on every join and wait


class CustomError(Exception):
    """An application error, rebuilt only when its module is allowed."""


@pytest.fixture(autouse=True)
def _fresh_brokers() -> Iterator[None]:
    memory.reset_brokers()
    yield
    memory.reset_brokers()


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    return cfg.ConfigOpts()


MakeTransport = Callable[..., transport.Transport]


@pytest.fixture
def make(conf: cfg.ConfigOpts) -> Iterator[MakeTransport]:
    made: list[transport.Transport] = []

    def factory(
        url: str = "fake://", rpc: bool = False, allowed: list[str] | None = None
    ) -> transport.Transport:
        get = transport.get_rpc_transport if rpc else transport.get_notification_transport
        made.append(get(conf, url, allowed_remote_exmods=allowed))
        return made[-1]

    yield factory
    for item in made:
        item.cleanup()


def broker_of(trans: transport.Transport) -> memory.Broker:
    driver = trans.driver
    assert isinstance(driver, memory.MemoryDriver)
    return driver.broker


def notify(
    trans: transport.Transport,
    topic: str = "notifications.info",
    payload: Any = None,
    version: float = 2.0,
    exchange: str | None = None,
    retry: int | None = None,
) -> None:
    message = {"event_type": "compute.start", "payload": payload or {"n": 1}}
    ctxt = {"user": "u1", "request_id": "req-1"}
    trans.send_notification(Target(exchange=exchange, topic=topic), ctxt, message, version, retry)


def poll(listener: Any, timeout: float = JOIN) -> IncomingMessage:
    message = listener.poll_one(timeout)
    assert message is not None, "no message arrived"
    return message


def payloads(listener: Any, count: int) -> list[Any]:
    got = []
    for _ in range(count):
        message = poll(listener)
        message.acknowledge()
        got.append(message.message["payload"])
    return got


# Notifications


def test_notification_reaches_listener_of_its_topic_and_priority(make: MakeTransport) -> None:
    trans = make()
    listener = trans.listen_for_notifications([(Target(topic="notifications"), "info")])
    notify(trans, payload={"vm": "a"})

    message = poll(listener)
    assert message.message == {"event_type": "compute.start", "payload": {"vm": "a"}}
    assert message.ctxt == {"user": "u1", "request_id": "req-1", "client_timeout": None}
    message.acknowledge()
    message.acknowledge()  # a second acknowledgement does nothing
    assert broker_of(trans).queue_depth("notifications.info") == 0


def test_priorities_use_separate_queues(make: MakeTransport) -> None:
    trans = make()
    errors = trans.listen_for_notifications([(Target(topic="notifications"), "error")])
    notify(trans, "notifications.info", payload={"p": "info"})
    notify(trans, "notifications.error", payload={"p": "error"})

    assert payloads(errors, 1) == [{"p": "error"}]
    assert errors.poll_one(0) is None
    assert broker_of(trans).queue_depth("notifications.info") == 1


def test_default_queue_keeps_notifications_sent_before_anyone_listens(
    make: MakeTransport,
) -> None:
    trans = make()
    notify(trans, payload={"early": True})
    assert broker_of(trans).queue_depth("notifications.info") == 1

    listener = trans.listen_for_notifications([(Target(topic="notifications"), "info")])
    assert payloads(listener, 1) == [{"early": True}]


def test_pools_of_different_exchanges_are_isolated(make: MakeTransport) -> None:
    trans = make()
    in_a = trans.listen_for_notifications([(Target(exchange="a", topic="t"), "info")], pool="pa")
    in_b = trans.listen_for_notifications([(Target(exchange="b", topic="t"), "info")], pool="pb")
    notify(trans, "t.info", payload={"to": "a"}, exchange="a")

    assert payloads(in_a, 1) == [{"to": "a"}]
    assert in_b.poll_one(0) is None


def test_default_queue_name_ignores_the_exchange_as_on_rabbitmq(make: MakeTransport) -> None:
    # oslo names the default queue <topic>.<priority> whatever the exchange, so a
    # listener of exchange "b" shares it with a publisher of exchange "a".
    trans = make()
    listener = trans.listen_for_notifications([(Target(exchange="b", topic="t"), "info")])
    notify(trans, "t.info", payload={"to": "a"}, exchange="a")
    assert payloads(listener, 1) == [{"to": "a"}]


def test_every_pool_and_the_default_queue_get_their_own_copy(make: MakeTransport) -> None:
    trans = make()
    targets = [(Target(topic="notifications"), "info")]
    listeners = [
        trans.listen_for_notifications(targets, pool="p1"),
        trans.listen_for_notifications(targets, pool="p2"),
        trans.listen_for_notifications(targets),
    ]
    notify(trans, payload={"once": 1})

    for listener in listeners:
        assert payloads(listener, 1) == [{"once": 1}]
        assert listener.poll_one(0) is None
    assert {"p1", "p2", "notifications.info"} <= set(broker_of(trans).queues())


def test_a_temporary_pool_gets_a_copy_of_every_priority_and_goes_away_with_it(
    make: MakeTransport,
) -> None:
    trans = make()
    targets = [(Target(topic="notifications"), p) for p in ("info", "error")]
    tap = trans.listen_for_notifications(targets, pool="tap-1", temporary=True)
    notify(trans, "notifications.info", payload={"p": "info"})
    notify(trans, "notifications.error", payload={"p": "error"})

    assert sorted(p["p"] for p in payloads(tap, 2)) == ["error", "info"]
    tap.cleanup()
    queues = set(broker_of(trans).queues())
    assert "tap-1" not in queues
    assert {"notifications.info", "notifications.error"} <= queues


def test_a_temporary_listener_needs_a_pool(make: MakeTransport) -> None:
    with pytest.raises(ValueError, match="needs a pool name"):
        make().listen_for_notifications([(Target(topic="t"), "info")], temporary=True)


def test_listeners_of_one_pool_share_the_messages(make: MakeTransport) -> None:
    trans = make()
    targets = [(Target(topic="notifications"), "info")]
    first = trans.listen_for_notifications(targets, pool="workers")
    second = trans.listen_for_notifications(targets, pool="workers")
    for n in range(6):
        notify(trans, payload={"n": n})

    got_first: list[Any] = []
    got_second: list[Any] = []
    for _ in range(3):
        got_first += payloads(first, 1)
        got_second += payloads(second, 1)
    assert first.poll_one(0) is None and second.poll_one(0) is None
    assert got_first == [{"n": 0}, {"n": 2}, {"n": 4}]
    assert got_second == [{"n": 1}, {"n": 3}, {"n": 5}]


def test_requeue_puts_the_message_back_at_the_head(make: MakeTransport) -> None:
    trans = make()
    listener = trans.listen_for_notifications([(Target(topic="notifications"), "info")])
    notify(trans, payload={"n": 1})
    notify(trans, payload={"n": 2})

    message = poll(listener)
    assert message.redelivered is False  # type: ignore[attr-defined]
    message.requeue()
    message.requeue()  # settled already: nothing happens
    again = poll(listener)
    assert again.message["payload"] == {"n": 1}
    assert again.redelivered is True  # type: ignore[attr-defined]
    again.acknowledge()
    assert payloads(listener, 1) == [{"n": 2}]
    assert broker_of(trans).queue_depth("notifications.info") == 0


def test_cleanup_returns_unacknowledged_messages(make: MakeTransport) -> None:
    trans = make()
    targets = [(Target(topic="notifications"), "info")]
    listener = trans.listen_for_notifications(targets)
    notify(trans, payload={"n": 1})
    notify(trans, payload={"n": 2})
    poll(listener).acknowledge()
    poll(listener)  # taken, never acknowledged

    listener.cleanup()
    assert broker_of(trans).queue_depth("notifications.info") == 1
    successor = trans.listen_for_notifications(targets)
    message = poll(successor)
    assert message.message["payload"] == {"n": 2}
    assert message.redelivered is True  # type: ignore[attr-defined]


def test_dropped_connections_redeliver_unacknowledged_messages(make: MakeTransport) -> None:
    trans = make()
    broker = broker_of(trans)
    listener = trans.listen_for_notifications([(Target(topic="notifications"), "info")])
    notify(trans, payload={"n": 1})
    poll(listener)  # taken, not acknowledged yet

    assert broker.drop_connections() == 1
    assert broker.queue_depth("notifications.info") == 1
    fresh = poll(listener)
    assert fresh.message["payload"] == {"n": 1}
    assert fresh.redelivered is True  # type: ignore[attr-defined]
    fresh.acknowledge()
    assert broker.queue_depth("notifications.info") == 0


def test_a_notification_handled_before_its_connection_dropped_is_not_handled_again(
    make: MakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    # As on RabbitMQ: the acknowledgement of a delivery whose connection dropped
    # does nothing on the broker, which delivers the message again; the listener
    # has handled it, so it drops the copy as a duplicate (and acknowledges it).
    trans = make()
    broker = broker_of(trans)
    listener = trans.listen_for_notifications([(Target(topic="notifications"), "info")])
    notify(trans, payload={"n": 1})
    stale = poll(listener)

    assert broker.drop_connections() == 1
    stale.acknowledge()
    stale.requeue()  # settled already: nothing happens
    assert broker.queue_depth("notifications.info") == 1
    assert listener.poll_one(0.2) is None
    assert "Dropping a duplicate notification" in caplog.text
    assert broker.queue_depth("notifications.info") == 0


def test_poll_returns_batches(make: MakeTransport) -> None:
    trans = make()
    listener = trans.listen_for_notifications(
        [(Target(topic="notifications"), "info")], batch_size=3, batch_timeout=0.05
    )
    for n in range(5):
        notify(trans, payload={"n": n})

    sizes = [len(listener.poll(timeout=JOIN)), len(listener.poll(timeout=JOIN))]
    assert sizes == [3, 2]
    assert listener.poll(timeout=0) == []


def test_version_2_body_is_enveloped(make: MakeTransport) -> None:
    trans = make()
    notify(trans, payload={"x": 1}, version=2.0)

    (raw,) = broker_of(trans).messages("notifications.info")
    outer = json.loads(raw)
    assert outer["oslo.version"] == "2.0"
    inner = json.loads(outer["oslo.message"])
    assert inner["payload"] == {"x": 1}
    assert inner["_context_user"] == "u1"
    assert re.fullmatch(r"[0-9a-f]{32}", inner["_unique_id"])


def test_version_1_body_is_bare(make: MakeTransport) -> None:
    trans = make()
    notify(trans, payload={"x": 1}, version=1.0)

    (raw,) = broker_of(trans).messages("notifications.info")
    body = json.loads(raw)
    assert "oslo.version" not in body and "oslo.message" not in body
    assert body["payload"] == {"x": 1}
    assert body["_context_request_id"] == "req-1"
    assert re.fullmatch(r"[0-9a-f]{32}", body["_unique_id"])


def test_payload_that_is_not_json_fails_and_queues_nothing(make: MakeTransport) -> None:
    trans = make()
    with pytest.raises(exceptions.MessageSerializationError, match="when"):
        notify(trans, payload={"when": object()})
    assert "notifications.info" not in broker_of(trans).queues()


def test_injected_failure_with_retry_0_fails_at_once(make: MakeTransport) -> None:
    trans = make()
    broker = broker_of(trans)
    broker.fail_next_sends(1)

    with pytest.raises(exceptions.MessageDeliveryFailure) as caught:
        notify(trans, retry=0)
    text = str(caught.value)
    assert "'openstack'" in text and "'notifications.info'" in text and "1 attempt" in text
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert "notifications.info" not in broker.queues()
    notify(trans, retry=0)  # the injected failure is used up
    assert broker.queue_depth("notifications.info") == 1


def test_injected_failures_with_retry_2(make: MakeTransport) -> None:
    trans = make()
    broker = broker_of(trans)
    broker.fail_next_sends(2)
    notify(trans, retry=2)  # third attempt succeeds
    assert broker.queue_depth("notifications.info") == 1

    broker.fail_next_sends(3)
    with pytest.raises(exceptions.MessageDeliveryFailure, match="3 attempt"):
        notify(trans, retry=2)
    assert broker.queue_depth("notifications.info") == 1


def test_injected_failures_with_retry_none_keep_trying(make: MakeTransport) -> None:
    trans = make()
    broker = broker_of(trans)
    broker.fail_next_sends(5)
    notify(trans, retry=None)
    assert broker.queue_depth("notifications.info") == 1


def test_injected_error_is_the_cause(make: MakeTransport) -> None:
    trans = make()
    injected = TimeoutError("socket timed out")
    broker_of(trans).fail_next_sends(error=injected)
    with pytest.raises(exceptions.MessageDeliveryFailure, match="socket timed out") as caught:
        notify(trans, retry=0)
    assert caught.value.__cause__ is injected


@pytest.mark.parametrize(
    "raw",
    ["not json", "[1, 2]", json.dumps({"oslo.version": "3.0", "oslo.message": "{}"})],
    ids=["not-json", "not-an-object", "unknown-envelope"],
)
def test_undecodable_body_is_parked_not_dropped(
    make: MakeTransport, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    trans = make()
    broker = broker_of(trans)
    listener = trans.listen_for_notifications([(Target(topic="notifications"), "info")])
    broker.publish("openstack", "notifications.info", raw)
    notify(trans, payload={"good": True})

    with caplog.at_level(logging.ERROR):
        assert payloads(listener, 1) == [{"good": True}]
    assert len(broker.dead_letters) == 1
    queue, body, reason = broker.dead_letters[0]
    assert (queue, body) == ("notifications.info", raw)
    assert reason
    assert "notifications.info" in caplog.text
    assert broker.queue_depth("notifications.info") == 0


def test_duplicate_unique_id_is_skipped(
    make: MakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    trans = make()
    broker = broker_of(trans)
    listener = trans.listen_for_notifications([(Target(topic="notifications"), "info")])
    raw = json.dumps({"payload": {"n": 1}, "_unique_id": "ab" * 16})
    broker.publish("openstack", "notifications.info", raw)
    broker.publish("openstack", "notifications.info", raw)

    assert payloads(listener, 1) == [{"n": 1}]
    with caplog.at_level(logging.WARNING):
        assert listener.poll_one(0) is None
    assert "ab" * 16 in caplog.text
    assert broker.queue_depth("notifications.info") == 0


def test_transports_of_the_process_share_the_broker(make: MakeTransport) -> None:
    sender, receiver = make("fake://"), make("memory://")
    listener = receiver.listen_for_notifications([(Target(topic="notifications"), "info")])
    notify(sender, payload={"shared": True})
    assert payloads(listener, 1) == [{"shared": True}]


def test_virtual_hosts_are_isolated(make: MakeTransport) -> None:
    in_a, in_b = make("memory:///a"), make("memory:///b")
    listener_b = in_b.listen_for_notifications([(Target(topic="notifications"), "info")])
    notify(in_a)

    assert listener_b.poll_one(0) is None
    assert broker_of(in_a).queue_depth("notifications.info") == 1
    assert broker_of(in_a) is memory.get_broker("a") and broker_of(in_b) is not broker_of(in_a)


# RPC

Handler = Callable[[RpcIncomingMessage], None]


def echo(message: RpcIncomingMessage) -> None:
    message.reply({"args": message.message["args"], "user": message.ctxt.get("user")})


class Server:
    """Polls an RPC listener in a thread and hands each request to ``handler``."""

    def __init__(self, listener: Any, handler: Handler = echo) -> None:
        self.listener = listener
        self.handler = handler
        self.received: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while batch := self.listener.poll(timeout=None):
            for message in batch:
                self.received.append(message.message)
                self.handler(message)

    def stop(self) -> None:
        self.listener.stop()
        self.thread.join(JOIN)
        assert not self.thread.is_alive()


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(listener: Any, handler: Handler = echo) -> Server:
        started.append(Server(listener, handler))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def call(trans: transport.Transport, target: Target, timeout: float = JOIN, **kw: Any) -> Any:
    message = {"method": "add", "args": {"a": 1}}
    return trans.send(target, {"user": "u1"}, message, wait_for_reply=True, timeout=timeout, **kw)


def cast(trans: transport.Transport, target: Target, n: int = 0, **kw: Any) -> None:
    assert trans.send(target, {}, {"method": "ping", "args": {"n": n}}, **kw) is None


def test_call_returns_the_reply(make: MakeTransport, servers: Callable[..., Server]) -> None:
    trans = make(rpc=True)
    server = servers(trans.listen(Target(topic="compute", server="h1")))

    assert call(trans, Target(topic="compute")) == {"args": {"a": 1}, "user": "u1"}
    assert server.received == [{"method": "add", "args": {"a": 1}}]


def test_cast_is_received_and_not_answered(make: MakeTransport) -> None:
    trans = make(rpc=True)
    listener = trans.listen(Target(topic="compute", server="h1"))
    cast(trans, Target(topic="compute"), n=7)

    message = poll(listener)
    assert message.message == {"method": "ping", "args": {"n": 7}}
    assert message.msg_id is None
    message.reply({"ignored": True})  # a cast has nowhere to reply to: no error
    assert listener.poll_one(0) is None


def test_fanout_reaches_every_server(make: MakeTransport) -> None:
    trans = make(rpc=True)
    listeners = [trans.listen(Target(topic="compute", server=f"h{i}")) for i in range(3)]
    cast(trans, Target(exchange="ignored", topic="compute", fanout=True), n=1)

    for listener in listeners:
        assert poll(listener).message["args"] == {"n": 1}
        assert listener.poll_one(0) is None


def test_fanout_queue_is_deleted_at_cleanup(make: MakeTransport) -> None:
    trans = make(rpc=True)
    broker = broker_of(trans)
    listener = trans.listen(Target(topic="compute", server="h1"))
    assert any(q.startswith("compute_fanout_") for q in broker.queues())
    listener.cleanup()
    assert not any(q.startswith("compute_fanout_") for q in broker.queues())


def test_directed_cast_reaches_only_its_server(make: MakeTransport) -> None:
    trans = make(rpc=True)
    h1 = trans.listen(Target(topic="compute", server="h1"))
    h2 = trans.listen(Target(topic="compute", server="h2"))
    cast(trans, Target(topic="compute", server="h2"), n=2)

    assert poll(h2).message["args"] == {"n": 2}
    assert h1.poll_one(0) is None


def test_servers_on_one_topic_share_the_requests(make: MakeTransport) -> None:
    trans = make(rpc=True)
    h1 = trans.listen(Target(topic="compute", server="h1"))
    h2 = trans.listen(Target(topic="compute", server="h2"))
    for n in range(6):
        cast(trans, Target(topic="compute"), n=n)

    got = {"h1": [], "h2": []}  # type: dict[str, list[int]]
    for _ in range(3):
        got["h1"].append(poll(h1).message["args"]["n"])
        got["h2"].append(poll(h2).message["args"]["n"])
    assert got == {"h1": [0, 2, 4], "h2": [1, 3, 5]}
    assert h1.poll_one(0) is None and h2.poll_one(0) is None


def failing_with(exc: BaseException) -> Handler:
    def handler(message: RpcIncomingMessage) -> None:
        try:
            raise exc
        except type(exc) as caught:
            message.reply(failure=caught)

    return handler


def test_builtin_failure_keeps_its_class(
    make: MakeTransport, servers: Callable[..., Server]
) -> None:
    trans = make(rpc=True)
    servers(trans.listen(Target(topic="compute", server="h1")), failing_with(ValueError("bad")))

    with pytest.raises(ValueError, match="bad") as caught:
        call(trans, Target(topic="compute"))
    assert "Traceback" in str(caught.value)  # the remote traceback travelled


def test_failure_of_a_module_not_allowed_is_a_remote_error(
    make: MakeTransport, servers: Callable[..., Server]
) -> None:
    trans = make(rpc=True)
    servers(trans.listen(Target(topic="compute", server="h1")), failing_with(CustomError("no")))

    with pytest.raises(exceptions.RemoteError) as caught:
        call(trans, Target(topic="compute"))
    assert caught.value.exc_type == "CustomError"
    assert caught.value.value == "no"


def test_failure_of_an_allowed_module_is_rebuilt(
    make: MakeTransport, servers: Callable[..., Server]
) -> None:
    trans = make(rpc=True, allowed=[CustomError.__module__])
    servers(trans.listen(Target(topic="compute", server="h1")), failing_with(CustomError("no")))

    with pytest.raises(CustomError) as caught:
        call(trans, Target(topic="compute"))
    assert type(caught.value) is not CustomError  # the _Remote subclass
    assert caught.value.args == ("no",)


def test_result_that_is_not_json_comes_back_as_an_error(
    make: MakeTransport, servers: Callable[..., Server]
) -> None:
    trans = make(rpc=True)
    servers(trans.listen(Target(topic="compute", server="h1")), lambda m: m.reply({"x": object()}))
    with pytest.raises(exceptions.RemoteError) as caught:
        call(trans, Target(topic="compute"))
    assert caught.value.exc_type == "MessageSerializationError"


def test_timeout_names_what_was_called_and_the_request_expires(make: MakeTransport) -> None:
    trans = make(rpc=True)
    listener = trans.listen(Target(topic="compute", server="h1"))  # never polled in time

    with pytest.raises(exceptions.MessagingTimeout) as caught:
        call(trans, Target(topic="compute", server="h1"), timeout=0.05)
    text = str(caught.value)
    for part in ("'compute'", "'h1'", "'add'", "0.05", "reply_"):
        assert part in text
    assert re.search(r"reply_[0-9a-f]{32}", text)
    assert listener.poll_one(0) is None  # the broker discarded the expired request


def test_call_monitor_fails_without_heartbeats(make: MakeTransport) -> None:
    trans = make(rpc=True)
    trans.listen(Target(topic="compute", server="h1"))  # takes nothing: no heartbeat

    with pytest.raises(exceptions.MessagingTimeout, match=r"call_monitor_timeout 0\.1"):
        call(trans, Target(topic="compute"), timeout=60, call_monitor_timeout=0.1)


def test_heartbeats_keep_a_monitored_call_alive(
    make: MakeTransport, servers: Callable[..., Server]
) -> None:
    trans = make(rpc=True)
    pause = threading.Event()  # never set: a bounded pause between heartbeats

    def slow(message: RpcIncomingMessage) -> None:
        assert message.client_timeout == 0.3
        for _ in range(10):  # about 0.5 s of work, longer than the monitor timeout
            message.heartbeat()
            pause.wait(0.05)
        message.reply("done")

    servers(trans.listen(Target(topic="compute", server="h1")), slow)
    assert call(trans, Target(topic="compute"), timeout=60, call_monitor_timeout=0.3) == "done"


def test_concurrent_calls_each_get_their_own_reply(
    make: MakeTransport, servers: Callable[..., Server]
) -> None:
    client, server_side = make(rpc=True), make(rpc=True)
    for host in ("h1", "h2"):
        servers(server_side.listen(Target(topic="compute", server=host)))
    wrong: list[Any] = []

    def caller(thread: int) -> None:
        for n in range(125):
            args = {"thread": thread, "n": n}
            result = client.send(
                Target(topic="compute"), {}, {"method": "m", "args": args}, True, JOIN
            )
            if result["args"] != args:
                wrong.append((args, result))

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert wrong == []


def test_at_least_once_without_a_queue_is_undeliverable(make: MakeTransport) -> None:
    trans = make(rpc=True)
    options = transport.TransportOptions(at_least_once=True)

    cast(trans, Target(topic="nobody"))  # without the option it vanishes, as on RabbitMQ
    with pytest.raises(exceptions.MessageUndeliverable) as caught:
        cast(trans, Target(topic="nobody"), transport_options=options)
    assert (caught.value.exchange, caught.value.routing_key) == ("openstack", "nobody")


def test_call_to_a_fanout_target_is_invalid(make: MakeTransport) -> None:
    trans = make(rpc=True)
    with pytest.raises(exceptions.InvalidTarget):
        call(trans, Target(topic="compute", fanout=True))


def test_reply_to_a_missing_reply_queue_is_logged(
    make: MakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    trans = make(rpc=True)
    listener = trans.listen(Target(topic="compute", server="h1"))
    gone = "reply_" + "0" * 32
    inner = {"method": "m", "args": {}, "_msg_id": "f" * 32, "_reply_q": gone}
    request = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)})
    broker_of(trans).publish("openstack", "compute", request)

    message = poll(listener)
    assert isinstance(message, RpcIncomingMessage)
    with caplog.at_level(logging.WARNING):
        message.reply("late")  # must not raise
    assert gone in caplog.text and "f" * 32 in caplog.text


def test_reply_for_an_unknown_call_is_logged(
    make: MakeTransport, servers: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    trans = make(rpc=True)
    servers(trans.listen(Target(topic="compute", server="h1")))
    assert call(trans, Target(topic="compute"))  # creates the reply queue
    driver = trans.driver
    assert isinstance(driver, memory.MemoryDriver)
    reply_q = driver.reply_source(Deadline(None)).queue_name
    stray = {"result": 1, "failure": None, "ending": True, "_msg_id": "e" * 32}
    stray_body = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(stray)})

    with caplog.at_level(logging.INFO):
        broker_of(trans).publish("", reply_q, stray_body)
        assert call(trans, Target(topic="compute")) == {"args": {"a": 1}, "user": "u1"}
    assert "e" * 32 in caplog.text


def test_cleanup_ends_a_call_in_progress(make: MakeTransport) -> None:
    trans = make(rpc=True)
    listener = trans.listen(Target(topic="compute", server="h1"))
    errors: list[BaseException] = []

    def calling() -> None:
        try:
            call(trans, Target(topic="compute"), timeout=60)
        except exceptions.MessagingTimeout as exc:
            errors.append(exc)

    thread = threading.Thread(target=calling, daemon=True)
    thread.start()
    assert poll(listener).msg_id is not None  # the call is on its way
    trans.cleanup()
    thread.join(JOIN)
    assert not thread.is_alive()
    assert len(errors) == 1 and "cleaned up" in str(errors[0])
