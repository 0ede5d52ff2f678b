"""The command with no configuration at all: the embedded transport, and the demo."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, Result, require_sqlite

NOTIFICATIONS = 100
NOTIFY_WORKERS = 4


@pytest.fixture(autouse=True)
def _sqlite(tmp_path: Path) -> None:
    require_sqlite(tmp_path)


def default_bus(cli: Cli) -> Path:
    return Path(cli.env["XDG_STATE_HOME"]) / "messaging" / "bus.db"


def test_the_embedded_transport_is_used_and_announced(bare_cli: Cli) -> None:
    bus = default_bus(bare_cli)
    assert not bus.exists()
    result = bare_cli.run("notify", "hello.world")
    assert result.code == 0, result.stderr
    assert result.stderr_lines == [
        f"messaging notify: using the embedded transport sqlite:///{bus}; "
        "set --transport-url or MESSAGING_TRANSPORT_URL to use another"
    ]
    assert bus.exists()


def test_relative_xdg_state_home_is_ignored(bare_cli: Cli) -> None:
    cli = Cli({**bare_cli.env, "XDG_STATE_HOME": "relative/dir"}, None, cwd=bare_cli.cwd)
    result = cli.run("notify", "hello.world")
    assert result.code == 0, result.stderr
    expected = Path(cli.env["HOME"]) / ".local" / "state" / "messaging" / "bus.db"
    assert f"sqlite:///{expected};" in result.stderr
    assert expected.exists()


def test_listen_count_100_sees_100_notify_processes(bare_cli: Cli) -> None:
    listener = bare_cli.start("listen", "--count", str(NOTIFICATIONS), "--json", "--timeout", "120")
    listener.wait_ready()

    def notify(n: int) -> Result:
        return bare_cli.run(
            "notify", "--publisher-id", f"proc{n}", "load.test", json.dumps({"n": n})
        )

    with concurrent.futures.ThreadPoolExecutor(NOTIFY_WORKERS) as pool:
        results = list(pool.map(notify, range(NOTIFICATIONS)))
    for result in results:
        assert result.code == 0, result.stderr
        assert "using the embedded transport" in result.stderr
    listened = listener.finish(timeout=120)
    assert listened.code == 0, listened.stderr
    records = [json.loads(line) for line in listened.stdout.splitlines()]
    assert sorted(r["payload"]["n"] for r in records) == list(range(NOTIFICATIONS))
    assert {r["publisher_id"] for r in records} == {f"proc{n}" for n in range(NOTIFICATIONS)}
    assert "using the embedded transport" in listened.stderr


def test_demo_runs_both_sides_and_exits_0(bare_cli: Cli) -> None:
    result = bare_cli.run("demo", timeout=120)
    assert result.code == 0, result.stdout + result.stderr
    out = result.stdout
    for event_type in (
        "compute.instance.create.start",
        "compute.instance.create.end",
        "compute.instance.delete.error",
    ):
        assert any(
            line.startswith("[listener] ") and event_type in line for line in out.splitlines()
        ), out
    assert "[rpc server] received add(a=2, b=3) -> 5" in out
    assert "[rpc server] received record(" in out
    assert '[demo] result: "pong"' in out
    # A temporary bus, never the user's: nothing stale can come in.
    assert not default_bus(bare_cli).exists()


def test_python_dash_m_messaging_is_the_command(bare_cli: Cli) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "messaging", "--help"],
        env=bare_cli.env,
        cwd=bare_cli.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "notify" in result.stdout and "demo" in result.stdout
