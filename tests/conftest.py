"""Shared fixtures; environment-dependent tests skip only where the environment cannot run them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
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


def require_program(name: str) -> str:
    found = shutil.which(name)
    require(found is not None, f"needs {name!r} on PATH")
    assert found is not None
    return found


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
