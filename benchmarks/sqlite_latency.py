"""Wake-up latency, idle CPU and throughput of the sqlite driver across processes.

Usage::

    python benchmarks/sqlite_latency.py [--samples 200] [--gap 0.02] [--idle 20]
                                        [--messages 10000] [--wakeup auto|inotify|poll ...]

For each wake-up mode, a listener runs in another process (a notification
listener on the public API, threading executor) on a fresh bus file, and this
process:

1. sends ``--samples`` notifications one at a time, ``--gap`` seconds apart so
   (plus up to as much again, at random) so that the listener is blocked waiting
   each time, each carrying its send time;
   the listener reports when its endpoint got it: the median and p90 of these
   delays are the wake-up latency (send to endpoint, through the file);
2. leaves the listener idle for ``--idle`` seconds and reads its CPU time from
   ``/proc``: the idle listener's CPU%% (of one core; /proc counts in clock ticks,
   10 ms, hence the long default);
3. sends ``--messages`` notifications as fast as one sender can and waits for
   the listener to have handled them all: the notify-to-listen throughput.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOPIC = "bench"


def _listener(url: str) -> None:
    from oslo_config import cfg

    import messaging

    conf = cfg.ConfigOpts()
    conf([], project="sqlite-bench", default_config_files=[], default_config_dirs=[])
    transport = messaging.get_notification_transport(conf, url)
    out = sys.stdout

    class Endpoint:
        def info(self, ctxt: object, publisher: str, event: str, payload: dict, md: object) -> None:
            now = time.time()
            if event == "bench.latency":
                out.write(f"latency {now - payload['sent']:.6f}\n")
            elif event == "bench.last":
                out.write(f"last {now:.6f}\n")
            out.flush()

    server = messaging.get_notification_listener(
        transport, [messaging.Target(topic=TOPIC)], [Endpoint()], executor="threading"
    )
    server.start()
    out.write("ready\n")
    out.flush()
    sys.stdin.read()  # until the parent closes our stdin
    server.stop()
    server.wait()
    transport.cleanup()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _expect(proc: subprocess.Popen[str], word: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(word):
        raise RuntimeError(f"the listener said {line!r}, expected {word!r}")
    return line.split()[1] if " " in line else ""


def run(mode: str, samples: int, gap: float, idle: float, messages: int) -> None:
    """Measure one wake-up mode and print its figures."""
    from oslo_config import cfg

    import messaging

    with tempfile.TemporaryDirectory(prefix="sqlite-bench-") as directory:
        url = f"sqlite:///{directory}/bus.db?wakeup={mode}"
        conf = cfg.ConfigOpts()
        conf([], project="sqlite-bench", default_config_files=[], default_config_dirs=[])
        transport = messaging.get_notification_transport(conf, url)
        notifier = messaging.Notifier(
            transport, "bench", driver="messagingv2", topics=[TOPIC], raise_errors=True
        )
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            _expect(proc, "ready")
            notifier.info({}, "bench.latency", {"sent": time.time()})  # warm-up
            _expect(proc, "latency")
            delays = []
            for _ in range(samples):
                # Let the listener block again; the jitter keeps sends out of step with polls.
                time.sleep(gap * (1 + random.random()))
                notifier.info({}, "bench.latency", {"sent": time.time()})
                delays.append(float(_expect(proc, "latency")))
            delays.sort()
            time.sleep(0.5)  # let the listener settle into idleness
            before = _cpu_seconds(proc.pid)
            time.sleep(idle)
            idle_cpu = (_cpu_seconds(proc.pid) - before) / idle * 100
            started = time.time()
            for n in range(messages - 1):
                notifier.info({}, "bench.n", {"n": n})
            sent = time.time()
            notifier.info({}, "bench.last", {})
            finished = float(_expect(proc, "last"))
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(30)
            transport.cleanup()
    median = statistics.median(delays) * 1000
    p90 = delays[int(len(delays) * 0.9) - 1] * 1000
    print(
        f"wakeup={mode:8s} latency median {median:6.2f} ms  p90 {p90:6.2f} ms  "
        f"max {delays[-1] * 1000:6.2f} ms  (n={len(delays)})  |  idle listener CPU "
        f"{idle_cpu:5.2f}% over {idle:.0f}s  |  {messages} notifications: sent at "
        f"{messages / (sent - started):6.0f}/s, handled at {messages / (finished - started):6.0f}/s"
    )


def main() -> None:
    """Parse the arguments and run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.02)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--wakeup", nargs="+", default=["inotify", "poll"])
    args = parser.parse_args()
    if args.serve:
        _listener(args.serve)
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for mode in args.wakeup:
        run(mode, args.samples, args.gap, args.idle, args.messages)


if __name__ == "__main__":
    main()
