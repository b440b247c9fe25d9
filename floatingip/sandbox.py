"""A throwaway layer-2 network of network namespaces, for the demo and the tests.

Each host is a network namespace with ``eth0`` on a TEST-NET range (and on the IPv6 documentation
prefix, 2001:db8::/32), all plugged into one bridge
that lives in a namespace of its own, so nothing touches the machine's real interfaces.  Names
carry the creating process id and a random suffix, so that runs never collide and namespaces left
by a killed run can be recognised and removed.  Everything is torn down on exit, on error, on
Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType, TracebackType
from typing import Any

from floatingip.commands import CommandResult, NamespaceExecutor
from floatingip.config import name_problem
from floatingip.errors import SandboxError
from floatingip.vip import addresses_argv, addresses_in

__all__ = ["TEST_NETWORK6", "TEST_NETWORKS", "Sandbox", "SandboxError", "remove_stale_sandboxes"]

logger = logging.getLogger(__name__)

# RFC 5737 and RFC 3849: the only addresses the sandbox will use.
TEST_NETWORKS = tuple(
    ipaddress.ip_network(net) for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)
TEST_NETWORK6 = ipaddress.IPv6Network("2001:db8::/32")
PREFIX = "fip"
_SERVER = """
import socket, sys
name, port = sys.argv[1], int(sys.argv[2])
try:  # IPv4 and IPv6 on one socket
    server = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
except OSError:  # IPv6 is off in this kernel
    server = socket.create_server(("0.0.0.0", port))
while True:
    connection, _ = server.accept()
    with connection:
        connection.sendall(name.encode() + b"\\n")
"""
_CLIENT = """
import socket, sys
address, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    with socket.create_connection((address, port), timeout=timeout) as connection:
        print(connection.recv(256).decode().strip())
