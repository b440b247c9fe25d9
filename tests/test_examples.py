"""The example files: cluster-home, and SlaveFloatingIP.py extending the shipped rules."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from floatingip import Manager, RecordingExecutor, install_rules, load_rules
from tests.conftest import REPO, vip_service_text, write_service

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


def test_demo_without_a_sandbox_runs_the_same_session_dry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = importlib.util.spec_from_file_location("demo", REPO / "examples" / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.dry_run("Not root: the demo's network namespaces need root.") == 0
    text = capsys.readouterr().out
    assert "# Not root" in text and "--dry-run" in text
    assert "[dry-run] sudo -n /sbin/ifconfig eth0:0 192.0.2.22" in text
    assert "SWITCH TO 'db2' WAS SUCCESSFUL" in text


def test_harness_drives_the_session_through_the_api() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "harness.py"), "--host", "db2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "DataSource 'db1' is now OFFLINE" in lines
    assert "  [db2] sudo -n /sbin/ifconfig eth0:0 10.10.12.22 -> ok" in lines
    assert "SWITCH TO 'db2' WAS SUCCESSFUL" in lines
    assert "held on db2: master (for db2)" in lines
    assert lines[-1] == "  [db2] sudo -n /sbin/ifconfig eth0:0 down -> ok"  # failsafe on close
