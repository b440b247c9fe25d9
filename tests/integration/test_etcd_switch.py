"""A planned switch on etcd skips the duplicate address check; an expired lock never does.

A real 3-member etcd and an agent process per database host (tests/integration/etcd_world.py).
What ran is read from each agent's log: the fence logs how it granted each lock, and the
duplicate address check logs each probe.
"""

from __future__ import annotations

import re

from tests.conftest import wait_until
from tests.integration.etcd_world import VIP, require_etcd, start_with_db1_master, world

HOLDER = "/floatingip/demo/service/master/holder"
RELEASED = "/floatingip/demo/service/master/released"
DAD_LINE = re.compile(r"duplicate address check of \S+ for master")
VACATED_LINE = re.compile(r"master: lock taken, released cleanly by (db\d)")
REFUSED_LINE = f"refusing to take {VIP}: another host still holds it"


def _count(pattern: re.Pattern[str], text: str) -> int:
    return len(pattern.findall(text))


def test_a_planned_switch_skips_the_duplicate_address_check_and_never_two_holders() -> None:
    require_etcd()
    with world(ttl=3) as w:
        start_with_db1_master(w)
        # the first holder ever: no release on record, so the check ran
        assert _count(DAD_LINE, w.agent_log("db1")) >= 1, w.agent_log("db1")
        checks = {host: _count(DAD_LINE, w.agent_log(host)) for host in w.databases}
        master, slave = "db1", "db2"
        for _ in range(4):
            w.switch(master, slave)
            master, slave = slave, master
            w.wait_for_holder(master)
        for host in w.databases:
            log = w.agent_log(host)
            assert _count(DAD_LINE, log) == checks[host], f"a probe ran on a planned switch:\n{log}"
            other = "db2" if host == "db1" else "db1"
            assert VACATED_LINE.findall(log) == [other, other], log
        # the new holder consumed the release record when it took the lock
        assert w.etcdctl("get", RELEASED, "--print-value-only").stdout.strip() == ""
        assert w.poll.overlaps == [], w.poll.overlaps


def test_an_expired_lock_runs_the_check_even_after_an_earlier_clean_release() -> None:
    """db1 releases cleanly to db2; db2's agent is killed -9 holding the VIP (its kernel keeps
    it); when db2's lease expires, db1 must run the check, see db2 answer, and refuse, until the
    VIP is gone from db2; then db1 takes it."""
    require_etcd()
    with world(ttl=3) as w:
        start_with_db1_master(w)
        w.switch("db1", "db2")
        w.wait_for_holder("db2")
        assert VACATED_LINE.findall(w.agent_log("db2")) == ["db1"], w.agent_log("db2")
        before = _count(DAD_LINE, w.agent_log("db1"))
        w.kill_agent("db2")
        w.switch("db2", "db1")
        # the lease expires after the TTL; db1 then probes and refuses while db2 answers
        assert wait_until(lambda: REFUSED_LINE in w.agent_log("db1"), timeout=60), w.agent_log(
            "db1"
        )
        assert _count(DAD_LINE, w.agent_log("db1")) > before
        assert w.holders() == ["db2"]
        # the dead host's kernel lets go (its operator, or a reboot): db1 takes the VIP
        w.sandbox.run("db2", ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
        w.wait_for_holder("db1")
        assert w.poll.overlaps == [], w.poll.overlaps
