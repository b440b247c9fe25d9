"""floatingip check: each problem it claims to catch (network ones: tests/integration)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip import CommandResult, load_service
from floatingip.cli import main
from floatingip.commands import ipv4_addresses_argv
from floatingip.errors import CommandNotFoundError
from floatingip.preflight import (
    Check,
    format_checks,
    run_checks,
)
from floatingip.testing import RecordingExecutor
from tests.conftest import SEED_MASTER_PROPERTIES, write_service


def verdicts(checks: list[Check]) -> dict[str, str]:
    return {check.what: check.verdict for check in checks}


def test_service_target_of_the_seed_and_of_ip(service_dir: Path) -> None:
    seed = load_service(write_service(service_dir, "m.properties", SEED_MASTER_PROPERTIES))
    target = seed.target
    assert (target.interface, target.label) == ("eth0", "eth0:0")
    assert target.address == ipaddress.IPv4Address("10.10.12.22") and target.prefixlen is None
    ip = load_service(
        write_service(
            service_dir,
            "ip.properties",
            "name=x\ncommand.start=ip addr add 192.0.2.22/24 dev eth1 label eth1:vip\n"
            "command.stop=ip addr del 192.0.2.22/24 dev eth1\n",
        )
    )
    target = ip.target
    assert (target.interface, target.label, target.prefixlen) == ("eth1", "eth1:vip", 24)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def test_database_only_on_one_address_fails_with_the_seed_fix(
    demo_home: Path, listener: socket.socket
) -> None:
    checks = run_checks(demo_home, "demo", db_port=listener.getsockname()[1])
    (database,) = [check for check in checks if check.what.startswith("the database")]
    assert database.failed and "only 127.0.0.1" in database.what
    assert "bind_address=0.0.0.0" in database.fix and "listen_addresses='*'" in database.fix


def test_nothing_listening_fails(demo_home: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    checks = run_checks(demo_home, "demo", db_port=free_port)
    assert any(check.failed and "nothing listens" in check.fix for check in checks)


def test_missing_program_fails_with_its_name(demo_home: Path, service_dir: Path) -> None:
    write_service(
        service_dir,
        "master.properties",
        "name=master\ncommand.start=/opt/nowhere/vipctl up 192.0.2.22\ncommand.stop=true\n",
    )
    checks = run_checks(demo_home, "demo")
    assert verdicts(checks)["master start: program '/opt/nowhere/vipctl' exists"] == "FAIL"


def test_broken_files_fail_and_are_explained(demo_home: Path, service_dir: Path) -> None:
    write_service(service_dir, "master.properties", "name=master\ncomand.start=x\n")
    checks = run_checks(demo_home, "demo")
    (files,) = [check for check in checks if check.what == "service files load"]
    assert files.failed and "did you mean 'command.start'?" in files.fix


def test_report_and_exit_status(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--cluster-home", str(demo_home), "--cluster", "demo"]) in (0, 1)
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("PASS  service files load: master")
    assert out.splitlines()[-1].startswith("checks: ")
    lines = format_checks([Check("FAIL", "x", "do this\nthen that"), Check("PASS", "y")])
    assert lines == [
        "FAIL  x",
        "      fix: do this",
        "           then that",
        "PASS  y",
        "checks: 1 ok, 1 failed",
    ]


def test_no_datasource_files_fails(demo_home: Path) -> None:
    datasource_dir = demo_home / "conf/cluster/demo/datasource"
    for path in datasource_dir.iterdir():
        path.unlink()
    checks = run_checks(demo_home, "demo")
    (files,) = [check for check in checks if check.what.startswith("datasource files")]
    assert files.failed
    assert files.what == f"datasource files: none in {datasource_dir}"
    assert "role=master" in files.fix
    datasource_dir.rmdir()
    checks = run_checks(demo_home, "demo")
    (files,) = [check for check in checks if check.what.startswith("datasource files")]
    assert files.failed and files.what == f"datasource files: none in {datasource_dir}"


def test_no_master_fails(demo_home: Path) -> None:
    write_service(
        demo_home / "conf/cluster/demo/datasource", "db1.properties", "name=db1\nrole=slave\n"
    )
    checks = run_checks(demo_home, "demo")
    (master,) = [check for check in checks if "master" in check.what and "datasource" in check.what]
    assert master.failed
    assert master.what == "one datasource is the master: none (db1 slave, db2 slave)"


def test_the_master_is_named(demo_home: Path) -> None:
    checks = run_checks(demo_home, "demo")
    assert verdicts(checks)["one datasource is the master: db1"] == "PASS"


def test_subnet_wording_on_loopback(cluster_home: Path, service_dir: Path) -> None:
    """lo exists everywhere with 127.0.0.1/8; nothing is changed, its addresses are only read."""
    inside = "name=inside\ncommand.start=sudo ip addr add 127.0.0.22/8 dev lo\ncommand.stop=true\n"
    outside = (
        "name=outside\ncommand.start=sudo ip addr add 192.0.2.22/24 dev lo\ncommand.stop=true\n"
    )
    write_service(service_dir, "inside.properties", inside)
    write_service(service_dir, "outside.properties", outside)
    found = verdicts(run_checks(cluster_home, "demo"))
    assert found["inside: VIP 127.0.0.22 is in the subnet of an address on lo (127.0.0.0/8)"] == (
        "PASS"
    )
    assert (
        found["outside: VIP 192.0.2.22 is not in the subnet of any address on lo (127.0.0.0/8)"]
        == "FAIL"
    )


ETH0_SHOWN = "2: eth0    inet 192.0.2.11/24 scope global eth0\n"


def test_the_checks_ask_the_host_through_the_executor(demo_home: Path) -> None:
    """A fake host where sudo refuses and eth0 is on 192.0.2.0/24: check says so, and runs
    nothing here."""

    def respond(argv: tuple[str, ...]) -> CommandResult:
        if argv[:3] == ("sudo", "-n", "-l"):
            return CommandResult(argv, 1, stderr="Sorry, user dba may not run sudo on db1.\n")
        if argv == ipv4_addresses_argv("eth0"):
            return CommandResult(
                argv, 0, stdout="2: eth0    inet 192.0.2.11/24 scope global eth0\n"
            )
        raise AssertionError(f"check ran {argv}")

    host = RecordingExecutor(respond)
    checks = run_checks(demo_home, "demo", executor=host)
    assert {call[:3] for call in host.calls} == {
        ("sudo", "-n", "-l"),
        ipv4_addresses_argv("eth0")[:3],
    }
    refused = [check for check in checks if check.failed and "without a password" in check.what]
    assert refused and all("may not run sudo on db1." in check.fix for check in refused)
    found = verdicts(checks)
    assert found["master: interface eth0 exists"] == "PASS"
    assert (
        found["master: VIP 192.0.2.22 is in the subnet of an address on eth0 (192.0.2.0/24)"]
        == "PASS"
    )


def test_a_missing_sudo_is_one_failure_with_the_package_to_install(demo_home: Path) -> None:
    def respond(argv: tuple[str, ...]) -> CommandResult:
        if argv[0] == "sudo":
            raise CommandNotFoundError("command not found: 'sudo'", argv=argv)
        return CommandResult(argv, 0)

    checks = run_checks(demo_home, "demo", executor=RecordingExecutor(respond))
    assert [check.fix for check in checks if check.what == "sudo is installed"] == [
        "apt-get install sudo (or yum install sudo)"
    ]
