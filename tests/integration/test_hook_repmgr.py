"""A real repmgr pair: PostgreSQL 15 on two sandbox hosts, repmgr 5.3's own commands, and its
``event_notification_command`` calling ``floatingip hook repmgr``.  The VIP follows the primary
through ``primary register``, ``standby clone/register``, a failover (``standby promote`` once
db1 is gone) and ``node rejoin``, and ``standby switchover`` (over ssh: sshd on both hosts, from
ssh_world; the old primary releases the VIP in its ``service_stop_command``, which no
notification reaches); a client's psql through the VIP reaches the primary.

repmgr refuses to run as root and runs the notification command as its own account (postgres
here); the line calls the hook through ``sudo -n`` because the test's interpreter lives where
that account cannot read.  The hook could as well run as postgres with ``floatingip sudoers``
lines for its ``ip`` commands, as the README shows.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip.sandbox import Sandbox
from floatingip.testing import write_cluster_home
from tests.conftest import report, require, require_program, require_root, wait_until
from tests.integration.ssh_world import SshWorld, require_ssh
from tests.integration.test_hooks_contract import SERVICE, VIP

BINDIR = Path("/usr/lib/postgresql/15/bin")


class Node:
    """One PostgreSQL 15 server with its repmgr.conf, on one sandbox host, as postgres."""

    def __init__(self, sandbox: Sandbox, host: str, node_id: int, work: Path, hook: str) -> None:
        self.sandbox, self.host, self.node_id = sandbox, host, node_id
        self.address = sandbox.addresses[host]
        self.data = work / "pg" / host  # pg/ is postgres's; the cluster home stays root's
        # the socket outside the data directory, which a clone copies (its lock file too)
        self.sockets = work / "pg" / f"{host}-sockets"
        self.sockets.mkdir()
        account = pwd.getpwnam("postgres")
        os.chown(self.sockets, account.pw_uid, account.pw_gid)
        self.conf = work / f"{host}.repmgr.conf"
        self.log = work / f"{host}.repmgr.log"
        self.conf.write_text(
            f"node_id={node_id}\nnode_name='{host}'\n"
            f"conninfo='host={self.address} port=5432 user=postgres dbname=postgres "
            "connect_timeout=2'\n"
            f"data_directory='{self.data}'\npg_bindir='{BINDIR}'\n"
            # pg_ctl with a log file: a server started with repmgr's inherited output would
            # keep this test's pipes open
            f"service_start_command='{self.pg_ctl()} -l {self.data}/log -w -t 120 start'\n"
            # the stop of a primary releases its VIP: in a switchover it is the only step run
            # on the old primary (over ssh), which no notification reaches.  repmgr reads the
            # first line of the command's output and closes the pipe: pg_ctl's second line
            # would kill it (SIGPIPE) before the hook ran, hence >/dev/null
            f"service_stop_command='{self.pg_ctl()} -m fast -w stop >/dev/null && "
            f"{hook} --host {host} {node_id} service_stop 1'\n"
            f"event_notification_command='{hook} --host {host} %n %e %s \"%t\"'\n"
            # a switchover runs repmgr on the other node over ssh (ssh_world's sshd, its key)
            f"ssh_options='{' '.join(SshWorld.client_options(work / 'ssh', 'postgres'))}'\n"
        )
        self.conf.chmod(0o644)

    def pg_ctl(self) -> str:
        return f"{BINDIR / 'pg_ctl'} -D {self.data}"

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``argv`` as postgres on this host (its namespace), as repmgr's users run it."""
        result = subprocess.run(
            ["ip", "netns", "exec", self.sandbox.namespaces[self.host],
             "runuser", "-u", "postgres", "--", *argv],
            capture_output=True, text=True, timeout=180, cwd="/",
        )  # fmt: skip
        with self.log.open("a") as log:
            log.write(f"$ {shlex.join(argv)}\n{result.stdout}{result.stderr}\n")
        if check:
            assert result.returncode == 0, f"{self.host}: {shlex.join(argv)}\n{result.stderr}"
        return result

    def repmgr(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("repmgr", "-f", str(self.conf), *argv, check=check)

    def host_conf(self) -> None:
        # included by postgresql.conf, written again after a clone copied the primary's
        (self.data / "host.conf").write_text(
            f"cluster_name='{self.host}'\nunix_socket_directories='{self.sockets}'\n"
        )

    def initdb(self) -> None:
        self.run(str(BINDIR / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                 "--no-sync")  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "listen_addresses='*'\nport=5432\nwal_level=replica\nmax_wal_senders=10\n"
                "max_replication_slots=10\nhot_standby=on\nwal_log_hints=on\nfsync=off\n"
                "include_if_exists='host.conf'\n"
            )
        with (self.data / "pg_hba.conf").open("a") as hba:
            network = self.sandbox.network
            hba.write(f"host all all {network} trust\nhost replication all {network} trust\n")
        self.host_conf()

    def start(self) -> None:
        log = self.data / "log"
        log.unlink(missing_ok=True)  # a clone copies the primary's
        pg_ctl = [str(BINDIR / "pg_ctl"), "-D", str(self.data), "-l", str(log)]
        result = self.run(*pg_ctl, "-w", "-t", "120", "start", check=False)
        assert result.returncode == 0, f"{self.host}: postgres did not start:\n{log.read_text()}"

    def stop(self, mode: str = "fast") -> None:
        self.run(str(BINDIR / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
                 check=False)  # fmt: skip


def answer(sandbox: Sandbox) -> str | None:
    """What the server behind the VIP says from the client: 'db1 f' (its name, in recovery?)."""
    result = sandbox.run(
        "client",
        ["env", "PGCONNECT_TIMEOUT=3", "psql", "-h", VIP, "-U", "postgres", "-At", "-F", " ",
         "-c", "SELECT current_setting('cluster_name'), pg_is_in_recovery()"],
        check=False, timeout=20,
    )  # fmt: skip
    return result.stdout.strip() if result.ok else None


@pytest.fixture
def pair() -> Iterator[tuple[Sandbox, Node, Node]]:
    require_root()
    require_program("arping", package="iputils-arping")
    require_program("psql", package="postgresql-client")
    require_program("runuser", package="util-linux")
    require_program("sudo", package="sudo")
    require((BINDIR / "initdb").exists(), "needs PostgreSQL 15 (Debian: postgresql-15)")
    require(shutil.which("repmgr") is not None, "needs repmgr (Debian: postgresql-15-repmgr)")
    with (
        hook_workspace("repmgr") as (work, hook),
        Sandbox(["db1", "db2", "client"]) as sandbox,
    ):
        nodes = [
            Node(sandbox, host, node_id, work, hook) for host, node_id in (("db1", 1), ("db2", 2))
        ]
        try:
            yield sandbox, nodes[0], nodes[1]
        finally:  # inside the sandbox: its namespaces are where the servers run
            for node in nodes:
                node.stop("immediate")


@contextlib.contextmanager
def hook_workspace(tool: str) -> Iterator[tuple[Path, str]]:
    """A directory every account can read, with root's cluster home (cluster demo: the VIP
    service, db1 master, db2 slave) and ``pg/`` for postgres; and the hook line postgres runs."""
    work = Path(tempfile.mkdtemp(prefix=f"fip-{tool}-"))
    try:
        work.chmod(0o755)
        home = write_cluster_home(
            work,
            services={"master": SERVICE},
            datasources={"db1": "name=db1\nrole=master\n", "db2": "name=db2\nrole=slave\n"},
        )
        account = pwd.getpwnam("postgres")
        for directory in (work / "locks", work / "pg"):
            directory.mkdir(mode=0o755)
            os.chown(directory, account.pw_uid, account.pw_gid)
        with hook_through_sudo(tool, home, work / "locks") as hook:
            yield work, hook
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def hook_through_sudo(tool: str, home: Path, locks: Path) -> Iterator[str]:
    """The line that runs ``floatingip hook TOOL`` for the cluster of ``home`` as root through
    ``sudo -n``, which a sudoers file lets postgres do for the test's duration."""
    hook = shlex.join([
        sys.executable, "-m", "floatingip", "hook", tool, "--cluster-home", str(home),
        "--cluster", "demo", "--lock-dir", str(locks),
    ])  # fmt: skip
    sudoers = Path("/etc/sudoers.d") / f"floatingip-test-{tool}-{os.getpid()}"
    staged = sudoers.with_name(sudoers.name + ".new")  # sudo skips names with a '.'
    staged.write_text(f"postgres ALL=(root) NOPASSWD: {hook.replace(':', chr(92) + ':')} *\n")
    staged.chmod(0o440)
    subprocess.run(["visudo", "-c", "-q", "-f", str(staged)], check=True)
    staged.rename(sudoers)
    try:
        yield f"sudo -n {hook}"
    finally:
        sudoers.unlink(missing_ok=True)


def primary_and_standby(sandbox: Sandbox, db1: Node, db2: Node) -> None:
    """db1 initialised and registered as the primary (it takes the VIP; psql through the VIP
    reaches it), db2 cloned from it and registered as its standby (the VIP stays on db1)."""
    db1.initdb()
    db1.start()
    db1.repmgr("primary", "register")
    assert wait_until(lambda: holders(sandbox) == ["db1"]), db1.log.read_text()
    assert wait_until(lambda: answer(sandbox) == "db1 f")
    db2.repmgr("-h", db1.address, "-U", "postgres", "-d", "postgres", "standby", "clone")
    db2.host_conf()
    db2.start()
    db2.repmgr("standby", "register")
    assert holders(sandbox) == ["db1"]


def holders(sandbox: Sandbox) -> list[str]:
    return [host for host in ("db1", "db2") if VIP in sandbox.addresses_on(host)]


def test_repmgr_failover_and_rejoin_move_the_vip(pair: tuple[Sandbox, Node, Node]) -> None:
    sandbox, db1, db2 = pair
    primary_and_standby(sandbox, db1, db2)

    # db1 fails: postgres stopped and the host cut off (its VIP no longer answers anywhere)
    db1.stop()
    sandbox.run("db1", ["ip", "link", "set", "eth0", "down"])
    promoted = db2.repmgr("standby", "promote")
    assert "floatingip hook repmgr: repmgr standby_promote" in promoted.stdout + promoted.stderr
    assert wait_until(lambda: VIP in sandbox.addresses_on("db2")), db2.log.read_text()
    assert wait_until(lambda: answer(sandbox) == "db2 f"), db2.log.read_text()

    # db1 comes back as a rebooted host does (its addresses gone), rejoins as a standby
    sandbox.run("db1", ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"], check=False)
    sandbox.run("db1", ["ip", "link", "set", "eth0", "up"])
    db1.repmgr("node", "rejoin", "-d", f"host={db2.address} user=postgres dbname=postgres")
    assert holders(sandbox) == ["db2"]
    assert wait_until(lambda: answer(sandbox) == "db2 f")
    handled = (db1.log.read_text() + db2.log.read_text()).count("floatingip hook repmgr:")
    report(f"repmgr pair: {handled} notifications handled; the VIP followed the primary")


def event_log(node: Node) -> str:
    """repmgr's events table, as the node sees it: for a failure's report."""
    return node.run(
        "psql", "-h", node.address, "-At", "-c",
        "SELECT event_timestamp, node_id, event, successful, details FROM repmgr.events "
        "ORDER BY event_timestamp",
        check=False,
    ).stdout  # fmt: skip


@pytest.fixture
def ssh_pair(pair: tuple[Sandbox, Node, Node]) -> Iterator[tuple[Sandbox, Node, Node]]:
    """The pair, with sshd on both hosts and postgres's key: repmgr's switchover uses ssh."""
    require_ssh()
    sandbox, db1, _ = pair
    with SshWorld(sandbox, ["db1", "db2"], db1.conf.parent / "ssh", ["postgres"]):
        yield pair


def test_repmgr_switchover_moves_the_vip(ssh_pair: tuple[Sandbox, Node, Node]) -> None:
    """`repmgr standby switchover` on db2: repmgr stops db1 over ssh, promotes db2 and rejoins
    db1 as its standby; the VIP follows, never on two hosts."""
    # imported here: test_hook_patroni imports this module
    from tests.integration.test_hook_patroni import FAILOVER_PATIENCE, Watcher

    sandbox, db1, db2 = ssh_pair
    primary_and_standby(sandbox, db1, db2)
    watcher = Watcher(sandbox)
    try:
        began = time.monotonic()
        switched = db2.repmgr("standby", "switchover")
        output = switched.stdout + switched.stderr
        assert wait_until(lambda: watcher.holders() == ["db2"], FAILOVER_PATIENCE), (
            output + event_log(db2)
        )
        vip = time.monotonic() - began
        assert wait_until(lambda: answer(sandbox) == "db2 f"), output
        reached = time.monotonic() - began
    finally:
        watcher.close()
    # db1 is db2's standby now (rejoined without a notification), the VIP still on db2
    in_recovery = db1.run("psql", "-h", db1.address, "-At", "-c", "SELECT pg_is_in_recovery()")
    assert in_recovery.stdout == "t\n"
    assert watcher.holders() == ["db2"]
    assert not watcher.both, f"two holders in {len(watcher.both)} of {watcher.samples} samples"
    # db1's stop released the VIP (its line is in repmgr's output over ssh, which repmgr drops),
    # so the promotion's notification took it at once
    hook_lines = [line for line in output.splitlines() if "floatingip hook repmgr:" in line]
    took = "standby_promote node 2 success 1: db2: it is the primary: master start on db2 ok"
    assert any(took in line for line in hook_lines), output
    # a stop through repmgr releases the VIP; the start notifies nothing; primary register
    # --force (its primary_register notification) takes it back
    db2.repmgr("node", "service", "--action=stop", "--checkpoint")
    assert holders(sandbox) == []
    db2.repmgr("node", "service", "--action=start")
    assert holders(sandbox) == []
    db2.repmgr("primary", "register", "--force")
    assert holders(sandbox) == ["db2"]
    assert wait_until(lambda: answer(sandbox) == "db2 f")
    report(
        f"repmgr standby switchover: the command ran {vip:.1f} s, the VIP on db2 when it "
        f"returned, psql through it after {reached:.1f} s; VIP polled {watcher.samples} times, "
        "never on two hosts; " + " | ".join(line.split(": ", 1)[1] for line in hook_lines)
    )
