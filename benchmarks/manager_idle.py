"""The idle cost of a long-lived Manager (issue #17 item 5), beside keepalived's (13 MB RSS, 0.02%
of a core, measured on the same machine for the issue).

A child process imports floatingip, builds a Manager for this host with one VIP service (on
``lo``, 192.0.2.22/32, never taken: the datasource is a slave, so only its status is read, which
needs no root) and the default monitor (every 10 s; --short: 1 s), then idles for 60 s (--short:
5 s).  Printed: the import's time and RSS, one monitor check's CPU (the child's own time and that
of the `ip` it runs), and over the idle window the CPU as a percentage of one core and the RSS.
Goals: under 20 MB and 0.1%.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import cluster_home, emit, process_cpu_seconds, process_rss_mb, short_mode

SERVICE = (
    "name=master\nvip.address=192.0.2.22/32\nvip.interface=lo\nvip.arp.count=0\nvip.sudo=false\n"
)
KEEPALIVED = {"rss_mb": 13.0, "cpu_percent": 0.02}

CHILD = r"""
import json, resource, sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
def cpu():
    used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(usage.ru_utime + usage.ru_stime for usage in used)
bare = rss()
started = time.perf_counter()
import floatingip
imported = time.perf_counter() - started
after_import = rss()
home, interval, checks = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
manager = floatingip.Manager.from_cluster_home(
    home, "demo", host="bench", states={"bench": "ONLINE"}, monitor_interval=interval
)
before = cpu()
for _ in range(checks):  # what each monitor tick does: read every service's state, ask the rules
    manager.reconcile()
check = (cpu() - before) / checks
print(json.dumps({"bare_mb": bare, "import_ms": imported * 1000, "import_mb": after_import,
                  "built_mb": rss(), "check_cpu_ms": check * 1000}), flush=True)
sys.stdin.read()  # idle until the parent closes it
manager.close()
"""


def main() -> None:
    seconds, interval, checks = (5.0, 1.0, 20) if short_mode() else (60.0, 10.0, 100)
    with tempfile.TemporaryDirectory() as scratch:
        home = cluster_home(SERVICE, [("bench", "bench", "slave")], root=Path(scratch))
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(home), str(interval), str(checks)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        figures = json.loads(child.stdout.readline())
        cpu, started = process_cpu_seconds(child.pid), time.monotonic()
        largest = process_rss_mb(child.pid)
        while time.monotonic() - started < seconds:
            time.sleep(0.5)
            largest = max(largest, process_rss_mb(child.pid))
        idle_cpu = (process_cpu_seconds(child.pid) - cpu) / (time.monotonic() - started) * 100
        child.stdin.close()
        child.wait(timeout=60)
    results = {
        **{key: round(value, 2) for key, value in figures.items()},
        "idle_seconds": seconds,
        "monitor_interval": interval,
        "idle_cpu_percent": round(idle_cpu, 3),
        "idle_rss_mb": round(largest, 1),
        "keepalived": KEEPALIVED,
    }
    rows = [
        ("python alone, RSS", f"{figures['bare_mb']:.1f} MB", ""),
        ("import floatingip: time", f"{figures['import_ms']:.0f} ms", ""),
        ("import floatingip: RSS", f"{figures['import_mb']:.1f} MB", ""),
        ("one monitor check (self + its ip), CPU", f"{figures['check_cpu_ms']:.1f} ms", ""),
        (f"idle {seconds:g} s, monitor every {interval:g} s: RSS", f"{largest:.1f} MB",
         f"< 20 MB (keepalived {KEEPALIVED['rss_mb']:g} MB)"),
        ("the same: CPU of one core", f"{idle_cpu:.3f}%",
         f"< 0.1% (keepalived {KEEPALIVED['cpu_percent']:g}%)"),
    ]  # fmt: skip
    emit("manager_idle", results, rows)


if __name__ == "__main__":
    main()
