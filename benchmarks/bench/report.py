"""Tables of a run's results: plain text for the terminal, reStructuredText for the docs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Format = Callable[[float], str]
DASH = "\u2013"  # en dash, between min and max


def _grouped(value: float) -> str:
    return f"{value:,.0f}".replace(",", "\u202f")


def _ms(value: float) -> str:
    return f"{value:.2f}"


def _one(value: float) -> str:
    return f"{value:.1f}"


def _count(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Row:
    """A line of the main table: a figure per column (None where it does not apply)."""

    label: str
    unit: str
    messaging: str | None
    oslo: str | None
    raw: str | None
    fmt: Format
    ratio: str | None = None


ROWS = (
    Row(
        "notify send, every publish confirmed",
        "msg/s",
        "notify.send_rate",
        "notify.send_rate",
        "publish_confirms.rate",
        _grouped,
        "notify_send_vs_oslo",
    ),
    Row("raw kombu publish, no confirms", "msg/s", None, None, "publish.rate", _grouped),
    Row(
        "notify end-to-end (first send to last receive)",
        "msg/s",
        "notify.e2e_rate",
        "notify.e2e_rate",
        None,
        _grouped,
        "e2e_vs_oslo",
    ),
    Row(
        "listener drain, prefilled queue",
        "msg/s",
        "drain.rate",
        "drain.rate",
        "consume.rate",
        _grouped,
        "drain_vs_oslo",
    ),
    Row(
        "sender CPU per notification (raw: with confirms)",
        "µs",
        "notify.sender_cpu_us",
        "notify.sender_cpu_us",
        "publish_confirms.cpu_us",
        _grouped,
        "sender_cpu_vs_oslo",
    ),
    Row(
        "listener CPU per notification (drain)",
        "µs",
        "drain.cpu_us",
        "drain.cpu_us",
        "consume.cpu_us",
        _grouped,
        "listener_cpu_vs_oslo",
    ),
    Row(
        "RPC call, sequential, p50",
        "ms",
        "call.p50_ms",
        "call.p50_ms",
        "rtt.p50_ms",
        _ms,
        "call_p50_vs_oslo",
    ),
    Row("RPC call, sequential, p90", "ms", "call.p90_ms", "call.p90_ms", "rtt.p90_ms", _ms),
    Row(
        "RPC call, sequential, p99",
        "ms",
        "call.p99_ms",
        "call.p99_ms",
        "rtt.p99_ms",
        _ms,
        "call_p99_vs_oslo",
    ),
    Row("raw round trip with confirms, p50", "ms", None, None, "rtt_confirms.p50_ms", _ms),
    Row(
        "RPC client CPU per call (raw: with confirms)",
        "µs",
        "call.client_cpu_us",
        "call.client_cpu_us",
        "rtt_confirms.client_cpu_us",
        _grouped,
    ),
    Row(
        "RPC server CPU per call (raw: with confirms)",
        "µs",
        "call.server_cpu_us",
        "call.server_cpu_us",
        "rtt_confirms.server_cpu_us",
        _grouped,
    ),
    Row(
        "RPC calls/s, 8 client threads",
        "calls/s",
        "threads.rate",
        "threads.rate",
        None,
        _grouped,
        "threads_vs_oslo",
    ),
    Row("RPC call p50, 8 client threads", "ms", "threads.p50_ms", "threads.p50_ms", None, _ms),
    Row(
        "casts handled (send until the server handled all)",
        "casts/s",
        "cast.handled_rate",
        "cast.handled_rate",
        None,
        _grouped,
        "cast_vs_oslo",
    ),
    Row("cast() send rate", "casts/s", "cast.send_rate", "cast.send_rate", None, _grouped),
    Row(
        "import time (-X importtime, cumulative)",
        "ms",
        "import.importtime_ms",
        "import.importtime_ms",
        None,
        _one,
        "import_vs_oslo",
    ),
    Row(
        "import, wall time minus bare start-up",
        "ms",
        "import.wall_minus_bare_ms",
        "import.wall_minus_bare_ms",
        None,
        _one,
        "import_wall_vs_oslo",
    ),
    Row(
        "peak RSS, listener draining the queue",
        "MiB",
        "drain.peak_rss_mib",
        "drain.peak_rss_mib",
        "consume.peak_rss_mib",
        _one,
        "peak_rss_vs_oslo",
    ),
    Row(
        "RSS of that listener when ready",
        "MiB",
        "drain.ready_rss_mib",
        "drain.ready_rss_mib",
        None,
        _one,
    ),
    Row(
        "peak RSS, RPC server after the RPC runs",
        "MiB",
        "rpc.server_peak_rss_mib",
        "rpc.server_peak_rss_mib",
        None,
        _one,
    ),
    Row(
        "AMQP connections held by a typical service",
        "",
        "connections.held",
        "connections.held",
        None,
        _count,
    ),
)

CHECKS = (
    ("notify.all_arrived", "every notification arrived once (end-to-end runs)"),
    ("drain.all_arrived", "every notification arrived once (drain runs)"),
    ("cast.all_handled", "every cast handled once"),
)


def cell(entry: dict[str, Any] | None, fmt: Format) -> str:
    """``median (min-max)`` of a summary entry (an en dash when absent)."""
    if not entry or not entry.get("n"):
        return DASH
    text = fmt(entry["median"])
    if entry["n"] > 1 and entry["min"] != entry["max"]:
        text += f" ({fmt(entry['min'])}{DASH}{fmt(entry['max'])})"
    return text


def ratio_cell(entry: dict[str, Any] | None) -> str:
    """A ratio's median with its min-max."""
    return cell(entry, lambda value: f"{value:.2f}")


