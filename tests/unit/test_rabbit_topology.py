"""Exchanges, queues, bindings and message properties of the RabbitMQ driver.

Each expectation is a fact of oslo.messaging 18.x's topology (reference notes
§4.1, §4.6, §10 items 5-7): a mismatch makes RabbitMQ refuse a declaration with
PRECONDITION_FAILED when oslo.messaging services share the broker.
"""

from __future__ import annotations

from typing import Any

import pytest

from messaging.drivers.rabbit import topology as t
from messaging.drivers.rabbit.options import RabbitSettings

DEFAULT = RabbitSettings()
QUORUM = RabbitSettings(rabbit_quorum_queue=True)
TRANSIENT_QUORUM = RabbitSettings(rabbit_transient_quorum_queue=True)
STREAM = RabbitSettings(
    rabbit_transient_quorum_queue=True, rabbit_stream_fanout=True, rabbit_qos_prefetch_count=10
)
HEX = "01e39525137a454e88d83083e988172c"


# -- defaults ------------------------------------------------------------------------


def test_default_topic_exchange() -> None:
    assert t.rpc_topic_exchange(DEFAULT, "openstack") == t.ExchangeSpec(
        "openstack", "topic", durable=False, auto_delete=False
    )


def test_default_rpc_queues_are_plain() -> None:
    assert t.rpc_topic_queue(DEFAULT, "compute") == t.QueueSpec(
        "compute", durable=False, auto_delete=False, exclusive=False, arguments={}
    )
    assert t.rpc_server_queue(DEFAULT, "compute", "host1") == t.QueueSpec(
        "compute.host1", durable=False, auto_delete=False, arguments={}
    )


def test_default_fanout_exchange_is_auto_delete() -> None:
    assert t.fanout_exchange(DEFAULT, "compute") == t.ExchangeSpec(
        "compute_fanout", "fanout", durable=False, auto_delete=True
    )


def test_default_fanout_queue_expires() -> None:
    assert t.fanout_queue(DEFAULT, "compute", HEX) == t.QueueSpec(
        f"compute_fanout_{HEX}", durable=False, auto_delete=False, arguments={"x-expires": 1800000}
    )


def test_default_reply_queue() -> None:
    assert t.reply_queue(DEFAULT, HEX) == t.QueueSpec(
        f"reply_{HEX}", durable=False, auto_delete=False, arguments={"x-expires": 1800000}
    )


def test_default_notification_queue_has_no_arguments() -> None:
    assert t.notification_queue(DEFAULT, "notifications.info") == t.QueueSpec(
        "notifications.info", durable=False, auto_delete=False, arguments={}
    )
    assert t.pool_queue(DEFAULT, "my-pool") == t.QueueSpec(
        "my-pool", durable=False, auto_delete=False, arguments={}
    )


def test_notification_routing_key_is_lower_case() -> None:
    assert t.notification_routing_key("notifications", "INFO") == "notifications.info"


def test_notification_binding_with_and_without_pool() -> None:
    assert t.notification_binding("nova", "notifications.error") == t.Binding(
        "nova", "notifications.error", "notifications.error"
    )
    assert t.notification_binding("nova", "notifications.error", "pool") == t.Binding(
        "nova", "pool", "notifications.error"
    )


# -- option combinations -------------------------------------------------------------


def test_durable_queues_make_topic_entities_durable() -> None:
    settings = RabbitSettings(amqp_durable_queues=True)
    assert t.rpc_topic_exchange(settings, "openstack").durable is True
    assert t.rpc_topic_queue(settings, "compute").durable is True
    assert t.notification_queue(settings, "n.info").durable is True
    # transient queues do not follow amqp_durable_queues
    assert t.reply_queue(settings, HEX).durable is False
    assert t.fanout_queue(settings, "compute", HEX).durable is False
    assert t.fanout_exchange(settings, "compute").durable is False


