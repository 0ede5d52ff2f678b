"""The cases of issue 13 against the real brokers: what happens now, and how long recovery takes.

Each case of the issue ("No single message or fault silently stops a process")
is reproduced against the services of this machine, in a process of its own
(so that a case that hangs is cut off at ``--case-timeout`` and memory figures
are the case's own), on a fresh virtual host (RabbitMQ) or a fresh file
(sqlite; a case cut off has its virtual hosts deleted by the parent). Only the
consumer-timeout cases change a broker-wide setting (``consumer_timeout`` and
``channel_tick_interval``, for a few seconds, put back as they were, by the
parent if the case was cut off; skipped when another test holds the same
value). The size limit is not changed: oversized messages are sent to RabbitMQ
4, whose default limit is 16 MiB (on 3.10 it is 128 MiB;
``tests/drivers/test_rabbit_faults.py`` lowers it there).
A per-vhost ``consumer-timeout`` policy would avoid the broker-wide change, but
RabbitMQ 4.0.5 did not apply it here (no redelivery within 90 s, classic or
quorum queue)::

    python -m benchmarks.fault_cases                 # every case, one table
    python -m benchmarks.fault_cases --only deep     # the cases whose name holds "deep"
    python -m benchmarks.fault_cases --list

Services: RabbitMQ 3.10 on 127.0.0.1:5672 (guest/guest) with its STOMP plugin on
61613, RabbitMQ 4 on 5682 (``python3 -m tests.rabbitmq_nodes ensure``), Redis on
6379, and ``mount`` as root for the full-disk case (a tmpfs of its own). A case
whose service is missing prints ``skipped`` with the reason.

Prints one row per case: the case (the issue's numbering), the driver and
broker, what happens now (an excerpt of the error, or counts), and the times to
the error or to recovery. Asserts nothing; the whole run takes about three
minutes (the full disk waits out the default ``publish_timeout``, 30 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from oslo_config import cfg

import messaging

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
#: The bound of every wait inside a case, in seconds.
WAIT = 45.0
PASSWORD = "fault-cases-Secret-PW-4711"
#: Names the virtual hosts of one case's process, so that a case cut off leaves none.
VHOST_PREFIX_ENV = "FAULT_CASES_VHOST_PREFIX"


@dataclass
class Row:
    """One line of the table."""

    case: str
    where: str
    now: str
    timing: str


# -- helpers ------------------------------------------------------------------------------------


def make_conf() -> cfg.ConfigOpts:
    """An empty configuration, as a service without a config file has."""
    conf = cfg.ConfigOpts()
    conf([], project="fault-cases", default_config_files=[], default_config_dirs=[])
    return conf


def ms(seconds: float) -> str:
    """``seconds`` as milliseconds, for the table."""
    return f"{seconds * 1000:.0f} ms"


def cut(text: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def ctl3(*args: str) -> str:
    """Run rabbitmqctl of the local RabbitMQ 3.10; its output."""
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=True
    ).stdout


def ctl4(*args: str) -> str:
    """Run rabbitmqctl of the RabbitMQ 4 node (started if needed); its output."""
    from tests import rabbitmq_nodes

    rabbitmq_nodes.ensure_running()
    return rabbitmq_nodes.rabbitmqctl(*args)


@contextlib.contextmanager
def rabbit(version: int) -> Iterator[tuple[str, Callable[..., str], str]]:
    """A fresh virtual host on RabbitMQ 3.10 or 4: its URL, its rabbitmqctl, its name."""
    ctl, port = (ctl3, 5672) if version == 3 else (ctl4, 5682)
    vhost = f"{os.environ.get(VHOST_PREFIX_ENV, 'fault-cases-')}{uuid.uuid4().hex[:10]}"
    ctl("add_vhost", vhost)
    try:
        ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"rabbit://guest:guest@127.0.0.1:{port}/{vhost}", ctl, vhost
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError, RuntimeError):
            ctl("delete_vhost", vhost)


def closed_port() -> int:
    """A loopback port where nothing listens."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Records(logging.Handler):
    """Keeps every log record with the time it was emitted; waits for one that matches."""

    def __init__(self, level: int = logging.DEBUG) -> None:
        super().__init__(level)
        self.records: list[tuple[float, logging.LogRecord]] = []
        self.changed = threading.Condition()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Keep ``record`` with the time."""
        with self.changed:
            self.records.append((time.monotonic(), record))
            self.changed.notify_all()

    def wait_for(self, text: str, timeout: float = WAIT) -> tuple[float, str] | None:
        """When the first record whose message holds ``text`` came, and its message."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for when, record in self.records:
                    message = record.getMessage()
                    if text in message:
                        return when, message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.changed.wait(remaining)

    def longest_line(self) -> int:
        """The length of the longest formatted record (message and traceback)."""
        with self.changed:
            return max((len(self.format(r)) for _, r in self.records), default=0)


