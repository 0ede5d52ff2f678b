"""RabbitMQ nodes that the tests run themselves, from Debian's packages in a chroot.

The machine's own RabbitMQ (3.10, node ``rabbit@localhost`` on 5672) is never
touched. Next to it this module runs RabbitMQ 4 (Debian trixie's
``rabbitmq-server``, 4.0.5) from a chroot made with ``debootstrap`` and cached
outside the checkout (:data:`CHROOT`, built once per machine). Each node of
the chroot has its own name, AMQP port, Erlang distribution port, configuration
files and data directory (:class:`Node`); they share the chroot's Erlang cookie
and an epmd of their own (:data:`EPMD_PORT`), so several nodes can later form a
cluster on loopback. The nodes refuse what RabbitMQ 4.3 refuses by default
(transient non-exclusive queues, global QoS, queue master locators).

A node that is not running is started and left running: by ``.ci/run`` before
the tests, or by the first test session that needs it; later sessions reuse it.
Nothing here stops a node except the ``stop`` command and the fault helpers
(:func:`kill_node`, :func:`restart_node`) that the cluster tests use.

:data:`CLUSTER` is three more nodes of the same chroot, joined into one
cluster by :func:`ensure_cluster` (quorum queues are replicated on all three):
the cluster tests kill, restart and cut them off one at a time.

Command line (as root; stdlib only, so it runs before the virtualenv exists)::

    python3 -m tests.rabbitmq_nodes ensure     # build the chroot if absent, start the node
    python3 -m tests.rabbitmq_nodes status
    python3 -m tests.rabbitmq_nodes stop
    python3 -m tests.rabbitmq_nodes ctl list_queues -p /   # rabbitmqctl on the node
    python3 -m tests.rabbitmq_nodes ensure-cluster   # start and join the 3-node cluster
    python3 -m tests.rabbitmq_nodes cluster-status
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CHROOT",
    "CLUSTER",
    "EPMD_PORT",
    "RABBIT4",
    "Node",
    "NodeError",
    "cluster_members",
    "ensure_chroot",
    "ensure_cluster",
    "ensure_running",
    "kill_node",
    "rabbitmqctl",
    "restart_node",
]

#: The cached chroot (override with MESSAGING_RABBITMQ4_CHROOT).
CHROOT = Path(
    os.environ.get("MESSAGING_RABBITMQ4_CHROOT", "/var/cache/messaging-ci/rabbitmq4-trixie")
)
#: Where debootstrap fetches Debian's packages from (override with MESSAGING_DEBIAN_MIRROR).
DEBIAN_MIRROR = os.environ.get("MESSAGING_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBIAN_SUITE = "trixie"
#: The epmd of the chroot's nodes, apart from the machine's (4369).
EPMD_PORT = 4371
#: Seconds a node has to start (the first start of a node also creates its database).
START_TIMEOUT = 120.0
#: Seconds debootstrap may take (about one minute here).
BUILD_TIMEOUT = 1200.0
#: What RabbitMQ 4.3 denies by default, denied here on 4.0.5 as well.
DENIED_FEATURES = ("transient_nonexcl_queues", "global_qos", "queue_master_locator")
_ENV = {
    "HOME": "/var/lib/rabbitmq",
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "ERL_EPMD_PORT": str(EPMD_PORT),
    "ERL_EPMD_ADDRESS": "127.0.0.1",
}


class NodeError(RuntimeError):
    """A node or its chroot could not be made ready; the message says why."""


@dataclass(frozen=True)
class Node:
    """One RabbitMQ node of the chroot.

    Attributes:
        name: the short node name (``rabbit4`` is ``rabbit4@localhost``).
        amqp_port: the AMQP port, on 127.0.0.1.
        dist_port: the Erlang distribution port (nodes of a cluster talk on it).
        denied: the deprecated features the node refuses.
    """

    name: str
    amqp_port: int
    dist_port: int
    denied: tuple[str, ...] = DENIED_FEATURES

    @property
    def nodename(self) -> str:
        """The Erlang node name."""
        return f"{self.name}@localhost"

    @property
    def env_file(self) -> str:
        """The node's ``rabbitmq-env.conf``, as seen inside the chroot."""
        return f"/etc/rabbitmq/{self.name}-env.conf"

    @property
    def config_file(self) -> str:
        """The node's ``rabbitmq.conf``, as seen inside the chroot."""
        return f"/etc/rabbitmq/{self.name}.conf"

    @property
    def startup_log(self) -> str:
        """Where the server's own output goes, as seen inside the chroot."""
        return f"/var/log/rabbitmq/{self.name}-startup.log"

    def env_conf(self) -> str:
        """The text of the node's ``rabbitmq-env.conf``."""
        return (
            "# Written by tests/rabbitmq_nodes.py\n"
            f"NODENAME={self.nodename}\n"
            f"DIST_PORT={self.dist_port}\n"
            f"CONFIG_FILE={self.config_file}\n"
            # Distribution on loopback only, like the AMQP listener.
            "SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'\n"
        )

    def rabbitmq_conf(self) -> str:
        """The text of the node's ``rabbitmq.conf``."""
        denied = "".join(f"deprecated_features.permit.{f} = false\n" for f in self.denied)
        return (
            "# Written by tests/rabbitmq_nodes.py\n"
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            "log.file.level = info\n"
            "log.console = false\n" + denied
        )