def test_auto_delete_applies_to_topic_entities_only() -> None:
    settings = RabbitSettings(amqp_auto_delete=True)
    assert t.rpc_topic_exchange(settings, "openstack").auto_delete is True
    assert t.rpc_server_queue(settings, "compute", "h").auto_delete is True
    assert t.pool_queue(settings, "p").auto_delete is True
    assert t.reply_queue(settings, HEX).auto_delete is False
    assert t.fanout_queue(settings, "compute", HEX).auto_delete is False


def test_quorum_makes_topic_queues_durable_quorum() -> None:
    queue = t.rpc_topic_queue(QUORUM, "compute")
    assert queue.durable is True
    assert queue.arguments == {"x-queue-type": "quorum"}
    assert t.rpc_topic_exchange(QUORUM, "openstack").durable is True
    assert t.notification_queue(QUORUM, "notifications.info").arguments == {
        "x-queue-type": "quorum"
    }
    # transient queues keep their classic type without rabbit_transient_quorum_queue
    assert t.reply_queue(QUORUM, HEX) == t.QueueSpec(
        f"reply_{HEX}", durable=False, auto_delete=False, arguments={"x-expires": 1800000}
    )


def test_quorum_limits_only_when_not_zero() -> None:
    settings = RabbitSettings(
        rabbit_quorum_queue=True,
        rabbit_quorum_delivery_limit=5,
        rabbit_quorum_max_memory_bytes=1024,
    )
    assert t.queue_arguments(settings, "topic") == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 5,
        "x-max-in-memory-bytes": 1024,
    }
    settings = RabbitSettings(rabbit_quorum_queue=True, rabbit_quorum_max_memory_length=10)
    assert t.queue_arguments(settings, "notification") == {
        "x-queue-type": "quorum",
        "x-max-in-memory-length": 10,
    }
    # the limits are quorum arguments: a classic queue never gets them
    assert t.queue_arguments(RabbitSettings(rabbit_quorum_delivery_limit=5), "topic") == {}


def test_transient_quorum_reply_and_fanout() -> None:
    assert t.reply_queue(TRANSIENT_QUORUM, HEX) == t.QueueSpec(
        f"reply_{HEX}",
        durable=True,
        auto_delete=False,
        arguments={"x-queue-type": "quorum", "x-expires": 1800000},
    )
    assert t.fanout_queue(TRANSIENT_QUORUM, "compute", HEX) == t.QueueSpec(
        f"compute_fanout_{HEX}",
        durable=True,
        auto_delete=False,
        arguments={"x-queue-type": "quorum", "x-expires": 1800000},
    )
    assert t.fanout_exchange(TRANSIENT_QUORUM, "compute").durable is True
    assert t.fanout_exchange(TRANSIENT_QUORUM, "compute").auto_delete is True
    # topic queues stay classic
    assert t.rpc_topic_queue(TRANSIENT_QUORUM, "compute").arguments == {}
    assert t.rpc_topic_queue(TRANSIENT_QUORUM, "compute").durable is False


def test_captured_quorum_with_queue_manager() -> None:
    # oslo.messaging 18.3.1 with both quorum options, delivery limit 5 and the
    # queue manager declared exactly these (reference §4.6).
    settings = RabbitSettings(
        rabbit_quorum_queue=True,
        rabbit_transient_quorum_queue=True,
        rabbit_quorum_delivery_limit=5,
        use_queue_manager=True,
        hostname="h1",
        processname="nova-compute",
    )
    expected_args = {"x-queue-type": "quorum", "x-delivery-limit": 5, "x-expires": 1800000}
    reply = t.reply_queue(settings, t.queue_manager_unique(settings, 2))
    fanout = t.fanout_queue(settings, "compute", t.queue_manager_unique(settings, 1))
    assert (reply.name, reply.durable, reply.arguments) == (
        "reply_h1:nova-compute:2",
        True,
        expected_args,
    )
    assert (fanout.name, fanout.durable, fanout.arguments) == (
        "compute_fanout_h1:nova-compute:1",
        True,
        expected_args,
    )


