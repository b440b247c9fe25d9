"""floatingip sudoers: least-privilege lines for exactly the configured commands."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from floatingip import load_services
from floatingip.actions import duplicate_probe_argv
from floatingip.cli import main
from floatingip.commands import split_sudo
from floatingip.dad import PROBE_SCRIPT
from floatingip.sudoers import sudo_commands, sudoers_lines
from tests.conftest import (
    SEED_MASTER_PROPERTIES,
    SYSTEM_PATH,
    require_program,
    vip_service_text,
    write_service,
)


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
    # the duplicate address probe runs as root too, when a datasource is on another host
    probe = f"{sys.executable} -I -S {PROBE_SCRIPT} --interface eth0 --wait 0.2 10.10.12.22"
    assert lines[1:] == [
        "tungsten centos5a=(root) NOPASSWD: /sbin/ifconfig eth0\\:0 10.10.12.22, \\\n"
        "    /sbin/ifconfig eth0\\:0 down, \\\n"
        "    /sbin/ifconfig eth0\\:0, \\\n"
        # the gratuitous ARP after each start (vip.arp.count=0 leaves it out)
        f"    {require_program('arping')} -U -c 3 -I eth0 10.10.12.22, \\\n"
        f"    {probe}"
    ]


def test_the_probe_line_is_exactly_what_a_non_root_manager_runs(
    cluster_home: Path, service_dir: Path
) -> None:
    write_service(service_dir, "classic.properties", vip_service_text("classic"))
    write_service(
        service_dir,
        "vip.properties",
        "name=vip\nvip.address=192.0.2.23/24\nvip.interface=eth0\nvip.arp.count=0\n",
    )
    services = load_services(cluster_home, "demo")
    for name in ("classic", "vip"):
        probe = duplicate_probe_argv(services[name], sudo=True)
        assert probe is not None and probe[:2] == ("sudo", "-n") and PROBE_SCRIPT in probe
        spec = " ".join(probe[2:])
        lines = sudoers_lines(sudo_commands({name: services[name]}), user="tungsten")
        assert any(spec in line for line in lines), (spec, lines)


def test_no_probe_line_when_the_probe_never_runs(cluster_home: Path, service_dir: Path) -> None:
    write_service(
        service_dir,
        "nostatus.properties",
        "name=nostatus\ncommand.start=sudo ip addr add 192.0.2.22/24 dev eth0\n"
        "command.stop=sudo ip addr del 192.0.2.22/24 dev eth0\n",
    )
    write_service(
        service_dir,
        "off.properties",
        "name=off\nvip.address=192.0.2.23/24\nvip.interface=eth0\nvip.dad.wait=0\n",
    )
    services = load_services(cluster_home, "demo")
    assert duplicate_probe_argv(services["nostatus"], sudo=True) is None
    assert duplicate_probe_argv(services["off"], sudo=True) is None
    lines = sudoers_lines(sudo_commands(services), user="tungsten")
    assert not any(PROBE_SCRIPT in line for line in lines)


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
