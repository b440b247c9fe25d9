"""Real MHA 0.58 with MariaDB: two MariaDB servers (db1 master, db2 its replica, binary log
positions) each in its own sandbox host, sshd on every host (ssh_world), and
``masterha_master_switch`` run on a manager host with ``floatingip hook mha`` as its
``master_ip_online_change_script`` and ``master_ip_failover_script``, exactly the README's line:
with ``--ssh`` in the online switch (the hook reaches the database hosts over ssh, with MHA's
own ssh user, address and ``ssh_options``), with ``--netns`` (the tests' way to reach the
database hosts' namespaces) in the failover.

MHA 0.58 with MariaDB 10.11, as run here: MHA is started as root on the manager host and acts on
the servers through DBI (its ``user``) and, in a failover, over ssh (its ``ssh_user``).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from floatingip.sandbox import Sandbox
from floatingip.testing import write_cluster_home
from tests.conftest import report, require_program, require_root, wait_until
from tests.integration.etcd_cluster import die_with_parent
from tests.integration.ssh_world import SshWorld, require_ssh
from tests.integration.test_hook_patroni import FAILOVER_PATIENCE, Watcher
from tests.integration.test_hooks_contract import SERVICE, VIP

PORT = 3306
# MHA 0.58 reads the server's version with sprintf('%03d%03d%03d', all its numbers) and the
# major version with sprintf('%03d%03d', all its numbers), under `use warnings FATAL => 'all'`:
# since Perl 5.22 a redundant or missing sprintf argument is a warning, so no version string
# passes both and every MHA command with a replica dies ("Redundant argument in sprintf at
# .../MHA/NodeUtil.pm line 195 / 201").  perl -X turns every warning off, as before Perl 5.22.
MHA_PERL = ["perl", "-X"]
MHA_USER, MHA_PASSWORD = "mha", "mha-s3cret"
REPL_USER, REPL_PASSWORD = "repl", "repl-s3cret"


class MariaNode:
    """One MariaDB server on one sandbox host: its own data directory, socket and binary logs;
    it listens on every address of its namespace (the host's and the VIP when it comes)."""

    def __init__(self, sandbox: Sandbox, host: str, server_id: int, work: Path) -> None:
        self.sandbox, self.host, self.server_id = sandbox, host, server_id
        self.address = sandbox.addresses[host]
        self.data = work / "mysql" / host
        self.socket = work / "mysql" / f"{host}.sock"
        self.error_log = work / "mysql" / f"{host}.err"
        self.process: subprocess.Popen[bytes] | None = None

    def install(self) -> None:
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={self.data}",
             "--auth-root-authentication-method=socket", "--skip-test-db"],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.sandbox.namespaces[self.host], "mariadbd",
             "--no-defaults", "--user=mysql", f"--datadir={self.data}",
             f"--socket={self.socket}", f"--pid-file={self.data}/mariadbd.pid",
             f"--log-error={self.error_log}", "--bind-address=0.0.0.0", f"--port={PORT}",
             f"--server-id={self.server_id}", "--log-bin=mysql-bin", "--relay-log=relay-bin",
             "--log-slave-updates", "--skip-name-resolve", "--innodb-buffer-pool-size=16M",
             "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
             "--performance-schema=OFF", f"--version={node_tools_version()}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )  # fmt: skip
        up = lambda: self.sql("SELECT 1", check=False).returncode == 0  # noqa: E731
        assert wait_until(up, FAILOVER_PATIENCE), self.error_log.read_text(errors="replace")

    def sql(self, statement: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``statement`` as MariaDB's root, through the socket (tab-separated, no headers)."""
        result = subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B", "-e",
             statement],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if check:
            assert result.returncode == 0, f"{self.host}: {statement}\n{result.stderr}"
        return result

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def node_tools_version() -> str:
    """The server's version as MHA's node tools can read it: three numbers.  They run over ssh
    on the database hosts (save_binary_logs reads the version in the binary log's header) with
    Perl's fatal warnings, and Debian's ``10.11.19-MariaDB-0+deb12u1-log`` has six: "Redundant
    argument in sprintf", and the dead master's binary log is not saved.  ``--version=`` sets
    what the server reports and writes."""
    output = subprocess.run(["mariadbd", "--version"], capture_output=True, text=True).stdout
    match = re.search(r"Ver (\d+\.\d+\.\d+)-MariaDB", output)
    assert match, f"mariadbd --version: {output!r}"
    return f"{match.group(1)}-MariaDB-log"