except OSError as exc:
    print(f"{type(exc).__name__}: {exc.strerror or exc}", file=sys.stderr)
    sys.exit(1)
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise SandboxError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _require_capabilities() -> None:
    if os.geteuid() != 0:
        raise SandboxError(
            "the sandbox needs root: it creates network namespaces (run as root, or use --dry-run)"
        )
    if shutil.which("ip") is None:
        raise SandboxError("the sandbox needs `ip` (Debian/Ubuntu: apt-get install iproute2)")
    probe = _ip("netns", "list", check=False)
    if probe.returncode != 0:
        raise SandboxError(f"ip netns is not available here: {probe.stderr.strip()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_sandboxes() -> list[str]:
    """Delete sandbox namespaces whose creating process is gone; return their names."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    removed = []
    for line in listed:
        name = line.split(" ", 1)[0]
        parts = name.split("-")
        if len(parts) < 4 or parts[0] != PREFIX or not parts[1].isdigit():
            continue
        if not _alive(int(parts[1])):
            _ip("netns", "delete", name, check=False)
            removed.append(name)
    return removed


class Sandbox:
    """Hosts on one bridge, each a network namespace with ``eth0`` at a TEST-NET address.

    ``Sandbox(["db1", "db2", "client"])`` gives db1 192.0.2.11, db2 192.0.2.12, client 192.0.2.13
    (the first host gets ``first_host`` in the network), and 2001:db8::11, 2001:db8::12,
    2001:db8::13 in ``network6`` (the same digits; None: no IPv6).  Use it as a context manager.
    """

    def __init__(
        self,
        hosts: Sequence[str] = ("db1", "db2", "client"),
        *,
        network: str = "192.0.2.0/24",
        first_host: int = 11,
        network6: str | None = "2001:db8::/64",
    ) -> None:
        net = ipaddress.ip_network(network)
        if not any(net.subnet_of(test) for test in TEST_NETWORKS):  # type: ignore[arg-type]
            raise SandboxError(
                f"the sandbox only uses TEST-NET addresses (RFC 5737), not {network}"
            )
        net6 = ipaddress.ip_network(network6) if network6 is not None else None
        if net6 is not None and not (net6.version == 6 and net6.subnet_of(TEST_NETWORK6)):
            raise SandboxError(
                f"the sandbox only uses the IPv6 documentation prefix {TEST_NETWORK6} "
                f"(RFC 3849), not {network6}"
            )
        for host in hosts:
            why = name_problem(host, "host")
            if why is not None or len(host) > 20:
                raise SandboxError(why or f"host name {host!r} is too long for the sandbox")
        if len(set(hosts)) != len(hosts) or not hosts:
            raise SandboxError(f"the sandbox needs distinct host names, not {list(hosts)}")
        self.network = net
        self.prefixlen = net.prefixlen
        self.run_id = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.bridge_namespace = f"{PREFIX}-{self.run_id}-bridge"
        self.namespaces = {host: f"{PREFIX}-{self.run_id}-{host}" for host in hosts}
        self.addresses = {
            host: str(net.network_address + first_host + index) for index, host in enumerate(hosts)
        }
        # 2001:db8::11 for 192.0.2.11: the same digits, read as hexadecimal
        self.network6 = net6
        self.addresses6 = {
            host: str(net6.network_address + int(str(first_host + index), 16))
            for index, host in enumerate(hosts)
            if net6 is not None
        }
        self._processes: list[subprocess.Popen[bytes]] = []
        self._started = False
        self._closed = False
        self._lock = threading.Lock()
        self._previous_sigterm: Any = None

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> Sandbox:
        _require_capabilities()
        remove_stale_sandboxes()
        self._started = True
        atexit.register(self.close)
        try:
            _ip("netns", "add", self.bridge_namespace)
            _ip("-n", self.bridge_namespace, "link", "set", "lo", "up")
            # a plain switch: multicast (neighbour solicitations) reaches every port
            _ip(
                "-n", self.bridge_namespace, "link", "add", "br0", "type", "bridge",
                "mcast_snooping", "0",
            )  # fmt: skip
            _ip("-n", self.bridge_namespace, "link", "set", "br0", "up")
            for index, (host, namespace) in enumerate(self.namespaces.items()):
                self._add_host(index, host, namespace)
        except BaseException:
            self.close()
            raise
        logger.info("sandbox %s: %s", self.run_id, self.addresses)
        return self

    def _add_host(self, index: int, host: str, namespace: str) -> None:
        inside, outside = f"fipa{os.getpid() % 10000}{index}", f"fipb{os.getpid() % 10000}{index}"
        _ip("netns", "add", namespace)
        _ip(
            "link", "add", inside, "netns", namespace, "type", "veth",
            "peer", "name", outside, "netns", self.bridge_namespace,
        )  # fmt: skip
        _ip("-n", namespace, "link", "set", inside, "name", "eth0")
        address = f"{self.addresses[host]}/{self.prefixlen}"
        _ip("-n", namespace, "addr", "add", address, "dev", "eth0")
        if self.network6 is not None:
            # the host's own address skips the kernel's DAD (a second of "tentative"); VIPs
            # are added as floatingip adds them
            address6 = f"{self.addresses6[host]}/{self.network6.prefixlen}"
            _ip("-n", namespace, "addr", "add", address6, "dev", "eth0", "nodad")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", self.bridge_namespace, "link", "set", outside, "master", "br0")
        _ip("-n", self.bridge_namespace, "link", "set", outside, "up")

    def close(self) -> None:
        """Stop the servers and delete every namespace of this sandbox; safe to call twice."""
        with self._lock:
            if self._closed or not self._started:
                self._closed = True
                return
            self._closed = True
        for process in self._processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            if process.stderr is not None:
                process.stderr.close()
        for namespace in [*self.namespaces.values(), self.bridge_namespace]:
            _ip("netns", "delete", namespace, check=False)
        atexit.unregister(self.close)
        logger.info("sandbox %s removed", self.run_id)

    def __enter__(self) -> Sandbox:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self.start()

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through __exit__, which cleans up

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        finally:
            if self._previous_sigterm is not None:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
                self._previous_sigterm = None

    # -- using it ----------------------------------------------------------------------------

    def executor(self, host: str) -> NamespaceExecutor:
        """An executor that runs commands on ``host``."""
        return NamespaceExecutor(self.namespaces[host])

    def run(
        self, host: str, argv: Sequence[str], *, timeout: float = 10, check: bool = True
    ) -> CommandResult:
        return self.executor(host).run(argv, timeout=timeout, check=check)

    def addresses_on(self, host: str, interface: str = "eth0", *, version: int = 4) -> list[str]:
        """The IPv4 (or IPv6: ``version=6``) addresses on ``interface`` of ``host``, without
        prefix length, compressed; IPv6 ones "tentative" or "dadfailed" marked so after a
        space."""
        output = self.run(host, addresses_argv(interface, {version})).stdout
        return [
            str(address.ip) + ("" if up else " tentative")
            for address, up in addresses_in(output)
            if address.version == version
        ]

    def start_server(self, host: str, port: int) -> None:
        """A TCP server on ``host``, listening on all addresses, that answers with the host name."""
        namespace = self.namespaces[host]
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", _SERVER, host, str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._processes.append(process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                error = process.stderr.read().decode() if process.stderr else ""
                raise SandboxError(f"server on {host} exited: {error.strip()}")
            if self.ask(host, "127.0.0.1", port, timeout=0.5) == host:
                return
            time.sleep(0.05)
        raise SandboxError(f"server on {host}:{port} did not start")

    def connect(
        self, client: str, address: str, port: int, *, timeout: float = 2.0
    ) -> tuple[str | None, str]:
        """Connect from ``client`` to ``address:port``: (the answer, "") or (None, the error)."""
        result = self.run(
            client,
            [sys.executable, "-c", _CLIENT, address, str(port), str(timeout)],
            timeout=timeout + 10,
            check=False,
        )
        if result.ok:
            return result.stdout.strip(), ""
        return None, result.stderr.strip() or f"exit status {result.exit_code}"

    def ask(self, client: str, address: str, port: int, *, timeout: float = 2.0) -> str | None:
        """Connect from ``client`` to ``address:port``; the answer, or None if nobody answered."""
        return self.connect(client, address, port, timeout=timeout)[0]
