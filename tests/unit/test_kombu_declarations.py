"""The kombu driver declares what the RabbitMQ driver does with oslo's default options."""

from __future__ import annotations

import messaging
from messaging.drivers import names
from messaging.drivers.kombu_transport import declarations
from messaging.drivers.rabbit import topology
from messaging.drivers.rabbit.options import RabbitSettings

DEFAULTS = RabbitSettings()


def test_an_rpc_server_declares_what_rabbit_declares_by_default() -> None:
    target = messaging.Target(topic="compute", server="host-1")
    queues = names.server_queues(target, "nova", "f" * 32)
    expected = topology.rpc_server_subscriptions(DEFAULTS, "nova", "compute", "host-1", "f" * 32)
    assert declarations.subscriptions(queues) == list(expected)


def test_a_notification_pool_declares_what_rabbit_declares_by_default() -> None:
    pairs = [(messaging.Target(topic="notifications"), "info")]
    queues = names.notification_queues(pairs, "pool-a", "openstack")
    expected = topology.notification_subscriptions(
        DEFAULTS, [("openstack", "notifications", "info")], "pool-a"
    )
    assert declarations.subscriptions(queues) == expected


def test_the_reply_queue_and_exchange_are_rabbits_defaults() -> None:
    name = names.reply_queue("e" * 32)
    assert declarations.reply_subscription(name) == topology.reply_subscription(DEFAULTS, "e" * 32)
    assert topology.reply_exchange(DEFAULTS, publishing=True) == declarations.REPLY_EXCHANGE
    published = topology.notification_publish(DEFAULTS, "openstack", "n", "info")
    assert declarations.topic_exchange("openstack") == published.exchange
    assert declarations.notification_queue("n.info") == published.declare_queue
