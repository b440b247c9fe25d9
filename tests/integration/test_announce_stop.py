"""A VIP removed without the dispatcher (drop_all, close, a host declared dead or alive) first
stops the announcement still being sent for it there: its remaining gratuitous ARP would pull
clients back to a host that no longer has the VIP, perhaps after another host took it."""

from __future__ import annotations

from pathlib import Path

from floatingip import Manager
from floatingip.sandbox import Sandbox
from floatingip.supervisor import RetryPolicy
from tests.conftest import PATIENCE, require_program, wait_until, write_service
from tests.integration.test_announce_at_once import VIP, arping_in, manager_on_db1, service_text

# 20 packets (the most vip.arp.count allows), one a second: an announcement left running is
# still running at the deadlines below (a third of that), and one that ran to its end is
# recorded as sent, not stopped: no test here can pass by its arping ending on its own.
COUNT = 20


def stopped_events(manager: Manager) -> list[str]:
    return [e.message for e in manager.history if "gratuitous ARP stopped" in e.message]


def test_drop_all_stops_the_announcement_still_running_for_the_vip(
    sandbox: Sandbox, demo_home: Path, service_dir: Path
) -> None:
    require_program("arping", package="iputils-arping")
    write_service(service_dir, "master.properties", service_text(arp=COUNT))
    db1 = sandbox.namespaces["db1"]
    # db1's own manager (an agent's): drop_all drops what is on its own host
    with Manager.from_cluster_home(
        demo_home, "demo", host="db1", executors={"db1": sandbox.executor("db1")},
        monitor_interval=0, retry=RetryPolicy(attempts=0),
    ) as manager:  # fmt: skip
        assert manager.update_datasource("db1", state="ONLINE").ok
        assert wait_until(lambda: arping_in(db1) != [])

        dropped = manager.drop_all("the lease was lost")  # an agent that lost its etcd lease
        assert dropped.ok, dropped.errors
        assert manager.held == {} and VIP not in sandbox.addresses_on("db1")
        assert wait_until(lambda: arping_in(db1) == [], PATIENCE / 3)
        assert manager.wait_for_announcements(timeout=PATIENCE / 3)
        (stopped,) = stopped_events(manager)
        assert "dropped: the lease was lost" in stopped, stopped


def test_close_leaves_no_announcement_running_for_the_vip_it_released(
    sandbox: Sandbox, demo_home: Path, service_dir: Path
) -> None:
    require_program("arping", package="iputils-arping")
    write_service(service_dir, "master.properties", service_text(arp=COUNT))
    db1 = sandbox.namespaces["db1"]
    manager = manager_on_db1(demo_home, sandbox.executor("db1"))
    try:
        assert manager.update_datasource("db1", state="ONLINE").ok
        assert wait_until(lambda: arping_in(db1) != [])
    finally:
        closed = manager.close()
    assert closed.ok, closed.errors
    assert VIP not in sandbox.addresses_on("db1")
    assert arping_in(db1) == []  # close returned: nothing left telling clients db1 has it
    assert len(stopped_events(manager)) == 1


def test_a_host_declared_dead_stops_the_announcement_sent_from_it(
    sandbox: Sandbox, demo_home: Path, service_dir: Path
) -> None:
    require_program("arping", package="iputils-arping")
    write_service(service_dir, "master.properties", service_text(arp=COUNT))
    db1 = sandbox.namespaces["db1"]
    executors = {host: sandbox.executor(host) for host in ("db1", "db2")}
    with Manager.from_cluster_home(
        demo_home, "demo", host="coordinator", executors=executors,
        states={"db1": "ONLINE", "db2": "ONLINE"}, monitor_interval=0,
    ) as manager:  # fmt: skip
        assert manager.held == {"master": "db1"}
        assert wait_until(lambda: arping_in(db1) != [])

        # fenced as far as the operator knows, yet db1 still runs (a partition from the
        # manager, not from the clients): it must not go on claiming the VIP
        assert manager.declare_dead("db1", "fenced").ok
        assert wait_until(lambda: arping_in(db1) == [], PATIENCE / 3)
        # the announcer records how it ended once it has reaped the killed arping
        assert manager.wait_for_announcements(timeout=PATIENCE / 3)
        (stopped,) = stopped_events(manager)
        assert "host db1 declared dead" in stopped, stopped

        # declared alive: the VIP still on db1 goes first, then the rules take it there again
        alive = manager.declare_alive("db1")
        assert alive.ok, alive.errors
        assert [(c.action, c.host) for c in alive.commands] == [("stop", "db1"), ("start", "db1")]
        assert manager.held == {"master": "db1"} and VIP in sandbox.addresses_on("db1")
