"""floatingip.hooks: the one-shot hooks of Patroni, repmgr, MHA and orchestrator, without a
network (a RecordingExecutor stands for the host); the real-namespace contract tests are in
tests/integration/test_hooks_contract.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from floatingip import Manager, UsageError
from floatingip.testing import RecordingExecutor

VIP = "192.0.2.22/24"


def test_a_manager_without_failsafe_keeps_its_vip_on_close(demo_home: Path) -> None:
    host = RecordingExecutor()
    manager = Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=host, failsafe=False, monitor_interval=0
    )
    manager.update_datasource("db1", state="ONLINE")
    assert manager.held == {"master": "db1"}
    result = manager.close()
    assert result.ok and not result.commands
    assert VIP in host.addresses["eth0"]  # still there: the next one-shot finds it
    assert "keeping master" in manager.history[-1].message


def test_a_manager_with_failsafe_releases_its_vip_on_close(demo_home: Path) -> None:
    host = RecordingExecutor()
    with Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=host, monitor_interval=0
    ) as manager:
        manager.update_datasource("db1", state="ONLINE")
        assert VIP in host.addresses["eth0"]
    assert VIP not in host.addresses.get("eth0", {})


def test_failsafe_must_be_true_or_false(demo_home: Path) -> None:
    with pytest.raises(UsageError, match="failsafe"):
        Manager.from_cluster_home(demo_home, "demo", host="db1", failsafe="no")  # type: ignore[arg-type]
