"""What every benchmark shares: a throwaway cluster home, the machine, and the report format
(one JSON line for machines, then a table for people)."""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from floatingip import facts
from floatingip.datasource import DataSource, PolicyMode, Role, State
from floatingip.vocabulary import Phase

VIP = "192.0.2.22"


def cluster_home(
    service: str,
    datasources: Sequence[tuple[str, str, str]] = (
        ("db1", "db1", "master"),
        ("db2", "db2", "slave"),
    ),
    cluster: str = "demo",
    root: Path | None = None,
) -> Path:
    """A cluster home with one service file (master) and the given (name, host, role)s."""
    home = root if root is not None else Path(tempfile.mkdtemp(prefix="floatingip-bench-"))
    service_dir = home / "conf/cluster" / cluster / "service"
    datasource_dir = home / "conf/cluster" / cluster / "datasource"
    service_dir.mkdir(parents=True, exist_ok=True)
    datasource_dir.mkdir(parents=True, exist_ok=True)
    (service_dir / "master.properties").write_text(service)
    for name, host, role in datasources:
        (datasource_dir / f"{name}.properties").write_text(
            f"name={name}\nhost={host}\nrole={role}\n"
        )
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return home


def vip_service(*, arp: int = 0, backend: str = "ip", dad_wait: float = 0.2) -> str:
    return (
        f"name=master\nvip.address={VIP}/24\nvip.interface=eth0\nvip.label=eth0:0\n"
        f"vip.backend={backend}\nvip.arp.count={arp}\nvip.dad.wait={dad_wait}\n"
    )


@functools.cache
def datasource_fact(name: str, host: str, role: str, state: str) -> dict[str, Any]:
    """The fact a manager on db1 asserts for this datasource of cluster demo (floatingip.facts),
    for raw durable_rules to match as the manager's engine does."""
    datasource = DataSource(
        cluster="demo", name=name, host=host, role=Role(role), state=State(state)
    )
    return facts.datasource_fact(datasource, None, ("db1",))


def service_fact(holder: str | None) -> dict[str, Any]:
    return facts.service_fact("master", holder)


def manager_facts() -> list[dict[str, Any]]:
    """What a running manager on db1 asserts before any change: itself, the policy, the VIP."""
    return [
        facts.manager_fact("db1", Phase.RUNNING),
        facts.policy_fact(PolicyMode.AUTOMATIC),
        service_fact(None),
    ]


class Overlaps:
    """Watches the given network namespaces for a VIP every millisecond or so (rtnetlink, no
    process started): how often more than one held it, and for how long at most."""

    def __init__(self, namespaces: Sequence[str], vip: str) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test harness
        from tests.integration.etcd_world import AddressReader

        self.readers = [AddressReader(namespace) for namespace in namespaces]
        self.vip = vip
        self.count = 0
        self.longest = 0.0
        self.changes: list[tuple[float, tuple[int, ...]]] = []  # (when, who holds: indexes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        since: float | None = None
        last: tuple[int, ...] = ()
        while not self._stop.wait(0.001):
            held = tuple(i for i, r in enumerate(self.readers) if self.vip in r.addresses())
            holders = len(held)
            now = time.monotonic()
            if held != last:
                self.changes.append((now, held))
                last = held
            if holders > 1 and since is None:
                since = now
                self.count += 1
            elif holders <= 1 and since is not None:
                self.longest = max(self.longest, now - since)
                since = None

    def close(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(timeout=10)
        for reader in self.readers:
            reader.close()
        return {"two_holders": self.count, "two_holders_longest_s": self.longest}


def start_vip_manager(
    namespace: str, log: Path, *, vip: str, key: str, value: str, endpoints: str, interval: int
) -> subprocess.Popen[bytes]:
    """vip-manager (1.0: etcd v2 API) in ``namespace``: ``vip``/24 on eth0 while the etcd
    ``key`` holds ``value``, looked at every ``interval`` ms; it dies with this process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test harness
    from tests.integration.etcd_cluster import die_with_parent

    with log.open("ab") as output:
        return subprocess.Popen(
            ["ip", "netns", "exec", namespace, "vip-manager",
             "--ip", vip, "--netmask", "24", "--interface", "eth0",
             "--trigger-key", key, "--trigger-value", value, "--dcs-type", "etcd",
             "--dcs-endpoints", endpoints, "--interval", str(interval)],
            stdin=subprocess.DEVNULL, stdout=output, stderr=output, preexec_fn=die_with_parent,
        )  # fmt: skip


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"Linux {platform.release()}, Python {platform.python_version()}"
    return f"{cpu}, {os.cpu_count()} cores, {system}"


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime: the process's and its waited-for children's CPU."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def process_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def short_mode() -> bool:
    return "--short" in sys.argv


def emit(benchmark: str, results: dict[str, object], rows: Sequence[tuple[str, str, str]]) -> None:
    """Print the JSON line, then a table of (figure, value, goal)."""
    print(
        json.dumps({"benchmark": benchmark, "short": short_mode(), "machine": machine(), **results})
    )
    width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    print(f"\n{benchmark} ({'short' if short_mode() else 'full'} run, {machine()})")
    for figure, value, goal in rows:
        print(f"  {figure.ljust(width)}  {value.rjust(value_width)}  {goal}")


__all__ = [
    "VIP",
    "Overlaps",
    "cluster_home",
    "datasource_fact",
    "emit",
    "machine",
    "manager_facts",
    "percentile",
    "rss_mb",
    "service_fact",
    "short_mode",
    "start_vip_manager",
    "vip_service",
]
