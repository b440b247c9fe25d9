"""A real PostgreSQL per database host: clients on the VIP reach the master, and follow a switch.

One cluster per database namespace (initdb, then postgres with listen_addresses='*' and a
cluster_name naming its host), a client that connects with psql to the VIP.  With
listen_addresses='localhost' the preflight reports what the seed's step 1 warns about.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip import Manager
from floatingip.sandbox import Sandbox
from tests.conftest import PATIENCE, require, require_program, wait_until, write_service
from tests.integration.conftest import FOLLOW_DEADLINE

VIP = "192.0.2.22"


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    require(bool(found), "needs the PostgreSQL server (Debian: apt-get install postgresql)")
    require_program("psql", package="postgresql-client")
    require_program("runuser", package="util-linux")
    return Path(found[-1]).parent


class PostgresCluster:
    """initdb + postgres, owned by the postgres account, inside one sandbox host."""

    def __init__(self, sandbox: Sandbox, host: str, root: Path, listen: str) -> None:
        self.sandbox = sandbox
        self.host = host
        self.data = root / f"pg-{host}"
        bindir = postgres_bin()
        account = pwd.getpwnam("postgres")
        self.data.mkdir()
        os.chown(self.data, account.pw_uid, account.pw_gid)
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(bindir / "initdb"), "-D", str(self.data),
             "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {sandbox.network} trust\n")
        self.process = subprocess.Popen(
            [
                "ip", "netns", "exec", sandbox.namespaces[host],
                "runuser", "-u", "postgres", "--", str(bindir / "postgres"), "-D", str(self.data),
                "-c", f"listen_addresses={listen}", "-c", "port=5432",
                "-c", f"unix_socket_directories={self.data}", "-c", f"cluster_name={host}",
                "-c", "fsync=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + PATIENCE
        while self.query(host, "127.0.0.1") != host:
            assert self.process.poll() is None, f"postgres on {host} exited"
            assert time.monotonic() < deadline, f"postgres on {host} did not start"
            time.sleep(0.2)

    def query(self, client: str, address: str) -> str | None:
        """The cluster_name that answers on ``address`` (None if nobody does)."""
        result = self.sandbox.run(
            client,
            ["env", "PGCONNECT_TIMEOUT=2", "psql", "-h", address, "-U", "postgres", "-At",
             "-c", "SHOW cluster_name"],
            check=False,
            timeout=15,
        )  # fmt: skip
        return result.stdout.strip() if result.ok else None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def workdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="floatingip-pg-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_psql_on_the_vip_reaches_the_master_and_follows_the_switch(
    sandbox: Sandbox, workdir: Path, demo_home: Path, service_dir: Path
) -> None:
    clusters = [PostgresCluster(sandbox, host, workdir, "*") for host in ("db1", "db2")]
    try:
        write_service(
            service_dir,
            "master.properties",
            f"name=master\nvip.address={VIP}/24\nvip.interface=eth0\nvip.label=eth0:0\n",
        )
        executors = {host: sandbox.executor(host) for host in ("db1", "db2")}
        with Manager.from_cluster_home(demo_home, "demo", executors=executors) as manager:
            manager.update_datasource("db2", state="ONLINE")
            assert manager.update_datasource("db1", state="ONLINE").ok
            assert clusters[0].query("client", VIP) == "db1"
            assert manager.switch("db2").ok
            assert wait_until(
                lambda: clusters[0].query("client", VIP) == "db2", timeout=FOLLOW_DEADLINE
            ), "psql on the VIP did not reach db2"
    finally:
        for cluster in clusters:
            cluster.stop()


def test_check_reports_a_database_listening_on_localhost_only(
    sandbox: Sandbox, workdir: Path, demo_home: Path
) -> None:
    cluster = PostgresCluster(sandbox, "db2", workdir, "localhost")
    try:
        result = subprocess.run(
            ["ip", "netns", "exec", sandbox.namespaces["db2"], sys.executable, "-m", "floatingip",
             "check", "--cluster-home", str(demo_home), "--cluster", "demo", "--db-port", "5432"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        cluster.stop()
    assert result.returncode == 1
    assert "FAIL  the database on port 5432 listens on all addresses" in result.stdout
    assert "only 127.0.0.1" in result.stdout
    assert "listen_addresses='*'" in result.stdout
    assert cluster.query("client", sandbox.addresses["db2"]) is None  # and indeed nobody can
