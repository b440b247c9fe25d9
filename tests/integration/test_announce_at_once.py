"""A VIP is announced as soon as it is added, while the verify runs; a verify that then fails
stops the announcement, and the VIP is reported not held."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

from floatingip import Manager
from floatingip.commands import DEFAULT_TIMEOUT, CommandResult, Executor
from floatingip.sandbox import Sandbox
from floatingip.supervisor import RetryPolicy
from tests.conftest import PATIENCE, require_program, wait_until, write_service
from tests.integration.conftest import enter_network_namespace

VIP = "192.0.2.22"
ETH_P_ARP = 0x0806


class ArpWatch:
    """ARP packets claiming the VIP (sender address = VIP: gratuitous ARP), seen from the
    client's namespace."""

    def __init__(self, namespace: str) -> None:
        made: list[socket.socket] = []

        def make() -> None:  # a socket made in that namespace stays there
            enter_network_namespace(namespace)
            made.append(socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)))

        thread = threading.Thread(target=make)
        thread.start()
        thread.join()
        self.socket = made[0]
        self.socket.bind(("eth0", ETH_P_ARP))
        self.seen = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        with self.socket, contextlib.suppress(OSError):  # OSError: the sandbox went away
            while not self.seen.is_set():
                frame = self.socket.recv(2048)
                if frame[28:32] == socket.inet_aton(VIP):
                    self.seen.set()


class OnTheVerify:
    """db1's real executor; ``before_verify`` runs before the first address listing that
    follows the VIP's add (the verify)."""

    def __init__(self, inner: Executor, before_verify: object) -> None:
        self.inner = inner
        self.before_verify = before_verify
        self.added = False
        self.done = False

    def run(
        self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> CommandResult:
        if tuple(argv[:3]) == ("ip", "addr", "add"):
            self.added = True
        elif self.added and not self.done and "show" in argv:
            self.done = True
            self.before_verify()  # type: ignore[operator]
        return self.inner.run(argv, timeout=timeout, check=check)


def service_text(*, arp: int) -> str:
    return f"name=master\nvip.address={VIP}/24\nvip.interface=eth0\nvip.arp.count={arp}\n"


def manager_on_db1(home: Path, executor: Executor) -> Manager:
    return Manager.from_cluster_home(
        home, "demo", executors={"db1": executor}, monitor_interval=0,
        retry=RetryPolicy(attempts=0),
    )  # fmt: skip


def arping_in(namespace: str) -> list[str]:
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    found = []
    for pid in pids.stdout.split():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                command = file.read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "arping" in command:
            found.append(command)
    return found


def test_the_announcement_leaves_while_the_verify_runs(
    sandbox: Sandbox, demo_home: Path, service_dir: Path
) -> None:
    require_program("arping", package="iputils-arping")
    write_service(service_dir, "master.properties", service_text(arp=1))
    watch = ArpWatch(sandbox.namespaces["client"])
    seen_before_verify: list[bool] = []
    executor = OnTheVerify(
        sandbox.executor("db1"),
        lambda: seen_before_verify.append(watch.seen.wait(timeout=PATIENCE / 3)),
    )
    with manager_on_db1(demo_home, executor) as manager:
        result = manager.update_datasource("db1", state="ONLINE")
        assert result.ok and manager.held == {"master": "db1"}, result.errors
        # the client had the gratuitous ARP before the verify even started
        assert seen_before_verify == [True]
        assert manager.wait_for_announcements(timeout=PATIENCE)
        (sent,) = [event for event in manager.history if event.kind == "announce"]
        assert f"gratuitous ARP sent (arping -U -c 1 -I eth0 {VIP})" in sent.message


def test_a_failed_verify_stops_the_announcement_and_the_vip_is_not_held(
    sandbox: Sandbox, demo_home: Path, service_dir: Path
) -> None:
    require_program("arping", package="iputils-arping")
    # 20 packets, one a second: still sending long after the verify, unless stopped
    write_service(service_dir, "master.properties", service_text(arp=20))
    db1 = sandbox.executor("db1")
    watch = ArpWatch(sandbox.namespaces["client"])

    def remove_it() -> None:  # something else on the host removes the VIP once announced
        assert watch.seen.wait(timeout=PATIENCE / 3)
        db1.run(["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])

    executor = OnTheVerify(db1, remove_it)
    with manager_on_db1(demo_home, executor) as manager:
        result = manager.update_datasource("db1", state="ONLINE")
        assert not result.ok
        assert f"shows {VIP}/24 absent" in " ".join(result.errors)
        assert manager.held == {}
        assert manager.wait_for_announcements(timeout=PATIENCE / 3)  # not 20 s of packets
        assert wait_until(lambda: arping_in(sandbox.namespaces["db1"]) == [])
        assert [event for event in manager.history if event.kind == "announce"] == []
        (stopped,) = [e for e in manager.history if "gratuitous ARP stopped" in e.message]
        assert "the verify after the add failed" in stopped.message
    assert VIP not in sandbox.addresses_on("db1")


def test_a_stop_stops_the_announcement_still_running_for_the_vip(
    sandbox: Sandbox, demo_home: Path, service_dir: Path
) -> None:
    require_program("arping", package="iputils-arping")
    # 20 packets, one a second: a switch back within them must not be undone by the old
    # holder's remaining gratuitous ARP, which would pull clients back to a host without the VIP
    write_service(service_dir, "master.properties", service_text(arp=20))
    with manager_on_db1(demo_home, sandbox.executor("db1")) as manager:
        assert manager.update_datasource("db1", state="ONLINE").ok
        assert wait_until(lambda: arping_in(sandbox.namespaces["db1"]) != [])
        assert manager.update_datasource("db1", state="OFFLINE").ok
        assert manager.held == {}
        assert manager.wait_for_announcements(timeout=PATIENCE / 3)  # not 20 s of packets
        assert arping_in(sandbox.namespaces["db1"]) == []
        (stopped,) = [e for e in manager.history if "gratuitous ARP stopped" in e.message]
        assert "master stop on db1" in stopped.message
