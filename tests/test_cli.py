"""The ``floatingip`` command as a new user meets it: run from the source tree, wrong paths, -v."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

from tests.conftest import REPO
from tests.test_shell import safe_example_modes  # noqa: F401 (an autouse fixture)


def from_source_tree(*args: str) -> subprocess.CompletedProcess[str]:
    """Python run from the repository root, importing floatingip from the source folder.

    ``-S`` leaves out site-packages and the editable install's finder (a ``.pth`` hook); the
    dependencies come back through PYTHONPATH, whose ``.pth`` files are not run.  This is what a
    normal (non-editable) install sees from the root: the source folder shadows the package.
    """
    site_packages = sysconfig.get_paths()["purelib"]
    platform_packages = sysconfig.get_paths()["platlib"]
    return subprocess.run(
        [sys.executable, "-S", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([site_packages, platform_packages])},
    )


def test_the_library_finds_the_shipped_rules_from_the_source_tree() -> None:
    result = from_source_tree(
        "-c",
        "import floatingip\n"
        "print(floatingip.__file__)\n"
        "m = floatingip.Manager.from_cluster_home("
        "'examples/cluster-home', 'demo', host='db1', executor=floatingip.RecordingExecutor(),"
        " reconcile_at_start=False, monitor_interval=0)\n"
        "print(floatingip.shipped_rules_dir())\n"
        "m.close()\n",
    )
    assert result.returncode == 0, result.stderr
    module, rules = result.stdout.splitlines()
    assert module == str(REPO / "floatingip" / "__init__.py")  # really the source folder
    assert rules == str(REPO / "rules")


def test_check_runs_from_the_source_tree() -> None:
    result = from_source_tree(
        "-m", "floatingip", "check", "--cluster-home", "examples/cluster-home", "--cluster", "demo"
    )
    assert "ModuleNotFoundError" not in result.stderr, result.stderr
    assert f"PASS  rule files load from {REPO / 'rules'}: FloatingIP" in result.stdout
