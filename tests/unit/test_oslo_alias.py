"""install_as_oslo_messaging(): ``oslo_messaging`` and its submodules are this package."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import messaging
from messaging import oslo_alias

SUPPORT = Path(__file__).resolve().parent / "alias_support"
REPO_ROOT = Path(__file__).resolve().parents[2]

#: The submodules services, middleware and their tests import or patch.
PUBLIC_SUBMODULES = (
    "notify",
    "notify.notifier",
    "notify.listener",
    "notify.middleware",
    "notify.dispatcher",
    "notify.filter",
    "notify.logger",
    "notify.log_handler",
    "rpc",
    "rpc.client",
    "rpc.server",
    "rpc.dispatcher",
    "rpc.transport",
    "transport",
    "target",
    "serializer",
    "conffixture",
    "exceptions",
    "opts",
    "server",
    "dispatcher",
    "version",
    "notify.messaging",
    "notify._impl_log",
    "notify._impl_noop",
    "notify._impl_routing",
    "notify._impl_test",
)


@pytest.fixture
def alias() -> Iterator[None]:
    was_installed = oslo_alias.is_installed()
    messaging.install_as_oslo_messaging()
    yield
    if not was_installed:
        oslo_alias.uninstall()


@pytest.mark.usefixtures("alias")
@pytest.mark.parametrize("name", PUBLIC_SUBMODULES)
def test_each_public_submodule_is_ours(name: str) -> None:
    aliased = importlib.import_module(f"oslo_messaging.{name}")
    assert aliased is importlib.import_module(f"messaging.{name}")


@pytest.mark.usefixtures("alias")
def test_top_level_is_this_package_and_installing_twice_is_harmless() -> None:
    import oslo_messaging  # type: ignore[import-not-found]

    messaging.install_as_oslo_messaging()
    assert oslo_messaging is messaging
    assert sum(isinstance(f, oslo_alias._AliasFinder) for f in sys.meta_path) == 1
    assert oslo_messaging.notify.notifier.Notifier is messaging.Notifier


@pytest.mark.usefixtures("alias")
def test_aliased_modules_keep_their_own_name_and_spec() -> None:
    aliased = importlib.import_module("oslo_messaging.notify.notifier")
    assert aliased.__name__ == aliased.__spec__.name == "messaging.notify.notifier"


@pytest.mark.usefixtures("alias")
def test_private_oslo_modules_are_not_found() -> None:
    with pytest.raises(ModuleNotFoundError, match=r"oslo_messaging\._drivers"):
        importlib.import_module("oslo_messaging._drivers.impl_rabbit")


@pytest.mark.usefixtures("alias")
def test_patching_through_the_alias_patches_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    import oslo_messaging.notify._impl_test as aliased  # type: ignore[import-not-found]

    monkeypatch.setattr(aliased, "NOTIFICATIONS", ["patched"])
    assert messaging.notify._impl_test.NOTIFICATIONS == ["patched"]


def test_uninstall_frees_the_name() -> None:
    messaging.install_as_oslo_messaging()
    oslo_alias.uninstall()
    assert not oslo_alias.is_installed()
    assert "oslo_messaging" not in sys.modules


def _run_library(extra_path: list[Path]) -> dict[str, object]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, extra_path), str(REPO_ROOT)])
    done = subprocess.run(
        [sys.executable, str(SUPPORT / "run_audit_lib.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_library_importing_oslo_messaging_sends_through_messaging() -> None:
    # ``installed`` holds an oslo_messaging package that fails if imported: it
    # stands for oslo.messaging installed as the library's dependency.
    result = _run_library([SUPPORT / "installed", SUPPORT])
    assert result["oslo_messaging_is_messaging"] is True
    assert result["notifier_class"] == "messaging.notify.notifier.Notifier"
    assert result["transport_class"] == "messaging.transport"
    (envelope,) = result["received"]  # type: ignore[misc]
    inner = json.loads(envelope["oslo.message"])
    assert inner["event_type"] == "audit.http.request"
    assert inner["publisher_id"] == "audit-lib"
    assert inner["payload"] == {"action": "read"}


def test_oslo_messaging_imported_before_is_replaced_with_a_warning(tmp_path: Path) -> None:
    fake = tmp_path / "oslo_messaging"
    fake.mkdir()
    (fake / "__init__.py").write_text("REAL = True\n")
    code = (
        "import warnings, oslo_messaging, messaging\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    messaging.install_as_oslo_messaging()\n"
        "import oslo_messaging as again\n"
        "print(again is messaging, [str(w.message) for w in caught])\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("True ")
    assert "oslo.messaging was imported before (oslo_messaging)" in done.stdout
