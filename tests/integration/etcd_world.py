"""The distributed mode's world for tests and benchmarks: a 3-member etcd, database hosts each
running its own ``floatingip agent`` process, a client, a coordinator writing etcd with
``etcdctl``, and a poller that watches where the VIP is every few milliseconds."""

from __future__ import annotations

import ctypes
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from floatingip.rules import install_rules
from floatingip.sandbox import Sandbox
from tests.conftest import require_program, require_root
from tests.integration.etcd_cluster import EtcdCluster, die_with_parent

NETWORK = "198.51.100.0/24"
VIP = "198.51.100.100"
ETCD = ("etcd1", "etcd2", "etcd3")
CLUSTER = "demo"
SERVICE = f"name=master\nvip.address={VIP}/24\nvip.interface=eth0\nvip.sudo=false\n"


def cluster_home(directory: Path) -> Path:
    home = directory / "home"
    (home / f"conf/cluster/{CLUSTER}/service").mkdir(parents=True)
    (home / f"conf/cluster/{CLUSTER}/service/master.properties").write_text(SERVICE)
    install_rules(home / "rules")
    return home


def datasource_json(host: str, role: str, state: str) -> str:
    return json.dumps({"host": host, "role": role, "state": state}, separators=(",", ":"))


RTM_NEWADDR, RTM_GETADDR, NLMSG_DONE, NLMSG_ERROR = 20, 22, 3, 2
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFA_ADDRESS, IFA_LOCAL = 1, 2


class AddressReader:
    """Asks the kernel of one namespace for its IPv4 addresses over rtnetlink (what ``ip addr``
    asks), without starting a process: about a tenth of a millisecond, so that the poller can
    look at every host every few milliseconds.  The socket is made in that namespace by a
    thread of its own (a network namespace is per thread) and stays bound to it."""

    def __init__(self, namespace: str) -> None:
        made: list[socket.socket | BaseException] = []

        def make() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
                try:
                    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                        raise OSError(ctypes.get_errno(), f"setns {namespace}")
                finally:
                    os.close(fd)
                made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
            except BaseException as exc:
                made.append(exc)

        thread = threading.Thread(target=make)
        thread.start()
        thread.join()
        if isinstance(made[0], BaseException):
            raise made[0]
        self.socket = made[0]
        self.seq = 0
        self._lock = threading.Lock()  # the poller and the coordinator both ask

    def addresses(self) -> set[str]:
        with self._lock:
            return self._addresses()

    def _addresses(self) -> set[str]:
        self.seq += 1
        request = struct.pack("=LHHLL", 24, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, self.seq, 0)
        self.socket.send(request + struct.pack("=BBBBL", socket.AF_INET, 0, 0, 0, 0))
        found: set[str] = set()
        while True:
            data = self.socket.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _, seq, _ = struct.unpack_from("=LHHLL", data, offset)
                if kind == NLMSG_DONE and seq == self.seq:
                    return found
                if kind == NLMSG_ERROR:
                    raise OSError(f"rtnetlink error: {data[offset + 16 : offset + 20]!r}")
                if kind == RTM_NEWADDR and seq == self.seq:
                    attribute = offset + 24  # past the header and struct ifaddrmsg
                    while attribute + 4 <= offset + length:
                        size, name = struct.unpack_from("=HH", data, attribute)
                        if name in (IFA_ADDRESS, IFA_LOCAL) and size == 8:
                            found.add(socket.inet_ntoa(data[attribute + 4 : attribute + 8]))
                        attribute += (size + 3) & ~3
                offset += (length + 3) & ~3

    def close(self) -> None:
        self.socket.close()


