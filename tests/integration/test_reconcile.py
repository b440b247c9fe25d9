"""Reconcile and monitor on real interfaces; a crashed manager's VIP; a random run of real
changes on two hosts with a manager each."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

from floatingip import Manager
from floatingip.sandbox import Sandbox
from floatingip.supervisor import RetryPolicy
from tests.conftest import REPO, report, wait_until, write_service

VIP = "192.0.2.22"


def vip_home(cluster_home: Path, service_dir: Path, *, dad_wait: float = 0.2) -> Path:
    write_service(
        service_dir,
        "master.properties",
        f"name=master\nvip.address={VIP}/24\nvip.interface=eth0\nvip.label=eth0:0\n"
        f"vip.arp.count=0\nvip.dad.wait={dad_wait}\n",
    )
    datasource_dir = service_dir.parent / "datasource"
    datasource_dir.mkdir(mode=0o755, exist_ok=True)
    write_service(datasource_dir, "db1.properties", "name=db1\nrole=master\n")
    write_service(datasource_dir, "db2.properties", "name=db2\nrole=slave\n")
    return cluster_home


def add_vip(sandbox: Sandbox, host: str) -> None:
    sandbox.run(host, ["ip", "addr", "add", f"{VIP}/24", "dev", "eth0", "label", "eth0:0"])


def on(sandbox: Sandbox, host: str) -> bool:
    return VIP in sandbox.addresses_on(host)


def manager_on(sandbox: Sandbox, home: Path, host: str, **options: object) -> Manager:
    return Manager.from_cluster_home(
        home,
        "demo",
        host=host,
        executor=sandbox.executor(host),
        **options,  # type: ignore[arg-type]
    )


def test_start_releases_a_vip_whose_datasource_is_no_longer_master(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    home = vip_home(cluster_home, service_dir)
    add_vip(sandbox, "db1")
    with manager_on(
        sandbox, home, "db1", roles={"db1": "slave"}, states={"db1": "ONLINE"}
    ) as manager:
        assert not on(sandbox, "db1")
        assert manager.repairs == 1
        (drift,) = [event for event in manager.history if event.kind == "drift"]
        assert drift.message == "master: drift: expected on no host, found on db1"


def test_start_takes_the_vip_when_its_master_is_online_and_it_is_missing(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    home = vip_home(cluster_home, service_dir)
    with manager_on(sandbox, home, "db1", states={"db1": "ONLINE"}) as manager:
        assert on(sandbox, "db1") and manager.held == {"master": "db1"}


def test_the_monitor_restores_a_deleted_vip_and_removes_a_stray_one(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    home = vip_home(cluster_home, service_dir)
    with manager_on(sandbox, home, "db1", monitor_interval=0.2) as manager:
        manager.update_datasource("db1", state="ONLINE")
        assert on(sandbox, "db1")
        sandbox.run("db1", ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])  # an operator
        assert wait_until(lambda: on(sandbox, "db1")), "the monitor did not restore the VIP"
        manager.update_datasource("db1", state="OFFLINE")
        assert not on(sandbox, "db1")
        add_vip(sandbox, "db1")  # NetworkManager, a script, a stale config
        assert wait_until(lambda: not on(sandbox, "db1")), (
            "the monitor did not remove the stray VIP"
        )
        drifts = [event.message for event in manager.history if event.kind == "drift"]
        assert "master: drift: expected on db1, found on nowhere" in drifts
        assert "master: drift: expected on no host, found on db1" in drifts
        assert manager.repairs >= 2


MANAGER_SCRIPT = """
import sys, time
from floatingip import Manager
home = sys.argv[1]
manager = Manager.from_cluster_home(home, "demo", host="db1", states={"db1": "ONLINE"})
print("held" if manager.held else "not held", flush=True)
time.sleep(600)
"""


def test_after_kill_9_a_restart_releases_or_keeps_the_vip_without_a_flap(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    home = vip_home(cluster_home, service_dir)

    def crash_while_holding() -> None:
        process = subprocess.Popen(
            ["ip", "netns", "exec", sandbox.namespaces["db1"], sys.executable, "-c",
             MANAGER_SCRIPT, str(home)],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        assert on(sandbox, "db1")  # no failsafe ran: the VIP is still there

    crash_while_holding()
    with manager_on(sandbox, home, "db1", roles={"db1": "slave"}, states={"db1": "ONLINE"}):
        assert not on(sandbox, "db1")  # no longer master: released by the reconcile at start

    crash_while_holding()
    samples: list[bool] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            samples.append(on(sandbox, "db1"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert wait_until(lambda: len(samples) >= 1)  # watching before the manager starts
        with manager_on(sandbox, home, "db1", states={"db1": "ONLINE"}) as manager:
            started = len(samples)
            assert wait_until(lambda: len(samples) >= started + 5)  # and after its start
            assert manager.held == {"master": "db1"}
            commands = [e for e in manager.history if e.kind == "command"]
            stop.set()
            watcher.join()  # before the failsafe releases the VIP on close
    finally:
        stop.set()
        watcher.join()
    assert all(samples), "the VIP flapped during the restart"
    assert all("already present" in e.message for e in commands), [e.message for e in commands]


def test_two_hundred_random_real_changes_with_a_manager_per_host(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    home = vip_home(cluster_home, service_dir, dad_wait=0.05)
    rng = random.Random(20091009)
    roles = {"db1": "master", "db2": "slave"}
    states = {"db1": "OFFLINE", "db2": "OFFLINE"}
    policy = "AUTOMATIC"
    options = {"monitor_interval": 0, "retry": RetryPolicy(attempts=0)}
    managers = {h: manager_on(sandbox, home, h, **options) for h in ("db1", "db2")}
    events = 0
    try:
        while events < 220:
            kind = rng.choice(["state", "state", "role", "policy", "restart"])
            host = rng.choice(["db1", "db2"])
            before = [h for h in ("db1", "db2") if on(sandbox, h)]
            if kind == "state":
                states[host] = rng.choice(["ONLINE", "OFFLINE", "FAILED"])
                for manager in managers.values():
                    manager.update_datasource(host, state=states[host])
            elif kind == "role":
                roles[host] = rng.choice(["master", "slave"])
                for manager in managers.values():
                    manager.update_datasource(host, role=roles[host])
            elif kind == "policy":
                policy = rng.choice(["AUTOMATIC", "AUTOMATIC", "MAINTENANCE"])
                for manager in managers.values():
                    manager.set_policy(policy)
            else:  # kill -9 and restart: no failsafe, the new manager reconciles
                managers[host] = manager_on(
                    sandbox, home, host, roles=roles, states=states, policy=policy, **options
                )
            events += 1
            holders = [h for h in ("db1", "db2") if on(sandbox, h)]
            assert len(holders) <= 1, (events, holders)
            for manager in managers.values():
                manager.reconcile()
            holders = [h for h in ("db1", "db2") if on(sandbox, h)]
            masters = [h for h in ("db1", "db2") if roles[h] == "master" and states[h] == "ONLINE"]
            if policy == "MAINTENANCE":
                assert holders == before, (events, holders, before)
            elif masters:
                assert len(holders) == 1 and holders[0] in masters, (events, holders, masters)
            else:
                assert holders == [], (events, holders)
    finally:
        for manager in managers.values():
            manager.close()
    report(f"real namespaces: {events} random events on two hosts, VIP always where expected")


def test_a_vip_another_host_still_answers_for_is_refused(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    """db2's manager cannot see db1 (a manager per host): before taking the VIP it probes, and
    while db1 still answers for it, it refuses: an error, an event, a line in ls."""
    import io

    from floatingip.shell import Shell

    home = vip_home(cluster_home, service_dir)
    add_vip(sandbox, "db1")  # db1 never released it (its manager died, its stop failed...)
    with manager_on(sandbox, home, "db2", roles={"db1": "slave", "db2": "master"}) as manager:
        result = manager.update_datasource("db2", state="ONLINE")
        assert not result.ok
        assert "refusing to take 192.0.2.22: another host still holds it" in result.errors[0]
        assert on(sandbox, "db1") and not on(sandbox, "db2")
        failed = [e for e in manager.history if e.kind == "command" and not e.ok]
        assert failed and "DuplicateAddressError" not in failed[-1].message
        assert "refusing to take" in failed[-1].message
        out = io.StringIO()
        Shell(manager, stdout=out).onecmd("ls")
        assert "last error: start on db2 failed: refusing to take 192.0.2.22" in out.getvalue()
        sandbox.run("db1", ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])  # released at last
        assert manager.reconcile().ok  # the next monitor pass (or retry) takes it
        assert on(sandbox, "db2") and not on(sandbox, "db1")
