"""The committed sample configuration and the options behind it.

``etc/messaging.conf.sample`` is generated from ``messaging.conf.list_opts()``;
these tests fail when an option changed and the sample was not regenerated, and
pin the option names and groups (oslo.messaging's) that config files rely on, and
that files with this package's former ``[messaging_*]`` sections are still read.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from oslo_config import cfg

from messaging import conf as messaging_conf

REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATOR_CONF = REPO_ROOT / "etc" / "messaging-config-generator.conf"
SAMPLE = REPO_ROOT / "etc" / "messaging.conf.sample"
REGENERATE = "oslo-config-generator --config-file etc/messaging-config-generator.conf"


def _options_by_group() -> dict[str | None, set[str]]:
    return {group: {opt.name for opt in opts} for group, opts in messaging_conf.list_opts()}


def test_committed_sample_matches_the_options(tmp_path: Path) -> None:
    generated = tmp_path / "messaging.conf.sample"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "oslo_config.generator",
            "--config-file",
            str(GENERATOR_CONF),
            "--output-file",
            str(generated),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"oslo-config-generator failed:\n{proc.stderr}"
    assert SAMPLE.exists(), (
        f"{SAMPLE} is missing; create it from the repository root with: {REGENERATE}"
    )
    assert generated.read_text() == SAMPLE.read_text(), (
        f"{SAMPLE.relative_to(REPO_ROOT)} is out of date with messaging.conf.list_opts(); "
        f"regenerate it from the repository root with: {REGENERATE}"
    )


def test_list_opts_has_default_and_notification_groups() -> None:
    groups = _options_by_group()
    assert None in groups
    assert messaging_conf.NOTIFICATIONS_GROUP == "oslo_messaging_notifications"
    assert "oslo_messaging_notifications" in groups


def test_list_opts_gathers_the_drivers_groups_through_entry_points() -> None:
    groups = list(_options_by_group())
    assert groups[:4] == [
        None,
        "oslo_messaging_notifications",
        "oslo_messaging_metrics",
        "oslo_messaging_tracing",
    ]
    assert set(groups[4:]) == {
        "oslo_messaging_rabbit",
        "oslo_messaging_sqlite",
        "oslo_messaging_stomp",
    }
    assert "heartbeat_timeout_threshold" in _options_by_group()["oslo_messaging_rabbit"]


def test_core_imports_no_driver_to_list_options() -> None:
    code = (
        "import sys; import messaging.conf as c; import messaging.conffixture; "
        "print(sorted(m for m in sys.modules if m.startswith('messaging.drivers')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_default_group_keeps_oslo_option_names() -> None:
    expected = {
        "transport_url",
        "control_exchange",
        "rpc_response_timeout",
        "executor_thread_pool_size",
        "rpc_ping_enabled",
    }
    missing = expected - _options_by_group()[None]
    assert not missing, f"[DEFAULT] lacks {sorted(missing)}"


def test_notification_group_keeps_oslo_option_names() -> None:
    expected = {"driver", "transport_url", "topics", "retry", "routing_config"}
    missing = expected - _options_by_group()["oslo_messaging_notifications"]
    assert not missing, f"[oslo_messaging_notifications] lacks {sorted(missing)}"


def test_list_opts_returns_copies() -> None:
    first = dict(messaging_conf.list_opts())[None]
    second = dict(messaging_conf.list_opts())[None]
    assert {id(opt) for opt in first}.isdisjoint(id(opt) for opt in second)


def _load(tmp_path: Path, text: str) -> cfg.ConfigOpts:
    path = tmp_path / "service.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    messaging_conf.register_notification_opts(conf)
    conf(args=["--config-file", str(path)])
    return conf


def test_oslo_group_is_read_without_deprecation_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = _load(
        tmp_path,
        "[oslo_messaging_notifications]\ndriver = messagingv2\ntopics = a,b\n",
    )
    with caplog.at_level("WARNING"):
        group = conf[messaging_conf.NOTIFICATIONS_GROUP]
        assert group.driver == ["messagingv2"]
        assert group.topics == ["a", "b"]
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()]


def test_former_group_name_is_read_with_a_deprecation_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = _load(tmp_path, "[messaging_notifications]\ntopics = ours\nretry = 0\n")
    with caplog.at_level("WARNING"):
        group = conf[messaging_conf.NOTIFICATIONS_GROUP]
        assert group.topics == ["ours"]
        assert group.retry == 0
    warned = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert any("messaging_notifications" in text for text in warned), warned


def test_oslo_group_wins_over_the_former_name(tmp_path: Path) -> None:
    conf = _load(
        tmp_path,
        "[oslo_messaging_notifications]\n"
        "transport_url = rabbit://new-host\n"
        "topics = a,b\n"
        "\n"
        "[messaging_notifications]\n"
        "transport_url = rabbit://old-host\n"
        "topics = old\n"
        "retry = 3\n",
    )
    group = conf[messaging_conf.NOTIFICATIONS_GROUP]
    assert group.transport_url == "rabbit://new-host"
    assert group.topics == ["a", "b"]
    assert group.retry == 3


@pytest.mark.parametrize(
    ("name", "default"),
    [("topics", ["notifications"]), ("driver", []), ("retry", -1), ("routing_config", "")],
)
def test_notification_defaults_match_oslo(tmp_path: Path, name: str, default: object) -> None:
    conf = _load(tmp_path, "")
    assert getattr(conf[messaging_conf.NOTIFICATIONS_GROUP], name) == default
