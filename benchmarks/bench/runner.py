"""Repetitions of every workload on each side, in separate processes, and their summary.

One repetition runs the selected workload groups in a fixed order (import,
raw, notify, drain, rpc, connections); within a group each side runs in turn,
the order of the sides alternating from one repetition to the next so that a
drift of the machine does not favour one of them. On RabbitMQ, with
``rabbitmqctl`` at hand, each repetition gets a virtual host of its own,
deleted at its end, so that nothing is left over from one to the next.

Every ratio is taken between figures of the same repetition; the summary
gives the median of each figure and ratio over the repetitions, with min and
max.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from benchmarks import import_time
from benchmarks.bench import broker
from benchmarks.bench.payload import PAYLOAD_BYTES
from benchmarks.bench.procs import REPO_ROOT, Worker, WorkerError, code_root, code_snapshot
from benchmarks.bench.stats import cpu_seconds_of, spread

GROUPS = ("import", "raw", "notify", "drain", "rpc", "connections")
ROLE_TIMEOUT = 300.0
#: Seconds between a service being ready and counting its connections, so that
#: connections it opened last are registered by the broker.
SETTLE = 1.0


@dataclass(frozen=True)
class Sizes:
    """How much each workload does."""

    notify: int = 10_000
    drain: int = 20_000
    calls: int = 2_000
    warmup: int = 50
    threads: int = 8
    calls_per_thread: int = 400
    casts: int = 10_000
    raw: int = 20_000
    round_trips: int = 2_000
    import_runs: int = 3


QUICK = Sizes(
    notify=2_000,
    drain=5_000,
    calls=300,
    warmup=20,
    calls_per_thread=50,
    casts=2_000,
    raw=5_000,
    round_trips=300,
    import_runs=1,
)


@dataclass(frozen=True)
class Side:
    """One library under test: its name in the results, module and interpreter."""

    key: str
    label: str
    module: str
    python: str
    versions: dict[str, str] = field(default_factory=dict)
    #: Extra worker options (``--metrics``: the same library, metrics counted).
    worker_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ratio:
    """A ratio of two figures of the same repetition, maybe with a target."""

    key: str
    label: str
    numerator: tuple[str, str]
    denominator: tuple[str, str]
    op: str | None = None
    target: float | None = None

    def met(self, value: float) -> bool | None:
        """Whether ``value`` reaches the target (None without one)."""
        if self.op is None or self.target is None:
            return None
        return value >= self.target if self.op == ">=" else value <= self.target


M, OSLO, R = "messaging", "oslo", "raw"
#: messaging with Prometheus metrics on (``--metrics``), against M in the same repetition.
MX = "metrics"

RATIOS = (
    Ratio(
        "notify_send_vs_oslo",
        "notify send, confirmed",
        (M, "notify.send_rate"),
        (OSLO, "notify.send_rate"),
        ">=",
        5.0,
    ),
    Ratio("drain_vs_oslo", "listener drain", (M, "drain.rate"), (OSLO, "drain.rate"), ">=", 3.0),
    Ratio(
        "drain_vs_raw",
        "listener drain / raw kombu consume",
        (M, "drain.rate"),
        (R, "consume.rate"),
        ">=",
        0.8,
    ),
    Ratio(
        "call_p50_vs_raw",
        "RPC call p50 / raw round trip p50",
        (M, "call.p50_ms"),
        (R, "rtt.p50_ms"),
        "<=",
        1.3,
    ),
    Ratio(
        "call_p50_vs_raw_confirms",
        "RPC call p50 / raw round trip p50, with confirms",
        (M, "call.p50_ms"),
        (R, "rtt_confirms.p50_ms"),
        "<=",
        1.3,
    ),
    Ratio(
        "threads_vs_oslo",
        "calls/s, 8 threads",
        (M, "threads.rate"),
        (OSLO, "threads.rate"),
        ">=",
        2.0,
    ),
    Ratio(
        "import_vs_oslo",
        "import time (-X importtime)",
        (M, "import.importtime_ms"),
        (OSLO, "import.importtime_ms"),
        "<=",
        0.5,
    ),
    Ratio(
        "peak_rss_vs_oslo",
        "peak RSS, listener draining",
        (M, "drain.peak_rss_mib"),
        (OSLO, "drain.peak_rss_mib"),
        "<=",
        1.0,
    ),
    Ratio("e2e_vs_oslo", "notify end-to-end", (M, "notify.e2e_rate"), (OSLO, "notify.e2e_rate")),
    Ratio("cast_vs_oslo", "casts handled/s", (M, "cast.handled_rate"), (OSLO, "cast.handled_rate")),
    Ratio("call_p50_vs_oslo", "RPC call p50", (M, "call.p50_ms"), (OSLO, "call.p50_ms")),
    Ratio("call_p99_vs_oslo", "RPC call p99", (M, "call.p99_ms"), (OSLO, "call.p99_ms")),
    Ratio(
        "import_wall_vs_oslo",
        "import, wall minus bare start-up",
        (M, "import.wall_minus_bare_ms"),
        (OSLO, "import.wall_minus_bare_ms"),
    ),
    Ratio(
        "sender_cpu_vs_oslo",
        "sender CPU per notification",
        (M, "notify.sender_cpu_us"),
        (OSLO, "notify.sender_cpu_us"),
    ),
    Ratio(
        "listener_cpu_vs_oslo",
        "listener CPU per notification",
        (M, "drain.cpu_us"),
        (OSLO, "drain.cpu_us"),
    ),
    Ratio(
        "metrics_notify_send",
        "metrics on/off: notify send",
        (MX, "notify.send_rate"),
        (M, "notify.send_rate"),
        ">=",
        0.95,
    ),
    Ratio(
        "metrics_drain",
        "metrics on/off: listener drain",
        (MX, "drain.rate"),
        (M, "drain.rate"),
        ">=",
        0.95,
    ),
    Ratio(
        "metrics_threads",
        "metrics on/off: calls/s, 8 threads",
        (MX, "threads.rate"),
        (M, "threads.rate"),
        ">=",
        0.95,
    ),
    Ratio(
        "metrics_call_p50",
        "metrics on/off: RPC call p50",
        (MX, "call.p50_ms"),
        (M, "call.p50_ms"),
        "<=",
        1.05,
    ),
    Ratio(
        "notify_send_vs_raw_confirms",
        "notify send / raw publish with confirms",
        (M, "notify.send_rate"),
        (R, "publish_confirms.rate"),
    ),
    Ratio(
        "oslo_send_vs_raw_confirms",
        "oslo: notify send / raw publish with confirms",
        (OSLO, "notify.send_rate"),
        (R, "publish_confirms.rate"),
    ),
    Ratio(
        "oslo_drain_vs_raw",
        "oslo: listener drain / raw consume",
        (OSLO, "drain.rate"),
        (R, "consume.rate"),
    ),
    Ratio(
        "oslo_call_p50_vs_raw",
        "oslo: RPC call p50 / raw round trip p50",
        (OSLO, "call.p50_ms"),
        (R, "rtt.p50_ms"),
    ),
    Ratio(
        "raw_confirms_vs_plain",
        "raw publish: confirms / no confirms",
        (R, "publish_confirms.rate"),
        (R, "publish.rate"),
    ),
)


#: The targets of a run where both libraries are monkey-patched by eventlet.
EVENTLET_TARGETS = {
    "notify_send_vs_oslo": (">=", 3.0),
    "drain_vs_oslo": (">=", 3.0),
    "call_p50_vs_oslo": ("<=", 1.0),
    "threads_vs_oslo": (">=", 2.0),
}
EVENTLET_RATIOS = tuple(
    replace(r, op=EVENTLET_TARGETS[r.key][0], target=EVENTLET_TARGETS[r.key][1])
    if r.key in EVENTLET_TARGETS
    # The raw floor is not patched: a ratio to it sets no target then.
    else replace(r, op=None, target=None)
    if R in (r.numerator[0], r.denominator[0])
    else r
    for r in RATIOS
)


@dataclass
class Config:
    """What to run.

    Attributes:
        url: the transport URL as given.
        repeat: repetitions.
        sizes: how much each workload does.
        groups: the workload groups to run, a subset of :data:`GROUPS`.
        sides: the libraries under test.
        vhosts: make a virtual host per repetition (RabbitMQ with rabbitmqctl).
        raw: run the raw kombu floor (RabbitMQ only).
        command: the command line, for the report.
        live: run the checkout's files as they are at each moment instead of a
            copy taken at the start (see :func:`.procs.code_snapshot`).
        eventlet: run every worker of both libraries monkey-patched by eventlet
            (the raw kombu floor stays unpatched).
    """

    url: str
    repeat: int
    sizes: Sizes
    groups: tuple[str, ...]
    sides: list[Side]
    vhosts: bool
    raw: bool
    command: str = ""
    live: bool = False
    eventlet: bool = False


Log = Callable[[str], None]


class Runner:
    """Runs the repetitions described by a :class:`Config`.

    Args:
        config: what to run.
        log: where progress lines go.
    """

    def __init__(self, config: Config, log: Log) -> None:
        self.config = config
        self.log = log
        self.ctl = broker.Rabbitmqctl()
        self.token = uuid.uuid4().hex[:8]

    # -- the whole run ---------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run every repetition and return the results (see ``benchmarks/README.md``)."""
        started = time.monotonic()
        commit = _git_commit()
        repetitions = []
        with code_snapshot(not self.config.live) as root:
            self.log(f"code under test: {root} (messaging {commit})")
            for index in range(self.config.repeat):
                repetitions.append(self._repetition(index))
        result = {
            "meta": self._meta(time.monotonic() - started, commit),
            "repetitions": repetitions,
        }
        result.update(
            summarise(
                repetitions,
                [side.key for side in self.config.sides],
                EVENTLET_RATIOS if self.config.eventlet else RATIOS,
            )
        )
        return result

    def _meta(self, seconds: float, commit: str | None) -> dict[str, Any]:
        cfg = self.config
        return {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": cfg.command,
            "url": broker.masked(cfg.url),
            "repeat": cfg.repeat,
            "groups": list(cfg.groups),
            "sizes": asdict(cfg.sizes),
            "payload_bytes": PAYLOAD_BYTES,
            "sides": {side.key: {**asdict(side)} for side in cfg.sides},
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "messaging_commit": commit,
            "code": "checkout (live)" if cfg.live else "copy taken at the start",
            "rabbitmq": self._rabbitmq_version(),
            "eventlet": cfg.eventlet,
            "seconds": round(seconds, 1),
        }

    def _rabbitmq_version(self) -> str | None:
        if not self.config.vhosts:
            return None
        try:
            return self.ctl.run("version").strip()
        except RuntimeError:
            return None

    # -- one repetition --------------------------------------------------

    def _repetition(self, index: int) -> dict[str, Any]:
        cfg = self.config
        order = cfg.sides if index % 2 == 0 else list(reversed(cfg.sides))
        name = f"bench-{self.token}-r{index}"
        url = cfg.url
        if cfg.vhosts:
            self.ctl.add_vhost(name, broker.user_of(cfg.url))
            url = broker.with_vhost(cfg.url, name)
        figures: dict[str, dict[str, Any]] = {side.key: {} for side in cfg.sides}
        figures[R] = {}
        errors: list[str] = []
        started = time.monotonic()
        load_before = os.getloadavg()[0]
        self.log(
            f"repetition {index + 1}/{cfg.repeat} (order: {', '.join(s.key for s in order)};"
            f" load average {load_before:.2f})"
        )
        try:
            for group in GROUPS:
                if group not in cfg.groups:
                    continue
                if group == "raw":
                    if cfg.raw:
                        self._guarded(
                            errors, "raw", lambda: figures[R].update(self._raw(url, name))
                        )
                    continue
                if group == "connections" and (index > 0 or not cfg.vhosts):
                    continue  # a count, not a timing: once per run is enough
                for side in order:

                    def work(side: Side = side, group: str = group) -> None:
                        figures[side.key].update(self._group(group, side, url, name, index))

                    self._guarded(errors, f"{group} on {side.key}", work)
        finally:
            if cfg.vhosts:
                self.ctl.delete_vhost(name)
        return {
            "index": index,
            "order": [side.key for side in order],
            "loadavg_before": load_before,
            "figures": figures,
            "errors": errors,
            "seconds": round(time.monotonic() - started, 1),
        }

    def _guarded(self, errors: list[str], what: str, work: Callable[[], None]) -> None:
        began = time.monotonic()
        try:
            work()
        except (WorkerError, RuntimeError, subprocess.SubprocessError, OSError) as exc:
            errors.append(f"{what}: {exc}")
            self.log(f"  {what}: FAILED: {exc}")
            return
        self.log(f"  {what}: {time.monotonic() - began:.1f} s")

    def _group(self, group: str, side: Side, url: str, name: str, index: int) -> dict[str, Any]:
        if side.worker_args and group in ("import", "connections"):
            return {}  # the same library: measured on its plain side
        if group == "import":
            return self._import(side, first=index == 0)
        if group == "notify":
            return self._notify(side, url, name)
        if group == "drain":
            return self._drain(side, url, name)
        if group == "rpc":
            return self._rpc(side, url, name)
        return self._connections(side, name)

    def _worker(
        self, side: Side, role: str, url: str, exchange: str, topic: str, *extra: str
    ) -> Worker:
        args = [role, "--lib", side.module, "--url", url, "--exchange", exchange, "--topic", topic]
        args += ["--timeout", str(ROLE_TIMEOUT), *side.worker_args, *extra]
        module = "benchmarks.bench." + ("green_worker" if self.config.eventlet else "worker")
        return Worker(f"{side.key} {role}", side.python, module, args)

    # -- the groups ------------------------------------------------------

    def _import(self, side: Side, first: bool) -> dict[str, Any]:
        python, module = side.python, side.module
        if first:  # compile and cache bytecode once, outside the measurement
            subprocess.run(
                [python, "-c", f"import {module}"],
                env=_compile_env(),
                capture_output=True,
                check=True,
                timeout=120,
            )
        runs = self.config.sizes.import_runs
        cumulative = [import_time.cumulative_import_us(python, module) / 1000 for _ in range(runs)]
        walls, bares = [], []
        for _ in range(runs):
            bares.append(import_time.wall_seconds(python, "pass") * 1000)
            walls.append(import_time.wall_seconds(python, f"import {module}") * 1000)
        wall, bare = statistics.median(walls), statistics.median(bares)
        return {
            "import.importtime_ms": statistics.median(cumulative),
            "import.wall_ms": wall,
            "import.bare_ms": bare,
            "import.wall_minus_bare_ms": wall - bare,
        }

    def _notify(self, side: Side, url: str, name: str) -> dict[str, Any]:
        count, topic = self.config.sizes.notify, f"notify-{side.key}-{self.token}"
        with self._worker(
            side, "notify-listen", url, name, topic, "--count", str(count)
        ) as listener:
            listener.wait_event("ready", 60)
            sent = self._worker(
                side, "notify-send", url, name, topic, "--count", str(count)
            ).result(ROLE_TIMEOUT)
            got = listener.result(ROLE_TIMEOUT)
        return {
            "notify.send_rate": sent["send_rate"],
            "notify.return_rate": sent["return_rate"],
            "notify.sender_cpu_us": sent["cpu_us"],
            "notify.unconfirmed": sent["unconfirmed"],
            "notify.e2e_rate": count / (got["last"] - sent["started"])
            if got["all_arrived"]
            else None,
            "notify.listener_cpu_us": got["cpu_us"],
            "notify.all_arrived": got["all_arrived"],
        }

    def _drain(self, side: Side, url: str, name: str) -> dict[str, Any]:
        count, topic = self.config.sizes.drain, f"drain-{side.key}-{self.token}"
        prefill = self._worker(side, "notify-send", url, name, topic, "--count", str(count)).result(
            ROLE_TIMEOUT
        )
        got = self._worker(side, "notify-listen", url, name, topic, "--count", str(count)).result(
            ROLE_TIMEOUT
        )
        return {
            "drain.prefill_rate": prefill["send_rate"],
            "drain.rate": got["drain_rate"],
            "drain.cpu_us": got["cpu_us"],
            "drain.ready_rss_mib": got["ready_rss_mib"],
            "drain.peak_rss_mib": got["peak_rss_mib"],
            "drain.all_arrived": got["all_arrived"],
        }

    def _rpc(self, side: Side, url: str, name: str) -> dict[str, Any]:
        sizes, topic = self.config.sizes, f"rpc-{side.key}-{self.token}"
        out: dict[str, Any] = {}
        with self._worker(side, "rpc-server", url, name, topic) as server:
            server.wait_event("ready", 60)

            def client(role: str, *extra: str) -> tuple[dict[str, Any], float]:
                before = cpu_seconds_of(server.pid)
                figures = self._worker(side, role, url, name, topic, *extra).result(ROLE_TIMEOUT)
                return figures, cpu_seconds_of(server.pid) - before

            seq, cpu = client("rpc-seq", "--count", str(sizes.calls), "--warmup", str(sizes.warmup))
            out.update({f"call.{k}": v for k, v in seq.items() if k.endswith("_ms")})
            out["call.client_cpu_us"] = seq["cpu_us"]
            out["call.server_cpu_us"] = cpu / (sizes.calls + sizes.warmup) * 1e6
            threads, cpu = client(
                "rpc-threads",
                "--count",
                str(sizes.calls_per_thread),
                "--threads",
                str(sizes.threads),
            )
            out.update({f"threads.{k}": threads[k] for k in ("rate", "p50_ms", "p90_ms", "p99_ms")})
            out["threads.client_cpu_us"] = threads["cpu_us"]
            out["threads.server_cpu_us"] = cpu / (threads["calls"] + 3 * sizes.threads) * 1e6
            run = f"casts-{uuid.uuid4().hex[:6]}"
            casts, cpu = client("rpc-cast", "--count", str(sizes.casts), "--run", run)
            done = server.wait_event("casts_done", ROLE_TIMEOUT)
            out["cast.send_rate"] = casts["send_rate"]
            out["cast.client_cpu_us"] = casts["cpu_us"]
            out["cast.handled_rate"] = sizes.casts / (done["at"] - casts["started"])
            out["cast.all_handled"] = done["handled"] == sizes.casts
            server.close_stdin()
            served = server.result(ROLE_TIMEOUT)
        out["rpc.server_peak_rss_mib"] = served["peak_rss_mib"]
        out["cast.all_handled"] = out["cast.all_handled"] and served["duplicate_casts"] == 0
        return out

    def _connections(self, side: Side, name: str) -> dict[str, Any]:
        vhost = f"{name}-conn-{side.key}"
        self.ctl.add_vhost(vhost, broker.user_of(self.config.url))
        try:
            url = broker.with_vhost(self.config.url, vhost)
            with self._worker(side, "service", url, vhost, f"svc-{self.token}") as worker:
                worker.wait_event("ready", 120)
                time.sleep(SETTLE)
                held = self.ctl.connections(vhost)
                worker.close_stdin()
                worker.result(ROLE_TIMEOUT)
        finally:
            self.ctl.delete_vhost(vhost)
        return {"connections.held": held}

    def _raw(self, url: str, name: str) -> dict[str, Any]:
        sizes, kurl = self.config.sizes, broker.kombu_url(url)
        python = sys.executable
        out: dict[str, Any] = {}

        def raw(role: str, queue: str, *extra: str) -> Worker:
            args = [role, "--url", kurl, "--queue", f"{queue}-{self.token}", *extra]
            return Worker(f"raw {role}", python, "benchmarks.bench.raw_kombu", args)

        count = str(sizes.raw)
        plain = raw("publish", "raw-plain", "--count", count).result(ROLE_TIMEOUT)
        confirmed = raw("publish", "raw-confirmed", "--count", count, "--confirms").result(
            ROLE_TIMEOUT
        )
        consumed = raw("consume", "raw-confirmed", "--count", count).result(ROLE_TIMEOUT)
        out["publish.rate"], out["publish.cpu_us"] = plain["rate"], plain["cpu_us"]
        out["publish_confirms.rate"] = confirmed["rate"]
        out["publish_confirms.cpu_us"] = confirmed["cpu_us"]
        out["consume.rate"], out["consume.cpu_us"] = consumed["rate"], consumed["cpu_us"]
        for key, flags in (("rtt", ()), ("rtt_confirms", ("--confirms",))):
            with raw("rr-server", f"raw-{key}", *flags) as server:
                server.wait_event("ready", 60)
                before = cpu_seconds_of(server.pid)
                trips = raw(
                    "rr-client",
                    f"raw-{key}",
                    "--count",
                    str(sizes.round_trips),
                    "--warmup",
                    str(sizes.warmup),
                    *flags,
                ).result(ROLE_TIMEOUT)
                server_cpu = cpu_seconds_of(server.pid) - before
                server.close_stdin()
                server.result(60)
            out.update({f"{key}.{k}": v for k, v in trips.items() if k.endswith("_ms")})
            out[f"{key}.client_cpu_us"] = trips["cpu_us"]
            out[f"{key}.server_cpu_us"] = server_cpu / (sizes.round_trips + sizes.warmup) * 1e6
        return out