@contextlib.contextmanager
def recording(level: int = logging.DEBUG) -> Iterator[Records]:
    """Records of the root logger at ``level`` for the block."""
    handler = Records(level)
    root = logging.getLogger()
    previous = root.level
    root.setLevel(min(previous, level) if previous else level)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


class Arrivals:
    """A notification endpoint noting when each payload ``n`` arrived."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.changed = threading.Condition()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        """Note the notification."""
        with self.changed:
            self.seen.setdefault(int(payload.get("n", -99)), time.monotonic())
            self.changed.notify_all()

    def wait(self, n: int, timeout: float = WAIT) -> float | None:
        """When ``n`` arrived (waiting up to ``timeout``), or None."""
        with self.changed:
            self.changed.wait_for(lambda: n in self.seen, timeout)
            return self.seen.get(n)


@contextlib.contextmanager
def listening(transport: messaging.Transport, topic: str, endpoint: Any) -> Iterator[None]:
    """A started notification listener of ``topic``."""
    server = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [endpoint], executor="threading"
    )
    server.start()
    try:
        yield
    finally:
        server.stop()
        server.wait()


class Echo:
    """RPC endpoint."""

    def echo(self, ctxt: Any, value: Any) -> Any:
        """Return ``value``."""
        return value

    def sized(self, ctxt: Any, size: int) -> str:
        """Return ``size`` characters."""
        return "x" * size


@contextlib.contextmanager
def serving(transport: messaging.Transport, topic: str) -> Iterator[messaging.RPCClient]:
    """An RPC server of ``topic`` and a client of it."""
    server = messaging.get_rpc_server(
        transport, messaging.Target(topic=topic, server="s1"), [Echo()], executor="threading"
    )
    server.start()
    try:
        yield messaging.RPCClient(transport, messaging.Target(topic=topic), timeout=WAIT)
    finally:
        server.stop()
        server.wait()


def timed(action: Callable[[], Any]) -> tuple[float, str]:
    """Run ``action``; how long it took and what it raised (or returned)."""
    started = time.monotonic()
    try:
        result = action()
    except Exception as exc:
        return time.monotonic() - started, f"{type(exc).__name__}: {exc}"
    return time.monotonic() - started, f"returned {result!r}"


def cli(*args: str, timeout: float = 60.0) -> tuple[float, int, str]:
    """Run the ``messaging`` command line; its time, exit code and output (stdout + stderr)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "messaging.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tempfile.gettempdir(),
        check=False,
    )
    return time.monotonic() - started, done.returncode, done.stdout + done.stderr


DEEP = "[" * 100_000 + "]" * 100_000


# -- 1. one oversized message ---------------------------------------------------------------------


def case_oversized_notification_rabbitmq4() -> Row:
    """1: a notification above RabbitMQ 4's limit (16 MiB by default)."""
    limit = 16 * MiB
    with rabbit(4) as (url, _ctl, _vhost), recording(logging.ERROR) as log:
        transport = messaging.get_notification_transport(make_conf(), url)
        arrivals, topic = Arrivals(), f"big-{uuid.uuid4().hex[:8]}"
        try:
            with listening(transport, topic, arrivals):
                notifier = messaging.Notifier(
                    transport, "faults", driver="messagingv2", topics=[topic]
                )
                notifier.info({}, "warm.up", {"n": 0})
                notifier.flush(WAIT)
                started = time.monotonic()
                notifier.info({}, "too.big", {"n": 1, "big": "x" * (limit + 1)})
                reported = log.wait_for("broker's limit")
                sent = time.monotonic()
                notifier.info({}, "next.one", {"n": 2})
                unconfirmed = notifier.flush(WAIT)
                confirmed = time.monotonic()
                handled = arrivals.wait(2)
        finally:
            transport.cleanup()
    where = "rabbit, RabbitMQ 4 (limit 16 MiB)"
    if reported is None:
        return Row("1 oversized notification", where, "no error logged", f"waited {WAIT:.0f} s")
    return Row(
        "1 oversized notification",
        where,
        f"logged: {cut(reported[1])}; next: {'handled' if handled else 'LOST'}, "
        f"{unconfirmed} unconfirmed",
        f"reported after {ms(reported[0] - started)}; next confirmed after "
        f"{ms(confirmed - sent)}, handled after {ms((handled or confirmed) - sent)}",
    )


