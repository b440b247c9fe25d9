"""The distributed mode on a real etcd: an agent process per database host, never two holders."""

from __future__ import annotations

import os
import random
import statistics
import time
from collections import Counter

import pytest

from tests.conftest import report
from tests.integration.etcd_cluster import cut, freeze, heal, thaw
from tests.integration.etcd_world import ETCD, World, require_etcd, start_with_db1_master, world

# The chaos run: at least EVENTS events (the coordinator's changes and the faults), PARTITIONS of
# them a master host cut from etcd.  CI runs the default (about 5 minutes on 2 busy cores);
# FLOATINGIP_ETCD_EVENTS grows it, FLOATINGIP_ETCD_SEED picks another random run.
EVENTS = int(os.environ.get("FLOATINGIP_ETCD_EVENTS", "500"))
SEED = int(os.environ.get("FLOATINGIP_ETCD_SEED", "13"))
PARTITIONS = max(1, EVENTS * 6 // 100)  # 30 by default
FAULTS_EACH = max(1, EVENTS // 80)  # of each other fault: 6 by default
# A partition costs about one TTL.  3 s: with --ttl 2 the agent never takes the VIP (see
# test_agent_takes_the_vip_with_the_shortest_ttl_it_accepts).
CHAOS_TTL = 3
DATABASES = ("db1", "db2", "db3")
ACTIVE = ("AUTOMATIC", "MANUAL")  # both move the VIP; MAINTENANCE runs nothing
# Etcd's election timeout is 1 s in the harness; a new leader took 1-2 s (measured).
ELECTION = 2.0
DAD_WAIT = 0.2  # the duplicate address check's listening time (vip.dad.wait default)
LOADED = 1.0  # commands, etcdctl and the poller's sweep on a loaded 2-core machine


def test_agent_follows_a_switch_and_releases_on_sigterm() -> None:
    require_etcd()
    with world() as w:
        start_with_db1_master(w)
        w.switch("db1", "db2")
        w.wait_for_holder("db2")
        holder = w.etcdctl("get", "/floatingip/demo/service/master/holder", "--print-value-only")
        assert '"host": "db2"' in holder.stdout, holder.stdout
        assert w.stop_agent("db2") == 0, w.agent_log("db2")
        w.wait_for_holder(None)
        gone = w.etcdctl("get", "/floatingip/demo/service/master/holder", "--print-value-only")
        assert gone.stdout.strip() == "", "the lock outlived the agent's SIGTERM"
        assert w.poll.overlaps == []


class Chaos:
    """The coordinator: a model of what it wrote (the master, whether it is ONLINE, the policy),
    random changes, the faults, and what the VIP must do after each."""

    def __init__(self, w: World, rng: random.Random) -> None:
        self.w = w
        self.rng = rng
        self.master = "db1"
        self.online = True
        self.policy = "AUTOMATIC"
        self.counts: Counter[str] = Counter()
        self.takeovers: list[float] = []  # planned switches: etcd written to the VIP up
        self.maintenance_since = 0.0
        self.recoveries: dict[str, float] = {}  # fault -> longest wait for the VIP once healed
        self.etcd_addresses = [w.sandbox.addresses[m] for m in ETCD]

    @property
    def events(self) -> int:
        return sum(self.counts.values())

    def _other(self) -> str:
        return self.rng.choice([h for h in self.w.databases if h != self.master])

    def _due(self) -> bool:
        return self.online and self.policy in ACTIVE

    def settle(self, doing: str) -> float:
        """Outside MAINTENANCE, wait for the VIP on the ONLINE master's host (or nowhere)."""
        self.w.expect_holder(self._due(), doing)
        if self.policy not in ACTIVE:
            return 0.0
        return self.w.wait_for_holder(self.master if self.online else None)

    def _switch(self, new: str, *, fault: bool = False) -> None:
        self.w.expect_holder(self._due() and not fault, f"switch {self.master} -> {new}")
        started = time.monotonic()
        self.w.set_datasource(self.master, "slave")
        self.w.set_datasource(new, "master")
        self.master, self.online = new, True
        self.counts["switch"] += 1
        if self.policy in ACTIVE:
            self.w.wait_for_holder(new)
            self.takeovers.append(time.monotonic() - started)

    # -- the coordinator's changes ------------------------------------------------------------

    def change(self) -> None:
        kinds = ["policy"] + (["switch"] * 3 + ["failure"] if self.online else ["recovery"] * 3)
        kind = self.rng.choice(kinds)
        if kind == "switch":
            self._switch(self._other())
        elif kind == "failure":  # the master fails: nobody may hold the VIP
            self.online = False
            self.w.set_datasource(self.master, "master", self.rng.choice(("FAILED", "OFFLINE")))
            self.counts["failure"] += 1
            self.settle(f"failure of {self.master}")
        elif kind == "recovery":  # it comes back, or another is promoted (failover)
            if self.rng.random() < 0.5:
                self.w.set_datasource(self.master, "slave", "OFFLINE")
                self.master = self._other()
            self.online = True
            self.w.expect_holder(self._due(), f"recovery of {self.master}")
            self.w.set_datasource(self.master, "master")
            self.counts["recovery"] += 1
            self.settle(f"recovery of {self.master}")
        else:
            self.set_policy(
                self.rng.choice([p for p in (*ACTIVE, "MAINTENANCE") if p != self.policy])
            )

    def set_policy(self, mode: str) -> None:
        leaving = self.policy == "MAINTENANCE"
        if leaving:
            # MAINTENANCE promises that nothing runs: whatever was written meanwhile, the VIP
            # stayed exactly where it was when MAINTENANCE began
            moved = self.w.changes_since(self.maintenance_since)
            assert moved == [], f"the VIP moved in MAINTENANCE: {moved}"
        self.policy = mode
        self.w.put("policy", f'{{"mode":"{mode}"}}')
        self.counts["policy"] += 1
        if mode == "MAINTENANCE":
            self.w.expect_holder(False, "MAINTENANCE")
            self.maintenance_since = time.monotonic()
        else:
            self.settle(f"policy {mode}")

    def normal(self) -> None:
        """Before a fault: an ONLINE master, a policy that moves the VIP, the VIP on it."""
        if self.policy == "MAINTENANCE":
            self.set_policy(self.rng.choice(ACTIVE))
        if not self.online:
            self.online = True
            self.w.set_datasource(self.master, "master")
            self.counts["recovery"] += 1
        self.settle("before a fault")

    def healed(self, fault: str) -> None:
        """After a fault heals: the VIP on the ONLINE master's host, and etcd's lock names it."""
        self.counts[fault] += 1
        self.w.expect_holder(False, f"after {fault}")  # recovery from a fault: timed apart
        started = time.monotonic()
        # the lock first: a thawed agent may still show the VIP it is about to drop
        self.w.wait_until(
            f"etcd's lock names {self.master} after {fault}",
            lambda: self.w.holder_lock() == self.master,
        )
        self.w.wait_for_holder(self.master)
        took = time.monotonic() - started
        self.recoveries[fault] = max(self.recoveries.get(fault, 0.0), took)
        self.settle(f"after {fault}")

    # -- faults ---------------------------------------------------------------------------------

    def partition(self) -> None:
        """The master's host cut from every etcd member (its clients still reach it): it drops
        the VIP before its lease can expire; the cluster manager may move the master meanwhile."""
        cut_host = self.master
        self.w.expect_holder(False, f"{cut_host} cut from etcd")
        cut(self.w.sandbox, cut_host, self.etcd_addresses)
        self.w.wait_for_holder(None)
        if self.rng.random() < 0.6:
            self._switch(self._other(), fault=True)  # waits for the cut host's lease to expire
        heal(self.w.sandbox, cut_host, self.etcd_addresses)
        self.healed("partition")

    def kill_agent(self) -> None:
        """An agent killed with -9: the new master's in the middle of a switch, or the holder's
        (its VIP stays on its host: no other host takes it until the agent is back)."""
        self.w.expect_holder(False, "kill -9")
        if self.rng.random() < 0.5:
            self._switch_unwaited(self._other())
            time.sleep(self.rng.uniform(0, 0.3))  # mid-command, or just before
            victim = self.master
            self.w.kill_agent(victim)
        else:
            victim = self.master
            self.w.kill_agent(victim)
            self._switch_unwaited(self._other())
            self.w.wait_until(f"{victim}'s lease expired", lambda: self.w.holder_lock() != victim)
            assert self.w.holders() == [victim], "the VIP left a host whose agent was killed"
        self.w.start_agent(victim)
        self.healed("kill -9")

    def _switch_unwaited(self, new: str) -> None:
        self.w.set_datasource(self.master, "slave")
        self.w.set_datasource(new, "master")
        self.master = new
        self.counts["switch"] += 1

    def freeze(self) -> None:
        """The holder's agent frozen (SIGSTOP) past its TTL.  What is promised: its lease expires
        and the lock passes on, but its VIP stays on its host only (its kernel still answers
        ARP, so the new master's duplicate address check refuses); once it runs again it drops
        the VIP at once and the ONLINE master's host takes it."""
        frozen = self.master
        self.w.expect_holder(False, f"{frozen}'s agent frozen")
        freeze(self.w.agents[frozen].pid)
        try:
            if self.rng.random() < 0.7:
                self._switch_unwaited(self._other())
            self.w.wait_until(f"{frozen}'s lease expired", lambda: self.w.holder_lock() != frozen)
            time.sleep(self.rng.uniform(0.5, 1.5))  # longer still: the new master tries
            assert self.w.holders() == [frozen], "the VIP left a frozen host, or two hold it"
        finally:
            thaw(self.w.agents[frozen].pid)
        self.healed("freeze")

    def etcd_member(self) -> None:
        """An etcd member killed and restarted, switches meanwhile: the majority carries on."""
        member = self.rng.choice(ETCD)
        self.w.etcd.kill(member)
        for _ in range(self.rng.randint(1, 3)):
            self._switch(self._other())
        self.w.etcd.restart(member)
        self.w.etcd.wait_healthy()
        self.healed("etcd member")

    def quorum(self) -> None:
        """Two of three etcd members killed: no lease can be renewed, so nobody holds the VIP."""
        self.w.expect_holder(False, "etcd without quorum")
        lost = self.rng.sample(ETCD, 2)
        for member in lost:
            self.w.etcd.kill(member)
        self.w.wait_for_holder(None)
        for member in lost:
            self.w.etcd.restart(member)
        self.w.etcd.wait_healthy()
        self.healed("quorum")


@pytest.mark.slow
def test_chaos_switches_failures_policies_faults_never_two_holders() -> None:
    """A coordinator writes random changes (switches, master failures and recoveries, policy
    changes) and injects faults (a master host cut from etcd while clients still reach it, an
    agent killed with -9, an agent frozen past its TTL, an etcd member killed and restarted, etcd
    losing quorum); a poller looks at every host for the VIP every few milliseconds.

    Asserted: never two holders; in MAINTENANCE the VIP does not move; a host cut from etcd, or
    etcd without quorum, drops the VIP; after each change and after each fault heals, the VIP is
    on the ONLINE master's host (nowhere without one) and etcd's lock names that host.

    A frozen agent (SIGSTOP past its TTL) cannot remove its VIP, and its host's kernel keeps
    answering ARP for it, so no gap bound holds there.  What is promised and asserted: while it
    is frozen its lease expires, yet the VIP stays on its host and no other (the new master's
    duplicate address check refuses); when it runs again it drops the VIP and the ONLINE
    master's host takes it.  The same holds for an agent killed with -9 until it is restarted.

    Printed, not asserted (times are the machine's): the counts, the planned switch times, and
    the longest time nobody held the VIP while an ONLINE master's host was reachable and nothing
    of it frozen, cut or killed, beside its bound: an etcd leader election (a killed member),
    then the agent's keeper period and call timeout, the duplicate address check, and commands
    on a loaded machine."""
    require_etcd()
    rng = random.Random(SEED)
    faults = ["partition"] * PARTITIONS + [
        kind for kind in ("kill -9", "freeze", "etcd member", "quorum") for _ in range(FAULTS_EACH)
    ]
    rng.shuffle(faults)
    started = time.monotonic()
    with world(DATABASES, ttl=CHAOS_TTL) as w:
        start_with_db1_master(w)
        chaos = Chaos(w, rng)
        chaos.settle("start")
        actions = {
            "partition": chaos.partition,
            "kill -9": chaos.kill_agent,
            "freeze": chaos.freeze,
            "etcd member": chaos.etcd_member,
            "quorum": chaos.quorum,
        }
        while faults or chaos.events < EVENTS:
            if faults and rng.random() < len(faults) / max(1, EVENTS - chaos.events):
                chaos.normal()
                actions[faults.pop()]()
            else:
                chaos.change()
            assert w.poll.overlaps == [], w.poll.overlaps
        if chaos.policy == "MAINTENANCE":
            chaos.set_policy("AUTOMATIC")
        chaos.normal()
        period = CHAOS_TTL / 5
        bound = ELECTION + period + min(1.0, period) + DAD_WAIT + LOADED
        takeovers = chaos.takeovers
        line = (
            f"etcd chaos (seed {SEED}, TTL {CHAOS_TTL} s, {len(DATABASES)} hosts): "
            f"{chaos.events} events {dict(chaos.counts)}; {w.poll.sweeps} sweeps, "
            f"{len(w.poll.overlaps)} with two holders; planned switch median "
            f"{statistics.median(takeovers) * 1000:.0f} ms, max {max(takeovers) * 1000:.0f} ms; "
            f"longest gap with an ONLINE master reachable {w.poll.longest_gap:.2f} s "
            f"({w.poll.longest_gap_during}), bound {bound:.1f} s (election {ELECTION:g} + "
            f"keeper period {period:g} + call timeout {min(1.0, period):g} + DAD {DAD_WAIT:g} + "
            f"load {LOADED:g}); once a fault healed, the VIP on the master within "
            + ", ".join(f"{kind} {took:.1f} s" for kind, took in sorted(chaos.recoveries.items()))
            + f" at most; {time.monotonic() - started:.0f} s in all"
        )
        refusals = Counter(
            "held by another host" if refusal.startswith("held by") else refusal.split(" (")[0]
            for host in w.databases
            for refusal in w.agent_log(host).split("the fence refused it: ")[1:]
        )
        line += f"; starts the fence refused, by reason: {dict(refusals)}"
        print("\n" + line)
        report(line)
        assert w.poll.overlaps == [], w.poll.overlaps
        assert chaos.counts["partition"] >= PARTITIONS and chaos.events >= EVENTS


def test_an_agent_cut_from_etcd_says_once_at_error_that_it_may_not_take_the_vip() -> None:
    """db1's agent loses etcd: it drops the VIP (the lease is lost) and its monitor asks the
    rules again every tick, each start refused for want of a lease: one ERROR line in its log,
    the repeats at DEBUG (shown with -vv), not an ERROR per tick."""
    require_etcd()
    with world(("db1",)) as w:
        w.put("policy", '{"mode":"AUTOMATIC"}')
        w.set_datasource("db1", "master")
        w.start_agent("db1", monitor=0.5, extra=("-vv",))
        w.wait_for_holder("db1")
        cut(w.sandbox, "db1", [w.sandbox.addresses[member] for member in ETCD])
        w.wait_for_holder(None)

        def refused() -> list[str]:
            lines = w.agent_log("db1").splitlines()
            return [line for line in lines if "event=decision" in line and "no live etcd" in line]

        w.wait_until("the start refused on 5 ticks", lambda: len(refused()) >= 5, deadline=120)
        priorities = [line[:3] for line in refused()]
        assert priorities[0] == "<3>" and set(priorities[1:]) == {"<7>"}, refused()
