"""floatingip check: each problem it claims to catch (network ones: tests/integration)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip import load_service
from floatingip.cli import main
from floatingip.preflight import (
    Check,
    format_checks,
    listening_addresses,
    run_checks,
)
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


def test_listening_addresses_reads_real_sockets(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    assert listening_addresses(port) == ["127.0.0.1"]
    with socket.create_server(("0.0.0.0", 0)) as anywhere:
        assert listening_addresses(anywhere.getsockname()[1]) == ["0.0.0.0"]
    with socket.create_server(("::", 0), family=socket.AF_INET6) as v6:
        assert listening_addresses(v6.getsockname()[1]) == ["::"]


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
