"""Dispatch latency: from the Manager.update_datasource call to the executor receiving the start
command (RecordingExecutor, so the command itself costs nothing).  Goal: p99 under 1 ms.

Two services: the seed's classic ifconfig service, and a built-in VIP service, whose start first
reads the interface (a status command) before the add; there the figure is to the add.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from _common import cluster_home, emit, percentile, short_mode, vip_service

from floatingip import CommandResult, Manager
from floatingip.commands import DEFAULT_TIMEOUT
from floatingip.supervisor import RetryPolicy
from floatingip.testing import RecordingExecutor

SEED_SERVICE = (
    "name=master\ncommand.start=sudo /sbin/ifconfig eth0:0 10.10.12.22\n"
    "command.stop=sudo /sbin/ifconfig eth0:0 down\ncommand.status=sudo /sbin/ifconfig eth0:0\n"
)


class TimingExecutor(RecordingExecutor):
    """The RecordingExecutor (which keeps the addresses a host would have), noting when each
    start command arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[float] = []

    def run(
        self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> CommandResult:
        words = [word for word in argv if word not in ("sudo", "-n")]
        start = words[:3] == ["ip", "addr", "add"] or words[-1] == "10.10.12.22"
        if start and words[0] != "arping":  # the gratuitous ARP that follows is not the start
            self.received.append(time.perf_counter())
        return super().run(argv, timeout=timeout, check=check)


def measure(service: str, rounds: int) -> list[float]:
    executor = TimingExecutor()
    received = executor.received
    # every datasource on this host: no duplicate address check, as with one manager per cluster
    home = cluster_home(service, datasources=[("db1", "db1", "master"), ("db2", "db1", "slave")])
    manager = Manager.from_cluster_home(
        home, "demo", host="db1", executor=executor,
        monitor_interval=0, retry=RetryPolicy(attempts=0),
    )  # fmt: skip
    latencies = []
    for _ in range(rounds):
        called = time.perf_counter()
        manager.update_datasource("db1", state="ONLINE")
        latencies.append(received[-1] - called)
        manager.update_datasource("db1", state="OFFLINE")
    manager.close()
    return latencies


def main() -> None:
    rounds = 300 if short_mode() else 20_000
    results: dict[str, object] = {"rounds": rounds}
    rows = []
    for kind, service in (("classic", SEED_SERVICE), ("vip", vip_service())):
        latencies = measure(service, rounds)
        median, p99 = statistics.median(latencies) * 1e3, percentile(latencies, 0.99) * 1e3
        results[kind] = {"median_ms": round(median, 4), "p99_ms": round(p99, 4)}
        label = "seed ifconfig service" if kind == "classic" else "built-in VIP service"
        rows += [
            (f"{label}: median", f"{median:.3f} ms", ""),
            (f"{label}: p99", f"{p99:.3f} ms", "goal < 1 ms"),
        ]
    emit("dispatch_latency", results, rows)


if __name__ == "__main__":
    main()