def test_ha_queues_add_the_ha_policy_everywhere() -> None:
    settings = RabbitSettings(rabbit_ha_queues=True)
    assert t.queue_arguments(settings, "topic") == {"x-ha-policy": "all"}
    assert t.queue_arguments(settings, "notification") == {"x-ha-policy": "all"}
    assert t.queue_arguments(settings, "reply") == {"x-ha-policy": "all", "x-expires": 1800000}
    assert t.queue_arguments(settings, "fanout") == {"x-ha-policy": "all", "x-expires": 1800000}


def test_ttl_zero_disables_expiry() -> None:
    settings = RabbitSettings(rabbit_transient_queues_ttl=0)
    assert t.reply_queue(settings, HEX).arguments == {}
    assert t.fanout_queue(settings, "compute", HEX).arguments == {}


def test_ttl_is_in_milliseconds() -> None:
    settings = RabbitSettings(rabbit_transient_queues_ttl=60)
    assert t.reply_queue(settings, HEX).arguments == {"x-expires": 60000}


def test_stream_fanout_is_one_shared_stream() -> None:
    queue = t.fanout_queue(STREAM, "compute", HEX)
    assert queue == t.QueueSpec(
        "compute_fanout",
        durable=True,
        auto_delete=False,
        arguments={"x-queue-type": "stream", "x-max-age": "1800s"},
    )
    # streams replace the quorum arguments of fanout queues only
    assert t.reply_queue(STREAM, HEX).arguments == {
        "x-queue-type": "quorum",
        "x-expires": 1800000,
    }


def test_stream_without_ttl_has_no_max_age() -> None:
    settings = RabbitSettings(
        rabbit_transient_quorum_queue=True,
        rabbit_stream_fanout=True,
        rabbit_qos_prefetch_count=1,
        rabbit_transient_queues_ttl=0,
    )
    assert t.queue_arguments(settings, "fanout") == {"x-queue-type": "stream"}


def test_queue_arguments_are_fresh_dicts() -> None:
    first = t.reply_queue(DEFAULT, HEX)
    first.arguments["x-expires"] = 1
    assert t.reply_queue(DEFAULT, HEX).arguments == {"x-expires": 1800000}


def test_unknown_queue_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="'direct'"):
        t.queue_arguments(DEFAULT, "direct")  # type: ignore[arg-type]


# -- consumer arguments --------------------------------------------------------------


def test_no_consumer_arguments_by_default() -> None:
    for kind in ("topic", "notification", "reply", "fanout"):
        assert t.consumer_arguments(DEFAULT, kind) == {}  # type: ignore[arg-type]


def test_cancel_on_failover() -> None:
    settings = RabbitSettings(enable_cancel_on_failover=True)
    assert t.consumer_arguments(settings, "topic") == {"x-cancel-on-ha-failover": True}
    assert t.consumer_arguments(settings, "reply") == {"x-cancel-on-ha-failover": True}


def test_stream_consumer_starts_last_then_resumes() -> None:
    settings = RabbitSettings(
        rabbit_transient_quorum_queue=True,
        rabbit_stream_fanout=True,
        rabbit_qos_prefetch_count=1,
        enable_cancel_on_failover=True,
    )
    assert t.consumer_arguments(settings, "fanout") == {"x-stream-offset": "last"}
    assert t.consumer_arguments(settings, "fanout", 42) == {"x-stream-offset": 42}
    assert t.consumer_arguments(settings, "topic") == {"x-cancel-on-ha-failover": True}


# -- subscriptions -------------------------------------------------------------------


def test_rpc_server_subscriptions() -> None:
    topic, server, fanout = t.rpc_server_subscriptions(
        DEFAULT, "openstack", "compute", "host1", HEX
    )
    assert topic.binding == t.Binding("openstack", "compute", "compute")
    assert server.binding == t.Binding("openstack", "compute.host1", "compute.host1")
    assert fanout.binding == t.Binding("compute_fanout", f"compute_fanout_{HEX}", "compute")
    assert topic.exchange == server.exchange == t.rpc_topic_exchange(DEFAULT, "openstack")
    assert fanout.exchange == t.fanout_exchange(DEFAULT, "compute")
    assert (topic.kind, server.kind, fanout.kind) == ("topic", "topic", "fanout")


