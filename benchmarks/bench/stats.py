"""Percentiles, medians with spread, and process measurements (standard library only)."""

from __future__ import annotations

import math
import os
import resource
import statistics
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of already sorted values.

    Args:
        sorted_values: the values, ascending; not empty.
        fraction: 0 < fraction <= 1 (0.99 for p99).

    Raises:
        ValueError: no values, or the fraction is out of range.
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], not {fraction!r}")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])


def latency_summary(seconds: Iterable[float], prefix: str = "") -> dict[str, float]:
    """Return p50/p90/p99/max/mean in milliseconds of latencies given in seconds."""
    values = sorted(seconds)
    return {
        f"{prefix}p50_ms": percentile(values, 0.50) * 1000,
        f"{prefix}p90_ms": percentile(values, 0.90) * 1000,
        f"{prefix}p99_ms": percentile(values, 0.99) * 1000,
        f"{prefix}max_ms": values[-1] * 1000,
        f"{prefix}mean_ms": statistics.fmean(values) * 1000,
    }


def spread(values: Iterable[float | None]) -> dict[str, Any]:
    """Return the median, min, max and count of the values that are not None.

    An empty input gives ``{"n": 0}`` (a measure no repetition produced).
    """
    present = [float(v) for v in values if v is not None]
    if not present:
        return {"n": 0}
    return {
        "median": statistics.median(present),
        "min": min(present),
        "max": max(present),
        "n": len(present),
    }


def cpu_seconds() -> float:
    """CPU time of this process so far, all threads, user and system."""
    return time.process_time()


def cpu_seconds_of(pid: int) -> float:
    """CPU time of another process (user + system, all threads), from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mib() -> float | None:
    """Resident memory of this process now (VmRSS), in MiB; None without ``/proc``."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def peak_rss_mib() -> float:
    """The peak resident memory of this process (``ru_maxrss``), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
