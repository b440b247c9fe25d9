"""A real etcd cluster for tests: each member a process of Debian's etcd in its own sandbox host.

Members listen on their host's TEST-NET address (client port 2379, peer port 2380), keep their
data under the test's temporary directory and die with the test process (parent-death signal);
``close()`` kills whatever is left.  Faults: kill and restart a member, freeze a process
(SIGSTOP), cut a host from some addresses with blackhole routes inside its namespace (its other
traffic, such as database clients, still flows).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from floatingip.sandbox import Sandbox

PR_SET_PDEATHSIG = 1
CLIENT_PORT = 2379
PEER_PORT = 2380
HEALTH_DEADLINE = 60.0  # a loaded 2-core machine; measured 0.5-2 s when idle


def die_with_parent() -> None:
    """In a forked child before exec: SIGKILL when the test process dies (even by -9)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class EtcdCluster:
    """``members`` hosts of ``sandbox`` each run one etcd member."""

    def __init__(
        self, sandbox: Sandbox, members: Sequence[str], directory: Path, *, enable_v2: bool = False
    ) -> None:
        self.sandbox = sandbox
        self.enable_v2 = enable_v2  # vip-manager 1.0 speaks only the v2 API (a separate store)
        self.members = tuple(members)
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.token = f"fip-{sandbox.run_id}"
        peers = ",".join(f"{m}=http://{sandbox.addresses[m]}:{PEER_PORT}" for m in self.members)
        self._initial_cluster = peers

    @property
    def endpoints(self) -> str:
        """The client URLs, as ``--etcd`` takes them."""
        return ",".join(self.url(member) for member in self.members)

    def url(self, member: str) -> str:
        return f"http://{self.sandbox.addresses[member]}:{CLIENT_PORT}"

    def start(self) -> EtcdCluster:
        for member in self.members:
            self.start_member(member)
        self.wait_healthy()
        return self

    def start_member(self, member: str) -> None:
        address = self.sandbox.addresses[member]
        data = self.directory / member
        log = (self.directory / f"{member}.log").open("ab")
        argv = [
            "ip", "netns", "exec", self.sandbox.namespaces[member],
            "etcd", "--name", member, "--data-dir", str(data),
            "--listen-client-urls", f"http://{address}:{CLIENT_PORT}",
            "--advertise-client-urls", f"http://{address}:{CLIENT_PORT}",
            "--listen-peer-urls", f"http://{address}:{PEER_PORT}",
            "--initial-advertise-peer-urls", f"http://{address}:{PEER_PORT}",
            "--initial-cluster", self._initial_cluster,
            "--initial-cluster-state", "new", "--initial-cluster-token", self.token,
            "--heartbeat-interval", "100", "--election-timeout", "1000",
            "--logger", "zap", "--log-outputs", "stderr",
            *(["--enable-v2=true"] if self.enable_v2 else []),
        ]  # fmt: skip
        self.processes[member] = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=die_with_parent,
        )
        log.close()

    def etcdctl(
        self, host: str, *args: str, endpoints: str | None = None, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]:
        """Run ``etcdctl`` (v3 API) inside ``host``'s namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.sandbox.namespaces[host], "etcdctl",
             "--endpoints", endpoints or self.endpoints, "--command-timeout", "2s", *args],
            capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "ETCDCTL_API": "3"},
        )  # fmt: skip

    def etcdctl_v2(
        self, host: str, *args: str, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]:
        """Run ``etcdctl`` with the v2 API (needs ``enable_v2``) inside ``host``'s namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.sandbox.namespaces[host], "etcdctl",
             "--endpoints", self.endpoints, "--timeout", "2s", *args],
            capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "ETCDCTL_API": "2"},
        )  # fmt: skip

    def healthy(self, members: Iterable[str] | None = None) -> bool:
        wanted = list(members) if members is not None else list(self.members)
        endpoints = ",".join(self.url(m) for m in wanted)
        try:
            result = self.etcdctl(wanted[0], "endpoint", "health", endpoints=endpoints)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def wait_healthy(self, members: Iterable[str] | None = None) -> None:
        wanted = list(members) if members is not None else list(self.members)
        deadline = time.monotonic() + HEALTH_DEADLINE
        while time.monotonic() < deadline:
            for member in wanted:
                process = self.processes.get(member)
                if process is not None and process.poll() is not None:
                    raise AssertionError(f"etcd {member} exited: {self.log_tail(member)}")
            if self.healthy(wanted):
                return
            time.sleep(0.1)
        raise AssertionError(f"etcd members {wanted} not healthy in {HEALTH_DEADLINE:g} s")

    def log_tail(self, member: str, lines: int = 10) -> str:
        path = self.directory / f"{member}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, member: str) -> None:
        process = self.processes[member]
        process.kill()
        process.wait(timeout=10)

    def restart(self, member: str) -> None:
        """Start a killed member again on its data directory (it rejoins)."""
        self.start_member(member)

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


def cut(sandbox: Sandbox, host: str, addresses: Iterable[str]) -> None:
    """Drop every packet ``host`` sends to ``addresses`` (a partition that leaves the rest of
    its traffic alone); undone by :func:`heal`."""
    for address in addresses:
        subprocess.run(
            ["ip", "-n", sandbox.namespaces[host], "route", "replace", "blackhole",
             f"{address}/32"],
            check=True, capture_output=True,
        )  # fmt: skip


def heal(sandbox: Sandbox, host: str, addresses: Iterable[str]) -> None:
    for address in addresses:
        subprocess.run(
            ["ip", "-n", sandbox.namespaces[host], "route", "del", "blackhole", f"{address}/32"],
            check=False, capture_output=True,
        )  # fmt: skip


def freeze(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)


def thaw(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)