def case_oversized_cast_and_reply_rabbitmq4() -> Row:
    """1: a cast and a reply above RabbitMQ 4's 16 MiB."""
    with rabbit(4) as (url, _ctl, _vhost):
        transport = messaging.get_rpc_transport(make_conf(), url)
        try:
            with serving(transport, f"big-{uuid.uuid4().hex[:8]}") as client:
                client.call({}, "echo", value=0)
                cast_took, cast_error = timed(
                    lambda: client.cast({}, "echo", value="x" * (16 * MiB + 1))
                )
                next_took, next_result = timed(lambda: client.call({}, "echo", value=1))
                reply_took, reply_error = timed(lambda: client.call({}, "sized", size=16 * MiB + 1))
                after_took, after_result = timed(lambda: client.call({}, "echo", value=2))
        finally:
            transport.cleanup()
    return Row(
        "1 oversized cast, reply",
        "rabbit, RabbitMQ 4",
        f"cast: {cut(cast_error)}; reply: {cut(reply_error)}; next calls "
        f"{next_result}, {after_result}",
        f"cast failed after {ms(cast_took)}, next call {ms(next_took)}; caller got the reply's "
        f"error after {ms(reply_took)}, next call {ms(after_took)}",
    )


# -- 2. an error on the consuming connection ------------------------------------------------------


class SlowFirst:
    """Holds the first delivery of n=0 (longer than the consumer timeout); notes the next one."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.held = threading.Event()
        self.redelivered = threading.Event()
        self.held_at = self.redelivered_at = 0.0

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        """Note the notification."""
        if payload["n"] != 0:
            return
        if not self.held.is_set():
            self.held_at = time.monotonic()
            self.held.set()
            self.release.wait(WAIT)
            return
        self.redelivered_at = time.monotonic()
        self.redelivered.set()


class SettingBusy(Exception):
    """A broker setting already has the value a case would give it: another test holds it."""


@contextlib.contextmanager
def rabbit_setting(ctl: Callable[..., str], key: str, value: int) -> Iterator[None]:
    """``application:set_env(rabbit, key, value)`` for the block, then as it was.

    The setting is the whole broker's. When it already has ``value``, another
    test changed it for a while: the case is skipped rather than take that for
    the value to put back.

    Raises:
        SettingBusy: the setting already has ``value``.
    """
    before = ctl("eval", f"application:get_env(rabbit, {key}).").strip()
    if before == f"{{ok,{value}}}":
        raise SettingBusy(f"{key} is {value} already (another test's setting?)")
    ctl("eval", f"application:set_env(rabbit, {key}, {value}).")
    try:
        yield
    finally:
        found = re.fullmatch(r"\{ok,(.*)\}", before)
        if found:
            ctl("eval", f"application:set_env(rabbit, {key}, {found.group(1)}).")
        else:  # it was not set before: the built-in default applies again
            ctl("eval", f"application:unset_env(rabbit, {key}).")


def _consumer_timeout(version: int) -> Row:
    where = f"rabbit, RabbitMQ {4 if version == 4 else '3.10'}"
    with rabbit(version) as (url, ctl, _vhost), recording(logging.WARNING) as log:
        transport = messaging.get_notification_transport(make_conf(), url)
        endpoint, topic = SlowFirst(), f"slow-{uuid.uuid4().hex[:8]}"
        try:
            with (
                rabbit_setting(ctl, "consumer_timeout", 1000),
                rabbit_setting(ctl, "channel_tick_interval", 200),
                listening(transport, topic, endpoint),
            ):
                notifier = messaging.Notifier(transport, "f", driver="messagingv2", topics=[topic])
                notifier.info({}, "slow", {"n": 0})
                endpoint.held.wait(WAIT)
                endpoint.redelivered.wait(WAIT)
                endpoint.release.set()
        except SettingBusy as exc:
            return Row("2 consumer timeout", where, f"skipped: {exc}", "")
        finally:
            endpoint.release.set()
            transport.cleanup()
    closed = log.wait_for("closed the channel consuming", 0)
    if not endpoint.redelivered.is_set():
        return Row("2 consumer timeout", where, "NOT redelivered", f"waited {WAIT:.0f} s")
    return Row(
        "2 consumer timeout",
        where,
        f"logged: {cut(closed[1]) if closed else '(nothing)'}; channel reopened, message "
        "redelivered",
        f"redelivered {endpoint.redelivered_at - endpoint.held_at:.1f} s after it was taken "
        "(consumer_timeout set to 1 s, channel_tick_interval to 0.2 s, for the case)",
    )


def case_consumer_timeout_rabbitmq3() -> Row:
    """2: RabbitMQ 3.10's consumer timeout (set to 1 s for the case) closes a consuming channel."""
    return _consumer_timeout(3)


def case_consumer_timeout_rabbitmq4() -> Row:
    """2: RabbitMQ 4's consumer timeout (set to 1 s for the case) closes a consuming channel."""
    return _consumer_timeout(4)


# -- 3. JSON nested 100,000 deep -----------------------------------------------------------------


