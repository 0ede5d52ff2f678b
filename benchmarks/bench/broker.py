"""Transport URLs, RabbitMQ virtual hosts (through ``rabbitmqctl``) and connection counts."""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import quote, unquote, urlsplit, urlunsplit

RABBIT_SCHEMES = ("rabbit", "kombu", "amqp")


def is_rabbit(url: str) -> bool:
    """True for a RabbitMQ URL (the schemes oslo.messaging and kombu use for it)."""
    return urlsplit(url).scheme in RABBIT_SCHEMES


def with_vhost(url: str, vhost: str) -> str:
    """Return ``url`` with its virtual host replaced by ``vhost`` (query kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def user_of(url: str) -> str:
    """The user of the first host of a URL (``guest`` when it has none)."""
    netloc = urlsplit(url).netloc.split(",")[0]
    if "@" not in netloc:
        return "guest"
    return unquote(netloc.rsplit("@", 1)[0].split(":", 1)[0]) or "guest"


def kombu_url(url: str) -> str:
    """The ``amqp://`` URL of the first broker of a ``rabbit://`` URL, for raw kombu."""
    parts = urlsplit(url)
    first = parts.netloc.split(",")[0]
    return urlunsplit(("amqp", first, parts.path or "/", "", ""))


def masked(url: str) -> str:
    """``url`` with passwords replaced by ``***`` (for reports)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    hosts = []
    for host in parts.netloc.split(","):
        if "@" in host:
            creds, address = host.rsplit("@", 1)
            user = creds.split(":", 1)[0]
            host = f"{user}:***@{address}" if ":" in creds else host
        hosts.append(host)
    return urlunsplit(parts._replace(netloc=",".join(hosts)))


class Rabbitmqctl:
    """Runs ``rabbitmqctl`` for virtual hosts and connection counts.

    Raises:
        RuntimeError: (from :meth:`run`) the command failed; its output is in the message.
    """

    def __init__(self, binary: str = "rabbitmqctl") -> None:
        self.binary = binary

    def available(self) -> bool:
        """True if the command exists and reaches the node."""
        if shutil.which(self.binary) is None:
            return False
        try:
            self.run("list_vhosts")
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True

    def run(self, *args: str) -> str:
        """Run ``rabbitmqctl -q ARGS`` and return its output."""
        done = subprocess.run(
            [self.binary, "-q", *args], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def add_vhost(self, vhost: str, user: str) -> None:
        """Create ``vhost`` and give ``user`` every permission on it."""
        self.run("add_vhost", vhost)
        self.run("set_permissions", "-p", vhost, user, ".*", ".*", ".*")

    def delete_vhost(self, vhost: str) -> None:
        """Delete ``vhost`` with everything in it."""
        self.run("delete_vhost", vhost)

    def connections(self, vhost: str) -> int:
        """How many client connections the broker has on ``vhost`` now."""
        lines = self.run("list_connections", "vhost", "--no-table-headers").splitlines()
        return sum(1 for line in lines if line.strip() == vhost)
