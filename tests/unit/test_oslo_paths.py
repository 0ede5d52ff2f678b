"""oslo.messaging's public modules and names that live elsewhere than the top level."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging import dispatcher, opts, server, version
from messaging.drivers.memory import reset_brokers
from messaging.notify import _impl_test, notifier
from messaging.notify.dispatcher import NotificationDispatcher
from messaging.rpc import transport as rpc_transport


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    reset_brokers()
    _impl_test.reset()
    yield
    reset_brokers()
    _impl_test.reset()


def test_server_module_has_oslos_exceptions() -> None:
    assert server.ExecutorLoadFailure is messaging.ExecutorLoadFailure
    assert server.MessagingServerError is messaging.MessagingServerError
    assert server.ServerListenError is messaging.ServerListenError
    assert issubclass(server.ExecutorLoadFailure, server.MessagingServerError)


def test_notifier_module_has_get_notification_transport() -> None:
    assert notifier.get_notification_transport is messaging.get_notification_transport
    assert rpc_transport.get_rpc_transport is messaging.get_rpc_transport


def test_opts_module_at_oslos_path() -> None:
    groups = [group for group, _ in opts.list_opts()]
    assert groups[:2] == [None, "oslo_messaging_notifications"]
    conf = cfg.ConfigOpts()
    opts.set_defaults(conf, executor_thread_pool_size=100)
    assert conf.executor_thread_pool_size == 100


def test_version_module() -> None:
    from importlib import metadata

    assert version.version_info.release_string() == metadata.version("messaging-fleet")
    assert version.version_info.version_string()[0].isdigit()


def test_dispatchers_share_the_base_and_keep_the_callers_list() -> None:
    endpoints: list[Any] = [object()]
    rpc = messaging.RPCDispatcher(endpoints, None)
    notification = NotificationDispatcher(endpoints)
    assert isinstance(rpc, dispatcher.DispatcherBase)
    assert isinstance(notification, dispatcher.DispatcherBase)
    assert rpc.endpoints is endpoints
    assert notification.endpoints is endpoints


def test_servers_dispatcher_endpoints_is_the_callers_list() -> None:
    conf = cfg.ConfigOpts()
    transport = messaging.get_rpc_transport(conf, "fake://")
    try:
        endpoints: list[Any] = [object()]
        rpc_server = messaging.get_rpc_server(
            transport, messaging.Target(topic="t", server="s"), endpoints
        )
        assert rpc_server.dispatcher.endpoints is endpoints
        listener = messaging.get_notification_listener(
            messaging.get_notification_transport(conf, "fake://"),
            [messaging.Target(topic="t")],
            endpoints,
        )
        assert listener.dispatcher.endpoints is endpoints
    finally:
        transport.cleanup()


def test_notification_driver_registered_only_in_oslos_namespace_is_found(tmp_path: Path) -> None:
    # In a process of its own: stevedore caches entry points per process.
    dist = tmp_path / "thirdparty_notify-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-notify\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[oslo.messaging.notify.drivers]\nthirdparty = thirdparty_notify:Driver\n"
    )
    (tmp_path / "thirdparty_notify.py").write_text(
        "from messaging.notify.notifier import Driver as Base\n"
        "SENT = []\n"
        "class Driver(Base):\n"
        "    def notify(self, ctxt, message, priority, retry):\n"
        "        SENT.append((message['event_type'], priority))\n"
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import messaging, thirdparty_notify\n"
        "from oslo_config import cfg\n"
        "t = messaging.get_notification_transport(cfg.ConfigOpts(), 'fake://')\n"
        "messaging.Notifier(t, 'p', driver='thirdparty').info({}, 'e.t', {})\n"
        "try:\n"
        "    messaging.Notifier(t, 'p', driver='no-such-driver')\n"
        "except messaging.DriverLoadFailure as exc:\n"
        "    print(thirdparty_notify.SENT, exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[('e.t', 'INFO')] ")
    assert "oslo.messaging.notify.drivers" in done.stdout
    assert "thirdparty" in done.stdout.split("known names")[-1]


def test_send_notification_command(tmp_path: Path) -> None:
    bus = tmp_path / "bus.db"
    url = f"sqlite:///{bus}"
    conf_file = tmp_path / "service.conf"
    conf_file.write_text("[oslo_messaging_notifications]\ntopics = cli_topic\n")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from messaging.notify.send_notification import run; run()",
            "--config-file",
            str(conf_file),
            "--transport-url",
            url,
            "--publisher-id",
            "cli.host",
            "--event-type",
            "cli.event",
            "--priority",
            "error",
            "the payload",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    transport = messaging.get_notification_transport(cfg.ConfigOpts(), url)
    try:
        received: list[tuple[str, str, Any]] = []
        arrived = threading.Event()

        class Endpoint:
            def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any):
                received.append((publisher_id, event_type, payload))
                arrived.set()

        listener = messaging.get_notification_listener(
            transport, [messaging.Target(topic="cli_topic")], [Endpoint()]
        )
        listener.start()
        try:
            assert arrived.wait(10), "the notification did not arrive within 10 s"
        finally:
            listener.stop()
            listener.wait()
    finally:
        transport.cleanup()
    assert received == [("cli.host", "cli.event", "the payload")]


def test_send_notification_command_fails_loudly() -> None:
    from messaging.notify.send_notification import main

    assert main(["--transport-url", "nosuchdriver://", "x"]) == 1
