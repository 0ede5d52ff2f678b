"""A missing optional package: exit code 3 and the extra to install, never an internal error.

Each case hides the package from a fresh interpreter (``sys.modules[name] =
None`` makes its import fail) rather than uninstalling anything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import RUN_TIMEOUT

RUNNER = """\
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from messaging.cli.main import main
sys.exit(main(sys.argv[2:]))
"""

METRICS_CONF = (
    "[DEFAULT]\ntransport_url = fake://\n[oslo_messaging_metrics]\nmetrics_enabled = true\n"
)


@pytest.mark.parametrize(
    ("hidden", "args", "what", "extra"),
    [
        (
            "redis",
            ["--transport-url", "kombu+redis://127.0.0.1:6379/15", "notify", "x.y"],
            "kombu+redis://",
            "redis",
        ),
        # kombu's redis transport imports packaging.version at its top.
        (
            "packaging",
            ["--transport-url", "kombu+redis://127.0.0.1:6379/15", "notify", "x.y"],
            "kombu+redis://",
            "redis",
        ),
        (
            "stomp",
            ["--transport-url", "stomp://127.0.0.1:61613/", "notify", "x.y"],
            "stomp://",
            "stomp",
        ),
        (
            "eventlet",
            ["--transport-url", "fake://", "serve", "--executor", "eventlet", "json:JSONDecoder"],
            "the eventlet executor",
            "eventlet",
        ),
        (
            "prometheus_client",
            ["--config-file", "metrics.conf", "notify", "x.y"],
            "metrics",
            "metrics",
        ),
    ],
    ids=["redis", "packaging", "stomp", "eventlet", "prometheus_client"],
)
def test_a_missing_package_names_the_extra(
    cli_env: dict[str, str], tmp_path: Path, hidden: str, args: list[str], what: str, extra: str
) -> None:
    (tmp_path / "metrics.conf").write_text(METRICS_CONF)
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, hidden, *args],
        env=cli_env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    command = next(arg for arg in args if arg in ("notify", "serve"))
    assert lines[-1] == (
        f"messaging {command}: {what} needs the module "
        f"{hidden!r}, which is not installed: pip install 'messaging-fleet[{extra}]'"
    ), done.stderr
    assert "internal error" not in done.stderr
    assert "Traceback" not in done.stderr