#: The single RabbitMQ 4 node of the tests.
RABBIT4 = Node("rabbit4", 5682, 25692)
# Observed with 4.0.5 here: once the members of a cluster deny transient
# non-exclusive queues, the feature flag behind that denial stays enabled in
# the cluster, and a member that restarts runs the flag's check before its
# queue table is loaded and fails to boot ("no_exists, [rabbit_queue, ...]").
# The cluster's nodes never deny it (the single node above covers that denial).
_CLUSTER_DENIED = tuple(f for f in DENIED_FEATURES if f != "transient_nonexcl_queues")
#: The three nodes of the tests' cluster; the first is the one the others join.
CLUSTER = (
    Node("rabbitc1", 5691, 25701, _CLUSTER_DENIED),
    Node("rabbitc2", 5692, 25702, _CLUSTER_DENIED),
    Node("rabbitc3", 5693, 25703, _CLUSTER_DENIED),
)


def _log(message: str) -> None:
    print(f"[rabbitmq_nodes] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    # Test sessions and CI runs that start at once build and start things once.
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_chroot(root: Path = CHROOT) -> None:
    """Build the chroot with debootstrap unless it is there already.

    It is built in ``<root>.tmp`` and renamed once complete, so that an
    interrupted build is started again rather than used.

    Raises:
        NodeError: not root, debootstrap missing or failing.
    """
    if (root / "usr/lib/rabbitmq/bin/rabbitmq-server").exists():
        return
    if os.geteuid() != 0:
        raise NodeError(f"the RabbitMQ 4 chroot {root} is missing and only root can build it")
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise NodeError(
            f"the RabbitMQ 4 chroot {root} is missing and debootstrap is not installed "
            "(apt-get install debootstrap)"
        )
    tmp = root.with_name(root.name + ".tmp")
    if tmp.exists():
        _unmount_proc(tmp)
        shutil.rmtree(tmp)
    _log(f"building {root} with debootstrap ({DEBIAN_SUITE}, rabbitmq-server)")
    started = time.monotonic()
    result = subprocess.run(
        [
            debootstrap,
            "--variant=minbase",
            "--include=rabbitmq-server",
            DEBIAN_SUITE,
            str(tmp),
            DEBIAN_MIRROR,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-10:]
        raise NodeError(f"debootstrap failed (exit {result.returncode}): " + "\n".join(tail))
    tmp.rename(root)
    _log(f"built {root} in {time.monotonic() - started:.0f} s")


def _mount_proc(root: Path) -> None:
    proc = root / "proc"
    if not os.path.ismount(proc):
        proc.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True, timeout=30)


def _unmount_proc(root: Path) -> None:
    proc = root / "proc"
    if os.path.ismount(proc):
        subprocess.run(["umount", "-l", str(proc)], check=False, timeout=30)


def _rabbitmq_ids(root: Path) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "rabbitmq":
            return int(fields[2]), int(fields[3])
    raise NodeError(f"no rabbitmq user in {root}/etc/passwd")


def _in_chroot(root: Path, argv: Sequence[str], node: Node) -> list[str]:
    uid, gid = _rabbitmq_ids(root)
    env = [f"{k}={v}" for k, v in _ENV.items()]
    return [
        "chroot",
        f"--userspec={uid}:{gid}",
        str(root),
        "/usr/bin/env",
        "-i",
        *env,
        f"RABBITMQ_CONF_ENV_FILE={node.env_file}",
        *argv,
    ]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Whether ``host:port`` accepts a TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def rabbitmqctl(
    *args: str, node: Node = RABBIT4, root: Path = CHROOT, timeout: float = 60.0
) -> str:
    """Run ``rabbitmqctl`` of the chroot against ``node``; return its output.

    Raises:
        NodeError: the command failed.
    """
    argv = _in_chroot(root, ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", node.nodename, *args], node)
    result = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise NodeError(
            f"rabbitmqctl {' '.join(args)} on {node.nodename} failed: "
            f"{(result.stderr or result.stdout).strip()}"
        )
    return result.stdout


def _write_config(root: Path, node: Node) -> None:
    uid, gid = _rabbitmq_ids(root)
    for inside, text in (
        (node.env_file, node.env_conf()),
        (node.config_file, node.rabbitmq_conf()),
    ):
        path = root / inside.lstrip("/")
        path.write_text(text)
        os.chown(path, uid, gid)


#: Times a node is started again when its boot fails (see :func:`_start_together`).
BOOT_ATTEMPTS = 3


@dataclass
class _Boot:
    """A node being started: its server process and where its output goes."""

    node: Node
    server: subprocess.Popen[bytes]
    log: Path
    offset: int

    def kill(self) -> None:
        """Kill the server and everything it started (its own session)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.server.wait(timeout=30)


def _launch(root: Path, node: Node) -> _Boot:
    _mount_proc(root)
    _write_config(root, node)
    log = root / node.startup_log.lstrip("/")
    log.parent.mkdir(parents=True, exist_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    _log(f"starting {node.nodename} (AMQP 127.0.0.1:{node.amqp_port}) in {root}")
    with open(log, "ab") as out:
        # A session of its own: the node outlives the test run that started it.
        server = subprocess.Popen(
            _in_chroot(root, ["/usr/lib/rabbitmq/bin/rabbitmq-server"], node),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return _Boot(node, server, log, offset)


def _await_boot(root: Path, boot: _Boot, deadline: float) -> bool:
    """Wait until the node runs; False if its boot failed, so that it may be retried.

    Raises:
        NodeError: it neither started nor failed by ``deadline``; the node's
            server is killed then.
    """
    node = boot.node
    while time.monotonic() < deadline:
        if port_open(node.amqp_port):
            rabbitmqctl("await_startup", node=node, root=root, timeout=START_TIMEOUT)
            return True
        if boot.server.poll() is not None and "BOOT FAILED" in _read_from(boot.log, boot.offset):
            return False
        time.sleep(0.5)
    boot.kill()
    tail = _read_from(boot.log, boot.offset).strip().splitlines()[-15:]
    raise NodeError(
        f"{node.nodename} did not open 127.0.0.1:{node.amqp_port} within {START_TIMEOUT:g} s; "
        f"the end of {boot.log}:\n" + "\n".join(tail)
    )


def _start_together(root: Path, nodes: Sequence[Node]) -> None:
    """Start ``nodes`` at the same time and wait until every one runs.

    Members of a cluster that were all stopped wait at boot for one another
    (each one's database waits for its peers' tables): started one at a time,
    the first one would wait for peers that never come. A node whose boot
    fails is started again a few times (see the note on ``_CLUSTER_DENIED``
    for one cause).

    Raises:
        NodeError: a node failed to boot :data:`BOOT_ATTEMPTS` times, or
            neither started nor failed within :data:`START_TIMEOUT`; every
            node this call launched and that is not running is killed then.
    """
    pending = list(nodes)
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        boots = [_launch(root, node) for node in pending]
        deadline = time.monotonic() + START_TIMEOUT
        failed: list[Node] = []
        try:
            for boot in boots:
                if not _await_boot(root, boot, deadline):
                    failed.append(boot.node)
        except NodeError:
            for boot in boots:
                if not port_open(boot.node.amqp_port):
                    boot.kill()
            raise
        if not failed:
            return
        for node in failed:
            _log(f"{node.nodename} failed to boot (attempt {attempt} of {BOOT_ATTEMPTS})")
        pending = failed
    names = ", ".join(node.nodename for node in pending)
    raise NodeError(
        f"{names} failed to boot {BOOT_ATTEMPTS} times; see their start-up logs in {root}"
    )


def _read_from(path: Path, offset: int) -> str:
    with open(path, "rb") as file:
        file.seek(offset)
        return file.read().decode(errors="replace")


def ensure_running(node: Node = RABBIT4, root: Path = CHROOT) -> bool:
    """Build the chroot if needed and start ``node`` unless it runs already.

    Returns:
        Whether this call started the node.

    Raises:
        NodeError: it could not be made to run (the message says why).
    """
    if port_open(node.amqp_port):
        return False
    with _locked(root):
        if port_open(node.amqp_port):
            return False
        ensure_chroot(root)
        _start_together(root, [node])
        return True


def cluster_members(node: Node, root: Path = CHROOT) -> set[str]:
    """The running nodes of the cluster ``node`` is in, as ``node`` sees it."""
    output = rabbitmqctl("eval", "rabbit_nodes:list_running().", node=node, root=root, timeout=30)
    return set(re.findall(r"'?([\w-]+@localhost)'?", output))


def ensure_cluster(nodes: Sequence[Node] = CLUSTER, root: Path = CHROOT) -> None:
    """Start the nodes that are not running and join them into one cluster.

    Stopped nodes are started together (see :func:`_start_together`). If all
    of them were stopped and they cannot be started again (a cluster left in a
    state its members cannot boot from), their data is wiped and the cluster
    is formed anew: what the tests need is a cluster, not its old queues.

    Raises:
        NodeError: a node could not be started or joined, or the cluster did
            not show every node running within :data:`START_TIMEOUT`.
    """
    first, *others = nodes
    with _locked(root):
        ensure_chroot(root)
        stopped = [node for node in nodes if not port_open(node.amqp_port)]
        if stopped:
            try:
                _start_together(root, stopped)
            except NodeError as exc:
                if len(stopped) < len(nodes):
                    raise
                _log(f"the stopped cluster could not be started again ({exc}); forming it anew")
                for node in nodes:
                    _wipe(root, node)
                _start_together(root, nodes)
        for node in others:
            if first.nodename in cluster_members(node, root):
                continue
            _log(f"joining {node.nodename} to {first.nodename}")
            rabbitmqctl("stop_app", node=node, root=root)
            rabbitmqctl("reset", node=node, root=root)
            rabbitmqctl("join_cluster", first.nodename, node=node, root=root)
            rabbitmqctl("start_app", node=node, root=root, timeout=START_TIMEOUT)
    wanted = {n.nodename for n in nodes}
    deadline = time.monotonic() + START_TIMEOUT
    while (members := cluster_members(first, root)) != wanted:
        if time.monotonic() > deadline:
            raise NodeError(f"the cluster runs {sorted(members)}, not {sorted(wanted)}")
        time.sleep(0.5)


def _wipe(root: Path, node: Node) -> None:
    """Delete ``node``'s database (its queues, users and cluster membership)."""
    data = root / "var/lib/rabbitmq/mnesia"
    for path in data.glob(f"{node.nodename}*"):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _beam_pid(node: Node, root: Path) -> int:
    pid_file = root / f"var/lib/rabbitmq/mnesia/{node.nodename}.pid"
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError) as exc:
        raise NodeError(f"no pid for {node.nodename} in {pid_file}: {exc}") from exc


def kill_node(node: Node, root: Path = CHROOT) -> None:
    """Kill ``node``'s Erlang VM with SIGKILL (a crash: no goodbye to clients or peers)."""
    pid = _beam_pid(node, root)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while port_open(node.amqp_port, timeout=0.2) and time.monotonic() < deadline:
        time.sleep(0.1)


def restart_node(node: Node, root: Path = CHROOT, graceful: bool = True) -> None:
    """Stop ``node`` (gracefully, or not if it is down already) and start it again.

    The node comes back into its cluster by itself; this returns once it
    accepts connections and has started its applications.
    """
    if graceful and port_open(node.amqp_port):
        rabbitmqctl("stop", node=node, root=root, timeout=START_TIMEOUT)
    with _locked(root):
        if not port_open(node.amqp_port):
            _start_together(root, [node])


def stop(node: Node = RABBIT4, root: Path = CHROOT) -> None:
    """Stop ``node`` (only this command stops a node)."""
    with _locked(root):
        if port_open(node.amqp_port):
            rabbitmqctl("stop", node=node, root=root)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(prog="python3 -m tests.rabbitmq_nodes")
    parser.add_argument(
        "command", choices=["ensure", "status", "stop", "ctl", "ensure-cluster", "cluster-status"]
    )
    parser.add_argument("args", nargs="*", help="rabbitmqctl arguments (ctl)")
    options = parser.parse_args(argv)
    try:
        if options.command == "ensure":
            started = time.monotonic()
            if ensure_running():
                _log(f"{RABBIT4.nodename} started in {time.monotonic() - started:.1f} s")
            else:
                _log(f"{RABBIT4.nodename} is running on 127.0.0.1:{RABBIT4.amqp_port}")
        elif options.command == "ensure-cluster":
            started = time.monotonic()
            ensure_cluster()
            names = ", ".join(n.nodename for n in CLUSTER)
            _log(f"cluster of {names} ready after {time.monotonic() - started:.1f} s")
        elif options.command == "cluster-status":
            print(sorted(cluster_members(CLUSTER[0])))
        elif options.command == "status":
            print(rabbitmqctl("status"))
        elif options.command == "stop":
            stop()
        else:
            print(rabbitmqctl(*options.args), end="")
    except (NodeError, OSError, subprocess.SubprocessError) as exc:
        _log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
