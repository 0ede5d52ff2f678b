"""A process of the sqlite durability tests: a listener, a producer or an RPC server.

Run as ``python -m tests.drivers.sqlite_worker <role> <url> <topic> ...``:

- ``listen <url> <topic> [pool]``: a notification listener whose endpoint
  prints ``n <n>`` for the payload's ``n``, before it returns (that is, before
  the acknowledgement). Prints ``ready`` once subscribed; stops when its stdin
  closes.
- ``hold <url> <topic>``: a listener whose endpoint prints ``holding <n>`` and
  then blocks until the process is killed: a consumer that dies mid-message.
- ``produce <url> <topic> <start> <count>``: sends notifications ``n`` =
  ``start`` .. ``start + count - 1``, prints ``sent <count>`` and exits.
- ``serve <url> <topic> <server>``: an RPC server with ``whoami`` and
  ``record`` (which prints ``record <server> <value>``). Prints ``ready``; stops
  when its stdin closes.
- ``roundtrip <url> <topic> <executor>``: in this one process, a notification
  listener and an RPC server with ``executor``; sends 20 notifications and makes
  a call, cleans up, and prints ``roundtrip <received> <result> <threads left>``
  (run under eventlet by the tests, after monkey-patching).

Everything goes through the public API.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from oslo_config import cfg

import messaging


def _conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="sqlite-worker", default_config_files=[], default_config_dirs=[])
    return conf


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _serve_until_stdin_closes(server: Any, transport: messaging.Transport) -> None:
    server.start()
    _say("ready")
    sys.stdin.read()
    server.stop()
    server.wait()
    transport.cleanup()


class _Recorder:
    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        # One write(2) of a short line to a pipe is atomic: executor threads do not
        # interleave, and a line written before a SIGKILL still reaches the reader.
        os.write(sys.stdout.fileno(), f"n {payload['n']}\n".encode())


class _Holder:
    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        _say(f"holding {payload['n']}")
        threading.Event().wait()  # until SIGKILL


class _RpcEndpoint:
    def __init__(self, server: str) -> None:
        self.server = server

    def whoami(self, ctxt: Any) -> str:
        return self.server

    def record(self, ctxt: Any, value: Any) -> None:
        _say(f"record {self.server} {value}")


def _roundtrip(url: str, topic: str, executor: str) -> None:
    count = 20
    received: list[int] = []
    done = threading.Event()

    class Endpoint:
        def info(
            self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any
        ) -> None:
            received.append(payload["n"])
            if len(received) == count:
                done.set()

    transport = messaging.get_notification_transport(_conf(), url)
    rpc_transport = messaging.get_rpc_transport(_conf(), url)
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [Endpoint()], executor=executor
    )
    server = messaging.get_rpc_server(
        rpc_transport, messaging.Target(topic=topic, server="s"), [_RpcEndpoint("s")], executor
    )
    listener.start()
    server.start()
    notifier = messaging.Notifier(transport, "worker", driver="messagingv2", topics=[topic])
    for n in range(count):
        notifier.info({}, "test.n", {"n": n})
    done.wait(30)
    client = messaging.get_rpc_client(rpc_transport, messaging.Target(topic=topic), timeout=30)
    result = client.call({}, "whoami")
    for each in (listener, server):
        each.stop()
        each.wait()
    transport.cleanup()
    rpc_transport.cleanup()
    left = [t.name for t in threading.enumerate() if t.name.startswith("messaging-")]
    _say(f"roundtrip {len(received)} {result} {left}")


def main(argv: list[str]) -> None:
    """Run the role named by ``argv[0]``."""
    role, url, topic, *rest = argv
    conf = _conf()
    if role == "roundtrip":
        _roundtrip(url, topic, rest[0])
        return
    if role == "produce":
        transport = messaging.get_notification_transport(conf, url)
        notifier = messaging.Notifier(
            transport, "worker", driver="messagingv2", topics=[topic], raise_errors=True
        )
        start, count = int(rest[0]), int(rest[1])
        for n in range(start, start + count):
            notifier.info({}, "test.n", {"n": n})
        transport.cleanup()
        _say(f"sent {count}")
        return
    if role == "serve":
        transport = messaging.get_rpc_transport(conf, url)
        target = messaging.Target(topic=topic, server=rest[0])
        server = messaging.get_rpc_server(transport, target, [_RpcEndpoint(rest[0])])
        _serve_until_stdin_closes(server, transport)
        return
    transport = messaging.get_notification_transport(conf, url)
    if role == "listen":
        endpoint: Any = _Recorder()
        pool = rest[0] if rest else None
    elif role == "hold":
        endpoint, pool = _Holder(), None
    else:
        raise SystemExit(f"unknown role {role!r}")
    server = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [endpoint], pool=pool
    )
    _serve_until_stdin_closes(server, transport)


if __name__ == "__main__":
    main(sys.argv[1:])
