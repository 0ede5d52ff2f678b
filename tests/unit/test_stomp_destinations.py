"""How targets map to STOMP destinations in each flavor (no broker)."""

from __future__ import annotations

from messaging.drivers.stomp.destinations import Destinations

RABBIT = Destinations("rabbitmq", prefetch=7, reply_expiry=90)
GENERIC = Destinations("generic", prefetch=7)


def test_rabbit_notifications_go_to_topic_and_a_durable_named_queue() -> None:
    assert RABBIT.notification_send("ex", "t.info") == "/topic/ex.t.info"
    assert RABBIT.notification_default("ex", "t.info") == (
        "/topic/ex.t.info",
        {
            "x-queue-name": "ex.t.info",
            "durable": "true",
            "auto-delete": "false",
            "prefetch-count": "7",
        },
    )
    assert RABBIT.notification_declaration("ex", "t.info")[1]["prefetch-count"] == "1"


def test_rabbit_pool_is_its_own_durable_queue() -> None:
    where, headers = RABBIT.notification_pool("ex", "t.error", "pool1")
    assert where == "/topic/ex.t.error"
    assert headers["x-queue-name"] == "pool1"
    assert headers["durable"] == "true"


def test_generic_notifications_are_plain_queues() -> None:
    assert GENERIC.notification_send("ex", "t.info") == "/queue/ex.t.info"
    assert GENERIC.notification_default("ex", "t.info") == ("/queue/ex.t.info", {})
    assert not GENERIC.rabbit and RABBIT.rabbit


def test_rpc_destinations_are_alike_in_both_flavors() -> None:
    for flavor in (RABBIT, GENERIC):
        assert flavor.rpc_queue("ex", "topic") == "/queue/ex.topic"
        assert flavor.rpc_queue("ex", "topic.srv") == "/queue/ex.topic.srv"
        assert flavor.fanout("ex", "topic") == "/topic/ex.topic_fanout"
    assert RABBIT.rpc_subscription("ex", "t") == ("/queue/ex.t", {"prefetch-count": "7"})
    assert GENERIC.rpc_subscription("ex", "t") == ("/queue/ex.t", {})
    # The fanout subscription says its prefetch itself, whatever was subscribed before it.
    assert RABBIT.fanout_subscription("ex", "t") == ("/topic/ex.t_fanout", {"prefetch-count": "7"})
    assert GENERIC.fanout_subscription("ex", "t") == ("/topic/ex.t_fanout", {})


def test_reply_destinations_are_fresh_topics() -> None:
    for flavor in (RABBIT, GENERIC):
        first, second = flavor.new_reply()[0], flavor.new_reply()[0]
        assert first.startswith("/topic/reply_") and len(first) == len("/topic/reply_") + 32
        assert first != second


def test_rabbit_replies_come_from_a_queue_that_outlives_a_reconnection() -> None:
    where, headers, ack = RABBIT.new_reply()
    assert headers == {
        "x-queue-name": where.removeprefix("/topic/"),
        "durable": "false",
        "auto-delete": "false",
        "x-expires": "90000",
    }
    assert ack == "auto"


def test_generic_replies_are_a_plain_topic_acknowledged_like_the_rest() -> None:
    assert GENERIC.new_reply()[1:] == ({}, "client")
    assert (GENERIC.ack_mode, RABBIT.ack_mode) == ("client", "client-individual")
