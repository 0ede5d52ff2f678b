"""Usage and errors of the ``messaging`` command: one line on stderr, a documented exit code."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.brokers import require_service
from tests.cli.conftest import RUN_TIMEOUT, Cli, Result

FAKE = "fake://"


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.code == code, (result.code, result.stderr)
    lines = result.stderr_lines
    assert len(lines) == 1, lines
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def fake_cli(cli_env: dict[str, str], tmp_path: Path) -> Cli:
    return Cli(cli_env, FAKE, cwd=tmp_path)


def test_help_lists_every_subcommand(fake_cli: Cli) -> None:
    result = fake_cli.run("--help")
    assert result.code == 0
    for command in ("notify", "listen", "call", "cast", "ping", "serve", "demo"):
        assert command in result.stdout
    assert "exit codes" in result.stdout


def test_no_subcommand_prints_usage_and_fails(fake_cli: Cli) -> None:
    result = fake_cli.run()
    assert result.code == 2
    assert "usage: messaging" in result.stderr


def test_console_script_is_installed_next_to_the_interpreter() -> None:
    script = Path(sys.executable).parent / "messaging"
    assert script.exists(), f"{script} missing: reinstall with pip install -e ."
    done = subprocess.run(
        [str(script), "--version"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("messaging ")


def test_unknown_option_is_one_line(fake_cli: Cli) -> None:
    result = fake_cli.run("notify", "--colour", "red", "x.y")
    assert_one_line_error(result, 2, "messaging notify:", "--colour")


def test_bad_payload_json(fake_cli: Cli) -> None:
    result = fake_cli.run("notify", "compute.x", '{"a": 1')
    assert_one_line_error(result, 2, "PAYLOAD_JSON is not valid JSON", "line 1 column 8")


def test_call_arguments_must_be_an_object(fake_cli: Cli) -> None:
    result = fake_cli.run("call", "add", "[1, 2]")
    assert_one_line_error(result, 2, "ARGS_JSON must be a JSON object", "not an array")


def test_unknown_transport(fake_cli: Cli) -> None:
    result = fake_cli.run("--transport-url", "nosuch://host/", "notify", "x.y")
    assert_one_line_error(result, 2, "nosuch", "known names:", "rabbit")


def test_unknown_executor_is_usage_without_stevedore_noise(fake_cli: Cli) -> None:
    # serve logs at WARNING (it runs as a service does): stevedore's own warning
    # about the missing name would show there.
    result = fake_cli.run("serve", "--executor", "threadin", "json:JSONDecoder")
    assert_one_line_error(result, 2, "'threadin'", "known names:", "blocking, ", "threading")


def test_unknown_transport_from_the_environment(cli_env: dict[str, str], tmp_path: Path) -> None:
    cli = Cli({**cli_env, "MESSAGING_TRANSPORT_URL": "nosuch://"}, None, cwd=tmp_path)
    result = cli.run("ping")
    assert_one_line_error(result, 2, "nosuch")


def test_malformed_transport_url(fake_cli: Cli) -> None:
    result = fake_cli.run("--transport-url", "rabbit://host:notaport/", "notify", "x.y")
    assert_one_line_error(result, 3, "notaport")


def test_missing_config_file(fake_cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nope.conf"
    cli = Cli(fake_cli.env, None, cwd=tmp_path)
    result = cli.run("--config-file", str(missing), "notify", "x.y")
    assert_one_line_error(result, 3, "config file not found", str(missing))


def test_config_file_with_unknown_transport(cli_env: dict[str, str], tmp_path: Path) -> None:
    conf = tmp_path / "service.conf"
    conf.write_text("[DEFAULT]\ntransport_url = bogus://somewhere/\n")
    cli = Cli(cli_env, None, cwd=tmp_path)
    result = cli.run("--config-file", str(conf), "notify", "x.y")
    assert_one_line_error(result, 2, "bogus", "known names:")


def test_unparsable_config_file(cli_env: dict[str, str], tmp_path: Path) -> None:
    conf = tmp_path / "broken.conf"
    conf.write_text("this is not an ini file\n")
    cli = Cli(cli_env, None, cwd=tmp_path)
    result = cli.run("--config-file", str(conf), "notify", "x.y")
    assert_one_line_error(result, 3, str(conf))


@pytest.mark.parametrize(
    ("command", "text", "line"),
    [
        # Read by the call itself, when it needs its timeout.
        (
            ("call", "m"),
            "[DEFAULT]\ntransport_url = fake://\nrpc_response_timeout = abc\n",
            "[DEFAULT] rpc_response_timeout = abc",
        ),
        # An option of the driver, registered and read when the transport is made.
        (
            ("notify", "x.y"),
            "[DEFAULT]\ntransport_url = rabbit://\n"
            "[oslo_messaging_rabbit]\nheartbeat_timeout_threshold = soon\n",
            "[oslo_messaging_rabbit] heartbeat_timeout_threshold = soon",
        ),
    ],
    ids=["default-group", "driver-group"],
)
def test_a_bad_value_in_a_config_file_names_option_group_and_file(
    cli_env: dict[str, str], tmp_path: Path, command: tuple[str, ...], text: str, line: str
) -> None:
    conf = tmp_path / "service.conf"
    conf.write_text(text)
    cli = Cli(cli_env, None, cwd=tmp_path)
    result = cli.run("--config-file", str(conf), *command)
    assert_one_line_error(result, 3, str(conf), line, "invalid literal for int()")
    assert "LocationInfo" not in result.stderr
    assert "on the server" not in result.stderr


def test_debug_shows_the_traceback(fake_cli: Cli) -> None:
    result = fake_cli.run("--debug", "--transport-url", "nosuch://", "notify", "x.y")
    assert result.code == 2
    assert "Traceback" in result.stderr
    assert result.stderr_lines[-1].startswith("messaging notify: ")


def test_global_options_may_follow_the_subcommand(fake_cli: Cli, tmp_path: Path) -> None:
    cli = Cli(fake_cli.env, None, cwd=tmp_path)
    result = cli.run("notify", "--transport-url", "nosuch://", "x.y")
    assert_one_line_error(result, 2, "nosuch")


def test_broker_down_is_one_line(fake_cli: Cli) -> None:
    # Port 1 on the loopback: nothing listens there, the connection is refused.
    down = "rabbit://guest:guest@127.0.0.1:1/"
    result = fake_cli.run("--transport-url", down, "notify", "--retry", "0", "x.y")
    assert_one_line_error(result, 5, "Connection refused")


def test_broker_down_for_a_cast(fake_cli: Cli) -> None:
    down = "rabbit://guest:guest@127.0.0.1:1/"
    result = fake_cli.run("--transport-url", down, "cast", "--retry", "0", "m")
    assert_one_line_error(result, 5, "Connection refused")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("no_colon_here", "is not MODULE:ENDPOINT"),
        ("no_such_module_xyz:Thing", "cannot import 'no_such_module_xyz'"),
        ("json:NoSuchClass", "has no 'NoSuchClass'"),
        ("needs_args:Endpoint", "cannot make needs_args:Endpoint with no arguments"),
        ("broken_module:Endpoint", "importing 'broken_module'"),
    ],
)
def test_serve_with_an_endpoint_that_cannot_be_loaded(
    fake_cli: Cli, tmp_path: Path, spec: str, fragment: str
) -> None:
    (tmp_path / "needs_args.py").write_text(
        "class Endpoint:\n    def __init__(self, required):\n        pass\n"
    )
    (tmp_path / "broken_module.py").write_text("raise RuntimeError('boom at import')\n")
    result = fake_cli.run("serve", "--topic", "t", spec)
    assert_one_line_error(result, 2, fragment)


def test_listen_rejects_a_zero_count(fake_cli: Cli) -> None:
    result = fake_cli.run("listen", "--count", "0")
    assert_one_line_error(result, 2, "--count must be at least 1")


def test_call_to_nobody_is_undeliverable(fake_cli: Cli) -> None:
    # fake:// lives in one process: the call cannot reach any server.
    result = fake_cli.run("call", "--topic", "nobody", "--timeout", "5", "m")
    assert_one_line_error(result, 6, "no server listens on topic 'nobody'")


REFUSED = {
    "stomp": ("stomp://guest:wrong-password@127.0.0.1:61613/", 61613, "Access refused"),
    "kombu+redis": (
        "kombu+redis://nobody:wrong-password@127.0.0.1:6379/15",
        6379,
        "invalid username-password",
    ),
    "rabbit": ("rabbit://guest:wrong-password@127.0.0.1:5672/", 5672, "ACCESS_REFUSED"),
}


@pytest.mark.broker
@pytest.mark.parametrize("command", ["call", "ping"])
@pytest.mark.parametrize("driver", ["stomp", "kombu+redis", "rabbit"])
def test_refused_credentials_are_exit_code_5_at_once(
    cli_env: dict[str, str], tmp_path: Path, driver: str, command: str
) -> None:
    url, port, words = REFUSED[driver]
    require_service("127.0.0.1", port, driver)
    cli = Cli(cli_env, url, cwd=tmp_path)
    started = time.monotonic()
    args = ("call", "--timeout", "3", "m") if command == "call" else ("ping", "--timeout", "3")
    result = cli.run(*args)
    # The guide: 5, the broker could not be reached (not 4, a timeout), and at once.
    assert_one_line_error(result, 5, words)
    assert time.monotonic() - started < 3
    assert "wrong-password" not in result.stderr


@pytest.mark.broker
@pytest.mark.parametrize(
    "args",
    [
        ("notify", "x.y"),
        ("cast", "m"),
        ("status", "--timeout", "3"),
        ("parked", "list"),
        ("listen", "--count", "1", "--timeout", "3"),
    ],
    ids=lambda args: args[0],
)
def test_a_refused_login_ends_every_command_at_once(
    cli_env: dict[str, str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    # `parked list` and `status` talk to RabbitMQ through a one-off wait for the
    # connection, which lasted out its timeout (120 s for parked) on a refusal.
    url, port, words = REFUSED["rabbit"]
    require_service("127.0.0.1", port, "rabbit")
    started = time.monotonic()
    result = Cli(cli_env, url, cwd=tmp_path).run(*args, timeout=30)
    assert result.code == 5, (result.code, result.stderr)
    assert words in result.stderr_lines[-1]
    assert time.monotonic() - started < 3
