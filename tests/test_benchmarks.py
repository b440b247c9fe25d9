"""The benchmark scripts keep working: each runs in --short mode and prints its JSON line and
table.  No number is asserted here: benchmarks measure, tests decide (README: Benchmarks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, report, require_program, require_root

SLOW = pytest.mark.slow  # several seconds even in --short mode
SCRIPTS = [
    "engine_throughput",
    "dispatch_latency",
    pytest.param("memory", marks=SLOW),
    "scale",
    pytest.param("vip_move", marks=SLOW),
    pytest.param("etcd_switch", marks=SLOW),
    pytest.param("etcd_idle", marks=SLOW),
    pytest.param("manager_idle", marks=SLOW),
]
ROOT = ("vip_move", "etcd_switch", "etcd_idle")  # network namespaces
ETCD = ("etcd_switch", "etcd_idle")


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_runs_in_short_mode(name: str) -> None:
    if name in ROOT:
        require_root()
    if name in ETCD:
        require_program("etcd", package="etcd-server")
        require_program("etcdctl", package="etcd-client")
    if name == "etcd_switch":  # beside vip-manager, the tool users of this shape pick today
        require_program("vip-manager", package="vip-manager")
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), "--short"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    first, *table = result.stdout.splitlines()
    figures = json.loads(first)
    assert figures["benchmark"] == name and figures["short"] is True
    assert "skipped" not in figures, figures
    assert any(line.startswith(f"{name} (short run") for line in table)
    shown = {k: v for k, v in figures.items() if k not in ("machine", "short", "benchmark")}
    report(f"benchmark {name} (short): {json.dumps(shown)}")
