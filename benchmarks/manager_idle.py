"""The idle cost of a long-lived Manager (issue #17 item 5), beside keepalived's (13 MB RSS, 0.02%
of a core, measured on the same machine for the issue).

A child process imports floatingip, builds a Manager for this host with one VIP service (on
``lo``, 192.0.2.22/32, never taken: the datasource is a slave, so only its status is read, which
needs no root) and the default monitor (every 10 s; --short: 1 s), then idles for 60 s (--short:
5 s).  Printed: the import's time and RSS, one monitor check's CPU (the child's own time and that
of the `ip` it runs), and over the idle window the CPU as a percentage of one core and the RSS.
Goals: under 20 MB and 0.1%.

Two such children, started one after the other, idle side by side: one as an installed
floatingip runs (every module's bytecode cached, as pip and distribution packages leave it:
written here once into a scratch PYTHONPYCACHEPREFIX), and one whose floatingip modules are
compiled from source at every start (a source checkout run with PYTHONDONTWRITEBYTECODE), which
costs start-up time and leaves some memory behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import cluster_home, emit, process_cpu_seconds, process_rss_mb, short_mode

import floatingip

SERVICE = (
    "name=master\nvip.address=192.0.2.22/32\nvip.interface=lo\nvip.arp.count=0\nvip.sudo=false\n"
)
KEEPALIVED = {"rss_mb": 13.0, "cpu_percent": 0.02}
KINDS = ("installed", "source")  # bytecode cached; floatingip compiled at start

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


def bytecode_environments(scratch: Path) -> dict[str, dict[str, str]]:
    """The children's environments: every module's bytecode cached in a scratch pycache prefix
    (written by a first run of the child), and the same cache without floatingip's own."""
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    cached, uncached = scratch / "pycache-all", scratch / "pycache-but-floatingip"
    return {
        "installed": {**base, "PYTHONPYCACHEPREFIX": str(cached)},
        "source": {**base, "PYTHONPYCACHEPREFIX": str(uncached), "PYTHONDONTWRITEBYTECODE": "1"},
    }


def warm_up(home: Path, environments: dict[str, dict[str, str]]) -> None:
    """Run the child once to write every module's bytecode; copy it but floatingip's."""
    subprocess.run(
        [sys.executable, "-c", CHILD, str(home), "1", "1"],
        env=environments["installed"],
        input="",  # the child idles until its stdin ends: at once
        stdout=subprocess.DEVNULL,
        check=True,
    )
    cached = Path(environments["installed"]["PYTHONPYCACHEPREFIX"])
    uncached = Path(environments["source"]["PYTHONPYCACHEPREFIX"])
    package = Path(floatingip.__file__).resolve().parent
    mirrored = cached / package.relative_to(package.anchor)  # where its bytecode went
    if not any(mirrored.glob("*.pyc")):
        raise SystemExit(f"manager_idle: no bytecode of {package} was written to {mirrored}")
    shutil.copytree(
        cached, uncached, ignore=lambda folder, names: names if Path(folder) == mirrored else []
    )


def main() -> None:
    seconds, interval, checks = (5.0, 1.0, 20) if short_mode() else (60.0, 10.0, 100)
    with tempfile.TemporaryDirectory() as scratch:
        home = cluster_home(SERVICE, [("bench", "bench", "slave")], root=Path(scratch) / "home")
        environments = bytecode_environments(Path(scratch))
        warm_up(home, environments)
        children, figures, cpu, largest = {}, {}, {}, {}
        for kind in KINDS:  # one after the other: neither start slows the other's
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(home), str(interval), str(checks)],
                env=environments[kind],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            children[kind], figures[kind] = child, json.loads(child.stdout.readline())
        started = time.monotonic()
        for kind, child in children.items():
            cpu[kind], largest[kind] = process_cpu_seconds(child.pid), process_rss_mb(child.pid)
        while time.monotonic() - started < seconds:
            time.sleep(0.5)
            for kind, child in children.items():
                largest[kind] = max(largest[kind], process_rss_mb(child.pid))
        elapsed = time.monotonic() - started
        idle_cpu = {
            kind: (process_cpu_seconds(child.pid) - cpu[kind]) / elapsed * 100
            for kind, child in children.items()
        }
        for child in children.values():
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=60)
    installed = figures["installed"]
    results = {
        **{key: round(value, 2) for key, value in installed.items()},
        "idle_seconds": seconds,
        "monitor_interval": interval,
        "idle_cpu_percent": round(idle_cpu["installed"], 3),
        "idle_rss_mb": round(largest["installed"], 1),
        "from_source": {
            **{key: round(value, 2) for key, value in figures["source"].items()},
            "idle_cpu_percent": round(idle_cpu["source"], 3),
            "idle_rss_mb": round(largest["source"], 1),
        },
        "keepalived": KEEPALIVED,
    }
    source = figures["source"]
    rows = [
        ("python alone, RSS", f"{installed['bare_mb']:.1f} MB", ""),
        ("import floatingip: time", f"{installed['import_ms']:.0f} ms",
         f"compiled at start: {source['import_ms']:.0f} ms"),
        ("import floatingip: RSS", f"{installed['import_mb']:.1f} MB",
         f"compiled at start: {source['import_mb']:.1f} MB"),
        ("one monitor check (self + its ip), CPU", f"{installed['check_cpu_ms']:.1f} ms", ""),
        (f"idle {seconds:g} s, monitor every {interval:g} s: RSS", f"{largest['installed']:.1f} MB",
         f"< 20 MB (keepalived {KEEPALIVED['rss_mb']:g} MB)"),
        ("the same, floatingip compiled at start: RSS", f"{largest['source']:.1f} MB", "< 20 MB"),
        ("the same: CPU of one core", f"{idle_cpu['installed']:.3f}%",
         f"< 0.1% (keepalived {KEEPALIVED['cpu_percent']:g}%)"),
        ("the same, floatingip compiled at start: CPU", f"{idle_cpu['source']:.3f}%", "< 0.1%"),
    ]  # fmt: skip
    emit("manager_idle", results, rows)


if __name__ == "__main__":
    main()
