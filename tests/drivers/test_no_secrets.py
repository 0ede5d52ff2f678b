"""No password in any log line, error, ``str`` or ``repr``, at DEBUG, on any driver.

Each case runs :mod:`tests.drivers.secrets_probe` (every library's logger at
DEBUG, every error printed) in a process of its own against a URL carrying
:data:`PASSWORD`: a broker that refuses it, a port where nothing listens, a URL
that names hosts both with and without credentials, and the in-process drivers
given credentials they do not use. The CLI runs its ``--debug`` commands the same
way (the issue's ``messaging --transport-url stomp://u:PW@... --debug notify``).
The processes run side by side; the output of each is searched for the password,
as typed and percent-encoded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from tests.brokers import closed_port, require_rabbitmq, require_service

pytestmark = pytest.mark.broker

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The password every URL carries; ':' and '@' make it percent-encoded in a URL.
PASSWORD = "Sekr1t:pa@ss-4711"
QUOTED = urllib.parse.quote(PASSWORD, safe="")
#: The bound of each process, in seconds.
PROCESS_TIMEOUT = 120


def _urls() -> dict[str, str]:
    down = closed_port()
    return {
        "rabbit-refused": f"rabbit://guest:{QUOTED}@127.0.0.1:5672/?publish_confirm_timeout=1",
        "rabbit-down": f"rabbit://guest:{QUOTED}@127.0.0.1:{down}/?publish_confirm_timeout=1",
        "rabbit-mixed-hosts": (
            f"rabbit://guest:{QUOTED}@127.0.0.1:{down},127.0.0.1:{down}/?publish_confirm_timeout=1"
        ),
        "stomp-refused": f"stomp://guest:{QUOTED}@127.0.0.1:61613/",
        "stomp-down": (
            f"stomp://guest:{QUOTED}@127.0.0.1:{down}/"
            "?publish_timeout=1&connect_timeout=1&flavor=rabbitmq"
        ),
        "kombu-redis-refused": f"kombu+redis://probe:{QUOTED}@127.0.0.1:6379/15",
        "kombu-redis-down": f"kombu+redis://probe:{QUOTED}@127.0.0.1:{down}/15?publish_timeout=1",
        "kombu-amqp-refused": f"kombu+amqp://guest:{QUOTED}@127.0.0.1:5672//",
        "memory": f"fake://u:{QUOTED}@h/",
        "sqlite-with-a-host": f"sqlite://u:{QUOTED}@h/bus.db",
    }


def _cli(url: str, *command: str) -> list[str]:
    return [sys.executable, "-m", "messaging.cli", "--transport-url", url, "--debug", *command]


def test_no_driver_shows_the_password_at_debug(tmp_path: Path) -> None:
    require_rabbitmq()
    require_service("127.0.0.1", 61613, "RabbitMQ's STOMP plugin")
    require_service("127.0.0.1", 6379, "Redis")
    urls = _urls()
    commands = {
        name: [sys.executable, "-m", "tests.drivers.secrets_probe", url]
        for name, url in urls.items()
    }
    # kombu waits 10 s for a listener's consuming to start when Redis is down: the
    # other steps say enough there.
    commands["kombu-redis-down"].append("--no-listeners")
    for driver in ("stomp-refused", "rabbit-refused", "kombu-redis-refused"):
        commands[f"cli {driver} notify"] = _cli(urls[driver], "notify", "--retry", "0", "x.y")
        commands[f"cli {driver} call"] = _cli(urls[driver], "call", "--timeout", "2", "m")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    processes = {
        name: subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, command in commands.items()
    }
    outputs = {}
    try:
        for name, process in processes.items():
            outputs[name], _ = process.communicate(timeout=PROCESS_TIMEOUT)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    leaks = {
        name: [line for line in output.splitlines() if PASSWORD in line or QUOTED in line]
        for name, output in outputs.items()
    }
    assert {name: lines for name, lines in leaks.items() if lines} == {}
    # The cases did run into their failures (and were logged at DEBUG).
    assert "refused" in outputs["stomp-refused"].lower()
    assert "sending frame" in outputs["stomp-refused"], "stomp.py's frame log was not seen"
    assert "passcode:****" in outputs["stomp-refused"]
    assert "ACCESS_REFUSED" in outputs["rabbit-refused"]
    assert "invalid username-password" in outputs["kombu-redis-refused"]
    assert "Connection refused" in outputs["stomp-down"]
    assert "DEBUG" in outputs["memory"]
    assert "names a host" in outputs["sqlite-with-a-host"]
