"""The agent under systemd's notify protocol, for real: a NOTIFY_SOCKET this test binds (a path,
and an abstract socket in the agent's network namespace), real agents on a real etcd.

READY=1 comes only after the first reconcile (not while etcd is unreachable, and with the VIP
already up); WATCHDOG=1 pings come while the agent is alive, stop while the Manager's lock is
wedged or the event loop is blocked, and come back after; SIGTERM sends STOPPING=1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import enter_network_namespace
from tests.integration.etcd_cluster import cut, die_with_parent, heal
from tests.integration.etcd_world import CLUSTER, ETCD, VIP, World, require_etcd, world

AGENT = str(Path(__file__).with_name("notify_agent.py"))
WATCHDOG_USEC = 3_000_000  # pings every 1.5 s; the manager must answer within 3 s
PING = WATCHDOG_USEC / 2e6
DEADLINE = 60.0


class Listener:
    """What systemd's side of NOTIFY_SOCKET receives: every datagram, with when it came."""

    def __init__(
        self,
        address: str,
        namespace: str | None = None,
        at_ready: Callable[[], object] = lambda: None,
    ) -> None:
        self.address = address
        self.messages: list[tuple[float, dict[str, str]]] = []
        self.at_ready = at_ready
        self.seen_at_ready: list[object] = []  # at_ready() as soon as READY=1 came
        self._lock = threading.Lock()
        self._stop = threading.Event()
        made: list[socket.socket] = []

        def make() -> None:  # an abstract socket belongs to its creator's network namespace
            if namespace is not None:
                enter_network_namespace(namespace)
            made.append(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))

        maker = threading.Thread(target=make)
        maker.start()
        maker.join()
        self.socket = made[0]
        bound = "\0" + address[1:] if address.startswith("@") else address
        self.socket.bind(bound)
        self.socket.settimeout(0.1)
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.socket.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.partition("=")[::2] for line in data.decode().splitlines())
            if "READY" in fields:
                self.seen_at_ready.append(self.at_ready())
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def with_key(self, key: str) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(at, fields) for at, fields in self.messages if key in fields]

    def pings_since(self, since: float) -> int:
        return sum(1 for at, _ in self.with_key("WATCHDOG") if at >= since)

    def silent_for(self) -> float:
        """Seconds since the last WATCHDOG=1 (since the first message when none came)."""
        pings = self.with_key("WATCHDOG")
        with self._lock:
            last = pings[-1][0] if pings else self.messages[0][0]
        return time.monotonic() - last

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close()


def wait(what: str, condition: Callable[[], object], log: Callable[[], str]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE:g} s: {what}\n{log()[-3000:]}")
        time.sleep(0.05)


