"""The example files: cluster-home, and SlaveFloatingIP.py extending the shipped rules."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from floatingip import Manager, privilege
from floatingip.rules import install_rules, load_rules
from floatingip.testing import RecordingExecutor
from tests.conftest import REPO, require_program, require_root, vip_service_text, write_service

PROMPT = "[LOGICAL] /cluster/demo/> "

SLAVE_RULES = REPO / "examples" / "rules" / "SlaveFloatingIP.py"


def test_slave_rule_file_moves_a_read_vip_with_the_slave(
    demo_home: Path, service_dir: Path, tmp_path: Path
) -> None:
    write_service(service_dir, "slave.properties", vip_service_text("slave", "192.0.2.23", 1))
    rules_dir = tmp_path / "rules"
    install_rules(rules_dir)
    shutil.copyfile(SLAVE_RULES, rules_dir / SLAVE_RULES.name)
    assert [ruleset.name for ruleset in load_rules(rules_dir)] == ["FloatingIP", "SlaveFloatingIP"]

    recorder = RecordingExecutor()
    with Manager.from_cluster_home(
        demo_home, "demo", rules_dir=rules_dir, host="db2", executor=recorder
    ) as manager:

        def ran(result: object) -> list[tuple[str, str]]:
            return [(o.service, o.action) for o in result.commands]  # type: ignore[attr-defined]

        assert ran(manager.update_datasource("db1", state="ONLINE")) == []
        assert ran(manager.update_datasource("db2", state="ONLINE")) == [("slave", "start")]
        assert manager.held == {"slave": "db2"}
        assert ran(manager.update_datasource("db2", state="OFFLINE")) == [("slave", "stop")]
        manager.update_datasource("db2", state="ONLINE")
        # promoted: the read VIP goes, the master VIP comes
        promoted = ran(manager.update_datasource("db2", role="master"))
        assert sorted(promoted) == [("master", "start"), ("slave", "stop")]
        assert manager.held == {"master": "db2"}
    assert manager.held == {}
    deletions = [call[5] for call in recorder.calls if call[2:5] == ("ip", "addr", "del")]
    assert deletions[-1] == "192.0.2.22/24"  # the failsafe released the master VIP last


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo", REPO / "examples" / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def test_demo_without_a_sandbox_runs_the_same_session_dry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert load_demo().dry_run("Not root: the demo's network namespaces need root.") == 0
    text = capsys.readouterr().out
    assert "# Not root" in text and "--dry-run" in text
    # nothing unexplained before the session: the first command comes after the introduction
    session = text[text.index(PROMPT) :].splitlines()
    # the gratuitous ARP after each start runs in the background: its line comes at any time
    sudo = "sudo -n " if privilege.use_sudo() else ""
    arping = f"[dry-run on db1] {sudo}arping -U -c 3 -I eth0 192.0.2.22"
    assert arping in session
    session = [line for line in session if "arping" not in line]
    assert session[:5] == [
        f"{PROMPT}datasource db2 online",
        "DataSource 'db2' is now ONLINE",
        f"{PROMPT}datasource db1 online",
        "[dry-run on db1] sudo -n /sbin/ifconfig eth0:0 192.0.2.22",
        "DataSource 'db1' is now ONLINE",
    ]
    switch = session.index("SELECTED SLAVE: 'db2'")
    assert "[dry-run on db2] sudo -n /sbin/ifconfig eth0:0 192.0.2.22" in session[switch:]
    assert "SWITCH TO 'db2' WAS SUCCESSFUL" in text
    assert "status command to confirm" in text  # the probe after a stop is explained


def test_demo_shows_what_the_manager_ran_and_that_the_vip_is_gone() -> None:
    require_root()
    require_program("/sbin/ifconfig")
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    offline = lines.index(f"{PROMPT}datasource db1 offline")
    switch = lines.index(f"{PROMPT}switch to db2")
    after_offline = lines[offline:switch]
    assert "#   the manager ran on db1: sudo -n /sbin/ifconfig eth0:0 down  (ok)" in after_offline
    gone = after_offline.index(
        "# The VIP is gone: db1's eth0 holds only its own address, not 192.0.2.22"
    )
    shown = after_offline[gone + 1 : gone + 3]
    assert shown == [
        "db1$ ip -4 address show dev eth0 | grep inet",
        "    inet 192.0.2.11/24 scope global eth0",
    ]
    assert not any("192.0.2.22/" in line or "UP" in line for line in after_offline[gone:])
    assert (
        "#   the manager ran on db2: sudo -n /sbin/ifconfig eth0:0 192.0.2.22  (ok)"
        in lines[switch:]
    )


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "examples" / "harness.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_harness_drives_the_session_through_the_api() -> None:
    result = harness()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    online = lines.index("DataSource 'db1' is now ONLINE")
    assert lines[online + 1] == "  [db1] sudo -n /sbin/ifconfig eth0:0 10.10.12.22 -> ok"
    offline = lines.index("DataSource 'db1' is now OFFLINE")
    assert lines[offline + 1] == "  [db1] sudo -n /sbin/ifconfig eth0:0 down -> ok"
    switched = lines.index("SWITCH TO 'db2' WAS SUCCESSFUL")
    assert lines[switched + 1] == "  [db2] sudo -n /sbin/ifconfig eth0:0 10.10.12.22 -> ok"
    assert "VIP master is held on db2 (for datasource db2)" in lines
    assert lines[-1] == "  [db2] sudo -n /sbin/ifconfig eth0:0 down -> ok"  # failsafe on close
    assert "nothing" not in result.stdout


def test_harness_execute_refuses_the_documentation_address() -> None:
    result = harness("--execute")
    assert result.returncode == 2
    assert "refusing to run" in result.stderr and "10.10.12.22" in result.stderr
    assert "--vip 192.0.2.22" in result.stderr
    assert "[db1]" not in result.stdout and "[db2]" not in result.stdout


def test_harness_execute_moves_the_vip_to_db2_inside_a_sandbox() -> None:
    require_root()
    require_program("/sbin/ifconfig")
    result = harness("--execute", "--vip", "192.0.2.22")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "  [db2] sudo -n /sbin/ifconfig eth0:0 192.0.2.22 -> ok" in lines
    switched = lines.index("SWITCH TO 'db2' WAS SUCCESSFUL")
    assert "db1 eth0: 192.0.2.11" in lines[switched:]
    assert "db2 eth0: 192.0.2.12 192.0.2.22" in lines[switched:]


def test_make_demo_installs_only_what_the_demo_needs() -> None:
    script = REPO / ".ci" / "install-system-packages"

    def needed(*args: str) -> list[str]:
        result = subprocess.run(
            [str(script), *args, "--list"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert needed("demo") == ["sudo", "net-tools", "iproute2", "iputils-arping"]
    everything = needed()
    assert needed("test") == everything
    assert {"openjdk-17-jdk-headless", "postgresql", "gcc"} <= set(everything)
    assert set(needed("demo")) <= set(everything)
    recipe = (REPO / "Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0]
    assert "@.ci/install-system-packages demo\n" in recipe
