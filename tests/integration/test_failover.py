"""One manager per host, each in its own namespace and process, fed the same events by a
coordinator (this test), as Tungsten's coordinator feeds every manager: the VIP follows the
master, is never on two hosts, and clients follow it at once thanks to gratuitous ARP."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip.sandbox import Sandbox
from tests.conftest import PATIENCE, report, require_program, wait_until, write_service
from tests.integration.conftest import FOLLOW_DEADLINE

VIP = "192.0.2.22"
PORT = 3306
SWITCH_TO_DB2 = [
    ("datasource db1 offline", "DataSource 'db1' is now OFFLINE"),
    ("datasource db1 slave", "DataSource 'db1' is now a slave"),
    ("datasource db2 master", "DataSource 'db2' is now a master"),
    ("datasource db1 online", "DataSource 'db1' is now ONLINE"),
]


class ManagerProcess:
    """`floatingip shell` for one host, running inside that host's namespace."""

    def __init__(self, sandbox: Sandbox, host: str, home: Path) -> None:
        self.host = host
        self.process = subprocess.Popen(
            [
                "ip", "netns", "exec", sandbox.namespaces[host], sys.executable, "-m",
                "floatingip", "shell", "--cluster-home", str(home), "--cluster", "demo",
                "--host", host,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.transcript: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, text: str, timeout: float = PATIENCE) -> None:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            self.transcript.append(line)
            assert not line.startswith("ERROR"), f"{self.host}: {line}"
            if text in line:
                return

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


def write_cluster(home: Path, service: str) -> Path:
    service_dir = home / "conf/cluster/demo/service"
    datasource_dir = home / "conf/cluster/demo/datasource"
    service_dir.mkdir(parents=True)
    datasource_dir.mkdir()
    for directory in (
        home,
        home / "conf",
        home / "conf/cluster",
        service_dir.parent,
        service_dir,
        datasource_dir,
    ):
        directory.chmod(0o755)
    write_service(service_dir, "master.properties", service)
    write_service(datasource_dir, "db1.properties", "name=db1\nrole=master\n")
    write_service(datasource_dir, "db2.properties", "name=db2\nrole=slave\n")
    return home


def vip_service(arp: int) -> str:
    return (
        f"name=master\nvip.address={VIP}/24\nvip.interface=eth0\nvip.label=eth0:0\n"
        f"vip.arp.count={arp}\n"
    )


class Coordinator:
    def __init__(self, managers: list[ManagerProcess]) -> None:
        self.managers = managers

    def broadcast(self, line: str, answer: str) -> None:
        """Every manager gets the event; the next waits until all have applied it."""
        for manager in self.managers:
            manager.send(line)
        for manager in self.managers:
            manager.expect(answer)

    def switch_to_db2(self) -> None:
        for line, answer in SWITCH_TO_DB2:
            self.broadcast(line, answer)


@pytest.fixture
def cluster(
    sandbox: Sandbox, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Coordinator]:
    require_program("arping", package="iputils-arping")
    arp = getattr(request, "param", 3)
    home = write_cluster(tmp_path / "cluster-home", vip_service(arp))
    for host in ("db1", "db2"):
        sandbox.start_server(host, PORT)
    managers = [ManagerProcess(sandbox, host, home) for host in ("db1", "db2")]
    coordinator = Coordinator(managers)
    try:
        coordinator.broadcast("datasource db2 online", "DataSource 'db2' is now ONLINE")
        coordinator.broadcast("datasource db1 online", "DataSource 'db1' is now ONLINE")
        yield coordinator
    finally:
        for manager in managers:
            manager.close()


def holders(sandbox: Sandbox) -> list[str]:
    return [host for host in ("db1", "db2") if VIP in sandbox.addresses_on(host)]


def test_the_vip_moves_with_the_master_and_is_never_on_two_hosts(
    cluster: Coordinator, sandbox: Sandbox
) -> None:
    assert holders(sandbox) == ["db1"]
    seen: list[list[str]] = []
    stop = threading.Event()

    def poll() -> None:
        # the new holder first: seeing it there, then still on the old one, would really be both
        while not stop.is_set():
            on_db2 = VIP in sandbox.addresses_on("db2")
            on_db1 = VIP in sandbox.addresses_on("db1")
            seen.append([host for host, on in (("db1", on_db1), ("db2", on_db2)) if on])

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        assert wait_until(lambda: len(seen) >= 1)
        cluster.switch_to_db2()
        switched = len(seen)
        assert wait_until(lambda: len(seen) >= switched + 3)  # the state the switch left
    finally:
        stop.set()
        poller.join()
    report(f"polled both hosts {len(seen)} times during the switch")
    assert all(len(found) <= 1 for found in seen), [found for found in seen if len(found) > 1]
    assert seen[0] == ["db1"] and seen[-1] == ["db2"]
    assert holders(sandbox) == ["db2"]


def asks_through_the_vip(sandbox: Sandbox) -> list[str | None]:
    """The client's answers through the VIP, until db2 answers or FOLLOW_DEADLINE passes."""
    answers: list[str | None] = []
    deadline = time.monotonic() + FOLLOW_DEADLINE
    while "db2" not in answers and time.monotonic() < deadline:
        answers.append(sandbox.ask("client", VIP, PORT, timeout=0.25))
    return answers


@pytest.mark.parametrize("cluster", [3], indirect=True)
def test_a_client_follows_at_once_thanks_to_gratuitous_arp(
    cluster: Coordinator, sandbox: Sandbox
) -> None:
    assert sandbox.ask("client", VIP, PORT) == "db1"  # the client's ARP cache now holds db1's MAC
    cluster.switch_to_db2()
    switched = time.monotonic()
    answers = asks_through_the_vip(sandbox)
    report(
        f"client reached db2 through the VIP {time.monotonic() - switched:.2f} s after the switch"
    )
    assert answers[-1] == "db2", f"not within {FOLLOW_DEADLINE} s of the switch: {answers}"


@pytest.mark.parametrize("cluster", [0], indirect=True)
def test_without_gratuitous_arp_the_client_keeps_the_old_mac(
    cluster: Coordinator, sandbox: Sandbox
) -> None:
    assert sandbox.ask("client", VIP, PORT) == "db1"
    cluster.switch_to_db2()
    answers = asks_through_the_vip(sandbox)
    # still sending to db1's MAC for as long as the client with gratuitous ARP is given
    assert answers and "db2" not in answers, answers
    assert holders(sandbox) == ["db2"]


def test_the_seed_procedure_with_its_ifconfig_commands(sandbox: Sandbox, tmp_path: Path) -> None:
    require_program("sudo", package="sudo")
    require_program("/sbin/ifconfig", package="net-tools")
    seed = (
        "# master.properties\nname=master\n"
        f"command.start=sudo /sbin/ifconfig eth0:0 {VIP}\n"
        "command.stop=sudo /sbin/ifconfig eth0:0 down\n"
        'command.restart=echo "Not supported"\n'
        "command.status=sudo /sbin/ifconfig eth0:0\n"
    )
    manager = ManagerProcess(sandbox, "db1", write_cluster(tmp_path / "home", seed))
    try:
        manager.send("datasource db1 online")
        manager.expect("DataSource 'db1' is now ONLINE")
        shown = sandbox.run("db1", ["/sbin/ifconfig", "eth0:0"]).stdout
        assert f"inet {VIP}" in shown
        manager.send("datasource db1 offline")
        manager.expect("DataSource 'db1' is now OFFLINE")
        shown = sandbox.run("db1", ["/sbin/ifconfig", "eth0:0"], check=False).stdout
        assert "inet " not in shown
    finally:
        manager.close()
