"""An idle agent's cost (needs root, etcd-server and etcd-client): a 3-member etcd and an agent
process per database host, as users run it (default TTL 5 s, default monitor); nothing changes
for 60 s (--short: 10 s).  Printed for the agent that holds the VIP (it renews its lease every
TTL/5 and its monitor compares the VIP with the facts) and for one that does not: CPU as a
percentage of one core (the agent's own time and that of the commands it ran and waited for,
from /proc/PID/stat) and its largest RSS.  Goal: under 1% of a core and 40 MB.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from _common import emit, process_cpu_seconds, process_rss_mb, short_mode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test harness

from floatingip.sandbox import SandboxError
from tests.integration.etcd_world import world

TTL = 5  # the agent's default


def main() -> None:
    seconds = 10.0 if short_mode() else 60.0
    try:
        context = world(ttl=TTL)
        w = context.__enter__()
    except SandboxError as exc:
        emit("etcd_idle", {"skipped": str(exc)}, [("skipped", str(exc), "")])
        return
    try:
        w.put("policy", '{"mode":"AUTOMATIC"}')
        w.set_datasource("db1", "master")
        w.set_datasource("db2", "slave")
        for host in w.databases:
            w.start_agent(host, monitor=None)
        w.wait_for_holder("db1")
        time.sleep(2 * TTL / 5)  # past start-up: the first renewals and the lock's write
        pids = {host: w.agents[host].pid for host in w.databases}
        cpu = {host: process_cpu_seconds(pid) for host, pid in pids.items()}
        rss = {host: process_rss_mb(pid) for host, pid in pids.items()}
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(0.5)
            for host, pid in pids.items():
                rss[host] = max(rss[host], process_rss_mb(pid))
        elapsed = time.monotonic() - started
        used = {
            host: (process_cpu_seconds(pid) - cpu[host]) / elapsed * 100
            for host, pid in pids.items()
        }
        assert w.holders() == ["db1"], w.holders()
    finally:
        context.__exit__(None, None, None)
    emit(
        "etcd_idle",
        {"seconds": round(elapsed, 1), "ttl_s": TTL, "cpu_percent": used, "rss_mb": rss},
        [
            (f"idle agent holding the VIP, {elapsed:.0f} s: CPU", f"{used['db1']:.2f}% of a core",
             "< 1%"),
            ("  its largest RSS", f"{rss['db1']:.1f} MB", "< 40 MB"),
            ("idle agent not holding it: CPU", f"{used['db2']:.2f}% of a core", "< 1%"),
            ("  its largest RSS", f"{rss['db2']:.1f} MB", "< 40 MB"),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
