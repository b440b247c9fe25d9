"""A classic ``command.*`` service (the seed's ifconfig commands) moves its VIP on real namespaces,
and clients follow at once: gratuitous ARP after each successful start (issue 17, item 4)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from floatingip import Manager
from floatingip.sandbox import Sandbox
from tests.conftest import PATIENCE, require_program, write_service
from tests.integration.conftest import (
    call_as,
    enter_network_namespace,
    printed_sudoers,
    readable_cluster_home,
)

PORT = 3306
VIP = "192.0.2.22"
# Far below the ~50 s a client needs when nothing announces the move (its ARP entry stays
# REACHABLE for 15-45 s after the last reply from the old host, then DELAY and probes).
CLIENT_DEADLINE = 10.0


def classic_home(cluster_home: Path, service_dir: Path, extra: str = "") -> Path:
    write_service(
        service_dir,
        "master.properties",
        "name=master\n"
        f"command.start=sudo /sbin/ifconfig eth0:0 {VIP} netmask 255.255.255.0 up\n"
        "command.stop=sudo /sbin/ifconfig eth0:0 down\n"
        "command.status=sudo /sbin/ifconfig eth0:0\n" + extra,
    )
    datasources = service_dir.parent / "datasource"
    datasources.mkdir(mode=0o755)
    write_service(datasources, "db1.properties", "name=db1\nrole=master\n")
    write_service(datasources, "db2.properties", "name=db2\nrole=slave\n")
    return cluster_home


def move_to_db2(sandbox: Sandbox, manager: Manager) -> None:
    """db1 takes the VIP, the client learns db1's MAC for it, then db2 becomes the master."""
    for host in ("db1", "db2"):
        sandbox.start_server(host, PORT)
    for name in ("db2", "db1"):
        assert manager.update_datasource(name, state="ONLINE").ok
    assert manager.held == {"master": "db1"}
    assert manager.wait_for_announcements(timeout=PATIENCE)
    sandbox.run("client", ["ip", "-4", "neigh", "flush", "dev", "eth0"])
    assert sandbox.ask("client", VIP, PORT) == "db1"
    for name, role, state in (("db1", None, "OFFLINE"), ("db1", "slave", None)):
        assert manager.update_datasource(name, role=role, state=state).ok
    assert manager.update_datasource("db2", role="master").ok
    assert manager.held == {"master": "db2"}
    assert VIP in sandbox.addresses_on("db2") and VIP not in sandbox.addresses_on("db1")


def first_answer_from_db2(sandbox: Sandbox, deadline: float) -> str | None:
    answer = None
    end = time.monotonic() + deadline
    while answer != "db2" and time.monotonic() < end:
        answer = sandbox.ask("client", VIP, PORT, timeout=0.2)
    return answer


def test_a_classic_ifconfig_service_announces_the_move_and_the_client_follows(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    require_program("/sbin/ifconfig", package="net-tools")
    require_program("arping", package="iputils-arping")
    home = classic_home(cluster_home, service_dir)
    executors = {host: sandbox.executor(host) for host in ("db1", "db2")}
    with Manager.from_cluster_home(
        home, "demo", executors=executors, monitor_interval=0
    ) as manager:
        move_to_db2(sandbox, manager)
        assert first_answer_from_db2(sandbox, CLIENT_DEADLINE) == "db2"
        assert manager.wait_for_announcements(timeout=PATIENCE)
        sent = [event.message for event in manager.history if event.kind == "announce"]
        assert sent == [
            f"master on {host}: gratuitous ARP sent (arping -U -c 3 -I eth0 {VIP})"
            for host in ("db1", "db2")
        ]


def test_with_vip_arp_count_0_no_arping_runs(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    require_program("/sbin/ifconfig", package="net-tools")
    home = classic_home(cluster_home, service_dir, "vip.arp.count=0\n")
    executors = {host: sandbox.executor(host) for host in ("db1", "db2")}
    with Manager.from_cluster_home(
        home, "demo", executors=executors, monitor_interval=0
    ) as manager:
        move_to_db2(sandbox, manager)
        assert manager.wait_for_announcements(timeout=PATIENCE)
        events = manager.history
        ran = [
            step.argv
            for event in events
            if event.outcome is not None
            for step in event.outcome.steps
        ]
        assert [argv for argv in ran if VIP in argv]  # the starts are in the history, with steps
        assert not [argv for argv in ran if "arping" in argv]
        assert not [e for e in events if e.kind in ("announce", "warning")]


def test_an_unprivileged_manager_sends_the_arp_through_exactly_the_printed_sudoers_lines(
    sandbox: Sandbox, unprivileged_user: str, sudoers: Callable[[str], None]
) -> None:
    """`floatingip sudoers` allows the classic service's arping: without its line the start
    works but the announcement fails (a warning); with the printed lines it is sent."""
    require_program("/sbin/ifconfig", package="net-tools")
    require_program("arping", package="iputils-arping")
    home = readable_cluster_home(
        "name=master\n"
        f"command.start=sudo /sbin/ifconfig eth0:0 {VIP} netmask 255.255.255.0 up\n"
        "command.stop=sudo /sbin/ifconfig eth0:0 down\n"
        "command.status=sudo /sbin/ifconfig eth0:0\n"
        "vip.arp.count=1\n"
    )
    namespace = sandbox.namespaces["db1"]

    def online_as_user() -> dict[str, Any]:
        def run() -> dict[str, Any]:
            with Manager.from_cluster_home(
                home, "demo", rules_dir=home / "rules", host="db1"
            ) as manager:
                result = manager.update_datasource("db1", state="ONLINE")
                manager.wait_for_announcements(timeout=PATIENCE)
                return {
                    "errors": result.errors,
                    "held": dict(manager.held),
                    "sent": [e.message for e in manager.history if e.kind == "announce"],
                    "warnings": [e.message for e in manager.history if e.kind == "warning"],
                }

        return call_as(  # type: ignore[no-any-return]
            unprivileged_user, run, before=lambda: enter_network_namespace(namespace)
        )

    try:
        printed = printed_sudoers(home, unprivileged_user)
        arping = require_program("arping")
        assert f"{arping} -U -c 1 -I eth0 {VIP}" in printed
        sudoers(printed.replace(f"{arping} -U -c 1 -I eth0 {VIP}, \\\n    ", ""))
        without = online_as_user()
        assert without["errors"] == [] and without["held"] == {"master": "db1"}
        assert without["sent"] == []
        (warning,) = without["warnings"]
        assert "master on db1: gratuitous ARP failed" in warning
        assert "a password is required" in warning

        sudoers(printed)
        full = online_as_user()
        assert full["errors"] == [] and full["held"] == {"master": "db1"}
        assert full["warnings"] == []
        assert full["sent"] == [
            f"master on db1: gratuitous ARP sent (sudo -n arping -U -c 1 -I eth0 {VIP})"
        ]
    finally:
        shutil.rmtree(home)
