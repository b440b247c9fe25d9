"""What a long-lived Manager keeps imported (issue #17 item 5: idle RSS under 20 MB).

Every module imported stays in memory for the manager's life; these are the ones that cost RSS
and that only other paths need (etcd, ssh, metrics, the command line, the DAD probe's own
process, error hints).  benchmarks/manager_idle.py measures what is left.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_service

# The standard library's and the dependencies' modules an idle manager does without (with what
# each cost an idle manager when it was imported, measured on Python 3.11).
NOT_AT_IDLE = [
    "argparse",  # 0.4 MB: the probe's and the command line's
    "socket",  # 0.4 MB: the DAD probe runs in a process of its own
    "shutil",  # 0.6 MB with zlib, bz2, lzma: the program lookup is commands.find_program
    "zlib",
    "bz2",
    "lzma",
    "difflib",  # 0.2 MB: "did you mean" hints in a refused file's error
    "hashlib",  # 3.5 MB (OpenSSL)
    "ssl",
    "asyncio",  # etcd (aetcd, grpc) and Patroni
    "aetcd",
    "grpc",
    "prometheus_client",
    "concurrent.futures",
    "email",
    "http",
    "tempfile",
    "platform",
]
NOT_AT_IDLE_FLOATINGIP = [
    "floatingip.agent",
    "floatingip.cli",
    "floatingip.cluster_state",
    "floatingip.etcd_client",
    "floatingip.etcd_fence",
    "floatingip.etcd_lease",
    "floatingip.hooks",
    "floatingip.metrics",
    "floatingip.patroni_source",
    "floatingip.sandbox",
    "floatingip.ssh",
    "floatingip.status",
    "floatingip.testing",
]

CHILD = r"""
import json, sys
before = set(sys.modules)  # the interpreter's start (site, an editable install's finder)
import floatingip
manager = floatingip.Manager.from_cluster_home(
    sys.argv[1], "demo", host="bench", states={"bench": "ONLINE"}, monitor_interval=3600
)
# what each monitor tick does: read the VIP's state (`ip -o -4 addr show dev lo`), ask the rules
ok = manager.reconcile().ok
manager.close()
print(json.dumps({"added": sorted(set(sys.modules) - before), "ok": ok}))
"""


def test_an_idle_manager_does_not_import_what_only_other_paths_need(
    cluster_home: Path, service_dir: Path
) -> None:
    write_service(
        service_dir,
        "master.properties",
        "name=master\nvip.address=192.0.2.22/32\nvip.interface=lo\nvip.arp.count=0\n"
        "vip.sudo=false\n",
    )
    datasource_dir = service_dir.parent / "datasource"
    datasource_dir.mkdir(mode=0o755)
    write_service(datasource_dir, "bench.properties", "name=bench\nhost=bench\nrole=slave\n")
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(cluster_home)],
        capture_output=True,
        text=True,
        timeout=120,
        input="",
    )
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout)
    assert child["ok"] is True
    added = set(child["added"])
    assert {"floatingip.manager", "durable_rules_engine", "subprocess"} <= added  # it did the work
    loaded = sorted(
        name
        for name in added
        if any(name == lazy or name.startswith(lazy + ".") for lazy in NOT_AT_IDLE)
        or any(name == lazy or name.startswith(lazy + ".") for lazy in NOT_AT_IDLE_FLOATINGIP)
    )
    assert loaded == [], f"an idle manager imported {loaded}"


def modules_added_by(script: str) -> set[str]:
    """The modules ``script`` (run in a fresh interpreter) imports beyond the interpreter's own."""
    child = (
        "import json, sys\nbefore = set(sys.modules)\n"
        + script
        + ("\nprint(json.dumps(sorted(set(sys.modules) - before)), file=sys.stderr)\n")
    )
    result = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120, input=""
    )
    assert result.returncode == 0, result.stderr
    added: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return set(added)


def test_the_command_line_starts_without_asyncio_or_etcd() -> None:
    # asyncio was 16 of the 27 ms that importing the command line took (through etcd_lease, for
    # MIN_TTL): now only the agent imports them.  (shutil: argparse's help asks it the width.)
    added = modules_added_by(
        "from floatingip.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert "floatingip.cli" in added and "argparse" in added  # it did the work
    loaded = sorted(
        name
        for name in added
        if name.split(".")[0] in {"asyncio", "aetcd", "grpc", "prometheus_client"}
        or name == "floatingip.etcd_client"
    )
    assert loaded == [], f"`floatingip --help` imported {loaded}"
