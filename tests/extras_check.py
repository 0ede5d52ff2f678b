"""Each extra installs what it needs: a clean virtualenv per extra, then a smoke run.

    python -m tests.extras_check [--only redis,stomp] [--keep DIR]

For the bare package and for each extra of setup.cfg, this makes a new
virtualenv (no system site-packages), installs the checkout with that extra
only, and runs a short script in it that uses what the extra is for: a
notification sent and received on ``kombu+redis://`` (Redis on 127.0.0.1:6379),
on ``stomp://`` (RabbitMQ's STOMP plugin on 127.0.0.1:61613), under eventlet's
monkey-patching, with metrics scraped over HTTP, with tracing carrying a trace
context; and a missing extra's error naming the extra, on the bare package.
Run by ``.ci/run``; exits 1 if any extra fails, after trying them all.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT = 600
RUN_TIMEOUT = 120

_ROUND_TRIP = """
import threading, uuid
from oslo_config import cfg
import messaging

def round_trip(url, executor="threading"):
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[], default_config_dirs=[])
    transport = messaging.get_notification_transport(conf, url)
    got = threading.Event()

    class Endpoint:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            if payload.get("n") == 1:
                got.set()

    topic = "extras-" + uuid.uuid4().hex[:8]
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [Endpoint()], executor=executor,
        pool="extras-check", temporary_pool=True,
    )
    listener.start()
    try:
        notifier = messaging.Notifier(transport, "extras", driver="messagingv2", topics=[topic])
        notifier.info({}, "extras.check", {"n": 1})
        assert got.wait(30), "the notification did not arrive within 30 s"
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    print("round trip on", url.split("://")[0], "ok")
"""

_EXPORTING = """
from oslo_config import cfg
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from messaging import tracing
from messaging.conf import TRACING_GROUP, register_tracing_opts
conf = cfg.ConfigOpts()
conf([], default_config_files=[], default_config_dirs=[])
register_tracing_opts(conf)
conf.set_override("tracing_enabled", True, group=TRACING_GROUP)
conf.set_override("otlp_protocol", "PROTOCOL", group=TRACING_GROUP)
assert tracing.from_conf(conf, "memory") is not None
provider = trace.get_tracer_provider()
assert isinstance(provider, TracerProvider), provider
print("an OTLP (PROTOCOL) exporting provider was set up")
"""

#: extra ('' for none) -> the script that shows it works.
SMOKE: dict[str, str] = {
    "": _ROUND_TRIP
    + """
round_trip("memory://")
try:
    import messaging.metrics
    messaging.metrics.enable()
except ImportError as exc:
    assert "messaging-fleet[metrics]" in str(exc), exc
    print("a missing extra is named:", exc)
else:
    raise AssertionError("prometheus_client should not be installed by the bare package")
""",
    "redis": _ROUND_TRIP + '\nround_trip("kombu+redis://127.0.0.1:6379/15")\n',
    "stomp": _ROUND_TRIP + '\nround_trip("stomp://guest:guest@127.0.0.1:61613/")\n',
    "eventlet": "import eventlet\neventlet.monkey_patch()\n"
    + _ROUND_TRIP
    + '\nround_trip("memory://", executor="eventlet")\n',
    "metrics": """
import urllib.request
import messaging
from messaging import metrics
port = metrics.serve_http(0)
metrics.ACTIVE.count_sent("notification", "t", "info")
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
assert 'messaging_sent_total{kind="notification",priority="info",topic="t"} 1.0' in text, text
print("metrics scraped ok")
""",
    "tracing": """
from oslo_config import cfg
import messaging
from messaging import tracing
conf = cfg.ConfigOpts()
conf([], default_config_files=[], default_config_dirs=[])
from messaging.conf import register_tracing_opts, TRACING_GROUP
register_tracing_opts(conf)
conf.set_override("tracing_enabled", True, group=TRACING_GROUP)
traced = tracing.from_conf(conf, "memory")
assert traced is not None
with traced.send_notification(messaging.Target(topic="t"), {}, {"event_type": "e"}) as ctxt:
    assert isinstance(ctxt, dict)
print("tracing ok (API only: context carried, spans to the global provider)")
""",
    "tracing-http": _EXPORTING.replace("PROTOCOL", "http/protobuf"),
    "tracing-grpc": _EXPORTING.replace("PROTOCOL", "grpc"),
    "context": """
import oslo_context.context
import messaging
print("oslo.context", oslo_context.context.RequestContext().to_dict().get("request_id")[:4])
""",
    "middleware": """
from messaging.notify.middleware import RequestNotifier
print("RequestNotifier ok", RequestNotifier.__name__)
""",
}


def check(extra: str, base: Path) -> tuple[bool, str]:
    """Make a virtualenv, install the checkout with ``extra``, run its smoke script."""
    where = base / (extra or "bare")
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    python = str(where / "bin" / "python")
    spec = f"{ROOT}[{extra}]" if extra else str(ROOT)
    started = time.monotonic()
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", spec],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if install.returncode != 0:
        return False, f"pip install {spec!r} failed:\n{install.stderr[-3000:]}"
    installed = time.monotonic() - started
    run = subprocess.run(
        [python, "-c", textwrap.dedent(SMOKE[extra])],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
        cwd=str(base),  # not the checkout: the installed package is what runs
    )
    if run.returncode != 0:
        return False, f"the smoke run failed:\n{run.stdout[-2000:]}{run.stderr[-3000:]}"
    return True, f"installed in {installed:.0f} s; {run.stdout.strip()}"


def main(argv: list[str] | None = None) -> int:
    """Check every extra (or those of ``--only``); 1 if any failed."""
    parser = argparse.ArgumentParser(prog="python -m tests.extras_check")
    parser.add_argument("--only", help="comma-separated extras ('bare' for none)")
    parser.add_argument("--keep", type=Path, help="make the virtualenvs here and keep them")
    args = parser.parse_args(argv)
    extras = list(SMOKE)
    if args.only:
        wanted = {"" if name == "bare" else name for name in args.only.split(",")}
        extras = [extra for extra in extras if extra in wanted]
    failures = []
    with tempfile.TemporaryDirectory(prefix="messaging-extras-") as scratch:
        base = args.keep or Path(scratch)
        base.mkdir(parents=True, exist_ok=True)
        for extra in extras:
            ok, said = check(extra, base)
            print(f"[{extra or 'bare'}] {'ok' if ok else 'FAILED'}: {said}", flush=True)
            if not ok:
                failures.append(extra or "bare")
    if failures:
        print(f"extras that failed: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
