"""floatingip sudoers: least-privilege lines for exactly the configured commands."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from floatingip import load_services
from floatingip.cli import main
from floatingip.commands import split_sudo
from floatingip.sudoers import sudo_commands, sudoers_lines
from tests.conftest import SEED_MASTER_PROPERTIES, SYSTEM_PATH, require_program, write_service


def test_split_sudo() -> None:
    assert split_sudo(["sudo", "-n", "ip", "a"]) == ("root", ("ip", "a"))
    assert split_sudo(["sudo", "-n", "-u", "postgres", "psql"]) == ("postgres", ("psql",))
    assert split_sudo(["/usr/bin/sudo", "-upostgres", "--", "x"]) == ("postgres", ("x",))
    assert split_sudo(["ip", "a"]) is None


def test_seed_lines(cluster_home: Path, service_dir: Path) -> None:
    write_service(service_dir, "master.properties", SEED_MASTER_PROPERTIES)
    lines = sudoers_lines(
        sudo_commands(load_services(cluster_home, "demo")), user="tungsten", host="centos5a"
    )
    assert lines[1:] == [
        "tungsten centos5a=(root) NOPASSWD: /sbin/ifconfig eth0\\:0 10.10.12.22, \\\n"
        "    /sbin/ifconfig eth0\\:0 down, \\\n"
        "    /sbin/ifconfig eth0\\:0"
    ]


def test_commands_without_sudo_and_runas_users(cluster_home: Path, service_dir: Path) -> None:
    write_service(
        service_dir,
        "m.properties",
        "name=m\ncommand.start=sudo -u postgres /usr/bin/true\ncommand.stop=echo down\n"
        "command.status=sudo ip -o addr show\n",
    )
    lines = sudoers_lines(sudo_commands(load_services(cluster_home, "demo")), user="tungsten")
    ip = shutil.which("ip", path=SYSTEM_PATH)
    assert 'tungsten ALL=(postgres) NOPASSWD: /usr/bin/true ""' in lines
    assert f"tungsten ALL=(root) NOPASSWD: {ip} -o addr show" in lines
    assert not any("echo" in line for line in lines)


def test_output_is_accepted_by_visudo(
    cluster_home: Path, service_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    visudo = require_program("visudo", package="sudo")
    write_service(service_dir, "master.properties", SEED_MASTER_PROPERTIES)
    write_service(
        service_dir,
        "slave.properties",
        "name=slave\ncommand.start=sudo ip addr add 192.0.2.23/24 dev eth0 label eth0:1\n"
        "command.stop=sudo ip addr del 192.0.2.23/24 dev eth0\n",
    )
    args = [
        "sudoers",
        "--cluster-home",
        str(cluster_home),
        "--cluster",
        "demo",
        "--user",
        "tungsten",
    ]
    assert main([*args, "--host", "centos5a"]) == 0
    path = tmp_path / "floatingip.sudoers"
    path.write_text(capsys.readouterr().out)
    checked = subprocess.run([str(visudo), "-c", "-f", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
