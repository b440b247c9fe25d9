"""IPv6 and dual-stack VIPs on real interfaces (2001:db8::/32 only): added so they answer at
once, verified, exact, announced with neighbour advertisements that move a client, probed for
duplicates, and kept whole (a half-present dual-stack VIP is reported and repaired)."""

from __future__ import annotations

import sys
from pathlib import Path

from floatingip import Manager, load_service, load_services
from floatingip.actions import perform
from floatingip.fence import DuplicateAddressFence
from floatingip.sandbox import Sandbox
from floatingip.supervisor import RetryPolicy
from tests.conftest import wait_until, write_service
from tests.integration.conftest import FOLLOW_DEADLINE

VIP6 = "2001:db8::22"
VIP4 = "192.0.2.22"
PORT = 3306


def service_home(
    cluster_home: Path, service_dir: Path, address: str, *, na: int = 1, arp: int = 0
) -> Path:
    write_service(
        service_dir,
        "master.properties",
        f"name=master\nvip.address={address}\nvip.interface=eth0\n"
        f"vip.arp.count={arp}\nvip.na.count={na}\n",
    )
    datasource_dir = service_dir.parent / "datasource"
    datasource_dir.mkdir(mode=0o755, exist_ok=True)
    write_service(datasource_dir, "db1.properties", "name=db1\nrole=master\n")
    write_service(datasource_dir, "db2.properties", "name=db2\nrole=slave\n")
    return cluster_home


def ipv6_on(sandbox: Sandbox, host: str) -> list[str]:
    return sandbox.addresses_on(host, version=6)


def mac_of(sandbox: Sandbox, host: str) -> str:
    return sandbox.run(host, ["cat", "/sys/class/net/eth0/address"]).stdout.strip()


def neighbour_mac(sandbox: Sandbox, host: str, address: str) -> str | None:
    """The MAC ``host``'s neighbour cache holds for ``address`` (None: no entry)."""
    fields = sandbox.run(host, ["ip", "-6", "neigh", "show", address, "dev", "eth0"]).stdout.split()
    return fields[fields.index("lladdr") + 1] if "lladdr" in fields else None


