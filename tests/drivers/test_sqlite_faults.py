"""The sqlite bus under faults of its file: no send waits without bound, the file stays private.

- A full disk: a small tmpfs of the test's own, filled by a file next to the bus
  (mounting needs root; the test is skipped with the reason elsewhere, except in
  CI, where it fails instead). A send with the default retry gives up after
  ``publish_timeout`` naming the full disk; listeners go on once there is room,
  and, with the bus's disk reserve, while the disk is still full.
- A bus file this process cannot write is refused when the transport is made.
- A bus locked by another process's write does not hold a call past its timeout.
- The file and the directories the driver creates are readable by their owner only.
- Parked messages (the file's dead letters) are bounded in number and bytes.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.core import Outgoing
from messaging.drivers.names import Route
from messaging.drivers.sqlite.options import register_sqlite_opts
from messaging.drivers.sqlite.store import Declaration, Store
from messaging.exceptions import TransportDriverError

#: The bound of every wait, in seconds.
WAIT = 20.0


def make_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="sqlite-faults", default_config_files=[], default_config_dirs=[])
    return conf


@contextlib.contextmanager
def small_disk(tmp_path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on a directory of the test's own, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        reason = "mounting a tmpfs for a full disk needs root and mount(8)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this is a failure)", pytrace=False)
        pytest.skip(reason)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        reason = f"cannot mount a tmpfs: {result.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this is a failure)", pytrace=False)
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30, check=False)


def fill(path: Path) -> None:
    """Write zeros to ``path`` until its file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)
    assert os.statvfs(path.parent).f_bavail == 0


class Inbox:
    def __init__(self) -> None:
        self.received: queue.Queue[Any] = queue.Queue()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        self.received.put(payload["n"])


def test_a_full_disk_fails_a_default_send_after_publish_timeout_and_listeners_recover(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path) as disk:
        url = f"sqlite:///{disk}/bus.db?publish_timeout=1"
        transport = messaging.get_notification_transport(make_conf(), url)
        inbox = Inbox()
        server = messaging.get_notification_listener(
            transport, [messaging.Target(topic="full")], [inbox], executor="threading"
        )
        try:
            server.start()
            server.stop()
            server.wait()  # the queue exists; the messages wait in it
            notifier = messaging.Notifier(
                transport, "p", driver="messagingv2", topics=["full"], raise_errors=True
            )
            for n in range(20):
                notifier.info({}, "before.full", {"n": n})
            fill(disk / "filler")
            started = time.monotonic()
            with pytest.raises(messaging.MessageDeliveryFailure) as caught:
                notifier.info({}, "on.full", {"n": -1, "blob": "x" * 100_000})
            elapsed = time.monotonic() - started
            assert elapsed < 1 + 2, f"the default send took {elapsed:.1f} s with publish_timeout=1"
            assert "disk is full" in str(caught.value)
            assert "0 bytes free" in str(caught.value)
            (disk / "filler").unlink()
            server = messaging.get_notification_listener(
                transport, [messaging.Target(topic="full")], [inbox], executor="threading"
            )
            server.start()
            received = sorted(inbox.received.get(timeout=WAIT) for _ in range(20))
            assert received == list(range(20))
        finally:
            server.stop()
            server.wait()
            transport.cleanup()


def test_listeners_drain_a_full_disk_through_the_reserve_while_sends_fail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_disk(tmp_path, "16m") as disk:
        reserve = disk / "bus.db-reserve"
        url = f"sqlite:///{disk}/bus.db?publish_timeout=1&disk_reserve={2 * 1024 * 1024}"
        transport = messaging.get_notification_transport(make_conf(), url)
        assert reserve.stat().st_size == 2 * 1024 * 1024
        assert _mode(reserve) == "-rw-------"
        inbox = Inbox()
        server = messaging.get_notification_listener(
            transport, [messaging.Target(topic="full")], [inbox], executor="threading"
        )
        try:
            server.start()
            server.stop()
            server.wait()
            notifier = messaging.Notifier(
                transport, "p", driver="messagingv2", topics=["full"], raise_errors=True
            )
            # The write-ahead log is not checkpointed yet: taking them needs room.
            for n in range(200):
                notifier.info({}, "before.full", {"n": n, "blob": "b" * 1000})
            fill(disk / "filler")
            with pytest.raises(messaging.MessageDeliveryFailure, match="disk is full"):
                notifier.info({}, "on.full", {"n": -1, "blob": "x" * 100_000})
            server = messaging.get_notification_listener(
                transport, [messaging.Target(topic="full")], [inbox], executor="threading"
            )
            server.start()
            # Every message is taken and acknowledged with the disk still full.
            received = sorted(inbox.received.get(timeout=WAIT) for _ in range(200))
            assert received == list(range(200))
            deadline = time.monotonic() + WAIT
            while transport._driver.bus.store.usage()[0] and time.monotonic() < deadline:
                time.sleep(0.05)  # the last acknowledgements, made after the endpoint returned
            assert transport._driver.bus.store.usage() == (0, 0)
            assert reserve.stat().st_size == 0, "the reserve was released"
            assert "released its 2097152-byte reserve" in caplog.text
            # Sends leave the room to the listeners, saying why.
            started = time.monotonic()
            with pytest.raises(messaging.MessageDeliveryFailure) as caught:
                notifier.info({}, "still.full", {"n": -2})
            assert time.monotonic() - started < 1 + 2
            assert "disk is full" in str(caught.value)
            assert "2097152-byte disk reserve" in str(caught.value)
            # Replies still go: the request was taken, its caller waits for the answer.
            driver: Any = transport.driver
            driver.bus.store.declare([Declaration("reply_waiting")], time.time() + 60)
            to_reply = Route("", "reply_waiting", "reply_waiting", "")
            assert driver.publish(Outgoing("reply", to_reply, '{"reply": 1}', 0)) == 1
            (disk / "filler").unlink()
            notifier.info({}, "room.again", {"n": 200})
            assert inbox.received.get(timeout=WAIT) == 200
            assert reserve.stat().st_size == 2 * 1024 * 1024, "the reserve is back"
        finally:
            server.stop()
            server.wait()
            transport.cleanup()


