"""Scale: 100 clusters x 10 datasources in one process: load time, change throughput, memory."""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

from _common import cluster_home, emit, rss_mb, short_mode
from engine_throughput import SEED_SERVICE

from floatingip import Manager
from floatingip.testing import RecordingExecutor


def main() -> None:
    clusters = 10 if short_mode() else 100
    per_cluster = 10
    changes_each = 100 if short_mode() else 1_000
    root = Path(tempfile.mkdtemp(prefix="floatingip-scale-"))
    for index in range(clusters):
        datasources = [
            (f"c{index}ds{n}", f"c{index}host{n}", "master" if n == 0 else "slave")
            for n in range(per_cluster)
        ]
        cluster_home(SEED_SERVICE, datasources=datasources, cluster=f"c{index}", root=root)
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    managers = [
        Manager.from_cluster_home(
            root,
            f"c{index}",
            host=f"c{index}host0",
            executor=RecordingExecutor(),
            monitor_interval=0,
        )
        for index in range(clusters)
    ]
    load = time.perf_counter() - started
    loaded = rss_mb()
    started = time.perf_counter()
    total = 0
    for step in range(changes_each):
        for index, manager in enumerate(managers):
            name = f"c{index}ds{step % per_cluster}"
            manager.update_datasource(name, state="ONLINE" if step % 2 == 0 else "OFFLINE")
            total += 1
    rate = total / (time.perf_counter() - started)
    gc.collect()
    after = rss_mb()
    for manager in managers:
        manager.close()
    emit(
        "scale",
        {
            "clusters": clusters,
            "datasources_per_cluster": per_cluster,
            "load_s": round(load, 3),
            "changes": total,
            "changes_per_s": round(rate),
            "rss_mb": {
                "before": round(before, 1),
                "loaded": round(loaded, 1),
                "after": round(after, 1),
            },
        },
        [
            (f"load {clusters} clusters x {per_cluster} datasources", f"{load:.2f} s", ""),
            ("memory for them", f"{loaded - before:.1f} MB", ""),
            (f"{total:,} changes across the clusters", f"{rate:,.0f}/s", ""),
            ("RSS after", f"{after:.1f} MB", ""),
        ],
    )


if __name__ == "__main__":
    main()