def test_reply_subscription_uses_the_default_exchange_unbound() -> None:
    sub = t.reply_subscription(DEFAULT, HEX)
    assert sub.exchange.name == t.DEFAULT_EXCHANGE == ""
    assert sub.exchange.type == "direct"
    assert sub.binding is None
    assert sub.queue == t.reply_queue(DEFAULT, HEX)


def test_notification_subscriptions_without_pool() -> None:
    subs = t.notification_subscriptions(
        DEFAULT, [("openstack", "notifications", "info"), ("nova", "versioned", "error")]
    )
    assert [(s.exchange.name, s.queue.name, s.binding) for s in subs] == [
        (
            "openstack",
            "notifications.info",
            t.Binding("openstack", "notifications.info", "notifications.info"),
        ),
        ("nova", "versioned.error", t.Binding("nova", "versioned.error", "versioned.error")),
    ]


def test_pool_subscriptions_share_one_queue() -> None:
    subs = t.notification_subscriptions(
        QUORUM, [("openstack", "n", "info"), ("openstack", "n", "warn")], pool="audit"
    )
    assert {s.queue for s in subs} == {t.pool_queue(QUORUM, "audit")}
    assert [s.binding for s in subs] == [
        t.Binding("openstack", "audit", "n.info"),
        t.Binding("openstack", "audit", "n.warn"),
    ]
    assert all(s.queue.durable and s.queue.arguments == {"x-queue-type": "quorum"} for s in subs)


# -- publishing ----------------------------------------------------------------------


def test_publish_targets() -> None:
    assert t.rpc_publish(DEFAULT, "openstack", "compute") == t.PublishSpec(
        t.rpc_topic_exchange(DEFAULT, "openstack"), "compute"
    )
    assert t.rpc_publish(DEFAULT, "openstack", "compute", "host1").routing_key == "compute.host1"
    fanout = t.rpc_publish(DEFAULT, "openstack", "compute", "host1", fanout=True)
    assert fanout == t.PublishSpec(t.fanout_exchange(DEFAULT, "compute"), "")


def test_reply_is_published_passively_to_the_default_exchange() -> None:
    spec = t.reply_publish(DEFAULT, f"reply_{HEX}")
    assert spec.exchange == t.ExchangeSpec("", "direct", False, True, passive=True)
    assert spec.routing_key == f"reply_{HEX}"
    assert spec.declare_queue is None


def test_notification_publisher_declares_the_default_queue() -> None:
    spec = t.notification_publish(DEFAULT, "openstack", "notifications", "INFO")
    assert spec.exchange == t.rpc_topic_exchange(DEFAULT, "openstack")
    assert spec.routing_key == "notifications.info"
    assert spec.declare_queue == t.notification_queue(DEFAULT, "notifications.info")
    # the publisher's declaration never carries x-expires, even with a TTL
    assert (
        "x-expires"
        not in t.notification_publish(
            RabbitSettings(rabbit_transient_queues_ttl=5), "o", "n", "info"
        ).declare_queue.arguments
    )  # type: ignore[union-attr]


BASE_PROPERTIES: dict[str, Any] = {
    "content_type": "application/json",
    "content_encoding": "utf-8",
    "delivery_mode": 2,
    "priority": 0,
    "headers": {},
}


@pytest.mark.parametrize("kind", ["cast", "fanout", "reply", "notification"])
def test_properties_without_expiration(kind: Any) -> None:
    assert t.publish_properties(kind, timeout=5) == BASE_PROPERTIES


def test_call_properties_carry_the_expiration() -> None:
    assert t.publish_properties("call", timeout=60) == dict(BASE_PROPERTIES, expiration="60000")
    assert t.publish_properties("call") == BASE_PROPERTIES


def test_properties_are_fresh_dicts() -> None:
    t.publish_properties("cast")["headers"]["x"] = 1
    assert t.publish_properties("cast")["headers"] == {}


@pytest.mark.parametrize(
    ("timeout", "expected"), [(60, "60000"), (5, "5000"), (0.25, "250"), (1.0009, "1000")]
)
def test_call_expiration(timeout: float, expected: str) -> None:
    assert t.call_expiration(timeout) == expected


