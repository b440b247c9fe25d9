"""Real Patroni (Debian's 3.0) on real PostgreSQL 15 and a real etcd, each in a sandbox host, with
``floatingip hook patroni`` as its on_start/on_stop/on_role_change callbacks: the VIP is on the
leader after bootstrap, follows ``patronictl switchover``, and follows a failover when the
leader's host dies, and comes back to the leader after its postmaster is killed with -9 (Patroni
restarts PostgreSQL in place); psql from a client through the VIP reaches a primary that takes
writes.  Both database hosts are polled all along: never two holders.

Patroni runs the callbacks as its own account (postgres); the line calls the hook through
``sudo -n`` (see test_hook_repmgr.hook_through_sudo).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from floatingip.sandbox import Sandbox
from tests.conftest import PATIENCE, report, require, require_program, require_root, wait_until
from tests.integration.etcd_cluster import EtcdCluster
from tests.integration.test_hook_repmgr import BINDIR, hook_workspace
from tests.integration.test_hooks_contract import VIP

FAILOVER_PATIENCE = 120.0  # Patroni's ttl (10 s here) and a loaded 2-core machine


class PatroniNode:
    """``patroni`` for one database host, as postgres, inside its namespace."""

    def __init__(
        self, sandbox: Sandbox, host: str, work: Path, etcd: str, hook: str, *, dcs: str = "etcd3"
    ) -> None:
        """``dcs``: Patroni's section for etcd, ``etcd3`` (v3 API) or ``etcd`` (v2 API, the
        store vip-manager 1.0 reads)."""
        self.sandbox, self.host = sandbox, host
        address = sandbox.addresses[host]
        self.config = work / f"{host}.yml"
        self.log = work / f"{host}.patroni.log"
        self.data = data = work / "pg" / host
        sockets = work / "pg" / f"{host}-sockets"  # one each: same port, same file system
        sockets.mkdir()
        account = pwd.getpwnam("postgres")
        os.chown(sockets, account.pw_uid, account.pw_gid)
        config = {
            "scope": "demo",
            "name": host,
            "restapi": {"listen": f"{address}:8008", "connect_address": f"{address}:8008"},
            dcs: {"hosts": [etcd]},
            "bootstrap": {
                "dcs": {"ttl": 10, "loop_wait": 1, "retry_timeout": 4},
                "initdb": [{"encoding": "UTF8"}],
            },
            "postgresql": {
                "listen": "0.0.0.0:5432",
                "connect_address": f"{address}:5432",
                "data_dir": str(data),
                "bin_dir": str(BINDIR),
                "pgpass": str(work / "pg" / f"{host}.pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "postgres"},
                    "replication": {"username": "postgres", "password": "postgres"},
                },
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication all 127.0.0.1/32 trust",
                    f"host all all {sandbox.network} trust",
                    f"host replication all {sandbox.network} trust",
                ],
                "parameters": {
                    "unix_socket_directories": str(sockets),
                    "fsync": "off",
                    "wal_log_hints": "on",
                },
                "callbacks": {name: f"{hook} --host {host}" for name in CALLBACKS},
            },
        }
        self.config.write_text(json.dumps(config))  # YAML is a superset of JSON
        self.config.chmod(0o644)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", sandbox.namespaces[host],
                 "runuser", "-u", "postgres", "--", "patroni", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                start_new_session=True,
            )  # fmt: skip

    def patronictl(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.sandbox.namespaces[self.host],
             "patronictl", "-c", str(self.config), *argv],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def kill(self) -> None:
        """The host dies: Patroni and its PostgreSQL killed with -9 (the postmaster by the pid
        in its pid file; its backends follow it)."""
        postmaster = self.postmaster()
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signal.SIGKILL)

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill_postmaster(self) -> None:
        """PostgreSQL alone crashes: its postmaster killed with -9 (its children exit when
        they notice); Patroni keeps running."""
        os.kill(self.postmaster(), signal.SIGKILL)

    def leader(self) -> str | None:
        """The member ``patronictl list`` reports as the running leader."""
        listed = self.patronictl("list", "--format", "json")
        last_answer[:] = [listed.stdout + listed.stderr]
        if listed.returncode != 0:
            return None
        leaders = [m.get("Member") for m in json.loads(listed.stdout or "[]")
                   if m.get("Role") == "Leader" and m.get("State") == "running"]  # fmt: skip
        return leaders[0] if len(leaders) == 1 else None

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # Patroni stops PostgreSQL
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


CALLBACKS = ("on_start", "on_stop", "on_restart", "on_role_change")


class Watcher:
    """Polls both database hosts for the VIP until stopped; counts samples held by two."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.samples = 0
        self.both: list[float] = []
        self.changes: list[tuple[float, tuple[str, ...]]] = []  # (monotonic, holders) on change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def holders(self) -> list[str]:
        return [host for host in ("db1", "db2") if VIP in self.sandbox.addresses_on(host)]

    def _run(self) -> None:
        while not self._stop.is_set():
            holders, now = tuple(self.holders()), time.monotonic()
            if len(holders) > 1:
                self.both.append(now)
            if not self.changes or self.changes[-1][1] != holders:
                self.changes.append((now, holders))
            self.samples += 1
            self._stop.wait(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def primary_through_vip(sandbox: Sandbox, value: int) -> bool:
    """From the client through the VIP: a server that is not in recovery and takes a write."""
    return writer_through_vip(sandbox, value) is not None


def writer_through_vip(sandbox: Sandbox, value: int) -> str | None:
    """From the client through the VIP: the host (its data directory's name) of a server that
    is not in recovery and took a write, else None."""
    result = sandbox.run(
        "client",
        ["env", "PGCONNECT_TIMEOUT=3", "psql", "-q", "-h", VIP, "-U", "postgres", "-At", "-c",
         "CREATE TABLE IF NOT EXISTS t (v int); INSERT INTO t VALUES "
         f"({value}) RETURNING v, pg_is_in_recovery(), current_setting('data_directory')"],
        check=False, timeout=20,
    )  # fmt: skip
    last_answer[:] = [result.stdout + result.stderr]
    for line in result.stdout.splitlines() if result.ok else []:
        if line.startswith(f"{value}|f|"):
            return Path(line.split("|", 2)[2]).name
    return None


last_answer: list[str] = []


def bootstrap_db1_then_db2(
    start: Callable[[str], PatroniNode], sandbox: Sandbox, watcher: Watcher
) -> tuple[PatroniNode, PatroniNode]:
    """db1 bootstraps the cluster and leads it (the VIP on db1, a write through it reaches
    db1), then db2 joins as a running replica while the VIP stays on db1."""
    db1 = start("db1")
    assert wait_until(lambda: watcher.holders() == ["db1"], FAILOVER_PATIENCE)
    assert wait_until(lambda: primary_through_vip(sandbox, 1), PATIENCE), last_answer
    db2 = start("db2")
    assert wait_until(lambda: _running_replica(db1), FAILOVER_PATIENCE), last_answer
    assert watcher.holders() == ["db1"]
    return db1, db2


def switch_over_to_db2(db1: PatroniNode, sandbox: Sandbox, watcher: Watcher) -> tuple[float, float]:
    """`patronictl switchover` from db1 to db2: seconds until the VIP is on db2 (and only
    there), and until a write through it reaches db2's PostgreSQL."""
    began = time.monotonic()
    switched = db1.patronictl("switchover", "--leader", "db1", "--candidate", "db2", "--force")
    assert switched.returncode == 0, switched.stdout + switched.stderr
    assert wait_until(lambda: watcher.holders() == ["db2"], FAILOVER_PATIENCE)
    switch_vip = time.monotonic() - began
    assert wait_until(lambda: primary_through_vip(sandbox, 2), PATIENCE), last_answer
    return switch_vip, time.monotonic() - began


@dataclass
class Crash:
    """What followed a kill -9 of the leader's postmaster; seconds counted from the kill."""

    leader: str  # the member Patroni reports as the running leader afterwards
    first_write: float  # until a write through the VIP reached it
    settled_write: float  # until one did again once the VIP's managers were done
    without_vip: float  # in total, the VIP on no host
    changes: list[tuple[float, tuple[str, ...]]]  # who held the VIP, from just before the kill
    log: str  # the old leader's Patroni log from the kill on

    def timeline(self) -> str:
        return ", ".join(
            f"{when:.1f} s {'+'.join(held) or 'nobody'}" for when, held in self.changes
        )


def kill_leader_postgres(
    leader: PatroniNode,
    sandbox: Sandbox,
    watcher: Watcher,
    settled: Callable[[str], bool] = lambda log: True,
) -> Crash:
    """Kill -9 the leader's postmaster (Patroni keeps running and holds the leader key), then
    wait until a write through the VIP reaches a primary and ``settled`` (given the leader's
    Patroni log since the kill) says the VIP's managers are done: it is the member Patroni
    reports as the running leader, the VIP is there alone and a write through it reaches it,
    and from the kill on no other host held the VIP."""
    offset = leader.log.stat().st_size
    began = time.monotonic()
    leader.kill_postmaster()
    assert wait_until(lambda: primary_through_vip(sandbox, 4), FAILOVER_PATIENCE), last_answer
    first_write = time.monotonic() - began

    def log() -> str:
        with leader.log.open("rb") as file:
            file.seek(offset)
            return file.read().decode(errors="replace")

    assert wait_until(lambda: settled(log()), FAILOVER_PATIENCE), log()[-3000:]
    assert wait_until(lambda: leader.leader() is not None, PATIENCE), last_answer
    reported = leader.leader()
    assert wait_until(lambda: watcher.holders() == [reported], PATIENCE), watcher.holders()
    assert wait_until(lambda: writer_through_vip(sandbox, 5) == reported), last_answer
    ended = time.monotonic()
    changes = list(watcher.changes)
    held_before = [held for when, held in changes if when < began][-1]
    assert held_before == (leader.host,), f"VIP before the kill on {held_before}"
    episode = [(0.0, held_before)] + [(when - began, h) for when, h in changes if when >= began]
    wrong = [(when, held) for when, held in episode if set(held) - {reported}]
    assert not wrong, f"VIP on a host Patroni does not report as leader: {wrong}"
    ends = [when for when, _ in episode[1:]] + [ended - began]
    without = sum(end - when for (when, held), end in zip(episode, ends, strict=True) if not held)
    return Crash(str(reported), first_write, ended - began, without, episode, log())


def require_patroni() -> None:
    """Root (namespaces), Patroni, etcd, psql, runuser and PostgreSQL 15's server."""
    require_root()
    require_program("patroni", package="patroni")
    require_program("etcd", package="etcd-server")
    require_program("psql", package="postgresql-client")
    require_program("runuser", package="util-linux")
    require((BINDIR / "initdb").exists(), "needs PostgreSQL 15 (Debian: postgresql-15)")


@pytest.fixture
def cluster() -> Iterator[tuple[Sandbox, EtcdCluster, Callable[[str], PatroniNode]]]:
    require_patroni()
    with (
        hook_workspace("patroni") as (work, hook),
        Sandbox(["db1", "db2", "client", "etcd"]) as sandbox,
    ):
        etcd = EtcdCluster(sandbox, ["etcd"], work / "etcd").start()
        nodes: dict[str, PatroniNode] = {}
        endpoint = f"{sandbox.addresses['etcd']}:2379"

        def start(host: str) -> PatroniNode:
            nodes[host] = PatroniNode(sandbox, host, work, endpoint, hook)
            return nodes[host]

        try:
            yield sandbox, etcd, start
        finally:
            for node in nodes.values():
                node.stop()
            etcd.close()
            for node in nodes.values():  # the hooks' lines and the end, for a failure's report
                text = node.log.read_text(errors="replace")
                hooks = [line for line in text.splitlines() if "floatingip hook" in line]
                print(f"--- {node.host}", *hooks, text[-2000:], sep="\n")


def test_patroni_callbacks_move_the_vip_on_switchover_and_failover(
    cluster: tuple[Sandbox, EtcdCluster, Callable[[str], PatroniNode]],
) -> None:
    sandbox, etcd, start = cluster
    watcher = Watcher(sandbox)
    try:
        # db1 bootstraps the cluster and leads it: on_start with role master
        db1, db2 = bootstrap_db1_then_db2(start, sandbox, watcher)

        switch_vip, switch_write = switch_over_to_db2(db1, sandbox, watcher)
        assert wait_until(lambda: _running_replica(db2), FAILOVER_PATIENCE)
    finally:
        watcher.close()
    # the leader's host dies: Patroni and PostgreSQL killed, its network gone (its VIP stays
    # configured on the dead interface: from here on only db1 is watched)
    began = time.monotonic()
    db2.kill()
    sandbox.run("db2", ["ip", "link", "set", "eth0", "down"])
    assert wait_until(lambda: VIP in sandbox.addresses_on("db1"), FAILOVER_PATIENCE)
    fail_vip = time.monotonic() - began
    assert wait_until(lambda: primary_through_vip(sandbox, 3), PATIENCE), last_answer
    fail_write = time.monotonic() - began
    assert not watcher.both, f"two holders in {len(watcher.both)} of {watcher.samples} samples"
    waited = sum(n.log.read_text().count("failed attempt") for n in (db1, db2))
    report(
        f"patroni callbacks: switchover -> VIP on the new leader {switch_vip:.1f} s, first write "
        f"through it {switch_write:.1f} s; leader host killed -> {fail_vip:.1f} s / "
        f"{fail_write:.1f} s (ttl 10); {waited} callback(s) waited for the old host's release; "
        f"VIP polled {watcher.samples} times before the kill, never on two hosts"
    )
    assert etcd.healthy()


MASTER_HOOK_DONE = "patroni on_role_change master demo: db1: it is the primary: master"


def test_patroni_callbacks_bring_the_vip_back_when_the_leaders_postgres_is_killed(
    cluster: tuple[Sandbox, EtcdCluster, Callable[[str], PatroniNode]],
) -> None:
    """Patroni keeps the leader key and restarts its crashed PostgreSQL in place, read-only
    first (on_role_change replica: the hook releases the VIP), then promoted (on_role_change
    master: the hook takes it back); no on_stop, no on_start.  The VIP is never elsewhere."""
    sandbox, etcd, start = cluster
    watcher = Watcher(sandbox)
    try:
        db1, _ = bootstrap_db1_then_db2(start, sandbox, watcher)
        # settled: the hook of Patroni's last callback (on_role_change master) has finished
        crash = kill_leader_postgres(db1, sandbox, watcher, lambda log: MASTER_HOOK_DONE in log)
    finally:
        watcher.close()
    assert not watcher.both, f"two holders in {len(watcher.both)} of {watcher.samples} samples"
    callbacks = [line.split("floatingip hook", 1)[1].strip()[:80]
                 for line in crash.log.splitlines() if "floatingip hook" in line]  # fmt: skip
    print("db1's Patroni after the kill:", crash.log, sep="\n")
    report(
        f"patroni callbacks: leader's postmaster killed -9 -> leader {crash.leader}, first write "
        f"through the VIP {crash.first_write:.1f} s, after the last callback "
        f"{crash.settled_write:.1f} s, VIP on nobody {crash.without_vip:.1f} s "
        f"(holders: {crash.timeline()}); callbacks: {'; '.join(callbacks) or 'none'}; "
        f"VIP polled {watcher.samples} times, never on two hosts"
    )
    assert etcd.healthy()


def _running_replica(leader: PatroniNode) -> bool:
    listed = leader.patronictl("list", "--format", "json")
    last_answer[:] = [listed.stdout + listed.stderr]
    if listed.returncode != 0:
        return False
    members = json.loads(listed.stdout or "[]")
    return any(m.get("Role") == "Replica" and m.get("State") in ("running", "streaming")
               for m in members)  # fmt: skip
