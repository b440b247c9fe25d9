"""``floatingip agent --patroni-scope``: real Patroni (Debian's 3.0) on real PostgreSQL 15 and a
real etcd, each in a sandbox host, with no floatingip callback in Patroni (they run ``true``):
an agent on each database host follows Patroni's own leader and member keys.  The VIP is on
nobody before Patroni writes a leader, on the leader after bootstrap, and follows ``patronictl
switchover`` and the leader host's death (its agent, cut from etcd, drops the VIP; the survivor
takes it once Patroni's leader key names it), and stays on the leader while Patroni restarts its
PostgreSQL in place (postmaster killed with -9, ``patronictl restart``); psql from a client
through the VIP reaches a primary that takes writes.  Both database hosts are polled all along:
never two holders."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from floatingip.sandbox import Sandbox
from tests.conftest import PATIENCE, report, wait_until
from tests.integration.etcd_cluster import EtcdCluster, die_with_parent
from tests.integration.test_hook_patroni import (
    FAILOVER_PATIENCE,
    PatroniNode,
    Watcher,
    _running_replica,
    bootstrap_db1_then_db2,
    kill_leader_postgres,
    last_answer,
    primary_through_vip,
    require_patroni,
    switch_over_to_db2,
)
from tests.integration.test_hook_repmgr import hook_workspace

World = tuple[Sandbox, EtcdCluster, Callable[[str], PatroniNode]]


def start_agent(
    sandbox: Sandbox, work: Path, host: str, etcd: EtcdCluster
) -> subprocess.Popen[bytes]:
    with (work / f"agent-{host}.log").open("ab") as log:
        return subprocess.Popen(
            ["ip", "netns", "exec", sandbox.namespaces[host], sys.executable, "-m",
             "floatingip", "agent", "--cluster-home", str(work / "cluster-home"),
             "--cluster", "demo", "--host", host, "--etcd", etcd.endpoints, "--ttl", "5",
             "--monitor", "2", "--patroni-scope", "demo"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=die_with_parent,
        )  # fmt: skip


@pytest.fixture
def world() -> Iterator[World]:
    require_patroni()
    with (
        hook_workspace("patronisrc") as (work, _),
        Sandbox(["db1", "db2", "client", "etcd"]) as sandbox,
    ):
        etcd = EtcdCluster(sandbox, ["etcd"], work / "etcd").start()
        agents = {host: start_agent(sandbox, work, host, etcd) for host in ("db1", "db2")}
        nodes: dict[str, PatroniNode] = {}
        endpoint = f"{sandbox.addresses['etcd']}:2379"

        def start(host: str) -> PatroniNode:
            nodes[host] = PatroniNode(sandbox, host, work, endpoint, "true")
            return nodes[host]

        try:
            yield sandbox, etcd, start
        finally:
            for process in agents.values():  # SIGTERM: each releases what it holds
                process.terminate()
            for process in agents.values():
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
            for node in nodes.values():
                node.stop()
            etcd.close()
            for host in agents:
                text = (work / f"agent-{host}.log").read_text(errors="replace")
                print(f"--- agent {host}", text[-3000:], sep="\n")


def test_agents_follow_patroni_keys_through_a_switchover(world: World) -> None:
    sandbox, etcd, start = world
    watcher = Watcher(sandbox)
    try:
        time.sleep(2)  # the agents are up with no Patroni key: nobody may hold the VIP
        assert watcher.holders() == []
        db1, db2 = bootstrap_db1_then_db2(start, sandbox, watcher)
        keys = etcd.etcdctl("client", "get", "--prefix", "/service/demo/members/")
        print("Patroni's member keys:", keys.stdout, sep="\n")

        switch_vip, switch_write = switch_over_to_db2(db1, sandbox, watcher)
        assert wait_until(lambda: _running_replica(db2), FAILOVER_PATIENCE)
        assert watcher.holders() == ["db2"]

        # the leader's host dies: Patroni and PostgreSQL killed -9, its network gone; its agent,
        # cut from etcd, drops the VIP; the leader key expires (ttl 10), db1 is promoted
        began = time.monotonic()
        db2.kill()
        sandbox.run("db2", ["ip", "link", "set", "eth0", "down"])
        assert wait_until(lambda: watcher.holders() == [], FAILOVER_PATIENCE)
        dropped = time.monotonic() - began
        assert wait_until(lambda: watcher.holders() == ["db1"], FAILOVER_PATIENCE)
        fail_vip = time.monotonic() - began
        assert wait_until(lambda: primary_through_vip(sandbox, 3), PATIENCE), last_answer
        fail_write = time.monotonic() - began
    finally:
        watcher.close()
    assert not watcher.both, f"two holders in {len(watcher.both)} of {watcher.samples} samples"
    report(
        f"patroni DCS watch (agents on Patroni's keys): switchover -> VIP on the new leader "
        f"{switch_vip:.1f} s, first write through it {switch_write:.1f} s; leader host killed -> "
        f"VIP dropped there {dropped:.1f} s (agent --ttl 5), on the survivor {fail_vip:.1f} s, "
        f"first write {fail_write:.1f} s (Patroni ttl 10); VIP polled {watcher.samples} times, "
        "never on two hosts"
    )
    assert etcd.healthy()


def test_agents_keep_the_vip_on_the_leader_when_its_postgres_is_killed_or_restarted(
    world: World,
) -> None:
    """Patroni keeps the leader key and restarts its crashed PostgreSQL in place; db1's member
    key goes master/crashed, replica/running (read-only, maybe starting first), promoted, then
    master: db1's agent keeps the VIP all along, and a write through it reaches db1 again.
    Then ``patronictl restart`` (master/restarting, then running): the VIP stays too."""
    sandbox, etcd, start = world
    watcher = Watcher(sandbox)
    key = "/service/demo/members/db1"
    try:
        db1, _ = bootstrap_db1_then_db2(start, sandbox, watcher)
        crashed_from = revision_of(etcd, key)
        crash = kill_leader_postgres(db1, sandbox, watcher)
        restarted_from = revision_of(etcd, key)
        began = time.monotonic()
        restarted = db1.patronictl("restart", "demo", "db1", "--force")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert wait_until(lambda: primary_through_vip(sandbox, 5), PATIENCE), last_answer
        restart_write = time.monotonic() - began
        restart_changes = [held for when, held in watcher.changes if when >= began]
    finally:
        watcher.close()
    assert not watcher.both, f"two holders in {len(watcher.both)} of {watcher.samples} samples"
    history = member_history(etcd, key, crashed_from, restarted_from)
    print("db1's Patroni after the kill:", crash.log, sep="\n")
    # the leader key never left db1: its agent kept the VIP through both restarts
    assert crash.leader == "db1"
    assert crash.changes == [(0.0, ("db1",))], f"{crash.timeline()}; member key: {history}"
    assert restart_changes == [], f"VIP during patronictl restart: {restart_changes}"
    restart_history = member_history(etcd, key, restarted_from)
    # the restart was seen (the role is promoted, not master, when it follows the promotion soon)
    restarting = [h for h in restart_history if h in ("master/restarting", "promoted/restarting")]
    assert restarting, restart_history
    report(
        f"patroni DCS watch: leader's postmaster killed -9 -> leader {crash.leader}, first write "
        f"through the VIP {crash.first_write:.1f} s, VIP on nobody {crash.without_vip:.1f} s "
        f"(holders: {crash.timeline()}); db1's member key: {' -> '.join(history)}; "
        f"patronictl restart -> first write {restart_write:.1f} s, VIP kept, member key: "
        f"{' -> '.join(restart_history)}; VIP polled {watcher.samples} times, never on two hosts"
    )
    assert etcd.healthy()


def revision_of(etcd: EtcdCluster, key: str) -> int:
    """etcd's revision now: the next write to ``key`` comes after it."""
    return int(
        json.loads(etcd.etcdctl("client", "get", key, "-w", "json").stdout)["header"]["revision"]
    )


def member_history(etcd: EtcdCluster, key: str, after: int, until: int = 0) -> list[str]:
    """Each value ``key`` took after revision ``after`` (up to ``until``), as role/state: etcd's
    watch replays them; it never ends by itself."""
    try:
        etcd.etcdctl("client", "watch", "-w", "json", f"--rev={after + 1}", key, timeout=3)
    except subprocess.TimeoutExpired as stopped:
        output = stopped.stdout or b""
    found = []
    for line in (output if isinstance(output, str) else output.decode()).splitlines():
        for event in json.loads(line).get("Events") or []:
            if until and int(event["kv"]["mod_revision"]) > until:
                return found
            member = json.loads(base64.b64decode(event["kv"].get("value", "")) or "{}")
            found.append(f"{member.get('role')}/{member.get('state')}")
    return found
