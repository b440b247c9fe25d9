"""floatingip check on real hosts: interface, subnet, listening database, sudo rights."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from floatingip.preflight import run_checks
from floatingip.sandbox import Sandbox
from tests.conftest import SEED_MASTER_PROPERTIES, require_program, write_service
from tests.integration.conftest import call_as, printed_sudoers, readable_cluster_home


def check_on(
    sandbox: Sandbox, host: str, home: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ip", "netns", "exec", sandbox.namespaces[host], sys.executable, "-m", "floatingip",
            "check", "--cluster-home", str(home), "--cluster", "demo", *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


def ip_service(vip: str, interface: str = "eth0") -> str:
    return (
        f"name=master\ncommand.start=ip addr add {vip}/24 dev {interface} label {interface}:0\n"
        f"command.stop=ip addr del {vip}/24 dev {interface}\n"
    )


def test_vip_in_the_subnet_passes_outside_fails(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    write_service(service_dir, "master.properties", ip_service("192.0.2.22"))
    datasource_dir = service_dir.parent / "datasource"
    datasource_dir.mkdir(mode=0o755)
    write_service(datasource_dir, "db1.properties", "name=db1\nrole=master\n")
    result = check_on(sandbox, "db1", cluster_home)
    assert "PASS  master: interface eth0 exists" in result.stdout
    passed = "PASS  master: VIP 192.0.2.22 is in the subnet of an address on eth0 (192.0.2.0/24)"
    assert passed in result.stdout
    assert result.returncode == 0, result.stdout
    write_service(service_dir, "master.properties", ip_service("198.51.100.22"))
    result = check_on(sandbox, "db1", cluster_home)
    failed = "FAIL  master: VIP 198.51.100.22 is not in the subnet of any address on eth0"
    assert f"{failed} (192.0.2.0/24)" in result.stdout
    assert "fix: clients would not reach it: choose a VIP in the subnet shared" in result.stdout
    assert result.returncode == 1


def test_missing_interface_fails(sandbox: Sandbox, cluster_home: Path, service_dir: Path) -> None:
    write_service(service_dir, "master.properties", ip_service("192.0.2.22", "eth9"))
    result = check_on(sandbox, "db1", cluster_home)
    assert "FAIL  master: interface eth9 exists" in result.stdout
    assert result.returncode == 1


def test_database_listening_on_all_addresses_or_only_localhost(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    write_service(service_dir, "master.properties", ip_service("192.0.2.22"))
    sandbox.start_server("db1", 3306)  # listens on 0.0.0.0
    result = check_on(sandbox, "db1", cluster_home, "--db-port", "3306")
    assert "PASS  the database on port 3306 listens on all addresses" in result.stdout
    loopback_only = subprocess.Popen(
        [
            "ip", "netns", "exec", sandbox.namespaces["db2"], sys.executable, "-c",
            "import socket, time\n"
            "s = socket.create_server(('127.0.0.1', 5432))\n"
            "print('ok', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert loopback_only.stdout is not None and loopback_only.stdout.readline() == "ok\n"
        result = check_on(sandbox, "db2", cluster_home, "--db-port", "5432")
    finally:
        loopback_only.kill()
        loopback_only.wait()
        assert loopback_only.stdout is not None
        loopback_only.stdout.close()
    expected = "FAIL  the database on port 5432 listens on all addresses (the seed's step 1): only"
    assert f"{expected} 127.0.0.1" in result.stdout
    assert "bind_address=0.0.0.0" in result.stdout


def test_sudo_without_rights_fails_and_with_the_printed_lines_passes(
    unprivileged_user: str, sudoers: Callable[[str], None]
) -> None:
    require_program("/sbin/ifconfig", package="net-tools")
    cluster_home = readable_cluster_home(SEED_MASTER_PROPERTIES)
    rules_dir = cluster_home / "rules"

    def sudo_verdicts() -> list[list[str]]:
        return [
            [check.verdict, check.what, check.fix]
            for check in run_checks(cluster_home, "demo", rules_dir=rules_dir)
            if check.what.startswith("sudo lets")
        ]

    refused = call_as(unprivileged_user, sudo_verdicts)
    # the seed's three commands, and the gratuitous ARP after start
    assert len(refused) == 4 and all(verdict == "FAIL" for verdict, _, _ in refused)
    assert "arping -U -c 3 -I eth0 10.10.12.22 as root" in refused[3][1]
    hint = f"floatingip sudoers --cluster-home {cluster_home} --cluster demo --user "
    assert refused[0][2].endswith(hint + unprivileged_user)  # a command that works as printed

    sudoers(printed_sudoers(cluster_home, unprivileged_user))
    allowed = call_as(unprivileged_user, sudo_verdicts)
    shutil.rmtree(cluster_home)
    assert [verdict for verdict, _, _ in allowed] == ["PASS"] * 4
