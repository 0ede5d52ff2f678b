"""The pure parts of the command line, in process: paths, URLs, error lines, output lines."""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

import pytest

from messaging import exceptions as mx
from messaging.cli.commands import plain
from messaging.cli.errors import CliError, ExitCode, describe
from messaging.cli.jsonargs import parse_json, parse_object
from messaging.cli.listen import NotificationPrinter, format_line
from messaging.cli.main import build_parser
from messaging.cli.notify import DEFAULT_RETRY, bounded_retry
from messaging.cli.session import Session, default_bus_path, embedded_url


def test_default_bus_path_follows_xdg_state_home() -> None:
    path = default_bus_path({"XDG_STATE_HOME": "/srv/state", "HOME": "/home/u"})
    assert path == Path("/srv/state/messaging/bus.db")


@pytest.mark.parametrize("state_home", ["", "relative/state"])
def test_default_bus_path_falls_back_to_home(state_home: str) -> None:
    path = default_bus_path({"XDG_STATE_HOME": state_home, "HOME": "/home/u"})
    assert path == Path("/home/u/.local/state/messaging/bus.db")


def test_embedded_url_of_an_absolute_path_has_four_slashes() -> None:
    assert embedded_url(Path("/home/u/bus.db")) == "sqlite:////home/u/bus.db"


def test_url_precedence_option_then_environment_then_default(tmp_path: Path) -> None:
    env = {"MESSAGING_TRANSPORT_URL": "rabbit://env/", "HOME": str(tmp_path)}
    assert Session("rabbit://opt/", environ=env).explicit_url == "rabbit://opt/"
    assert Session(None, environ=env).explicit_url == "rabbit://env/"
    err = io.StringIO()
    session = Session(None, environ={"HOME": str(tmp_path)}, stderr=err, prog="messaging x")
    assert session.explicit_url is None
    bus = tmp_path / ".local" / "state" / "messaging" / "bus.db"
    assert session.describe_url() == f"sqlite:///{bus}"
    assert err.getvalue() == (
        f"messaging x: using the embedded transport sqlite:///{bus}; "
        "set --transport-url or MESSAGING_TRANSPORT_URL to use another\n"
    )
    assert bus.parent.is_dir()


def test_config_file_url_is_read_as_a_service_reads_it(tmp_path: Path) -> None:
    conf = tmp_path / "svc.conf"
    conf.write_text(
        "[DEFAULT]\ntransport_url = rabbit://u:secret@h1:5672/\n"
        "[oslo_messaging_notifications]\ntransport_url = rabbit://u:secret@h2:5672/\n"
    )
    session = Session(None, [str(conf)], environ={"HOME": str(tmp_path)})
    assert session.describe_url() == "rabbit://u:****@h1:5672/"
    assert session.describe_url(notifications=True) == "rabbit://u:****@h2:5672/"


def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (CliError("x", ExitCode.USAGE), ExitCode.USAGE),
        (mx.InvalidTransportURL("x://", "bad"), ExitCode.CONFIG),
        (mx.DriverLoadFailure("x", "no plugin"), ExitCode.CONFIG),
        (_caused(mx.DriverLoadFailure("x", "no plugin"), LookupError("x")), ExitCode.USAGE),
        (_caused(mx.ExecutorLoadFailure("x", "no plugin"), LookupError("x")), ExitCode.USAGE),
        (mx.MessagingTimeout("slow"), ExitCode.TIMEOUT),
        (mx.MessageDeliveryFailure("down"), ExitCode.UNREACHABLE),
        (
            mx.MessageUndeliverable(Exception("NO_ROUTE"), "openstack", "t", {}),
            ExitCode.UNDELIVERABLE,
        ),
        (mx.RemoteError("KeyError", "'k'", "tb"), ExitCode.FAILED),
        (mx.MessagingException("other"), ExitCode.FAILED),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED),
        (ZeroDivisionError("bug"), ExitCode.INTERNAL),
    ],
)
def test_every_error_is_one_line_with_its_exit_code(exc: BaseException, code: ExitCode) -> None:
    got_code, message = describe(exc)
    assert got_code == code
    assert message and "\n" not in message


