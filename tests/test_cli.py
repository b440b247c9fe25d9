"""The ``floatingip`` command as a new user meets it: run from the source tree, wrong paths, -v."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from floatingip.cli import main
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
        "import floatingip, floatingip.rules, floatingip.testing\n"
        "print(floatingip.__file__)\n"
        "m = floatingip.Manager.from_cluster_home("
        "'examples/cluster-home', 'demo', host='db1',"
        " executor=floatingip.testing.RecordingExecutor(),"
        " reconcile_at_start=False, monitor_interval=0)\n"
        "print(floatingip.rules.shipped_rules_dir())\n"
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


def test_verbose_is_accepted_after_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    home = str(REPO / "examples" / "cluster-home")
    assert main(["services", "--cluster-home", home, "--cluster", "demo", "-v"]) == 0
    assert main(["-v", "services", "--cluster-home", home, "--cluster", "demo", "-vv"]) == 0
    assert "service 'master'" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["services", "shell", "sudoers --user dba", "check"])
def test_each_wrong_cluster_home_says_what_it_is(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = REPO / "examples" / "cluster-home"
    cases = {
        tmp_path / "nowhere": f"cluster home {tmp_path / 'nowhere'} does not exist",
        REPO / "README.md": f"cluster home {REPO / 'README.md'} is a file, not a directory",
        home / "conf": (
            f"{home / 'conf'} is the conf directory of cluster home {home}, not a cluster home "
            f"itself: pass {home}; clusters there: demo"
        ),
        tmp_path: f"{tmp_path} is not a cluster home: it has no conf/cluster directory",
    }
    for given, message in cases.items():
        argv = [*command.split(), "--cluster-home", str(given), "--cluster", "demo"]
        assert main(argv) == 1
        captured = capsys.readouterr()
        assert message in captured.out + captured.err, given
    assert main([*command.split(), "--cluster-home", str(home), "--cluster", "nope"]) == 1
    captured = capsys.readouterr()
    assert (
        f"cluster 'nope' does not exist in cluster home {home} "
        f"(no directory {home / 'conf/cluster/nope'}); clusters there: demo"
    ) in captured.out + captured.err


def test_a_rules_dir_that_is_a_file_is_called_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    home = str(REPO / "examples" / "cluster-home")
    rules = REPO / "rules" / "FloatingIP.py"
    argv = ["--cluster-home", home, "--cluster", "demo", "--rules-dir", str(rules)]
    assert main(["shell", *argv, "--dry-run", "--host", "db1"]) == 1
    assert f"{rules}: is a file, not a rules directory" in capsys.readouterr().err
    assert main(["check", *argv]) == 1
    assert f"{rules}: is a file, not a rules directory" in capsys.readouterr().out


def test_install_rules_twice_says_already_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "rules"
    assert main(["install-rules", str(target)]) == 0
    before = (target / "FloatingIP.py").stat()
    capsys.readouterr()
    assert main(["install-rules", str(target)]) == 1
    err = capsys.readouterr().err
    assert f"{target / 'FloatingIP.py'}: already installed" in err
    assert "use --force to replace" in err
    assert "invalid rule file" not in err and "overwrite=True" not in err
    assert (target / "FloatingIP.py").stat().st_mtime_ns == before.st_mtime_ns
    assert main(["install-rules", "--force", str(target)]) == 0


def test_building_the_package_gives_no_deprecation_warning(tmp_path: Path) -> None:
    """setuptools >= 77 warns about a license classifier next to an SPDX ``license``."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--wheel-dir",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    for warning in ("BuildBackendWarning", "DeprecationWarning", "deprecated"):
        assert warning not in output, output
