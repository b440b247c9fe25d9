"""Shared fixtures; environment-dependent tests skip only where the environment cannot run them."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INTEGRATION = REPO / "tests" / "integration"
EXAMPLE_CLUSTER_HOME = REPO / "examples" / "cluster-home"

SEED_MASTER_PROPERTIES = """\
# master.properties
name=master
command.start=sudo /sbin/ifconfig eth0:0 10.10.12.22
command.stop=sudo /sbin/ifconfig eth0:0 down
command.restart=echo "Not supported"
command.status=sudo /sbin/ifconfig eth0:0
"""


def require(condition: bool, reason: str) -> None:
    """Skip unless ``condition``; under FLOATINGIP_REQUIRE_NETNS=1 (CI) a skip is a failure."""
    if condition:
        return
    if os.environ.get("FLOATINGIP_REQUIRE_NETNS") == "1":
        pytest.fail(f"required by FLOATINGIP_REQUIRE_NETNS=1 but unavailable: {reason}")
    pytest.skip(reason)


def require_root() -> None:
    require(os.geteuid() == 0, "needs root")


# sudo, visudo, useradd and ifconfig live in sbin directories, which are not on an ordinary
# user's PATH: look there too, so that a skip never claims an installed program is missing.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def find_program(name: str) -> str | None:
    """The absolute path of ``name``: on PATH, else in the system's bin and sbin directories."""
    return shutil.which(name) or shutil.which(name, path=SYSTEM_PATH)


def require_program(name: str, package: str | None = None) -> str:
    found = find_program(name)
    needs = f"needs {name}" + (f" (package {package})" if package else "")
    require(found is not None, f"{needs}: not found on PATH or in {SYSTEM_PATH}")
    assert found is not None
    return found


# How long a test waits for a condition before it fails: generous, so that a loaded 2-core
# machine passes; a passing test never waits this long.  Speed is measured in benchmarks/.
PATIENCE = 30.0


def wait_until(condition: Callable[[], object], timeout: float = PATIENCE) -> bool:
    """Poll ``condition`` until it is true (True) or ``timeout`` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration is marked ``integration`` (real namespaces, sudo,
    java, postgres): `make quick` leaves it out."""
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def cluster_home(tmp_path: Path) -> Path:
    """An empty cluster home with cluster 'demo' and its service directory (mode 0755)."""
    service_dir = tmp_path / "cluster-home" / "conf" / "cluster" / "demo" / "service"
    service_dir.mkdir(parents=True)
    for directory in [service_dir, *service_dir.parents]:
        if directory == tmp_path:
            break
        directory.chmod(0o755)
    return tmp_path / "cluster-home"


@pytest.fixture
def service_dir(cluster_home: Path) -> Path:
    return cluster_home / "conf" / "cluster" / "demo" / "service"


def write_service(directory: Path, filename: str, text: str | bytes, mode: int = 0o644) -> Path:
    path = directory / filename
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


# vip.arp.count=0: the rules' tests count exact commands, and a classic service's gratuitous ARP
# runs in the background after each start (tests/integration/test_classic_arp.py tests it)
VIP_SERVICE = """\
name={name}
command.start=sudo ip addr add {vip}/24 dev eth0 label eth0:{label}
command.stop=sudo ip addr del {vip}/24 dev eth0
command.status=ip -o addr show dev eth0
vip.arp.count=0
"""


def vip_service_text(name: str = "master", vip: str = "192.0.2.22", label: int = 0) -> str:
    return VIP_SERVICE.format(name=name, vip=vip, label=label)


@pytest.fixture
def demo_home(cluster_home: Path, service_dir: Path) -> Path:
    """Cluster 'demo': service master (VIP 192.0.2.22), datasources db1 (master) and db2 (slave)."""
    write_service(service_dir, "master.properties", vip_service_text())
    datasource_dir = service_dir.parent / "datasource"
    datasource_dir.mkdir(mode=0o755)
    write_service(datasource_dir, "db1.properties", "name=db1\nrole=master\n")
    write_service(datasource_dir, "db2.properties", "name=db2\nhost=db2\nrole=slave\n")
    return cluster_home


_REPORT: list[str] = []


def report(line: str) -> None:
    """A figure for the end of the test run (event counts, timings): shown even when tests pass."""
    _REPORT.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORT:
        terminalreporter.section("floatingip")
        for line in _REPORT:
            terminalreporter.write_line(line)