def test_an_internal_error_says_to_use_debug() -> None:
    assert describe(ValueError("oops\nmore"))[1] == (
        "internal error: ValueError: oops (run with --debug for the traceback)"
    )


def test_a_value_error_from_outside_the_files_shows_its_source_not_a_repr() -> None:
    from oslo_config import cfg

    error = cfg.ConfigSourceValueError(
        "Value for option x from LocationInfo(location=<Locations.environment: (6, True)>, "
        "detail='OS_DEFAULT__X') is not valid: bad"
    )
    assert describe(error) == (
        ExitCode.CONFIG,
        "Value for option x from OS_DEFAULT__X is not valid: bad",
    )


def test_parse_json_errors_name_the_argument() -> None:
    assert parse_json("[1, 2]", "PAYLOAD_JSON") == [1, 2]
    with pytest.raises(CliError, match=r"PAYLOAD_JSON is not valid JSON: .* line 1 column 2") as e:
        parse_json("{", "PAYLOAD_JSON")
    assert e.value.code == ExitCode.USAGE
    with pytest.raises(CliError, match=r"ARGS_JSON must be a JSON object .* not a string"):
        parse_object('"text"', "ARGS_JSON")


def test_bounded_retry_never_means_forever() -> None:
    assert bounded_retry(None, -1) == DEFAULT_RETRY
    assert bounded_retry(None, 5) == 5
    assert bounded_retry(0, 5) == 0
    assert bounded_retry(None) == DEFAULT_RETRY


def test_format_line_text_and_json() -> None:
    record = {
        "priority": "INFO",
        "event_type": "a.b",
        "publisher_id": "p1",
        "payload": {"z": 1, "a": [True, None]},
        "message_id": "m",
        "timestamp": "2025-01-01 00:00:00.000001",
        "context": {},
    }
    assert format_line(record, as_json=False) == (
        '2025-01-01 00:00:00.000001 INFO a.b p1 {"a": [true, null], "z": 1}'
    )
    assert format_line(record, as_json=True).startswith('{"context": {}, "event_type": "a.b"')


def test_printer_counts_filters_and_requeues_past_its_count() -> None:
    out = io.StringIO()
    printer = NotificationPrinter(["info"], out, event_glob="compute.*", count=1, can_requeue=True)
    meta = {"message_id": "m", "timestamp": "t"}
    printer.info({}, "p", "network.x", {}, meta)  # type: ignore[attr-defined]
    assert printer.skipped == 1 and not printer.done.is_set()
    printer.info({}, "p", "compute.x", {}, meta)  # type: ignore[attr-defined]
    assert printer.done.is_set() and printer.printed == 1
    assert printer.info({}, "p", "compute.y", {}, meta) == "requeue"  # type: ignore[attr-defined]
    assert out.getvalue().count("\n") == 1


def test_plain_takes_out_inline_markup_and_leaves_code_alone() -> None:
    text = (
        "``messaging listen``, :class:`~messaging.cli.demo_endpoints.Calculator`, :func:`a.b`, "
        ":ref:`the guide <cli>`, `Sphinx <https://x>`_, *em*, **strong**; f(**kwargs), 2*3*4"
    )
    assert plain(text) == (
        "messaging listen, Calculator, a.b, the guide, Sphinx, em, strong; f(**kwargs), 2*3*4"
    )


def test_every_help_text_is_plain() -> None:
    parser = build_parser()
    commands: dict[str, argparse.ArgumentParser] = parser.commands  # type: ignore[attr-defined]
    assert "demo" in commands
    for text in [parser.format_help(), *(sub.format_help() for sub in commands.values())]:
        assert not re.search(r"``|:\w+:`|`_", text), text