def _deep(
    transport: messaging.Transport, topic: str, inject: Callable[[], None]
) -> tuple[str, str]:
    arrivals = Arrivals()
    with recording(logging.ERROR) as log, listening(transport, topic, arrivals):
        started = time.monotonic()
        inject()
        discarded = log.wait_for("Cannot decode")
        notifier = messaging.Notifier(transport, "f", driver="messagingv2", topics=[topic])
        notifier.info({}, "after.deep", {"n": 1})
        handled = arrivals.wait(1)
    if discarded is None:
        return "NOT discarded", f"waited {WAIT:.0f} s"
    return (
        f"logged: {cut(discarded[1])}; next {'handled' if handled else 'NOT handled'}",
        f"discarded {ms(discarded[0] - started)} after it was sent, next handled "
        f"{ms((handled or time.monotonic()) - started)} after",
    )


def case_deep_body_rabbitmq3() -> Row:
    """3: a body nested 100,000 deep, published raw to a listener's queue, RabbitMQ 3.10."""
    import amqp

    with rabbit(3) as (url, _ctl, vhost):
        transport = messaging.get_notification_transport(make_conf(), url)
        topic = f"deep-{uuid.uuid4().hex[:8]}"

        def inject() -> None:
            raw = amqp.Connection(host="127.0.0.1:5672", virtual_host=vhost)
            raw.connect()
            try:
                raw.channel().basic_publish_confirm(
                    amqp.Message(DEEP.encode()), exchange="", routing_key=f"{topic}.info"
                )
            finally:
                raw.close()

        try:
            now, timing = _deep(transport, topic, inject)
        finally:
            transport.cleanup()
    return Row("3 100,000-deep body", "rabbit, RabbitMQ 3.10", now, timing)


def case_deep_body_sqlite() -> Row:
    """3: a body nested 100,000 deep, written raw into a sqlite bus."""
    from messaging.drivers.sqlite.store import Store

    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/bus.db"
        transport = messaging.get_notification_transport(make_conf(), f"sqlite:///{path}")
        topic = "deep"

        def inject() -> None:
            store = Store(path, busy_timeout=5.0)
            try:
                store.publish("", f"{topic}.info", DEEP)
            finally:
                store.close()

        try:
            now, timing = _deep(transport, topic, inject)
        finally:
            transport.cleanup()
    return Row("3 100,000-deep body", "sqlite", now, timing)


def case_deep_body_stomp() -> Row:
    """3: a body nested 100,000 deep, sent raw over STOMP (RabbitMQ's plugin)."""
    from tests.drivers.test_stomp_rabbit_conformance import stomp_publish_raw

    with rabbit(3) as (_url, _ctl, vhost):
        url = f"stomp://guest:guest@127.0.0.1:61613/{vhost}"
        transport = messaging.get_notification_transport(make_conf(), url)
        topic = f"deep-{uuid.uuid4().hex[:8]}"
        try:
            now, timing = _deep(
                transport, topic, lambda: stomp_publish_raw(transport, topic, False, [DEEP])
            )
        finally:
            transport.cleanup()
    return Row("3 100,000-deep body", "stomp, RabbitMQ 3.10", now, timing)


def case_deep_body_redis() -> Row:
    """3: a body nested 100,000 deep, published raw to a kombu+redis queue."""
    from tests.drivers.test_kombu_memory_conformance import kombu_publish_raw

    url = f"kombu+redis://127.0.0.1:6379/14?global_keyprefix=fault-cases-{uuid.uuid4().hex[:8]}-"
    transport = messaging.get_notification_transport(make_conf(), url)
    topic = f"deep-{uuid.uuid4().hex[:8]}"
    try:
        now, timing = _deep(
            transport, topic, lambda: kombu_publish_raw(transport, f"{topic}.info", [DEEP])
        )
    finally:
        transport.cleanup()
    return Row("3 100,000-deep body", "kombu+redis, Redis", now, timing)


# -- 4. blocking without bound outside RabbitMQ ---------------------------------------------------


def case_sqlite_read_only_bus() -> Row:
    """4: a bus file the process cannot write (an unprivileged child, as root writes anything)."""
    directory = Path(tempfile.mkdtemp(prefix="fault-cases-"))
    try:
        directory.chmod(0o777)
        path = directory / "bus.db"
        messaging.get_notification_transport(make_conf(), f"sqlite:///{path}").cleanup()
        if os.geteuid() == 0:
            path.chmod(0o644)
        else:
            path.chmod(0o444)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            report = ""
            try:
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                took, what = timed(
                    lambda: messaging.Notifier(
                        messaging.get_notification_transport(make_conf(), f"sqlite:///{path}"),
                        "p",
                        driver="messagingv2",
                        topics=["t"],
                    ).info({}, "e", {})
                )
                report = json.dumps([took, what])
            finally:
                os.write(write, report.encode())
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            took, what = json.loads(pipe.read().decode() or '[0, "no report"]')
        os.waitpid(pid, 0)
    finally:
        shutil.rmtree(directory)
    return Row(
        "4 read-only bus file",
        "sqlite",
        cut(what.replace(str(directory), "DIR")),
        f"error after {ms(took)}, when the transport is made",
    )


