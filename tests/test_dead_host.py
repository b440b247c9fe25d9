"""Declaring a host dead and alive (the rules' side, on a fake network; the real dead and hung
hosts are in tests/integration/test_dead_host.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from floatingip import Manager
from floatingip.errors import HostDeadError, UsageError
from floatingip.shell import Shell
from floatingip.testing import FakeNetwork, write_cluster_home

VIP = "192.0.2.22/24"
SERVICE = f"name=master\nvip.address={VIP}\nvip.interface=eth0\nvip.arp.count=0\nvip.sudo=false\n"


def manager_on(network: FakeNetwork, tmp_path: Path) -> Manager:
    home = write_cluster_home(
        tmp_path,
        services={"master": SERVICE},
        datasources={"db1": "name=db1\nrole=master\n", "db2": "name=db2\nrole=slave\n"},
    )
    return Manager.from_cluster_home(
        home, "demo", host="coordinator", executor=network.executor("coordinator"),
        executors={host: network.executor(host) for host in ("db1", "db2")},
        states={"db1": "ONLINE", "db2": "ONLINE"}, monitor_interval=0,
    )  # fmt: skip


@pytest.fixture
def network() -> FakeNetwork:
    return FakeNetwork(["coordinator", "db1", "db2"], strict=True)


def test_a_host_declared_dead_holds_nothing_and_is_sent_nothing(
    network: FakeNetwork, tmp_path: Path
) -> None:
    with manager_on(network, tmp_path) as manager:
        assert network.holders(VIP) == ["db1"]
        network.addresses["db1"].discard(VIP)  # powered off: its VIP is gone with it
        sent = len(network.changes)
        declared = manager.declare_dead("db1", "powered off")
        assert declared.ok and manager.held == {} and manager.dead == {"db1": "powered off"}
        switched = manager.switch(to="db2")
        assert switched.ok, [step.errors for step in switched.steps]
        assert manager.held == {"master": "db2"} and network.holders(VIP) == ["db2"]
        assert {host for host, _, _ in network.changes[sent:]} == {"db2"}
        assert manager.datasource("db1").state == "OFFLINE"  # not brought back ONLINE
        outcome = manager.run_service("master", "status", host="db1")
        assert isinstance(outcome.error, HostDeadError)
        assert "declared dead (powered off)" in str(outcome.error)


def test_a_host_declared_dead_that_still_answers_for_the_vip_keeps_it(
    network: FakeNetwork, tmp_path: Path
) -> None:
    """The declaration was wrong (db1 was not fenced): the duplicate address check, the second
    line, refuses to take the VIP on db2."""
    with manager_on(network, tmp_path) as manager:
        manager.declare_dead("db1")
        switched = manager.switch(to="db2")
        assert not switched.ok
        assert "another host still holds it" in switched.errors[0]
        assert network.holders(VIP) == ["db1"] and manager.held == {}


def _declared_dead_then_back_with_its_vip(network: FakeNetwork, manager: Manager) -> None:
    """db1 is declared dead, the VIP moves to db2, and db1 comes back with the VIP it had."""
    network.addresses["db1"].discard(VIP)
    manager.declare_dead("db1")
    manager.switch(to="db2")
    network.addresses["db1"].add(VIP)


def test_a_host_declared_alive_loses_a_stale_vip_before_anything_else(
    network: FakeNetwork, tmp_path: Path
) -> None:
    with manager_on(network, tmp_path) as manager:
        _declared_dead_then_back_with_its_vip(network, manager)
        sent = len(network.changes)
        alive = manager.declare_alive("db1")
        assert alive.ok, alive.errors
        assert network.changes[sent:] == [("db1", "del", VIP)]
        assert network.holders(VIP) == ["db2"] and manager.held == {"master": "db2"}
        assert manager.dead == {}


def test_a_host_whose_stale_vip_cannot_be_removed_stays_dead(
    network: FakeNetwork, tmp_path: Path
) -> None:
    with manager_on(network, tmp_path) as manager:
        _declared_dead_then_back_with_its_vip(network, manager)
        network.fail_next("db1", 1)
        refused = manager.declare_alive("db1")
        assert not refused.ok and "injected failure" in refused.errors[0]
        assert manager.dead.keys() == {"db1"} and manager.held == {"master": "db2"}


def test_declarations_are_checked(network: FakeNetwork, tmp_path: Path) -> None:
    with manager_on(network, tmp_path) as manager:
        with pytest.raises(UsageError, match="this manager's own host"):
            manager.declare_dead("coordinator")
        with pytest.raises(UsageError, match="unknown host 'db9'"):
            manager.declare_dead("db9")
        with pytest.raises(UsageError, match="'db1' is not declared dead"):
            manager.declare_alive("db1")
        manager.declare_dead("db1")
        with pytest.raises(UsageError, match="already declared dead"):
            manager.declare_dead("db1")
        assert manager.held == {} and manager.dead.keys() == {"db1"}


def test_the_shell_declares_and_lists(network: FakeNetwork, tmp_path: Path) -> None:
    with manager_on(network, tmp_path) as manager:
        network.addresses["db1"].discard(VIP)
        out = io.StringIO()
        shell = Shell(manager, stdout=out)
        shell.run_script(["dead", "dead db1 powered off", "dead", "switch to db2", "alive db1"])
        lines = out.getvalue().splitlines()
        assert "  no host is declared dead or unreachable" in lines
        assert "Host 'db1' is now declared DEAD" in lines
        assert "  db1: DEAD (powered off)" in lines
        assert "SWITCH TO 'db2' WAS SUCCESSFUL" in lines
        assert "Host 'db1' is now declared ALIVE" in lines
        assert shell.failures == 0, out.getvalue()