def verdict(entry: dict[str, Any]) -> str:
    """``met``/``missed`` for a ratio with a target, with ``(within noise)`` near the line.

    Same-run ratios of identical code varied by about ±20% on the baseline's
    machine, so a median within 20% of the target is flagged.
    """
    if not entry.get("n"):
        return "not measured"
    target = float(entry["target"].split()[1])
    word = "met" if entry["met"] else "missed"
    if abs(entry["median"] / target - 1) < 0.2:
        word += " (within noise)"
    return word


def main_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the main table (rows where nothing was measured dropped)."""
    summary, ratios = result["summary"], result["ratios"]
    sides = [key for key in ("messaging", "metrics", "oslo") if key in summary]
    header = ["measure", "unit", *(_side_label(result, key) for key in sides), "raw kombu"]
    if "oslo" in sides:
        header.append("messaging / oslo")
    rows = []
    for row in ROWS:
        cells = [
            cell(summary[key].get(col) if col else None, row.fmt)
            # The metrics side is messaging itself: the same figures.
            for key, col in ((k, getattr(row, "messaging" if k == "metrics" else k)) for k in sides)
        ]
        raw = cell(summary.get("raw", {}).get(row.raw) if row.raw else None, row.fmt)
        if all(c == DASH for c in [*cells, raw]):
            continue
        line = [row.label, row.unit, *cells, raw]
        if "oslo" in sides:
            line.append(ratio_cell(ratios.get(row.ratio)) if row.ratio else "")
        rows.append(line)
    return header, rows


def target_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the targets table."""
    rows = [
        [entry["label"], ratio_cell(entry), entry["target"], verdict(entry)]
        for entry in result["ratios"].values()
        if "target" in entry and entry.get("n")
    ]
    return ["ratio (same repetition)", f"median (min{DASH}max)", "target", "verdict"], rows


def info_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the other ratios (no target)."""
    rows = [
        [entry["label"], ratio_cell(entry)]
        for entry in result["ratios"].values()
        if "target" not in entry and entry.get("n")
    ]
    return ["ratio (same repetition)", f"median (min{DASH}max)"], rows


def checks(result: dict[str, Any]) -> list[str]:
    """One line per correctness check and side, e.g. ``messaging: ... 5/5``."""
    lines = []
    for side, figures in result["summary"].items():
        for key, label in CHECKS:
            entry = figures.get(key)
            if entry:
                lines.append(f"{side}: {label}: {entry['true']}/{entry['n']}")
    return lines


def _side_label(result: dict[str, Any], key: str) -> str:
    side = result["meta"]["sides"].get(key, {})
    version = side.get("versions", {}).get("version")
    name = "oslo.messaging" if key == "oslo" else side.get("label", key)
    return f"{name} {version}" if version else name


def text(result: dict[str, Any]) -> str:
    """The whole report as plain text."""
    meta = result["meta"]
    out = [
        f"{meta['date']}  {meta['url']}  {meta['repeat']} repetition(s), {meta['seconds']:.0f} s"
        f"  ({meta['cpus']} CPUs, Python {meta['python']}"
        + (f", RabbitMQ {meta['rabbitmq']}" if meta.get("rabbitmq") else "")
        + f", messaging {meta.get('messaging_commit')})",
        f"Medians over the repetitions (min{DASH}max); ratios are taken within each repetition.",
        *(
            ["Both libraries monkey-patched by eventlet (the raw kombu floor is not)."]
            if meta.get("eventlet")
            else []
        ),
        "",
        _plain(*main_table(result)),
    ]
    header, rows = target_table(result)
    if rows:
        out += ["", "Targets", _plain(header, rows)]
    else:
        out += ["", "Targets: none measurable (they need oslo.messaging and raw kombu on RabbitMQ)"]
    header, rows = info_table(result)
    if rows:
        out += ["", "Other ratios", _plain(header, rows)]
    out += ["", *checks(result)]
    errors = [
        f"repetition {r['index'] + 1}: {e}" for r in result["repetitions"] for e in r["errors"]
    ]
    if errors:
        out += ["", "ERRORS", *errors]
    return "\n".join(out) + "\n"


def _plain(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def rst(result: dict[str, Any]) -> str:
    """The tables as reStructuredText ``list-table`` directives, for the docs page."""
    parts = []
    for title, (header, rows) in (
        ("Results", main_table(result)),
        ("Targets", target_table(result)),
        ("Other ratios", info_table(result)),
    ):
        if not rows:
            continue
        lines = [f".. list-table:: {title}", "   :header-rows: 1", ""]
        for line in [header, *rows]:
            lines.append(f"   * - {line[0]}")
            lines += [f"     - {c}" if c else "     -" for c in line[1:]]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