@pytest.mark.filterwarnings("ignore:Using fork:DeprecationWarning")  # eventlet, imported by others
def test_a_bus_file_this_process_cannot_write_is_refused_when_the_transport_is_made() -> None:
    # Not under pytest's tmp_path, which only its owner may enter.
    directory = Path(tempfile.mkdtemp(prefix="messaging-read-only-"))
    try:
        directory.chmod(0o777)
        path = directory / "bus.db"
        messaging.get_notification_transport(make_conf(), f"sqlite:///{path}").cleanup()
        if os.geteuid() == 0:  # root writes anything: an unprivileged child makes the transport
            path.chmod(0o644)
            error = _as_nobody(
                lambda: messaging.get_notification_transport(make_conf(), f"sqlite:///{path}")
            )
        else:
            path.chmod(0o444)
            started = time.monotonic()
            with pytest.raises(TransportDriverError) as caught:
                messaging.get_notification_transport(make_conf(), f"sqlite:///{path}")
            assert time.monotonic() - started < 5
            error = f"{type(caught.value).__name__}: {caught.value}"
    finally:
        shutil.rmtree(directory)
    assert error.startswith("TransportDriverError: "), error
    assert "is not readable and writable by this process (mode -r" in error, error


def _as_nobody(action: Callable[[], object]) -> str:
    """Run ``action`` in a forked child with uid and gid 65534; what it raised, as text."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's cleanups
        os.close(read)
        report = "no error"
        try:
            os.setgid(65534)
            os.setuid(65534)
            started = time.monotonic()
            try:
                action()
            except Exception as exc:
                report = f"{type(exc).__name__}: {exc}"
            if time.monotonic() - started > 5:
                report = f"too slow: {report}"
        finally:
            os.write(write, report.encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read().decode()
    os.waitpid(pid, 0)
    return report


def test_a_locked_bus_holds_neither_a_call_nor_a_send_past_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    transport = messaging.get_rpc_transport(make_conf(), f"sqlite:///{path}?publish_timeout=1")
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another process's write, never committed
        client = messaging.get_rpc_client(transport, messaging.Target(topic="locked"), timeout=1)
        started = time.monotonic()
        with pytest.raises(
            (
                messaging.MessageDeliveryFailure,
                messaging.MessagingTimeout,
                messaging.ClientSendError,
            ),
            match="locked",
        ):
            client.call({}, "anything")
        assert time.monotonic() - started < 1 + 1, "the call waited out the busy timeout (10 s)"
        started = time.monotonic()
        with pytest.raises(messaging.MessageDeliveryFailure, match="locked"):
            client.prepare(retry=-1).cast({}, "anything")
        assert time.monotonic() - started < 1 + 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        transport.cleanup()


def _mode(path: Path) -> str:
    return stat.filemode(path.stat().st_mode)


def test_the_bus_and_the_directories_made_for_it_are_private(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    bus = tmp_path / "state" / "messaging" / "bus.db"  # where XDG puts the CLI's default bus
    conf = make_conf()
    register_sqlite_opts(conf)
    conf.set_override("database", str(bus), group="oslo_messaging_sqlite")
    # The usual umask, under which the bus used to be 0644 in 0755 directories.
    previous = os.umask(0o022)
    try:
        transport = messaging.get_notification_transport(conf, "sqlite://")
        try:
            notifier = messaging.Notifier(transport, "p", driver="messagingv2", topics=["t"])
            notifier.info({}, "e", {"n": 1})
            assert _mode(bus) == "-rw-------"
            assert _mode(Path(f"{bus}-wal")) == "-rw-------"
            assert _mode(Path(f"{bus}-shm")) == "-rw-------"
        finally:
            transport.cleanup()
    finally:
        os.umask(previous)
    assert _mode(bus.parent) == "drwx------"
    assert _mode(tmp_path / "state") == "drwx------"
    assert _mode(tmp_path) == "drwxr-xr-x", "an existing directory keeps its mode"


def test_a_bus_any_local_user_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bus.db"
    messaging.get_notification_transport(make_conf(), f"sqlite:///{path}").cleanup()
    path.chmod(0o644)
    messaging.get_notification_transport(make_conf(), f"sqlite:///{path}").cleanup()
    assert "readable by every local user (mode -rw-r--r--)" in caplog.text


def test_a_listener_takes_at_most_prefetch_bytes_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    transport = messaging.get_notification_transport(
        make_conf(), f"sqlite:///{path}?prefetch=16&prefetch_bytes=5000"
    )
    try:
        listener = transport.listen_for_notifications([(messaging.Target(topic="t"), "info")])
        notifier = messaging.Notifier(transport, "p", driver="messagingv2", topics=["t"])
        for n in range(10):
            notifier.info({}, "e", {"n": n, "blob": "x" * 1500})
        first = listener.poll_one(timeout=WAIT)
        assert first is not None
        with contextlib.closing(sqlite3.connect(path)) as conn:
            sizes = [
                row[0]
                for row in conn.execute("SELECT size FROM messages WHERE claimed_by IS NOT NULL")
            ]
        # About 1.7 kB each: two fit in 5000 bytes, where prefetch alone takes all ten.
        assert len(sizes) == 2, sizes
        assert sum(sizes) <= 5000
        first.acknowledge()
        listener.cleanup()
    finally:
        transport.cleanup()


def _park_unreadable(path: Path, url: str, bodies: list[str]) -> None:
    """Have a listener of ``url`` park ``bodies``, written raw as another process would."""
    transport = messaging.get_notification_transport(make_conf(), url)
    try:
        listener = transport.listen_for_notifications([(messaging.Target(topic="t"), "info")])
        writer = Store(str(path), busy_timeout=5.0)
        try:
            for body in bodies:
                assert writer.publish("", "t.info", body) == 1
        finally:
            writer.close()
        store = transport._driver.bus.store
        deadline = time.monotonic() + WAIT
        while store.usage()[0] and time.monotonic() < deadline:
            assert listener.poll_one(timeout=0.05) is None  # each is parked, none handed out
        assert store.usage() == (0, 0)
        listener.cleanup()
    finally:
        transport.cleanup()


def test_parked_messages_are_bounded_in_number_the_oldest_dropped_with_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bus.db"
    url = f"sqlite:///{path}?max_parked=5"
    parked: list[str] = []
    _park_unreadable(path, url, [f"not json {n}" for n in range(12)])
    store = Store(str(path), busy_timeout=5.0)
    try:
        parked[:] = [body for _queue, body, _reason in store.dead_letters()]
        assert parked == [f"not json {n}" for n in range(7, 12)], "the newest five stay"
        assert store.parked_usage() == (5, sum(len(body) for body in parked))
    finally:
        store.close()
    dropped = [r.getMessage() for r in caplog.records if "oldest parked" in r.getMessage()]
    assert len(dropped) == 7
    assert "max_parked = 5" in dropped[-1]
    assert f"it holds 5 parked message(s), {len(''.join(parked))} bytes" in dropped[-1]


def test_parked_messages_are_bounded_in_bytes_the_newest_always_kept(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    url = f"sqlite:///{path}?max_parked_bytes=10000&max_parked=0"
    bodies = [f"{n:04d}" + "x" * 2996 for n in range(5)] + ["big" + "y" * 20_000]
    _park_unreadable(path, url, bodies)
    store = Store(str(path), busy_timeout=5.0)
    try:
        assert [body[:4] for _q, body, _r in store.dead_letters()] == ["bigy"]
        assert store.parked_usage() == (1, 20_003)
    finally:
        store.close()


def test_a_bus_without_the_count_of_parked_messages_gets_it_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    _park_unreadable(path, f"sqlite:///{path}", ["one", "three"])
    # As an earlier release left the file: the dead letters without their count.
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER dead_letter_usage_on_insert")
        conn.execute("DROP TRIGGER dead_letter_usage_on_delete")
        conn.execute("DROP TABLE dead_letter_usage")
        conn.execute(
            "INSERT INTO dead_letters (queue, body, reason, parked_at) VALUES ('q', 'été', 'r', 0)"
        )
    store = Store(str(path), busy_timeout=5.0)
    try:
        assert store.parked_usage() == (3, len("one") + len("three") + len("été".encode()))
    finally:
        store.close()
