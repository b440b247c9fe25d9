"""The benchmark scripts keep working: each runs in --short mode and prints its JSON line and
table.  No number is asserted here: benchmarks measure, tests decide (README: Benchmarks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, report, require_program, require_root
from tests.integration.test_hook_patroni import require_patroni

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
    pytest.param("patroni_switch", marks=SLOW),  # three tools, two switchovers each: ~2 min
]
ROOT = ("vip_move", "etcd_switch", "etcd_idle", "patroni_switch")  # network namespaces
ETCD = ("etcd_switch", "etcd_idle", "patroni_switch")
BESIDE_VIP_MANAGER = ("etcd_switch", "patroni_switch")  # the tool users of this shape pick today


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_runs_in_short_mode(name: str) -> None:
    if name in ROOT:
        require_root()
    if name in ETCD:
        require_program("etcd", package="etcd-server")
        require_program("etcdctl", package="etcd-client")
    if name in BESIDE_VIP_MANAGER:
        require_program("vip-manager", package="vip-manager")
    if name == "patroni_switch":
        require_patroni()
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
