"""messaging._extras: which extra installs which optional module, and the errors that say so."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from messaging._extras import EXTRAS, install_hint, missing_extra, require
from messaging.exceptions import DriverLoadFailure, MissingExtra

SETUP_CFG = Path(__file__).resolve().parents[2] / "setup.cfg"


def test_every_extra_named_exists_in_setup_cfg() -> None:
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    declared = set(parser["options.extras_require"])
    assert set(EXTRAS.values()) <= declared, set(EXTRAS.values()) - declared


def test_the_redis_extra_installs_what_kombus_redis_transport_imports() -> None:
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    requirements = parser["options.extras_require"]["redis"].split()
    names = {req.split(">")[0].split("<")[0].split("=")[0] for req in requirements}
    assert {"redis", "packaging"} <= names


def test_install_hint_of_a_submodule() -> None:
    assert install_hint("opentelemetry.trace") == "pip install 'messaging-fleet[tracing]'"


def test_require_names_the_extra_and_is_an_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "stomp", None)
    with pytest.raises(ImportError) as caught:
        require("stomp", "stomp://")
    error = caught.value
    assert isinstance(error, MissingExtra)
    assert (error.module, error.extra, error.name) == ("stomp", "stomp", "stomp")
    assert str(error) == (
        "stomp:// needs the module 'stomp', which is not installed: "
        "pip install 'messaging-fleet[stomp]'"
    )


def test_require_of_a_module_no_extra_installs_raises_as_it_was() -> None:
    with pytest.raises(ModuleNotFoundError) as caught:
        require("no_such_module_of_any_extra", "x")
    assert not isinstance(caught.value, MissingExtra)


def test_missing_extra_is_found_down_an_errors_chain() -> None:
    cause = ModuleNotFoundError("No module named 'packaging.version'", name="packaging.version")
    wrapped = DriverLoadFailure("kombu", "cannot load")
    wrapped.__cause__ = cause
    found = missing_extra(wrapped, "kombu+redis://")
    assert found is not None
    assert (found.module, found.extra) == ("packaging", "redis")
    assert missing_extra(DriverLoadFailure("kombu", "other"), "x") is None


def test_metrics_without_prometheus_client_raise_missing_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None\n"
        "from messaging import metrics\n"
        "from messaging.exceptions import MissingExtra\n"
        "try:\n"
        "    metrics.enable()\n"
        "except MissingExtra as exc:\n"
        "    print(exc.extra)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "metrics", done.stderr


def test_every_extra_of_setup_cfg_has_a_clean_install_check() -> None:
    from tests.extras_check import SMOKE

    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    declared = set(parser["options.extras_require"]) - {"test", "docs"}
    assert declared == set(SMOKE) - {""}