def case_sqlite_full_disk() -> Row:
    """4: a full disk under a sqlite bus (a 16 MiB tmpfs): a default send, listeners."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return Row("4 full disk", "sqlite", "skipped: mounting a tmpfs needs root", "")
    mount = Path(tempfile.mkdtemp(prefix="fault-cases-disk-"))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    try:
        transport = messaging.get_notification_transport(make_conf(), f"sqlite:///{mount}/bus.db")
        arrivals = Arrivals()
        try:
            with listening(transport, "full", Arrivals()):
                pass  # the queue exists; what follows waits in it
            notifier = messaging.Notifier(
                transport, "p", driver="messagingv2", topics=["full"], raise_errors=True
            )
            for n in range(200):
                notifier.info({}, "before", {"n": n, "blob": "b" * 1000})
            with open(mount / "filler", "wb") as filler, contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            took, error = timed(
                lambda: notifier.info({}, "on.full", {"n": -1, "blob": "x" * 100_000})
            )
            started = time.monotonic()
            with listening(transport, "full", arrivals):
                drained = arrivals.wait(199)
            taken = len(arrivals.seen)
            (mount / "filler").unlink()
            after_took, after = timed(lambda: notifier.info({}, "room", {"n": 500}))
        finally:
            transport.cleanup()
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30, check=False)
        with contextlib.suppress(OSError):
            mount.rmdir()
    return Row(
        "4 full disk",
        "sqlite (16 MiB tmpfs)",
        f"default send: ...{error.replace(str(mount), 'DISK')[-120:]}; listener took "
        f"{taken}/200 with the disk full; send with room: {after}",
        f"send failed after {took:.1f} s (publish_timeout 30 s); 200 drained in "
        f"{ms((drained or time.monotonic()) - started)}; next send {ms(after_took)}",
    )


def _call_fails(url: str, what: str, where: str, case: str) -> Row:
    with recording(logging.CRITICAL):
        started = time.monotonic()
        try:
            transport = messaging.get_rpc_transport(make_conf(), url)
        except Exception as exc:
            return Row(case, where, cut(f"{type(exc).__name__}: {exc}"), f"at once: {ms(0)}")
        try:
            made = time.monotonic() - started
            client = messaging.RPCClient(transport, messaging.Target(topic="nobody"), timeout=5)
            took, error = timed(lambda: client.call({}, "echo", value=1))
        finally:
            transport.cleanup()
    return Row(
        case,
        where,
        cut(error.replace(PASSWORD, "<PASSWORD>")),
        f"{what} after {ms(took)} (transport made in {ms(made)})",
    )


def case_stomp_wrong_password() -> Row:
    """4: call(timeout=5) over STOMP with a wrong password."""
    url = f"stomp://guest:{PASSWORD}@127.0.0.1:61613/"
    return _call_fails(url, "call(timeout=5) failed", "stomp, RabbitMQ 3.10", "4 wrong password")


def case_stomp_broker_down() -> Row:
    """4: call(timeout=5) over STOMP with nothing listening on the port."""
    url = f"stomp://guest:guest@127.0.0.1:{closed_port()}/?flavor=rabbitmq"
    return _call_fails(url, "call(timeout=5) failed", "stomp, nothing on the port", "4 broker down")


def case_stomp_broker_down_retry_0() -> Row:
    """4: a notification with retry=0 over STOMP with nothing listening: what the error says."""
    url = f"stomp://guest:guest@127.0.0.1:{closed_port()}/?flavor=rabbitmq"
    transport = messaging.get_notification_transport(make_conf(), url)
    try:
        notifier = messaging.Notifier(
            transport, "p", driver="messagingv2", topics=["t"], retry=0, raise_errors=True
        )
        took, error = timed(lambda: notifier.info({}, "e", {}))
    finally:
        transport.cleanup()
    return Row("4 broker down, retry=0", "stomp, nothing on the port", cut(error), f"{ms(took)}")


def case_redis_broker_down() -> Row:
    """4: call(timeout=5) over kombu+redis with nothing listening on the port."""
    url = f"kombu+redis://127.0.0.1:{closed_port()}/14"
    return _call_fails(
        url, "call(timeout=5) failed", "kombu+redis, nothing on the port", "4 broker down"
    )


def case_rabbit_broker_down() -> Row:
    """4: call(timeout=5) over RabbitMQ with nothing listening on the port."""
    url = f"rabbit://guest:guest@127.0.0.1:{closed_port()}/"
    return _call_fails(
        url, "call(timeout=5) failed", "rabbit, nothing on the port", "4 broker down"
    )


# -- 5. memory bounded by bytes ------------------------------------------------------------------


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def case_memory_with_the_broker_silent() -> Row:
    """5: 1,000 notifications of 100 kB from 100 threads while RabbitMQ 3.10 answers nothing."""
    return _memory(100)


def _memory(senders: int) -> Row:
    from tests.faultproxy import FaultProxy

    with rabbit(3) as (_url, _ctl, vhost), FaultProxy(5672) as proxy, recording(logging.CRITICAL):
        url = proxy.url(vhost) + "?publish_confirm_timeout=2"
        transport = messaging.get_notification_transport(make_conf(), url)
        try:
            notifier = messaging.Notifier(transport, "p", driver="messagingv2", topics=["t"])
            notifier.info({}, "connect", {"n": -1})
            notifier.flush(WAIT)
            payload = "x" * 100_000
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")  # the peak RSS starts again from here
            base = _rss_kib("VmRSS:")
            proxy.freeze()
            failures: list[int] = []
            started = time.monotonic()

            each = 1000 // senders

            def sender(first: int) -> None:
                for n in range(first, first + each):
                    try:
                        notifier.prepare(raise_errors=True).info({}, "e", {"n": n, "p": payload})
                    except messaging.MessagingException:
                        failures.append(n)

            threads = [threading.Thread(target=sender, args=(k * each,)) for k in range(senders)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT * 4)
            took = time.monotonic() - started
            peak = _rss_kib("VmHWM:")
            publisher = transport.driver.broker.publisher  # type: ignore[attr-defined]
            held, held_bytes = publisher._in_flight, publisher._in_flight_bytes
            proxy.thaw()
        finally:
            transport.cleanup()
    return Row(
        "5 1,000 x 100 kB, broker silent",
        "rabbit, RabbitMQ 3.10 behind a frozen proxy",
        f"{1000 - len(failures)} taken into the pipeline, bounded by "
        f"notification_pipeline_bytes (32 MiB): {held} awaiting their confirms at the end "
        f"({held_bytes / MiB:.1f} MiB); "
        f"{len(failures)} raised MessageDeliveryFailure to their sender after waiting for room "
        f"(publish_confirm_timeout 2 s); {senders} sending thread(s)",
        f"peak RSS {(peak - base) / 1024:.0f} MiB above the start; all ended after {took:.1f} s",
    )


# -- 6. secrets ----------------------------------------------------------------------------------


def case_cli_debug_stomp_password() -> Row:
    """6: messaging --debug notify over STOMP with a password the broker refuses."""
    url = f"stomp://guest:{PASSWORD}@127.0.0.1:61613/"
    took, code, output = cli("--transport-url", url, "--debug", "notify", "x.y")
    return Row(
        "6 --debug with a STOMP password",
        "stomp, RabbitMQ 3.10 (CLI)",
        f"password {'PRINTED' if PASSWORD in output else 'absent'} in {len(output)} bytes of "
        f"output ({output.count(chr(10))} lines); exit {code}",
        f"{ms(took)}",
    )


def case_transport_url_str() -> Row:
    """6: str and repr of a TransportURL with a password."""
    url = messaging.TransportURL.parse(make_conf(), f"rabbit://guest:{PASSWORD}@127.0.0.1:5672/")
    shown = f"{url} {url!r}"
    return Row(
        "6 str(TransportURL)",
        "any",
        f"password {'SHOWN' if PASSWORD in shown else 'absent'}: {cut(str(url))}",
        "-",
    )


def case_sqlite_file_modes() -> Row:
    """6: the modes of a sqlite bus created under umask 022, and of the directories made for it."""
    import stat

    with tempfile.TemporaryDirectory() as directory:
        bus = Path(directory) / "state" / "messaging" / "bus.db"
        previous = os.umask(0o022)
        try:
            transport = messaging.get_notification_transport(make_conf(), f"sqlite:///{bus}")
            messaging.Notifier(transport, "p", driver="messagingv2", topics=["t"]).info({}, "e", {})
            modes = [
                stat.filemode(p.stat().st_mode)
                for p in (bus, Path(f"{bus}-wal"), bus.parent, bus.parent.parent)
            ]
            transport.cleanup()
        finally:
            os.umask(previous)
    return Row(
        "6 bus file modes",
        "sqlite (umask 022)",
        f"bus {modes[0]}, -wal {modes[1]}, directories {modes[2]} {modes[3]}",
        "-",
    )


# -- 7. smaller -----------------------------------------------------------------------------------


class FailsOnBig:
    """An endpoint that fails on a notification with its payload in the exception."""

    def __init__(self) -> None:
        self.failed = threading.Event()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, md: Any) -> None:
        """Note the notification."""
        self.failed.set()
        raise ValueError(f"cannot handle {payload}")


def case_fifty_mb_failing_endpoint() -> Row:
    """7: an endpoint failing on a 50 MB notification (RabbitMQ 3.10): its longest log line."""
    with rabbit(3) as (url, _ctl, _vhost), recording(logging.WARNING) as log:
        transport = messaging.get_notification_transport(make_conf(), url)
        endpoint, topic = FailsOnBig(), f"fifty-{uuid.uuid4().hex[:8]}"
        try:
            with listening(transport, topic, endpoint):
                notifier = messaging.Notifier(transport, "p", driver="messagingv2", topics=[topic])
                started = time.monotonic()
                notifier.info({}, "big", {"blob": "x" * 50_000_000})
                endpoint.failed.wait(WAIT)
                logged = log.wait_for("not handled") or log.wait_for("Exception during", 1)
                took = time.monotonic() - started
        finally:
            transport.cleanup()
        longest, records = log.longest_line(), len(log.records)
    return Row(
        "7 50 MB failing in an endpoint",
        "rabbit, RabbitMQ 3.10",
        f"{records} log records, the longest {longest} characters "
        f"(traceback included){'' if logged else '; nothing logged'}",
        f"logged {took:.1f} s after the send",
    )


def case_replies_to_a_missing_queue() -> Row:
    """7: 2,000 replies to reply queues that do not exist (RabbitMQ 3.10): threads started."""
    from messaging import delayed

    with rabbit(3) as (url, _ctl, _vhost), recording(logging.CRITICAL):
        transport = messaging.get_rpc_transport(
            make_conf(), url + "?kombu_missing_consumer_retry_timeout=2"
        )
        before = {t.ident for t in threading.enumerate()}
        try:
            driver: Any = transport.driver
            started = time.monotonic()
            for n in range(2000):
                driver.send_reply(f"reply_{uuid.uuid4().hex}", f"m{n}", '{"x": 1}', False)
            sent = time.monotonic() - started
            deadline, most = time.monotonic() + 10, 0
            while time.monotonic() < deadline:
                pending = delayed.shared().pending()
                most = max(most, pending)
                if most and pending == 0:
                    break
                time.sleep(0.05)
            threads = [t.name for t in threading.enumerate() if t.ident not in before]
        finally:
            transport.cleanup()
    return Row(
        "7 2,000 replies, no queue",
        "rabbit, RabbitMQ 3.10",
        f"{len(threads)} thread(s) started ({', '.join(sorted(set(threads)))}); up to {most} "
        "retries pending at once",
        f"2,000 sent in {ms(sent)}",
    )


def case_reply_queue_after_cleanup() -> Row:
    """7: the reply queue of a transport that made a call, after cleanup() (RabbitMQ 3.10)."""
    with rabbit(3) as (url, ctl, vhost):
        transport = messaging.get_rpc_transport(make_conf(), url)
        with serving(transport, f"rq-{uuid.uuid4().hex[:8]}") as client:
            client.call({}, "echo", value=1)
        reply = [
            q for q in ctl("list_queues", "-p", vhost, "name").split() if q.startswith("reply_")
        ]
        started = time.monotonic()
        transport.cleanup()
        took = time.monotonic() - started
        left = [
            q for q in ctl("list_queues", "-p", vhost, "name").split() if q.startswith("reply_")
        ]
    return Row(
        "7 reply queue at cleanup",
        "rabbit, RabbitMQ 3.10",
        f"reply queues before cleanup: {len(reply)}, after: {len(left)}",
        f"cleanup() took {ms(took)}",
    )


def case_cli_bad_password() -> Row:
    """7: messaging call and ping with a password RabbitMQ refuses: exit codes."""
    url = f"rabbit://guest:{PASSWORD}@127.0.0.1:5672/"
    call_took, call_code, call_out = cli("--transport-url", url, "call", "--timeout", "10", "echo")
    ping_took, ping_code, _ = cli("--transport-url", url, "ping", "--timeout", "10")
    last = call_out.strip().splitlines()[-1] if call_out.strip() else ""
    return Row(
        "7 CLI, bad password",
        "rabbit, RabbitMQ 3.10 (CLI)",
        f"call exit {call_code}, ping exit {ping_code} (the guide: 5); "
        f"{cut(last.replace(PASSWORD, '<PASSWORD>'))}",
        f"call {ms(call_took)}, ping {ms(ping_took)} (process start included)",
    )


CASES: dict[str, Callable[[], Row]] = {
    name.removeprefix("case_").replace("_", "-"): function
    for name, function in sorted(globals().items(), key=lambda item: item[0])
    if name.startswith("case_") and callable(function)
}
ORDER = [
    "oversized-notification-rabbitmq4",
    "oversized-cast-and-reply-rabbitmq4",
    "consumer-timeout-rabbitmq3",
    "consumer-timeout-rabbitmq4",
    "deep-body-rabbitmq3",
    "deep-body-sqlite",
    "deep-body-stomp",
    "deep-body-redis",
    "sqlite-read-only-bus",
    "sqlite-full-disk",
    "stomp-wrong-password",
    "stomp-broker-down",
    "stomp-broker-down-retry-0",
    "redis-broker-down",
    "rabbit-broker-down",
    "memory-with-the-broker-silent",
    "cli-debug-stomp-password",
    "transport-url-str",
    "sqlite-file-modes",
    "fifty-mb-failing-endpoint",
    "replies-to-a-missing-queue",
    "reply-queue-after-cleanup",
    "cli-bad-password",
]


def run_one(name: str) -> None:
    """Run one case in this process and print its row as JSON (the parent reads it)."""
    logging.getLogger().setLevel(logging.CRITICAL)
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        row = CASES[name]()
    except BaseException as exc:  # pytest's skip (from tests.brokers) is a BaseException
        row = Row(name, "?", f"failed: {cut(f'{type(exc).__name__}: {exc}')}", "")
    print("ROW " + json.dumps(asdict(row)), flush=True)
    sys.stdout.flush()
    os._exit(0)  # threads a case left behind (a daemon of a dead broker) do not hold the exit


#: The broker settings a case changes for a while (the consumer-timeout cases).
SETTINGS = ("consumer_timeout", "channel_tick_interval")


def _snapshot() -> dict[tuple[int, str], str]:
    """The settings of both brokers now, as ``application:get_env`` prints them."""
    found = {}
    for version, ctl in ((3, ctl3), (4, ctl4)):
        for key in SETTINGS:
            with contextlib.suppress(Exception):
                found[(version, key)] = ctl("eval", f"application:get_env(rabbit, {key}).").strip()
    return found


def _restore(snapshot: dict[tuple[int, str], str]) -> None:
    """Put back a setting that a case cut off at --case-timeout left changed."""
    for (version, key), before in snapshot.items():
        ctl = ctl3 if version == 3 else ctl4
        with contextlib.suppress(Exception):
            if ctl("eval", f"application:get_env(rabbit, {key}).").strip() == before:
                continue
            found = re.fullmatch(r"\{ok,(.*)\}", before)
            if found:
                ctl("eval", f"application:set_env(rabbit, {key}, {found.group(1)}).")
            else:  # it was not set before the run
                ctl("eval", f"application:unset_env(rabbit, {key}).")
            print(f"  put back {key} on RabbitMQ {version}", file=sys.stderr, flush=True)


def _delete_vhosts(prefix: str) -> None:
    """Delete the virtual hosts a case that was cut off left on either RabbitMQ."""
    for ctl in (ctl3, ctl4):
        with contextlib.suppress(Exception):
            for vhost in ctl("list_vhosts", "name").split():
                if vhost.startswith(prefix):
                    ctl("delete_vhost", vhost)


def run_all(names: list[str], case_timeout: float) -> list[Row]:
    """Run each case in a process of its own; a row per case, in order."""
    rows = []
    snapshot = _snapshot() if any(name.startswith("consumer-timeout") for name in names) else {}
    for name in names:
        started = time.monotonic()
        prefix = f"fault-cases-{uuid.uuid4().hex[:6]}-"
        try:
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.fault_cases", "--case", name],
                capture_output=True,
                text=True,
                timeout=case_timeout,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), VHOST_PREFIX_ENV: prefix},
                check=False,
            )
            found = [line for line in done.stdout.splitlines() if line.startswith("ROW ")]
            if found:
                row = Row(**json.loads(found[-1][4:]))
            else:
                output = (done.stderr or done.stdout).strip().splitlines()
                tail = cut(output[-1] if output else "")
                row = Row(name, "?", f"no row (exit {done.returncode}): {tail}", "")
        except subprocess.TimeoutExpired:
            row = Row(name, "?", f"cut off after {case_timeout:.0f} s", "")
            _delete_vhosts(prefix)
            _restore(snapshot)
        print(f"  {name}: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def table(rows: list[Row]) -> str:
    """The rows as a plain-text table (cells wrapped to their column)."""
    import textwrap

    widths = (26, 24, 84, 46)
    heads = Row("case", "driver, broker", "what happens now", "time to the error / recovery")
    lines = []
    for index, row in enumerate([heads, *rows]):
        cells = [
            textwrap.wrap(text, width) or [""]
            for text, width in zip(asdict(row).values(), widths, strict=True)
        ]
        for k in range(max(len(c) for c in cells)):
            lines.append(
                " | ".join(
                    (cell[k] if k < len(cell) else "").ljust(width)
                    for cell, width in zip(cells, widths, strict=True)
                ).rstrip()
            )
        if index == 0:
            lines.append("-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def main() -> None:
    """Parse the command line and run the cases."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the cases whose name holds this")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--case-timeout", type=float, default=120.0)
    args = parser.parse_args()
    if args.case:
        run_one(args.case)
    if args.list:
        for name in ORDER:
            print(f"{name}: {(CASES[name].__doc__ or '').strip()}")
        return
    names = [name for name in ORDER if args.only in name]
    started = time.monotonic()
    rows = run_all(names, args.case_timeout)
    print(table(rows))
    print(f"\n{len(rows)} cases in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
