"""How many AMQP connections a typical service process holds, for messaging and oslo.messaging.

The process runs one RPC server, one notification listener on two targets, one
Notifier and one RPC client calling from 8 threads, on a virtual host of its
own; ``rabbitmqctl list_connections`` then counts the connections on that
virtual host. Run it with either library:

    python benchmarks/connection_count.py                 # messaging
    $OSLO_VENV/bin/python benchmarks/connection_count.py --impl oslo_messaging

($OSLO_VENV: the interop tests' virtualenv, ~/.cache/messaging-interop/oslo-venv).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import threading
import time
import uuid
from typing import Any


def rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl quietly and return what it printed."""
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def main() -> None:
    """Run the scenario with the chosen library and print the connection count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", default="messaging", choices=["messaging", "oslo_messaging"])
    args = parser.parse_args()
    lib: Any = importlib.import_module(args.impl)
    from oslo_config import cfg

    vhost = f"conncount-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        conf = cfg.CONF  # oslo.messaging 18.3 needs the global object (tracing options)
        conf([], project="conncount", default_config_files=[], default_config_dirs=[])
        url = f"rabbit://guest:guest@127.0.0.1:5672/{vhost}"
        rpc = lib.get_rpc_transport(conf, url)
        notif = lib.get_notification_transport(conf, url)

        class Endpoint:
            def add(self, ctxt: Any, a: int, b: int) -> int:
                return a + b

            def info(
                self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any
            ) -> None:
                pass

        server = lib.get_rpc_server(rpc, lib.Target(topic="cc", server="s1"), [Endpoint()])
        listener = lib.get_notification_listener(
            notif, [lib.Target(topic="cc-a"), lib.Target(topic="cc-b")], [Endpoint()]
        )
        server.start()
        listener.start()
        client = lib.get_rpc_client(rpc, lib.Target(topic="cc"), timeout=30)
        notifier = lib.Notifier(notif, "cc", driver="messagingv2", topics=["cc-a", "cc-b"])

        def calls() -> None:
            for i in range(20):
                client.call({}, "add", a=i, b=1)

        threads = [threading.Thread(target=calls) for _ in range(8)]
        for thread in threads:
            thread.start()
        for n in range(20):
            notifier.info({}, "cc.event", {"n": n})
        for thread in threads:
            thread.join(60)
        time.sleep(1)  # let connections opened at the end register with the broker
        lines = rabbitmqctl("list_connections", "vhost", "--no-table-headers").splitlines()
        held = sum(1 for line in lines if line.strip() == vhost)
        print(f"{args.impl}: {held} AMQP connections held by one process")
        server.stop()
        listener.stop()
        server.wait()
        listener.wait()
        rpc.cleanup()
        notif.cleanup()
    finally:
        rabbitmqctl("delete_vhost", vhost)


if __name__ == "__main__":
    main()
