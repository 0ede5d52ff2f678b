"""``messaging status`` of a topic served by the real oslo.messaging 18.3.1 and by us, on RabbitMQ.

The oslo server has no control endpoint: it replies to the status request
with an ``UnsupportedVersion`` failure, which counts it as an anonymous
server that receives and replies; ours says who it is. The broker counts the
consumers of both on the topic's queue.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging import status
from messaging.drivers.base import QueueStats
from tests.interop.oslo_env import InteropNames, OsloPeers

pytestmark = pytest.mark.broker
#: Seconds the census gathers answers (it waits them out on RabbitMQ).
CENSUS_TIMEOUT = 3.0


class Echo:
    def echo(self, ctxt: Any, value: Any = None) -> Any:
        return value


def test_an_oslo_server_is_among_the_answers(
    oslo_peers: OsloPeers,
    names: InteropNames,
    rabbit_url: str,
    our_conf: cfg.ConfigOpts,
    stack: contextlib.ExitStack,
) -> None:
    topic, ours, theirs = names.topic("status"), names.server("ours"), names.server("oslo")
    oslo_peers.rpc_server(topic, theirs)
    transport = messaging.get_rpc_transport(our_conf, rabbit_url)
    stack.callback(transport.cleanup)
    server = messaging.get_rpc_server(
        transport, messaging.Target(topic=topic, server=ours), [Echo()], executor="threading"
    )
    server.start()
    stack.callback(server.wait)
    stack.callback(server.stop)

    found = status.topic_status(
        transport, messaging.Target(topic=topic), timeout=CENSUS_TIMEOUT, servers=[ours, theirs]
    )

    assert len(found.answers) == 2, found.as_dict()
    (known,) = [a for a in found.answers if a.known]
    (anonymous,) = [a for a in found.answers if not a.known]
    assert known.server == ours and known.status["exchange"] == names.exchange
    assert anonymous.failure is not None
    assert anonymous.failure.startswith("UnsupportedVersion: "), anonymous.failure
    assert 0 < anonymous.elapsed < CENSUS_TIMEOUT
    assert found.queues is not None
    by_name = {q.name: q for q in found.queues}
    assert by_name[topic] == QueueStats(topic, True, 0, 2)
    assert by_name[f"{topic}.{theirs}"] == QueueStats(f"{topic}.{theirs}", True, 0, 1)
    assert by_name[f"{topic}.{ours}"] == QueueStats(f"{topic}.{ours}", True, 0, 1)
    # The oslo server may be the anonymous answer: it is not reported missing.
    assert found.missing == [theirs]
    assert found.ok, found.problems
