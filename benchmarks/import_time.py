"""Print how long ``import messaging`` takes in a fresh interpreter.

Each figure is the median over N fresh subprocesses, so caches of the running
process do not flatter the result:

- ``-X importtime``: the cumulative time Python reports for the package itself,
  the cost a service pays for importing it;
- wall time: the whole ``python -c 'import <module>'`` run, with the bare
  interpreter start-up (``python -c pass``) shown for comparison.

``oslo_messaging`` is measured the same way when it is importable. Figures
only; nothing is asserted.

Usage::

    python benchmarks/import_time.py [--runs 20] [--python /path/to/python]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODULES = ("messaging", "oslo_messaging")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Measure this checkout even when the package is not installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONIMPORTTIME", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def importable(python: str, module: str) -> bool:
    """Return True if ``module`` imports in a fresh ``python``."""
    proc = subprocess.run(
        [python, "-c", f"import {module}"],
        env=_env(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    return proc.returncode == 0


def cumulative_import_us(python: str, module: str) -> int:
    """Return the cumulative microseconds ``-X importtime`` reports for ``module``.

    Raises:
        RuntimeError: the import failed or the report has no line for ``module``.
    """
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", f"import {module}"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"import {module} failed:\n{proc.stderr}")
    # Lines look like "import time:       312 |      45210 | messaging".
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = [part.strip() for part in line[len("import time:") :].split("|")]
        if len(fields) == 3 and fields[2] == module:
            return int(fields[1])
    raise RuntimeError(f"-X importtime printed no line for {module!r}")


def wall_seconds(python: str, code: str) -> float:
    """Return the wall time of one ``python -c code`` run, in seconds."""
    start = time.perf_counter()
    subprocess.run([python, "-c", code], env=_env(), capture_output=True, timeout=120, check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Measure and print the figures; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="fresh subprocesses per figure")
    parser.add_argument("--python", default=sys.executable, help="interpreter to measure")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    print(f"interpreter: {args.python}")
    print(f"runs per figure: {args.runs} (medians)")
    baseline = statistics.median(wall_seconds(args.python, "pass") for _ in range(args.runs))
    print(f"{'python -c pass':<28} wall {baseline * 1000:8.1f} ms")
    for module in MODULES:
        if not importable(args.python, module):
            print(f"{'import ' + module:<28} not importable, skipped")
            continue
        cumulative = statistics.median(
            cumulative_import_us(args.python, module) for _ in range(args.runs)
        )
        wall = statistics.median(
            wall_seconds(args.python, f"import {module}") for _ in range(args.runs)
        )
        print(
            f"{'import ' + module:<28} importtime {cumulative / 1000:8.1f} ms"
            f"   wall {wall * 1000:8.1f} ms"
            f"   (minus bare start-up {(wall - baseline) * 1000:7.1f} ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
