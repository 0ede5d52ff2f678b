"""``sqlite://`` URLs: where the file is, query overrides, and clear errors for bad ones.

The convention is SQLAlchemy's: ``sqlite:///relative/bus.db`` is relative to the
current directory, ``sqlite:////abs/bus.db`` is absolute, and ``sqlite://``
uses the ``[oslo_messaging_sqlite] database`` option.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

import messaging
from messaging.drivers.sqlite import SqliteDriver
from messaging.drivers.sqlite.bus import open_buses
from messaging.drivers.sqlite.options import SQLITE_GROUP, default_database, register_sqlite_opts
from messaging.exceptions import InvalidTransportURL, TransportDriverError

Open = Callable[..., SqliteDriver]


def make_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="sqlite-url", default_config_files=[], default_config_dirs=[])
    return conf


@pytest.fixture
def open_driver() -> Iterator[Open]:
    """Open a transport on a URL and return its driver; every one is cleaned up."""
    transports: list[messaging.Transport] = []

    def make(url: str, conf: cfg.ConfigOpts | None = None) -> SqliteDriver:
        transport = messaging.get_notification_transport(conf or make_conf(), url)
        transports.append(transport)
        driver = transport.driver
        assert isinstance(driver, SqliteDriver)
        return driver

    yield make
    for transport in transports:
        transport.cleanup()
    assert not open_buses(), "a bus is still open after every transport was cleaned up"


# -- where the file is ---------------------------------------------------------------------


def test_three_slashes_is_relative_to_the_current_directory(
    open_driver: Open, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    driver = open_driver("sqlite:///data/bus.db")
    assert driver.path == str(tmp_path / "data" / "bus.db")
    assert (tmp_path / "data" / "bus.db").is_file()


def test_four_slashes_is_an_absolute_path(open_driver: Open, tmp_path: Path) -> None:
    target = tmp_path / "abs" / "bus.db"
    driver = open_driver(f"sqlite:///{target}")  # f"sqlite:///" + "/tmp/..." = four slashes
    assert driver.path == str(target)
    assert target.is_file()


def test_tilde_is_the_home_directory(
    open_driver: Open, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    driver = open_driver("sqlite:///~/bus.db")
    assert driver.path == str(tmp_path / "bus.db")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///"])
def test_no_path_uses_the_database_option(open_driver: Open, tmp_path: Path, url: str) -> None:
    conf = make_conf()
    register_sqlite_opts(conf)
    conf.set_override("database", str(tmp_path / "state" / "bus.db"), group=SQLITE_GROUP)
    driver = open_driver(url, conf)
    assert driver.path == str(tmp_path / "state" / "bus.db")


def test_percent_encoded_path(open_driver: Open, tmp_path: Path) -> None:
    driver = open_driver(f"sqlite:///{tmp_path}/with%20space/bus.db")
    assert driver.path == str(tmp_path / "with space" / "bus.db")


def test_transports_on_one_file_share_one_bus(open_driver: Open, tmp_path: Path) -> None:
    first = open_driver(f"sqlite:///{tmp_path}/bus.db")
    second = open_driver(f"sqlite:///{tmp_path}/./bus.db")
    assert first.bus is second.bus


# -- the query -------------------------------------------------------------------------------


def test_query_overrides_options(open_driver: Open, tmp_path: Path) -> None:
    driver = open_driver(
        f"sqlite:///{tmp_path}/bus.db?visibility_timeout=5&max_messages=7&wakeup=poll"
        "&prefetch=2&max_bytes=0"
    )
    assert driver.settings.visibility_timeout == 5.0
    assert driver.settings.max_messages == 7
    assert driver.settings.max_bytes == 0
    assert driver.settings.prefetch == 2
    assert driver.bus.watcher.mode == "poll"


def test_configuration_file_options_are_read(open_driver: Open, tmp_path: Path) -> None:
    conf = make_conf()
    register_sqlite_opts(conf)
    conf.set_override("visibility_timeout", 12.5, group=SQLITE_GROUP)
    driver = open_driver(f"sqlite:///{tmp_path}/bus.db?max_messages=3", conf)
    assert driver.settings.visibility_timeout == 12.5
    assert driver.settings.max_messages == 3


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("no_such_option=1", "no_such_option"),
        ("visibility_timeout=soon", "visibility_timeout"),
        ("visibility_timeout=0", "visibility_timeout"),
        ("wakeup=telepathy", "wakeup"),
        ("max_bytes=-1", "max_bytes"),
    ],
)
def test_bad_query_is_an_invalid_url_naming_the_option(
    open_driver: Open, tmp_path: Path, query: str, named: str
) -> None:
    with pytest.raises(InvalidTransportURL, match=named):
        open_driver(f"sqlite:///{tmp_path}/bus.db?{query}")


# -- URLs that name no usable file ---------------------------------------------------------


def test_a_host_is_refused(open_driver: Open) -> None:
    with pytest.raises(InvalidTransportURL, match="names a host") as caught:
        open_driver("sqlite://localhost/bus.db")
    assert "sqlite:////absolute/path.db" in str(caught.value)


def test_memory_database_is_refused(open_driver: Open) -> None:
    with pytest.raises(InvalidTransportURL, match="other processes"):
        open_driver("sqlite:///:memory:")


@pytest.mark.parametrize("suffix", ["", "/"])
def test_a_directory_is_refused(open_driver: Open, tmp_path: Path, suffix: str) -> None:
    with pytest.raises(InvalidTransportURL, match="directory"):
        open_driver(f"sqlite:///{tmp_path}{suffix}")


def test_a_directory_that_cannot_be_created_is_named(open_driver: Open, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(InvalidTransportURL, match="cannot create the directory") as caught:
        open_driver(f"sqlite:///{blocker}/sub/bus.db")
    assert str(blocker / "sub") in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_directory_is_named(open_driver: Open, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(InvalidTransportURL, match="not writable") as caught:
            open_driver(f"sqlite:///{locked}/bus.db")
        assert str(locked) in str(caught.value)
    finally:
        locked.chmod(0o700)


# -- files that are not a bus ----------------------------------------------------------------


def test_a_database_of_another_application_is_refused(open_driver: Open, tmp_path: Path) -> None:
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    conn.close()
    with pytest.raises(TransportDriverError, match="another application"):
        open_driver(f"sqlite:///{other}")
    with sqlite3.connect(other) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
    conn.close()
    assert tables == ["users"], "the other application's file was written to"


def test_a_file_that_is_not_sqlite_is_refused(open_driver: Open, tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("these are not the pages you are looking for\n" * 100)
    with pytest.raises(TransportDriverError, match=r"notes\.txt"):
        open_driver(f"sqlite:///{junk}")


def test_a_bus_of_a_newer_schema_is_refused(open_driver: Open, tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    driver = open_driver(f"sqlite:///{path}")
    driver.cleanup()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(TransportDriverError, match="schema version 99"):
        open_driver(f"sqlite:///{path}")


@pytest.mark.parametrize(
    ("state_home", "expected"),
    [
        ("/srv/state", "/srv/state/messaging/bus.db"),
        ("", "/home/u/.local/state/messaging/bus.db"),
        ("relative/state", "/home/u/.local/state/messaging/bus.db"),
    ],
)
def test_default_database_follows_xdg(
    monkeypatch: pytest.MonkeyPatch, state_home: str, expected: str
) -> None:
    monkeypatch.setenv("HOME", "/home/u")
    monkeypatch.setenv("XDG_STATE_HOME", state_home)
    assert default_database() == expected