def through_vip(sandbox: Sandbox, value: int) -> str | None:
    """From the client through the VIP as MHA's user: a write, then the answering server's
    ``server_id`` and ``read_only``: '2 0' is db2 taking writes."""
    result = sandbox.run(
        "client",
        ["mariadb", "--no-defaults", "-h", VIP, "-P", str(PORT), "-u", MHA_USER,
         f"-p{MHA_PASSWORD}", "--connect-timeout=3", "-N", "-B", "-e",
         f"INSERT INTO fip.w VALUES ({value}); SELECT @@server_id, @@read_only"],
        check=False, timeout=20,
    )  # fmt: skip
    last_answer[:] = [result.stdout + result.stderr]
    return " ".join(result.stdout.split()) if result.ok else None


last_answer: list[str] = []


class MhaWorld:
    """db1 (master) and db2 (replica) with MariaDB and sshd, a client and MHA's manager host."""

    def __init__(self, sandbox: Sandbox, work: Path, reach: str = "netns") -> None:
        self.sandbox, self.work, self.reach = sandbox, work, reach
        self.nodes = {
            host: MariaNode(sandbox, host, server_id, work)
            for host, server_id in (("db1", 1), ("db2", 2))
        }
        self.ssh = SshWorld(sandbox, ["db1", "db2", "mgr"], work / "ssh", ["root"])
        home = write_cluster_home(
            work,
            services={"master": SERVICE},
            datasources={"db1": "name=db1\nrole=master\n", "db2": "name=db2\nrole=slave\n"},
        )
        # the README's line: --ssh, or --netns into the database hosts' namespaces
        netns = [f"--netns={host}={sandbox.namespaces[host]}" for host in ("db1", "db2")]
        self.hook = shlex.join([
            sys.executable, "-m", "floatingip", "hook", "mha", "--cluster-home", str(home),
            "--cluster", "demo", "--lock-dir", str(work), *(["--ssh"] if reach == "ssh" else netns),
        ])  # fmt: skip
        self.conf = work / "mha" / "app1.cnf"
        self.log = work / "mha" / "switch.log"

    def start(self) -> None:
        (self.work / "mysql").mkdir(mode=0o755)
        shutil.chown(self.work / "mysql", "mysql", "mysql")
        (self.work / "mha").mkdir()
        self.ssh.start()
        db1, db2 = self.nodes["db1"], self.nodes["db2"]
        network = f"{self.sandbox.network.network_address}/{self.sandbox.network.netmask}"
        for node in (db1, db2):
            node.install()
            node.start()
            node.sql(
                "SET sql_log_bin=0;"
                f"CREATE USER '{MHA_USER}'@'{network}' IDENTIFIED BY '{MHA_PASSWORD}';"
                f"GRANT ALL ON *.* TO '{MHA_USER}'@'{network}' WITH GRANT OPTION;"
                f"CREATE USER '{REPL_USER}'@'{network}' IDENTIFIED BY '{REPL_PASSWORD}';"
                f"GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'{network}';"
            )
        db1.sql("CREATE DATABASE fip; CREATE TABLE fip.w (v int)")
        # from db1's first binary log: db2 replays the database and table created above
        db2.sql(
            f"CHANGE MASTER TO MASTER_HOST='{db1.address}', MASTER_PORT={PORT}, "
            f"MASTER_USER='{REPL_USER}', MASTER_PASSWORD='{REPL_PASSWORD}', "
            "MASTER_USE_GTID=no, MASTER_LOG_FILE='mysql-bin.000001', MASTER_LOG_POS=4;"
            "START SLAVE; SET GLOBAL read_only=1"
        )
        caught_up = lambda: db2.sql("SHOW TABLES FROM fip", check=False).stdout.strip() == "w"  # noqa: E731
        assert wait_until(caught_up, FAILOVER_PATIENCE), db2.sql("SHOW SLAVE STATUS\\G").stdout
        self.write_conf()

    def write_conf(self) -> None:
        ssh_options = " ".join(self.ssh.options("root"))
        mha = self.work / "mha"
        servers = "".join(
            f"\n[server{node.server_id}]\nhostname={node.host}\nip={node.address}\n"
            f"port={PORT}\nmaster_binlog_dir={node.data}\ncandidate_master=1\n"
            for node in self.nodes.values()
        )
        self.conf.write_text(
            "[server default]\n"
            f"user={MHA_USER}\npassword={MHA_PASSWORD}\n"
            f"repl_user={REPL_USER}\nrepl_password={REPL_PASSWORD}\n"
            f"ssh_user=root\nssh_options={ssh_options}\n"
            f"manager_workdir={mha}\nmanager_log={mha / 'manager.log'}\n"
            f"remote_workdir={mha / 'remote'}\n"
            f"master_ip_online_change_script={self.hook}\n"
            f"master_ip_failover_script={self.hook}\n" + servers
        )

    def switch(self, *options: str) -> subprocess.CompletedProcess[str]:
        """``masterha_master_switch --conf=... OPTIONS`` on the manager host, as root."""
        argv = [*MHA_PERL, shutil.which("masterha_master_switch") or "", f"--conf={self.conf}",
                *options]  # fmt: skip
        result = subprocess.run(
            ["ip", "netns", "exec", self.sandbox.namespaces["mgr"], *argv],
            capture_output=True, text=True, timeout=300, cwd="/", stdin=subprocess.DEVNULL,
        )  # fmt: skip
        # a failover logs to manager_log, the hook's lines with it
        manager_log = self.work / "mha" / "manager.log"
        logged = manager_log.read_text(errors="replace") if manager_log.exists() else ""
        manager_log.unlink(missing_ok=True)
        result.stdout += logged
        with self.log.open("a") as log:
            log.write(f"$ {shlex.join(argv)}\n{result.stdout}{result.stderr}\n")
        return result

    def place_vip_on_db1(self) -> None:
        """MHA never places the VIP (its monitor's start only calls ``status``): the first
        start is the user's, here with the hook's own line."""
        line = f"{self.hook} --command=start --orig_master_host=db1 --new_master_host=db1"
        if self.reach == "ssh":  # how to reach db1, as MHA would say it
            ssh_options = shlex.join(self.ssh.options("root"))
            line += f" --new_master_ip={self.nodes['db1'].address} --ssh_user=root"
            line += f" --ssh_options={shlex.quote(ssh_options)}"
        placed = subprocess.run(
            ["ip", "netns", "exec", self.sandbox.namespaces["mgr"], "/bin/sh", "-c", line],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert placed.returncode == 0, placed.stderr

    def close(self) -> None:
        for node in self.nodes.values():
            node.kill()
        self.ssh.close()


def require_mha() -> None:
    """Root, MariaDB's server and client, MHA's manager and node, ssh and sshd."""
    require_root()
    require_program("arping", package="iputils-arping")
    require_program("mariadbd", package="mariadb-server")
    require_program("mariadb-install-db", package="mariadb-server")
    require_program("mariadb", package="mariadb-client")
    require_program("masterha_master_switch", package="mha4mysql-manager")
    require_program("save_binary_logs", package="mha4mysql-node")
    require_ssh()


@pytest.fixture
def mha_world(request: pytest.FixtureRequest) -> Iterator[MhaWorld]:
    """The hook reaches the database hosts with ``--netns``, or ``--ssh`` when the test is
    parametrized so (indirect)."""
    require_mha()
    work = Path(tempfile.mkdtemp(prefix="fip-mha-"))
    work.chmod(0o755)
    try:
        with Sandbox(["db1", "db2", "client", "mgr"]) as sandbox:
            world = MhaWorld(sandbox, work, getattr(request, "param", "netns"))
            try:
                world.start()
                yield world
            finally:  # inside the sandbox: its namespaces are where the servers run
                world.close()
                if world.log.exists():
                    print(world.log.read_text(errors="replace")[-6000:])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def move_master_to_db2(
    world: MhaWorld, before: Callable[[], object], *options: str
) -> tuple[str, str]:
    """The VIP placed on db1 and a write through it reaching db1; then ``before()`` and
    ``masterha_master_switch OPTIONS``: it succeeds, the VIP is on db2 alone and a write through
    it reaches db2, writable; never two holders.  MHA's output, and the timings for the report."""
    sandbox = world.sandbox
    world.place_vip_on_db1()
    watcher = Watcher(sandbox)
    try:
        assert wait_until(lambda: through_vip(sandbox, 1) == "1 0"), last_answer
        before()
        began = time.monotonic()
        switched = world.switch(*options, "--new_master_host=db2", "--interactive=0")
        elapsed = time.monotonic() - began
        assert switched.returncode == 0, world.log.read_text()
        assert watcher.holders() == ["db2"]
        assert wait_until(lambda: through_vip(sandbox, 2) == "2 0"), last_answer
        written = time.monotonic() - began
    finally:
        watcher.close()
    assert not watcher.both, f"two holders in {len(watcher.both)} of {watcher.samples} samples"
    timings = (
        f"masterha_master_switch {elapsed:.1f} s, first write through the VIP on db2 "
        f"{written:.1f} s after it began; VIP polled {watcher.samples} times, never on two hosts"
    )
    return switched.stdout + switched.stderr, timings


@pytest.mark.parametrize("mha_world", ["ssh"], indirect=True)
def test_mha_online_switch_moves_the_vip_to_the_new_master(mha_world: MhaWorld) -> None:
    """The hook on the manager host acts on db1 and db2 over ssh (``--ssh``), as MHA does."""
    world = mha_world
    output, timings = move_master_to_db2(
        world, lambda: None, "--master_state=alive", "--orig_master_is_new_slave"
    )
    assert "floatingip hook mha: mha stop orig db1 new db2" in output
    assert "floatingip hook mha: mha start orig db1 new db2" in output
    assert MHA_PASSWORD not in output
    # db1 is db2's replica now: the write through the VIP reached it by replication only
    replica = lambda: world.nodes["db1"].sql("SELECT count(*) FROM fip.w WHERE v=2").stdout  # noqa: E731
    assert wait_until(lambda: replica().strip() == "1")
    assert "--netns" not in world.hook
    report(f"MHA online switch (MariaDB, the hook over ssh): {timings}")


def test_mha_failover_of_a_dead_master_moves_the_vip(mha_world: MhaWorld) -> None:
    """db1's mariadbd killed with -9, its host still reachable by ssh: MHA's failover runs the
    hook with ``--command=stopssh`` (db1 releases the VIP), saves db1's binary logs over ssh,
    promotes db2 and runs ``--command=start`` there."""
    db1 = mha_world.nodes["db1"]
    output, timings = move_master_to_db2(
        mha_world, db1.kill, "--master_state=dead", "--dead_master_host=db1",
        f"--dead_master_ip={db1.address}", f"--dead_master_port={PORT}", "--ignore_last_failover",
    )  # fmt: skip
    assert "Failed to save binary log" not in output
    assert "floatingip hook mha: mha stopssh orig db1 new -" in output
    assert "floatingip hook mha: mha start orig db1 new db2" in output
    report(f"MHA dead-master failover (MariaDB, mariadbd killed -9): {timings}")