@dataclass
class Poll:
    """What the poller saw: sweeps; sweeps where two hosts held the VIP; every change of who
    holds it (monotonic time, holders); and the longest time nobody held it while the
    coordinator said a holder was due (``World.expect_holder``), with what was going on then."""

    sweeps: int = 0
    overlaps: list[tuple[float, list[str]]] = field(default_factory=list)
    changes: list[tuple[float, tuple[str, ...]]] = field(default_factory=list)
    longest_gap: float = 0.0
    longest_gap_during: str = ""
    gap_since: float | None = None
    due: bool = False  # an ONLINE master's host, reachable, should hold the VIP
    doing: str = ""  # what the coordinator was doing (to name the longest gap)

    def end_gap(self, now: float) -> None:
        if self.gap_since is not None and now - self.gap_since > self.longest_gap:
            self.longest_gap = now - self.gap_since
            self.longest_gap_during = self.doing
        self.gap_since = None


class World:
    def __init__(
        self,
        sandbox: Sandbox,
        directory: Path,
        databases: tuple[str, ...],
        ttl: int,
        *,
        enable_v2: bool = False,
    ):
        self.sandbox = sandbox
        self.directory = directory
        self.databases = databases
        self.ttl = ttl
        self.etcd = EtcdCluster(sandbox, ETCD, directory / "etcd", enable_v2=enable_v2)
        self.home = cluster_home(directory)
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.poll = Poll()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._lock = threading.Lock()
        self._readers = {host: AddressReader(sandbox.namespaces[host]) for host in databases}

    # -- etcd as the coordinator writes it ------------------------------------------------------

    def put(self, key: str, value: str) -> None:
        result = self.etcdctl("put", f"/floatingip/{CLUSTER}/{key}", value)
        assert result.returncode == 0, result.stderr

    def etcdctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        deadline = time.monotonic() + 60  # etcd may be electing a leader
        while True:
            result = self.etcd.etcdctl("client", *args)
            if result.returncode == 0 or time.monotonic() > deadline:
                return result
            time.sleep(0.2)

    def set_datasource(self, name: str, role: str, state: str = "ONLINE") -> None:
        self.put(f"datasource/{name}", datasource_json(name, role, state))

    def switch(self, old: str, new: str) -> None:
        self.set_datasource(old, "slave")
        self.set_datasource(new, "master")

    # -- agents -------------------------------------------------------------------------------

    def start_agent(
        self, host: str, *, monitor: float | None = 2, extra: tuple[str, ...] = ()
    ) -> None:
        """``monitor`` None: the agent's default monitor interval; ``extra``: more options."""
        log = (self.directory / f"agent-{host}.log").open("ab")
        self.agents[host] = subprocess.Popen(
            ["ip", "netns", "exec", self.sandbox.namespaces[host], sys.executable, "-m",
             "floatingip", "agent", "--cluster-home", str(self.home), "--cluster", CLUSTER,
             "--host", host, "--etcd", self.etcd.endpoints, "--ttl", str(self.ttl),
             *(["--monitor", f"{monitor:g}"] if monitor is not None else []), *extra],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=die_with_parent,
        )  # fmt: skip
        log.close()

    def stop_agent(self, host: str, timeout: float = 60) -> int:
        process = self.agents[host]
        process.terminate()
        return process.wait(timeout=timeout)

    def kill_agent(self, host: str) -> None:
        process = self.agents[host]
        process.kill()
        process.wait(timeout=10)

    def agent_log(self, host: str) -> str:
        return (self.directory / f"agent-{host}.log").read_text(errors="replace")

    # -- where the VIP is -----------------------------------------------------------------------

    def holds(self, host: str) -> bool:
        return VIP in self._readers[host].addresses()

    def holders(self) -> list[str]:
        return [host for host in self.databases if self.holds(host)]

    def wait_for_holder(self, host: str | None, deadline: float = 60.0) -> float:
        """Wait until exactly ``host`` holds the VIP (None: nobody); seconds it took."""
        started = time.monotonic()
        expected = [host] if host is not None else []
        while time.monotonic() - started < deadline:
            if self._held_now() == expected:
                return time.monotonic() - started
            time.sleep(0.01)
        logs = "\n".join(f"--- {h}\n{self.agent_log(h)[-3000:]}" for h in self.databases)
        raise AssertionError(f"VIP on {self.holders()}, expected {expected}\n{logs}")

    def _held_now(self) -> list[str]:
        """Who holds the VIP: the poller's last steady sweep when it runs (fewer ``ip`` runs on
        a busy machine), else asked now."""
        if self._poller is None:
            return self.holders()
        seen = self.poll.sweeps
        while self.poll.sweeps < seen + 2 and self._poller.is_alive():  # a fresh sweep
            time.sleep(0.002)
        with self._lock:
            return list(self.poll.changes[-1][1]) if self.poll.changes else []

    def holder_lock(self) -> str | None:
        """The host etcd's holder key names (None: no key)."""
        result = self.etcdctl("get", f"/floatingip/{CLUSTER}/service/master/holder",
                              "--print-value-only")  # fmt: skip
        assert result.returncode == 0, result.stderr
        value = result.stdout.strip()
        return str(json.loads(value)["host"]) if value else None

    def wait_until(self, what: str, condition: Callable[[], bool], deadline: float = 60.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < deadline:
            if condition():
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"not in {deadline:g} s: {what}")

    def _sweep(self, order: list[str]) -> None:
        # first, second, first again: two holders only if the first held before and after
        first = self.holds(order[0])
        rest = [host for host in order[1:] if self.holds(host)]
        again = self.holds(order[0])
        now = time.monotonic()
        held = tuple(sorted(rest + ([order[0]] if first and again else [])))
        with self._lock:
            poll = self.poll
            poll.sweeps += 1
            if first and again and rest:
                poll.overlaps.append((now, list(held)))
            if first == again and (not poll.changes or poll.changes[-1][1] != held):
                poll.changes.append((now, held))
            if held or first or again or not poll.due:
                poll.end_gap(now)
            elif poll.gap_since is None:
                poll.gap_since = now

    def _poll(self) -> None:
        order = list(self.databases)
        while not self._stop.is_set():
            self._sweep(order)
            order = order[1:] + order[:1]
            time.sleep(0.002)

    def start_poller(self) -> None:
        self._poller = threading.Thread(target=self._poll, name="vip-poller", daemon=True)
        self._poller.start()

    def expect_holder(self, due: bool, doing: str = "") -> None:
        """Whether a gap counts from now: ``due`` while an ONLINE master exists (a switch in
        progress included), the policy lets it hold, and no fault cuts, freezes or kills
        anything; a gap ends (and is measured up to here) when that stops."""
        with self._lock:
            if not due:
                self.poll.end_gap(time.monotonic())
            self.poll.due = due
            self.poll.doing = doing

    def changes_since(self, since: float) -> list[tuple[float, tuple[str, ...]]]:
        with self._lock:
            return [change for change in self.poll.changes if change[0] >= since]

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=10)
        for process in self.agents.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        self.etcd.close()
        for reader in self._readers.values():
            reader.close()


