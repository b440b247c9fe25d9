"""Memory: RSS growth from 10,000 to 1,000,000 state changes through a Manager.  Goal: under 20 MB.

Two kinds of change, as in engine_throughput: quiet ones (the rules match, nothing fires) and
VIP toggles (a rule fires and a command runs on every change).  For the toggles the same loop on
raw durable_rules runs in a child process, since its own growth is the floor for ours.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Callable

from _common import cluster_home, emit, rss_mb, short_mode
from engine_throughput import SEED_SERVICE, raw_change, raw_floatingip_host

from floatingip import Manager
from floatingip.testing import RecordingExecutor


def growth(change: Callable[[int], None], checkpoints: tuple[int, int]) -> tuple[float, float]:
    """RSS (MB) at each checkpoint after running ``change(i)`` that many times."""
    figures = []
    done = 0
    for checkpoint in checkpoints:
        while done < checkpoint:
            change(done)
            done += 1
        gc.collect()
        figures.append(rss_mb())
    return figures[0], figures[1]


def through_manager(name: str, checkpoints: tuple[int, int]) -> tuple[float, float]:
    recorder = RecordingExecutor()
    manager = Manager.from_cluster_home(
        cluster_home(SEED_SERVICE), "demo", host="db1", executor=recorder, monitor_interval=0
    )

    def change(i: int) -> None:
        manager.update_datasource(name, state="ONLINE" if i % 2 == 0 else "OFFLINE")
        if len(recorder.calls) > 1000:
            recorder.calls.clear()  # the test tool's own list, not the manager's memory

    try:
        return growth(change, checkpoints)
    finally:
        manager.close()


def raw_toggles(checkpoints: tuple[int, int]) -> tuple[float, float]:
    host = raw_floatingip_host()
    return growth(lambda i: raw_change(host, i, toggles=True), checkpoints)


def in_child(kind: str) -> tuple[float, float]:
    """Each measurement in a fresh process: RSS does not shrink, so they must not share one."""
    args = [sys.executable, __file__, "--child", kind, *(["--short"] if short_mode() else [])]
    output = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    first, last = json.loads(output)
    return first, last


def main() -> None:
    checkpoints = (5_000, 20_000) if short_mode() else (10_000, 1_000_000)
    if "--child" in sys.argv:
        kind = sys.argv[sys.argv.index("--child") + 1]
        if kind == "raw":
            print(json.dumps(raw_toggles(checkpoints)))
        else:
            print(json.dumps(through_manager("db2" if kind == "quiet" else "db1", checkpoints)))
        return
    first, last = checkpoints
    results: dict[str, object] = {"checkpoints": list(checkpoints)}
    rows = []
    for kind, label in (
        ("quiet", "quiet changes, Manager"),
        ("toggles", "VIP toggles, Manager"),
        ("raw", "VIP toggles, raw durable_rules"),
    ):
        at_first, at_last = in_child(kind)
        results[kind] = {
            "rss_mb": [round(at_first, 1), round(at_last, 1)],
            "growth_mb": round(at_last - at_first, 2),
        }
        goal = "goal < 20 MB" if kind != "raw" else "(the engine's own growth)"
        rows.append(
            (
                f"{label}: {first:,} -> {last:,}",
                f"{at_first:.1f} -> {at_last:.1f} MB ({at_last - at_first:+.1f})",
                goal,
            )
        )
    emit("memory", results, rows)


if __name__ == "__main__":
    main()
