"""floatingip.testing: the fake hosts that rule files and embeddings are tested with."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from floatingip import CommandResult, Executor, Manager
from floatingip.commands import ipv4_addresses, ipv4_addresses_argv
from floatingip.dad import FREE, IN_USE, advertise_argv, probe_argv
from floatingip.errors import CommandError
from floatingip.testing import (
    FakeNetwork,
    RecordingExecutor,
    dry_run_responder,
    write_cluster_home,
)

VIP = "192.0.2.22/24"


def test_recording_executor_records_and_succeeds() -> None:
    recorder = RecordingExecutor()
    result = recorder.run(["sudo", "-n", "ip", "addr"], timeout=1)
    assert result.ok and recorder.calls == [("sudo", "-n", "ip", "addr")]


def test_recording_executor_can_script_a_failure() -> None:
    def respond(argv: tuple[str, ...]) -> CommandResult:
        return CommandResult(argv=argv, exit_code=2, stderr="RTNETLINK answers: File exists\n")

    recorder = RecordingExecutor(respond)
    with pytest.raises(CommandError, match="File exists"):
        recorder.run(["ip", "addr", "add"])
    assert recorder.run(["ip"], check=False).exit_code == 2
    assert len(recorder.calls) == 2


def test_recording_executor_keeps_the_addresses_a_host_would_have() -> None:
    recorder = RecordingExecutor()
    add = ("sudo", "-n", "ip", "addr", "add", "192.0.2.22/24", "dev", "eth0", "label", "eth0:0")
    assert recorder.run(add).ok
    assert recorder.addresses == {"eth0": {"192.0.2.22/24": "eth0:0"}}
    shown = recorder.run(("ip", "-o", "-4", "addr", "show", "dev", "eth0")).stdout
    assert "inet 192.0.2.22/24" in shown
    assert "already assigned" in recorder.run(add, check=False).stderr
    assert recorder.run(("ip", "addr", "del", "192.0.2.22/24", "dev", "eth0")).ok
    assert recorder.addresses == {"eth0": {}}
    recorder.run(("/sbin/ifconfig", "eth0:1", "192.0.2.23", "netmask", "255.255.255.0", "up"))
    assert "inet 192.0.2.23" in recorder.run(("/sbin/ifconfig", "eth0:1")).stdout
    recorder.run(("/sbin/ifconfig", "eth0:1", "down"))
    assert "inet" not in recorder.run(("/sbin/ifconfig", "eth0:1")).stdout


def test_a_fake_host_is_an_executor() -> None:
    assert isinstance(FakeNetwork(["db1"]).executor("db1"), Executor)


def test_the_duplicate_address_probe_sees_the_other_hosts() -> None:
    network = FakeNetwork(["db1", "db2"])
    probe = probe_argv("eth0", "192.0.2.22", 0.2, sudo=True)
    assert network.executor("db1").run(probe, check=False).exit_code == FREE
    network.executor("db2").run(("ip", "addr", "add", VIP, "dev", "eth0"))
    answer = network.executor("db1").run(probe, check=False)
    assert answer.exit_code == IN_USE and "in use on eth0 by db2" in answer.stdout
    assert network.holders(VIP) == ["db2"]
    assert network.changes == [("db2", "add", VIP)]


def test_the_fake_probes_every_address_of_a_dual_stack_vip_and_advertises() -> None:
    network = FakeNetwork(["db1", "db2"])
    probe = probe_argv("eth0", ("192.0.2.22", "2001:db8::22"), 0.2, sudo=True)
    assert network.executor("db1").run(probe, check=False).exit_code == FREE
    network.executor("db2").run(("ip", "addr", "add", VIP, "dev", "eth0"))  # the IPv4 half
    answer = network.executor("db1").run(probe, check=False)
    assert answer.exit_code == IN_USE and "192.0.2.22 is in use on eth0 by db2" in answer.stdout
    advertise = advertise_argv("eth0", "2001:db8::22", 3, sudo=True)
    assert network.executor("db2").run(advertise, check=False).exit_code == FREE


def test_addresses_can_be_set_up_without_a_command() -> None:
    network = FakeNetwork(["db1"])
    network.addresses["db1"].add(VIP)
    assert VIP in network.addresses["db1"] and network.changes == []
    shown = network.executor("db1").run(ipv4_addresses_argv("eth0")).stdout
    assert [str(address) for address in ipv4_addresses(shown)] == [VIP]
    network.addresses["db1"].discard(VIP)
    assert network.addresses["db1"] == set()


def test_injected_failures_hit_changes_not_queries() -> None:
    network = FakeNetwork(["db1"])
    host = network.executor("db1")
    network.fail_next("db1", 1)
    assert network.faults_pending
    assert host.run(ipv4_addresses_argv("eth0")).ok  # a query still answers
    with pytest.raises(CommandError, match="injected failure"):
        host.run(("ip", "addr", "add", VIP, "dev", "eth0"))
    assert not network.faults_pending and network.failed == 1
    assert host.run(("ip", "addr", "add", VIP, "dev", "eth0")).ok


def test_a_strict_network_refuses_a_command_it_does_not_know() -> None:
    with pytest.raises(AssertionError, match="does not know"):
        FakeNetwork(["db1"], strict=True).executor("db1").run(("systemctl", "restart", "x"))
    assert FakeNetwork(["db1"]).executor("db1").run(("systemctl", "restart", "x")).ok
    with pytest.raises(ValueError, match="no host 'db9'"):
        FakeNetwork(["db1"]).executor("db9")


def test_dry_run_responder_prints_the_command_and_its_host() -> None:
    out = io.StringIO()
    recorder = RecordingExecutor(dry_run_responder(out, host="db2"))
    result = recorder.run(("sudo", "-n", "ip", "addr", "add", VIP, "dev", "eth0"))
    assert result == CommandResult(result.argv, 0)
    assert out.getvalue() == f"[dry-run on db2] sudo -n ip addr add {VIP} dev eth0\n"
    assert recorder.addresses == {}  # printed, not emulated


def test_a_cluster_home_for_a_test_loads_and_runs_its_rules(tmp_path: Path) -> None:
    service = f"name=master\nvip.address={VIP}\nvip.interface=eth0\nvip.arp.count=0\n"
    home = write_cluster_home(
        tmp_path, services={"master": service}, datasources={"db1": "name=db1\nrole=master\n"}
    )
    assert (home / "conf/cluster/demo/service/master.properties").stat().st_mode & 0o777 == 0o644
    host = RecordingExecutor()
    with Manager.from_cluster_home(home, "demo", host="db1", executor=host) as manager:
        manager.update_datasource("db1", state="ONLINE")
        assert manager.held == {"master": "db1"}
        assert host.addresses == {"eth0": {VIP: "eth0"}}
    assert host.addresses == {"eth0": {}}  # the failsafe released it