def require_etcd() -> None:
    """What every test with a real etcd needs: root (namespaces), ip, etcd and etcdctl."""
    require_root()
    require_program("ip", package="iproute2")
    require_program("etcd", package="etcd-server")
    require_program("etcdctl", package="etcd-client")


def start_with_db1_master(w: World) -> None:
    """AUTOMATIC; db1 the master, every other database a slave, all ONLINE; an agent on each
    host; wait until db1 holds the VIP, then start polling every host."""
    w.put("policy", '{"mode":"AUTOMATIC"}')
    w.set_datasource("db1", "master")
    for host in w.databases[1:]:
        w.set_datasource(host, "slave")
    for host in w.databases:
        w.start_agent(host)
    w.wait_for_holder("db1")
    w.start_poller()


@contextmanager
def world(
    databases: tuple[str, ...] = ("db1", "db2"), ttl: int = 3, *, enable_v2: bool = False
) -> Iterator[World]:
    hosts = [*ETCD, *databases, "client"]
    directory = Path(tempfile.mkdtemp(prefix="floatingip-etcd-"))
    with Sandbox(hosts, network=NETWORK) as sandbox:
        built = World(sandbox, directory, databases, ttl, enable_v2=enable_v2)
        try:
            built.etcd.start()
            yield built
        finally:
            built.close()
            subprocess.run(["rm", "-rf", str(directory)], check=False)
