"""The PNG of a run: one small bar chart per headline figure, medians with min-max bars.

Needs matplotlib (not a dependency of the project: ``pip install matplotlib``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.bench.runner import RATIOS

TIMES = "\u00d7"
COLOURS = {"messaging": "#1f77b4", "oslo": "#ff7f0e", "raw": "#7f7f7f"}
LABELS = {"messaging": "messaging", "oslo": "oslo.messaging", "raw": "raw kombu"}

#: (title, unit, key per column, the ratio shown in the title, better when higher)
PANELS: tuple[tuple[str, str, dict[str, str], str | None, bool], ...] = (
    (
        "notify send, confirmed",
        "msg/s",
        {
            "messaging": "notify.send_rate",
            "oslo": "notify.send_rate",
            "raw": "publish_confirms.rate",
        },
        "notify_send_vs_oslo",
        True,
    ),
    (
        "listener drain (prefilled)",
        "msg/s",
        {"messaging": "drain.rate", "oslo": "drain.rate", "raw": "consume.rate"},
        "drain_vs_oslo",
        True,
    ),
    (
        "notify end-to-end",
        "msg/s",
        {"messaging": "notify.e2e_rate", "oslo": "notify.e2e_rate"},
        "e2e_vs_oslo",
        True,
    ),
    (
        "RPC call p50, sequential",
        "ms",
        {"messaging": "call.p50_ms", "oslo": "call.p50_ms", "raw": "rtt.p50_ms"},
        "call_p50_vs_raw",
        False,
    ),
    (
        "RPC calls/s, 8 threads",
        "calls/s",
        {"messaging": "threads.rate", "oslo": "threads.rate"},
        "threads_vs_oslo",
        True,
    ),
    (
        "casts handled",
        "casts/s",
        {"messaging": "cast.handled_rate", "oslo": "cast.handled_rate"},
        "cast_vs_oslo",
        True,
    ),
    (
        "import time",
        "ms",
        {"messaging": "import.importtime_ms", "oslo": "import.importtime_ms"},
        "import_vs_oslo",
        False,
    ),
    (
        "peak RSS, draining listener",
        "MiB",
        {"messaging": "drain.peak_rss_mib", "oslo": "drain.peak_rss_mib"},
        "peak_rss_vs_oslo",
        False,
    ),
)

RATIO_WORDS = {
    "notify_send_vs_oslo": TIMES + " oslo",
    "drain_vs_oslo": TIMES + " oslo",
    "e2e_vs_oslo": TIMES + " oslo",
    "call_p50_vs_raw": TIMES + " raw",
    "threads_vs_oslo": TIMES + " oslo",
    "cast_vs_oslo": TIMES + " oslo",
    "import_vs_oslo": TIMES + " oslo",
    "peak_rss_vs_oslo": TIMES + " oslo",
}


def plot(result: dict[str, Any], path: Path) -> None:
    """Draw the panels of ``result`` into the PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary, ratios, meta = result["summary"], result["ratios"], result["meta"]
    panels = [
        p for p in PANELS if any(summary.get(s, {}).get(k, {}).get("n") for s, k in p[2].items())
    ]
    columns = 4
    rows = max(1, -(-len(panels) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.0 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, unit, keys, ratio_key, higher) in zip(axes.flat, panels, strict=False):
        names, medians, lows, highs = [], [], [], []
        for side, key in keys.items():
            entry = summary.get(side, {}).get(key)
            if not entry or not entry.get("n"):
                continue
            names.append(side)
            medians.append(entry["median"])
            lows.append(entry["median"] - entry["min"])
            highs.append(entry["max"] - entry["median"])
        bars = ax.bar(
            [LABELS[n] for n in names],
            medians,
            yerr=[lows, highs],
            capsize=4,
            color=[COLOURS[n] for n in names],
        )
        ax.bar_label(bars, labels=[_short(m) for m in medians], padding=2, fontsize=8)
        ratio = ratios.get(ratio_key or "", {})
        _target_line(ax, ratio_key, ratio, summary)
        caption = title
        if ratio.get("n"):
            caption += f"\nmessaging = {ratio['median']:.2f}{RATIO_WORDS[ratio_key or '']}"
            if "target" in ratio:
                caption += f" (target {ratio['target']})"
        ax.set_title(caption, fontsize=9)
        ax.set_ylabel(unit + ("" if higher else "  (lower is better)"), fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.margins(y=0.15)
    fig.suptitle(
        f"messaging vs oslo.messaging vs raw kombu on RabbitMQ {meta.get('rabbitmq') or ''}"
        f" ({meta['cpus']} CPUs, median of {meta['repeat']}, bars: min\u2013max)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _target_line(ax: Any, key: str | None, ratio: dict[str, Any], summary: dict[str, Any]) -> None:
    """A dashed line where messaging's bar must reach (or stay under) for the target."""
    spec = next((r for r in RATIOS if r.key == key), None)
    if spec is None or spec.target is None or "target" not in ratio:
        return
    side, figure = spec.denominator
    base = summary.get(side, {}).get(figure, {})
    if not base.get("n"):
        return
    level = base["median"] * spec.target
    ax.axhline(level, color=COLOURS["messaging"], linestyle="--", linewidth=1)
    ax.annotate(
        "target",
        (1.0, level),
        xycoords=("axes fraction", "data"),
        ha="right",
        va="bottom",
        fontsize=7,
        color=COLOURS["messaging"],
    )


def _short(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.2f}"
