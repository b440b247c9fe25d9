"""The distributed mode on a real etcd: an agent process per database host, never two holders."""

from __future__ import annotations

import os
import random
import statistics
import time

from tests.conftest import require_program, require_root
from tests.integration.etcd_cluster import cut, freeze, heal, thaw
from tests.integration.etcd_world import ETCD, World, world

# Rounds of three switches and one fault each; grow it (FLOATINGIP_ETCD_ROUNDS) for a long run.
ROUNDS = int(os.environ.get("FLOATINGIP_ETCD_ROUNDS", "5"))


def _require() -> None:
    require_root()
    require_program("ip", package="iproute2")
    require_program("etcd", package="etcd-server")
    require_program("etcdctl", package="etcd-client")


def _begin(w: World) -> None:
    w.put("policy", '{"mode":"AUTOMATIC"}')
    w.set_datasource("db1", "master")
    w.set_datasource("db2", "slave")
    for host in w.databases:
        w.start_agent(host)
    w.wait_for_holder("db1")
    w.start_poller()


def test_agent_follows_a_switch_and_releases_on_sigterm() -> None:
    _require()
    with world() as w:
        _begin(w)
        w.switch("db1", "db2")
        w.wait_for_holder("db2")
        holder = w.etcdctl("get", "/floatingip/demo/service/master/holder", "--print-value-only")
        assert '"host": "db2"' in holder.stdout, holder.stdout
        assert w.stop_agent("db2") == 0, w.agent_log("db2")
        w.wait_for_holder(None)
        gone = w.etcdctl("get", "/floatingip/demo/service/master/holder", "--print-value-only")
        assert gone.stdout.strip() == "", "the lock outlived the agent's SIGTERM"
        assert w.poll.overlaps == []


def test_chaos_switches_kills_partitions_freezes_never_two_holders() -> None:
    """Switches, agents killed -9 right after a switch, a master host cut from etcd, an agent
    frozen past its TTL, an etcd member killed and restarted, etcd losing quorum: never two
    holders; a holder cut from etcd (or etcd without quorum) drops the VIP; after each fault the
    VIP is on the ONLINE master's host.  Counts and times are printed."""
    _require()
    rng = random.Random(13)
    kinds = ("kill -9", "partition", "freeze", "etcd member", "quorum")
    counts = dict.fromkeys(("switch", *kinds), 0)
    takeovers: list[float] = []
    with world(ttl=3) as w:
        _begin(w)
        master, slave = "db1", "db2"
        etcd_addresses = [w.sandbox.addresses[m] for m in ETCD]
        for round_ in range(ROUNDS):
            for _ in range(3):
                w.switch(master, slave)
                master, slave = slave, master
                takeovers.append(w.wait_for_holder(master))
                counts["switch"] += 1
            fault = kinds[round_ % len(kinds)]
            if fault == "kill -9":
                w.switch(master, slave)
                time.sleep(rng.uniform(0, 0.3))  # mid-command, or just before
                w.kill_agent(slave)  # the new master's agent
                master, slave = slave, master
                w.start_agent(master)
            elif fault == "partition":
                cut(w.sandbox, master, etcd_addresses)
                w.wait_for_holder(None)  # it drops before its lease can expire
                w.switch(master, slave)  # the cluster manager moves the master
                master, slave = slave, master
                w.wait_for_holder(master)
                heal(w.sandbox, slave, etcd_addresses)
            elif fault == "freeze":
                pid = w.agents[master].pid
                freeze(pid)
                w.switch(master, slave)
                master, slave = slave, master
                time.sleep(w.ttl + 2)
                thaw(pid)
            elif fault == "quorum":
                lost = rng.sample(ETCD, 2)
                for member in lost:
                    w.etcd.kill(member)
                w.wait_for_holder(None)  # no lease can be renewed: the holder drops
                for member in lost:
                    w.etcd.restart(member)
                w.etcd.wait_healthy()
            else:
                member = rng.choice(ETCD)
                w.etcd.kill(member)
                w.switch(master, slave)
                master, slave = slave, master
                w.wait_for_holder(master)
                w.etcd.restart(member)
                w.etcd.wait_healthy()
            w.wait_for_holder(master)
            counts[fault] += 1
        print(
            f"\nevents {counts}; sweeps {w.poll.sweeps}; overlaps {len(w.poll.overlaps)}; "
            f"switch takeover median {statistics.median(takeovers) * 1000:.0f} ms, "
            f"max {max(takeovers) * 1000:.0f} ms; longest no-holder gap "
            f"{w.poll.longest_gap:.2f} s (TTL {w.ttl} s)"
        )
        assert w.poll.overlaps == [], w.poll.overlaps