def manager_for_both(sandbox: Sandbox, home: Path, **options: object) -> Manager:
    executors = {host: sandbox.executor(host) for host in ("db1", "db2")}
    return Manager.from_cluster_home(
        home, "demo", executors=executors, monitor_interval=0, retry=RetryPolicy(attempts=0),
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


def switch_to_db2(manager: Manager) -> None:
    steps = (("db1", None, "OFFLINE"), ("db1", "slave", None), ("db2", "master", None))
    for name, role, state in steps:
        result = manager.update_datasource(name, role=role, state=state)
        assert result.ok, result.errors
    assert manager.held == {"master": "db2"}


def test_start_answers_at_once_and_start_stop_are_idempotent_and_verified(
    sandbox: Sandbox, service_dir: Path
) -> None:
    path = service_home(service_dir.parents[3], service_dir, f"{VIP6}/64")
    service = load_service(path / "conf/cluster/demo/service/master.properties")
    db1 = sandbox.executor("db1")
    started = perform(service, "start", db1)
    assert started.ok and started.held is True, started.error
    # nodad: usable at once, not "tentative" for the kernel's second of DAD
    assert ipv6_on(sandbox, "db1")[:2] == [VIP6, "2001:db8::11"]
    again = perform(service, "start", db1)
    assert again.ok and again.notes == (f"{VIP6}/64 already present on eth0",)
    status = perform(service, "status", db1)
    assert status.held is True and status.notes == (f"{VIP6}/64 is held on eth0",)
    stopped = perform(service, "stop", db1)
    assert stopped.ok and stopped.held is False
    assert VIP6 not in ipv6_on(sandbox, "db1")
    stopped_again = perform(service, "stop", db1)
    assert stopped_again.ok and stopped_again.notes == (f"{VIP6}/64 already absent on eth0",)


def test_status_matches_the_exact_address_in_any_spelling(
    sandbox: Sandbox, service_dir: Path
) -> None:
    db1 = sandbox.executor("db1")  # db1 has 2001:db8::11
    for spelled, held in (("2001:db8::1/64", False), ("2001:db8::111/64", False),
                          ("2001:0db8:0:0::0011/64", True)):  # fmt: skip
        path = write_service(
            service_dir, "m.properties", f"name=m\nvip.address={spelled}\nvip.interface=eth0\n"
        )
        assert perform(load_service(path), "status", db1).held is held, spelled


def test_a_dadfailed_address_is_not_held_and_a_start_says_so(
    sandbox: Sandbox, service_dir: Path
) -> None:
    sandbox.run("db2", ["ip", "-6", "addr", "add", f"{VIP6}/64", "dev", "eth0", "nodad"])
    # someone adds it on db1 the ordinary way: the kernel's DAD finds db2 and marks it dadfailed
    sandbox.run("db1", ["ip", "-6", "addr", "add", f"{VIP6}/64", "dev", "eth0"])
    assert wait_until(
        lambda: (
            "dadfailed" in sandbox.run("db1", ["ip", "-6", "addr", "show", "dev", "eth0"]).stdout
        )
    )
    path = write_service(
        service_dir, "m.properties", f"name=m\nvip.address={VIP6}/64\nvip.interface=eth0\n"
    )
    service = load_service(path)
    status = perform(service, "status", sandbox.executor("db1"))
    assert status.ok and status.held is False and status.partial is True
    started = perform(service, "start", sandbox.executor("db1"))
    assert not started.ok and started.held is False
    assert "absent or not usable (tentative, dadfailed)" in str(started.error)


def test_duplicate_detection_refuses_a_taken_ipv6_vip(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    home = service_home(cluster_home, service_dir, f"{VIP4}/24, {VIP6}/64")
    services = load_services(home, "demo")
    fence = DuplicateAddressFence(services, {"db1": sandbox.executor("db1")})
    assert fence.acquire("master", host="db1", datasource="db1").granted
    # db2 still has the IPv6 half only: the whole unit is refused
    sandbox.run("db2", ["ip", "-6", "addr", "add", f"{VIP6}/64", "dev", "eth0", "nodad"])
    answer = fence.acquire("master", host="db1", datasource="db1")
    assert not answer.granted
    assert f"{VIP6} is in use on eth0 by {mac_of(sandbox, 'db2')}" in answer.reason
    assert "another host still holds it" in answer.reason
    assert VIP4 not in sandbox.addresses_on("db1")


def test_a_client_follows_the_vip_after_advertisements_and_not_without(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    for host in ("db1", "db2"):
        sandbox.start_server(host, PORT)
    db1_mac, db2_mac = mac_of(sandbox, "db1"), mac_of(sandbox, "db2")
    for count in (0, 1):
        home = service_home(cluster_home, service_dir, f"{VIP6}/64", na=count)
        with manager_for_both(sandbox, home) as manager:
            assert manager.update_datasource("db2", state="ONLINE").ok
            assert manager.update_datasource("db1", state="ONLINE").ok
            sandbox.run("client", ["ip", "-6", "neigh", "flush", "dev", "eth0"])
            assert sandbox.ask("client", VIP6, PORT) == "db1"
            assert neighbour_mac(sandbox, "client", VIP6) == db1_mac
            switch_to_db2(manager)
            assert manager.wait_for_announcements(timeout=FOLLOW_DEADLINE)
            if count == 0:  # nothing told the client: it still sends to db1's MAC
                assert neighbour_mac(sandbox, "client", VIP6) == db1_mac
                announced = [e for e in manager.history if e.kind == "announce"]
                assert announced == []
                continue
            assert neighbour_mac(sandbox, "client", VIP6) == db2_mac
            assert wait_until(lambda: sandbox.ask("client", VIP6, PORT, timeout=0.5) == "db2",
                              timeout=FOLLOW_DEADLINE)  # fmt: skip
            (announced,) = [
                e for e in manager.history if e.kind == "announce" and "db2" in e.message
            ]
            assert "neighbour advertisements sent" in announced.message
            assert f"--advertise 1 {VIP6}" in announced.message


def test_a_dual_stack_vip_moves_whole(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    for host in ("db1", "db2"):
        sandbox.start_server(host, PORT)
    home = service_home(cluster_home, service_dir, f"{VIP6}/64,{VIP4}/24", arp=1)
    with manager_for_both(sandbox, home) as manager:
        assert manager.update_datasource("db2", state="ONLINE").ok
        assert manager.update_datasource("db1", state="ONLINE").ok
        assert VIP4 in sandbox.addresses_on("db1") and VIP6 in ipv6_on(sandbox, "db1")
        assert sandbox.ask("client", VIP4, PORT) == sandbox.ask("client", VIP6, PORT) == "db1"
        switch_to_db2(manager)
        assert VIP4 not in sandbox.addresses_on("db1") and VIP6 not in ipv6_on(sandbox, "db1")
        assert VIP4 in sandbox.addresses_on("db2") and VIP6 in ipv6_on(sandbox, "db2")
        for vip in (VIP4, VIP6):
            assert wait_until(lambda v=vip: sandbox.ask("client", v, PORT, timeout=0.5) == "db2",
                              timeout=FOLLOW_DEADLINE), vip  # fmt: skip


def test_half_a_dual_stack_vip_is_reported_and_repaired(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    home = service_home(cluster_home, service_dir, f"{VIP4}/24, {VIP6}/64", na=0)
    with manager_for_both(sandbox, home) as manager:
        assert manager.update_datasource("db1", state="ONLINE").ok
        sandbox.run("db1", ["ip", "-6", "addr", "del", f"{VIP6}/64", "dev", "eth0"])  # an operator
        status = manager.run_service("master", "status", host="db1")
        assert status.ok and "is partly held on eth0" in " ".join(status.notes)
        assert "2001:db8::22/64 missing" in " ".join(status.notes)
        manager.reconcile()
        assert VIP6 in ipv6_on(sandbox, "db1") and VIP4 in sandbox.addresses_on("db1")
        drifts = [e.message for e in manager.history if e.kind == "drift"]
        assert drifts == ["master: drift: its VIP is on db1 only in part; completing it"]
        # a stray half on the other host is there (never two holders): it is removed
        sandbox.run("db2", ["ip", "addr", "add", f"{VIP4}/24", "dev", "eth0"])
        manager.reconcile()
        assert VIP4 not in sandbox.addresses_on("db2")
        assert manager.held == {"master": "db1"}
        assert VIP6 in ipv6_on(sandbox, "db1") and VIP4 in sandbox.addresses_on("db1")


def test_a_start_failing_half_way_removes_its_other_half(
    sandbox: Sandbox, service_dir: Path
) -> None:
    # IPv6 off on db1's eth0: the IPv4 half is added, the IPv6 half cannot be
    setting = "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"  # this namespace's
    sandbox.run("db1", [sys.executable, "-c", f"open({setting!r}, 'w').write('1')"])
    path = write_service(
        service_dir, "m.properties",
        f"name=m\nvip.address={VIP4}/24,{VIP6}/64\nvip.interface=eth0\nvip.arp.count=0\n",
    )  # fmt: skip
    started = perform(load_service(path), "start", sandbox.executor("db1"))
    assert not started.ok and started.held is False and started.partial is False
    assert f"{VIP4}/24 removed again (the start failed)" in started.notes
    assert VIP4 not in sandbox.addresses_on("db1")


def test_check_tests_each_address_of_a_dual_stack_vip_against_its_family(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    from tests.integration.test_preflight_network import check_on

    service_home(cluster_home, service_dir, f"{VIP4}/24, {VIP6}/64")
    result = check_on(sandbox, "db1", cluster_home)
    assert f"PASS  master: VIP {VIP4} is in the subnet of an address on eth0" in result.stdout
    assert f"PASS  master: VIP {VIP6} is in the subnet of an address on eth0 (2001:db8::/64)" in (
        result.stdout
    )
    service_home(cluster_home, service_dir, f"{VIP4}/24, 2001:db8:1::22/64")
    result = check_on(sandbox, "db1", cluster_home)
    failed = "FAIL  master: VIP 2001:db8:1::22 is not in the subnet of any address on eth0"
    assert f"{failed} (2001:db8::/64)" in result.stdout, result.stdout
    assert result.returncode == 1


def test_the_monitor_restores_a_deleted_ipv6_half(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    home = service_home(cluster_home, service_dir, f"{VIP4}/24, {VIP6}/64", na=0)
    executors = {host: sandbox.executor(host) for host in ("db1", "db2")}
    with Manager.from_cluster_home(
        home, "demo", executors=executors, monitor_interval=0.2
    ) as manager:
        assert manager.update_datasource("db1", state="ONLINE").ok
        sandbox.run("db1", ["ip", "-6", "addr", "del", f"{VIP6}/64", "dev", "eth0"])
        assert wait_until(lambda: VIP6 in ipv6_on(sandbox, "db1")), "not restored"
        assert VIP4 in sandbox.addresses_on("db1") and manager.held == {"master": "db1"}


def test_the_shell_lists_and_moves_a_dual_stack_vip(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    import io

    from floatingip.shell import Shell

    home = service_home(cluster_home, service_dir, f"{VIP6}/64,{VIP4}/24", na=0)
    out = io.StringIO()
    with manager_for_both(sandbox, home) as manager:
        shell = Shell(manager, stdout=out)
        shell.run_script(["datasource db2 online", "datasource db1 online", "switch to db2", "ls",
                          "service master status on db2"])  # fmt: skip
        assert shell.failures == 0, out.getvalue()
    text = out.getvalue()
    assert f"  master: held on db2 (for db2); vip {VIP4}/24, {VIP6}/64 on eth0\n" in text
    assert f"{VIP4}/24, {VIP6}/64 is held on eth0" in text