def summarise(
    repetitions: list[dict[str, Any]], sides: list[str], ratios_of: Sequence[Ratio] = RATIOS
) -> dict[str, Any]:
    """Medians with min and max of every figure and ratio over the repetitions."""
    summary: dict[str, dict[str, Any]] = {}
    for side in [*sides, R]:
        keys = sorted({k for rep in repetitions for k in rep["figures"].get(side, {})})
        summary[side] = {}
        for key in keys:
            values = [rep["figures"].get(side, {}).get(key) for rep in repetitions]
            if any(isinstance(v, bool) for v in values):
                present = [v for v in values if v is not None]
                summary[side][key] = {"all": all(present), "true": sum(present), "n": len(present)}
            else:
                summary[side][key] = spread(values)
    ratios: dict[str, Any] = {}
    for ratio in ratios_of:
        values = [_ratio(ratio, rep["figures"]) for rep in repetitions]
        entry = {"label": ratio.label, **spread(values)}
        if ratio.op is not None:
            entry["target"] = f"{ratio.op} {ratio.target:g}"
            entry["met"] = ratio.met(entry["median"]) if entry["n"] else None
        ratios[ratio.key] = entry
    return {"summary": summary, "ratios": ratios}


def _ratio(ratio: Ratio, figures: dict[str, dict[str, Any]]) -> float | None:
    top = figures.get(ratio.numerator[0], {}).get(ratio.numerator[1])
    bottom = figures.get(ratio.denominator[0], {}).get(ratio.denominator[1])
    if top is None or not bottom:
        return None
    return float(top) / float(bottom)


def _compile_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(code_root())
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _git_commit() -> str | None:
    """The commit of this checkout, ``+dirty`` when ``messaging/`` has changes (read-only)."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    try:
        commit = git("rev-parse", "--short", "HEAD").stdout.strip()
        dirty = git("diff", "--quiet", "HEAD", "--", "messaging").returncode == 1
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("+dirty" if dirty else "")) or None