def test_mandatory_flag() -> None:
    assert t.publish_mandatory(DEFAULT, "reply") is True
    assert t.publish_mandatory(RabbitSettings(direct_mandatory_flag=False), "reply") is False
    assert t.publish_mandatory(DEFAULT, "call") is False
    assert t.publish_mandatory(DEFAULT, "cast", at_least_once=True) is True
    assert t.publish_mandatory(DEFAULT, "fanout", at_least_once=True) is False
    assert t.publish_mandatory(DEFAULT, "notification", at_least_once=True) is False


def test_unknown_publish_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="'topic'"):
        t.publish_properties("topic")  # type: ignore[arg-type]


# -- RabbitMQ 4: what is declared instead of transient queues ---------------------------


def test_on_rabbitmq4_the_defaults_declare_what_oslo_declares_with_quorum() -> None:
    oslo_on_4 = RabbitSettings(
        rabbit_quorum_queue=True, rabbit_transient_quorum_queue=True, amqp_durable_queues=True
    )
    for build in (
        lambda s: t.rpc_topic_exchange(s, "openstack"),
        lambda s: t.rpc_topic_queue(s, "compute"),
        lambda s: t.rpc_server_queue(s, "compute", "host1"),
        lambda s: t.fanout_exchange(s, "compute"),
        lambda s: t.fanout_queue(s, "compute", HEX),
        lambda s: t.reply_queue(s, HEX),
        lambda s: t.notification_queue(s, "notifications.info"),
        lambda s: t.pool_queue(s, "my-pool"),
    ):
        spec = build(DEFAULT)
        assert spec.rabbit4 == build(oslo_on_4)
        if isinstance(spec, t.QueueSpec):
            assert spec.rabbit4.arguments == build(oslo_on_4).arguments
        assert spec.for_broker(rabbitmq4=False) is spec
        assert spec.for_broker(rabbitmq4=True) is spec.rabbit4


def test_on_rabbitmq4_no_queue_is_transient_and_not_exclusive() -> None:
    for settings in (DEFAULT, QUORUM, TRANSIENT_QUORUM, RabbitSettings(amqp_durable_queues=True)):
        for spec in (
            t.rpc_topic_queue(settings, "compute"),
            t.fanout_queue(settings, "compute", HEX),
            t.reply_queue(settings, HEX),
            t.notification_queue(settings, "notifications.info"),
        ):
            assert spec.for_broker(rabbitmq4=True).durable, spec


def test_on_rabbitmq4_auto_delete_topic_queues_become_durable_classic() -> None:
    settings = RabbitSettings(amqp_auto_delete=True)
    spec = t.rpc_topic_queue(settings, "compute").for_broker(rabbitmq4=True)
    assert (spec.durable, spec.auto_delete, spec.arguments) == (True, True, {})


def test_on_rabbitmq4_ha_queues_is_left_out() -> None:
    settings = RabbitSettings(rabbit_ha_queues=True)
    assert t.rpc_topic_queue(settings, "compute").arguments == {"x-ha-policy": "all"}
    assert t.rpc_topic_queue(settings, "compute").for_broker(True).arguments == {
        "x-queue-type": "quorum"
    }


def test_without_auto_quorum_rabbitmq4_gets_what_the_options_say() -> None:
    settings = RabbitSettings(rabbit_auto_quorum=False)
    assert settings.on_rabbitmq4() is settings
    assert t.reply_queue(settings, HEX).rabbit4 is None
    full = RabbitSettings(rabbit_quorum_queue=True, rabbit_transient_quorum_queue=True)
    assert full.on_rabbitmq4() is full


def test_a_temporary_pool_queue_is_auto_delete_and_never_quorum() -> None:
    spec = t.pool_queue(QUORUM, "tap-1", temporary=True)
    assert (spec.durable, spec.auto_delete, spec.arguments) == (False, True, {})
    # RabbitMQ 4 deprecates transient queues that are not exclusive.
    assert spec.for_broker(True) == t.QueueSpec("tap-1", durable=True, auto_delete=True)