def start_agent(w: World, host: str, notify_socket: str) -> subprocess.Popen[bytes]:
    log = (w.directory / f"agent-{host}.log").open("ab")
    env = {**os.environ, "NOTIFY_SOCKET": notify_socket, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    process = subprocess.Popen(
        ["ip", "netns", "exec", w.sandbox.namespaces[host], sys.executable, AGENT, "agent",
         "--cluster-home", str(w.home), "--cluster", CLUSTER, "--host", host,
         "--etcd", w.etcd.endpoints, "--ttl", str(w.ttl), "--monitor", "2"],
        env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=die_with_parent,
    )  # fmt: skip
    log.close()
    w.agents[host] = process  # killed by the world's close whatever happens
    return process


def test_ready_after_reconcile_watchdog_while_alive_stopping_on_sigterm() -> None:
    require_etcd()
    directory = Path(tempfile.mkdtemp(prefix="floatingip-notify-"))
    listeners: list[Listener] = []
    try:
        with world() as w:
            path_listener = Listener(
                str(directory / "notify"),
                at_ready=lambda: (w.holds("db1"), "agent of host db1, cluster demo" in log1()),
            )
            listeners.append(path_listener)
            log1 = lambda: w.agent_log("db1")  # noqa: E731
            w.put("policy", '{"mode":"AUTOMATIC"}')
            w.set_datasource("db1", "master")
            w.set_datasource("db2", "slave")
            etcd = [w.sandbox.addresses[member] for member in ETCD]

            # db1 cut from etcd: alive (pings) but not ready; READY once it reconciled.
            cut(w.sandbox, "db1", etcd)
            db1 = start_agent(w, "db1", path_listener.address)
            wait("pings while etcd is unreachable", lambda: path_listener.pings_since(0) >= 2, log1)
            assert path_listener.with_key("READY") == []
            (_, first), *_ = path_listener.with_key("STATUS")
            assert "reading the cluster's state from etcd" in first["STATUS"], first
            assert not w.holds("db1")
            heal(w.sandbox, "db1", etcd)
            wait("READY=1 from db1", lambda: path_listener.with_key("READY"), log1)
            ((held, built),) = path_listener.seen_at_ready
            assert built, "READY=1 before the manager was built and reconciled"
            (_, ready), *_ = path_listener.with_key("READY")
            assert ready["READY"] == "1"
            # The VIP is up when READY says so; or the start waited for the lease (granted after
            # the read, etcd just reachable again) and a STATUS= line says so when it is taken.
            holds = f"holds master ({VIP}) for db1"
            assert held if holds in ready["STATUS"] else "holds no VIP" in ready["STATUS"], ready
            wait("db1 takes the VIP", lambda: w.holds("db1"), log1)
            statuses = lambda: [m["STATUS"] for _, m in path_listener.with_key("STATUS")]  # noqa: E731
            wait("STATUS= says db1 holds the VIP", lambda: holds in statuses()[-1], log1)

            # db2 on an abstract socket, bound in db2's network namespace
            abstract = Listener(f"@floatingip-test-{uuid.uuid4().hex}", w.sandbox.namespaces["db2"])
            listeners.append(abstract)
            db2 = start_agent(w, "db2", abstract.address)
            log2 = lambda: w.agent_log("db2")  # noqa: E731
            wait("READY=1 from db2", lambda: abstract.with_key("READY"), log2)
            assert "holds no VIP" in abstract.with_key("READY")[0][1]["STATUS"]
            since = time.monotonic()
            wait("db2's pings", lambda: abstract.pings_since(since) >= 2, log2)

            # A blocked event loop sends nothing; the pings come back when it runs again.
            db2.send_signal(signal.SIGUSR2)
            wait(
                "db2 silent while its loop is blocked",
                lambda: abstract.silent_for() > 3 * PING,
                log2,
            )
            since = time.monotonic()
            wait(
                "db2's pings after the loop runs again",
                lambda: abstract.pings_since(since) >= 2,
                log2,
            )

            # A wedged Manager lock (the loop still runs) stops db1's pings too.
            db1.send_signal(signal.SIGUSR1)
            wait(
                "db1 silent while its manager is wedged",
                lambda: path_listener.silent_for() > 3 * PING,
                log1,
            )
            assert "no WATCHDOG=1 ping: the manager has not answered" in log1()
            assert db1.poll() is None
            db1.send_signal(signal.SIGUSR1)  # released
            since = time.monotonic()
            wait(
                "db1's pings after the release", lambda: path_listener.pings_since(since) >= 2, log1
            )

            # SIGTERM: STOPPING=1, the failsafe releases the VIP, exit 0, a last STATUS.
            db1.terminate()
            assert db1.wait(timeout=DEADLINE) == 0, log1()
            assert not w.holds("db1")
            stopping = path_listener.with_key("STOPPING")
            assert stopping and "releasing this host's VIPs" in stopping[0][1]["STATUS"]
            assert path_listener.with_key("STATUS")[-1][1]["STATUS"].endswith(": stopped")
            assert w.stop_agent("db2") == 0, log2()
            assert abstract.with_key("STOPPING")
    finally:
        for listener in listeners:
            listener.close()
        subprocess.run(["rm", "-rf", str(directory)], check=False)
