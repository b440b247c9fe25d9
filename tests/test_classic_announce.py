"""A classic command.* service's gratuitous ARP after start: which address, which key turns it
off, what `floatingip check` says (the network run: tests/integration/test_classic_arp.py)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from floatingip import CommandResult, Manager, checks, load_service, privilege
from floatingip.actions import perform
from floatingip.cli import main
from floatingip.errors import ServiceDefinitionError
from floatingip.preflight import Check, run_checks
from floatingip.sudoers import sudo_commands, sudoers_lines
from floatingip.testing import RecordingExecutor
from tests.conftest import PATIENCE, SEED_MASTER_PROPERTIES, write_service

SUDO = "sudo -n " if os.geteuid() != 0 else ""  # arping needs a raw socket: root, or sudo
ARPING = ("arping", "-U", "-c", "3", "-I", "eth0")


def as_run(*argv: str) -> tuple[str, ...]:
    """``argv`` as this process runs it: through ``sudo -n`` unless root (or capabilities)."""
    return ("sudo", "-n", *argv) if privilege.use_sudo() else argv


SEED_WITH_NETMASK = (
    "name=master\n"
    "command.start=sudo /sbin/ifconfig eth0:0 10.10.12.22 netmask 255.255.255.0 up\n"
    "command.stop=sudo /sbin/ifconfig eth0:0 down\n"
    "command.status=sudo /sbin/ifconfig eth0:0\n"
)


def classic(service_dir: Path, start: str, extra: str = "") -> str:
    text = f"name=master\ncommand.start={start}\ncommand.stop=/usr/local/bin/vip-down\n{extra}"
    write_service(service_dir, "master.properties", text)
    return text


def announcement_check(checks: list[Check]) -> Check:
    (found,) = [check for check in checks if check.what.startswith("master: after each start")]
    return found


def test_the_seed_service_announces_its_address(service_dir: Path) -> None:
    service = load_service(write_service(service_dir, "m.properties", SEED_MASTER_PROPERTIES))
    assert service.announcement.argv(sudo=False) == (*ARPING, "10.10.12.22")
    assert service.announcement.argv(sudo=True) == ("sudo", "-n", *ARPING, "10.10.12.22")


def test_a_netmask_is_not_a_second_address(service_dir: Path) -> None:
    # the seed's form with a netmask: the VIP is 10.10.12.22, the mask gives its prefix
    service = load_service(write_service(service_dir, "m.properties", SEED_WITH_NETMASK))
    assert service.target.address == ipaddress.IPv4Address("10.10.12.22")
    assert service.target.prefixlen == 24 and service.reports_held
    assert service.announcement.argv(sudo=False) == (*ARPING, "10.10.12.22")


def test_a_start_announces_through_its_executor_and_a_failed_one_does_not(
    service_dir: Path,
) -> None:
    service = load_service(write_service(service_dir, "m.properties", SEED_WITH_NETMASK))
    started = perform(service, "start", RecordingExecutor())
    assert started.ok and started.announce == (as_run(*ARPING, "10.10.12.22"),)
    for action in ("stop", "status"):
        assert perform(service, action, RecordingExecutor()).announce is None
    failed = perform(service, "start", RecordingExecutor(_exit_1))
    assert not failed.ok and failed.announce is None


def _exit_1(argv: tuple[str, ...]) -> CommandResult:
    return CommandResult(argv, 1, stderr="SIOCSIFADDR: Permission denied\n")


def test_vip_arp_count_sets_the_count_and_0_turns_it_off(service_dir: Path) -> None:
    classic(service_dir, "/sbin/ifconfig eth0:0 192.0.2.22", "vip.arp.count=1\n")
    service = load_service(service_dir / "master.properties")
    assert service.announcement.argv(sudo=False) == (*ARPING[:3], "1", "-I", "eth0", "192.0.2.22")
    classic(service_dir, "/sbin/ifconfig eth0:0 192.0.2.22", "vip.arp.count=0\n")
    service = load_service(service_dir / "master.properties")
    assert service.announcement.argv(sudo=False) is None and service.announcement.off
    assert perform(service, "start", RecordingExecutor()).announce is None


@pytest.mark.parametrize("count", ["-1", "21", "three", ""])
def test_a_bad_vip_arp_count_is_refused_with_its_line(service_dir: Path, count: str) -> None:
    classic(service_dir, "/sbin/ifconfig eth0:0 192.0.2.22", f"vip.arp.count={count}\n")
    with pytest.raises(ServiceDefinitionError) as caught:
        load_service(service_dir / "master.properties")
    (problem,) = caught.value.problems
    assert problem.line == 4 and f"vip.arp.count must be 0 to 20, not {count!r}" in problem.message


def test_other_vip_keys_are_still_refused_next_to_commands(service_dir: Path) -> None:
    classic(service_dir, "/sbin/ifconfig eth0:0 192.0.2.22", "vip.na.count=1\n")
    with pytest.raises(ServiceDefinitionError) as caught:
        load_service(service_dir / "master.properties")
    assert "vip.na.count cannot be combined with command.* lines" in str(caught.value)


def test_the_sudoers_lines_allow_the_arping(service_dir: Path) -> None:
    classic(service_dir, "sudo /sbin/ifconfig eth0:0 192.0.2.22")
    services = {"master": load_service(service_dir / "master.properties")}
    lines = "\n".join(sudoers_lines(sudo_commands(services), user="tungsten"))
    assert "arping -U -c 3 -I eth0 192.0.2.22" in lines
    classic(service_dir, "sudo /sbin/ifconfig eth0:0 192.0.2.22", "vip.arp.count=0\n")
    services = {"master": load_service(service_dir / "master.properties")}
    assert "arping" not in "\n".join(sudoers_lines(sudo_commands(services), user="tungsten"))


CHECKS = [
    (
        "sudo /sbin/ifconfig eth0:0 192.0.2.22 netmask 255.255.255.0",
        "",
        "PASS",
        "master: after each start, gratuitous ARP: {sudo}arping -U -c 3 -I eth0 192.0.2.22",
    ),
    (
        "sudo /sbin/ifconfig eth0:0 192.0.2.22",
        "vip.arp.count=0\n",
        "PASS",
        "master: after each start, no gratuitous ARP: turned off (vip.arp.count=0 at {path}:4)",
    ),
    (
        "/usr/local/bin/vip-up",
        "",
        "WARN",
        "master: after each start, no gratuitous ARP: command.start names no IPv4 address",
    ),
    (
        "/usr/local/bin/vip-up 192.0.2.22 192.0.2.23",
        "",
        "WARN",
        "master: after each start, no gratuitous ARP: command.start names more than one IPv4 "
        "address (192.0.2.22, 192.0.2.23)",
    ),
    (
        "/usr/local/bin/vip-up 192.0.2.22 192.0.2.23",
        "vip.address=192.0.2.23/24\nvip.interface=eth1\n",
        "PASS",
        "master: after each start, gratuitous ARP: {sudo}arping -U -c 3 -I eth1 192.0.2.23",
    ),
    (
        "/usr/local/bin/vip-up 192.0.2.22",
        "",
        "WARN",
        "master: after each start, no gratuitous ARP: no interface for 192.0.2.22: "
        "command.start names none",
    ),
    (
        "sudo ip -6 addr add 2001:db8::22/64 dev eth0",
        "",
        "WARN",
        "master: after each start, no gratuitous ARP: command.start gives an IPv6 address "
        "(2001:db8::22), which a classic service does not announce",
    ),
]


@pytest.mark.parametrize(("start", "extra", "verdict", "what"), CHECKS)
def test_check_says_which_announcement_is_sent_or_why_none(
    demo_home: Path, service_dir: Path, start: str, extra: str, verdict: str, what: str
) -> None:
    classic(service_dir, start, extra)
    check = announcement_check(run_checks(demo_home, "demo", executor=RecordingExecutor()))
    assert (check.verdict, check.what) == (
        verdict,
        what.format(path=service_dir / "master.properties", sudo=SUDO),
    )
    if verdict == "WARN":  # the fix names what to add, and the way to silence it
        assert "ARP cache entry expires" in check.fix and "vip.arp.count=0" in check.fix


def test_check_says_what_a_vip_service_announces(demo_home: Path, service_dir: Path) -> None:
    write_service(
        service_dir,
        "master.properties",
        "name=master\nvip.address=192.0.2.22/24, 2001:db8::22/64\nvip.interface=eth0\n"
        "vip.na.count=1\n",
    )
    check = announcement_check(run_checks(demo_home, "demo", executor=RecordingExecutor()))
    assert check.verdict == "PASS" and f"{SUDO}arping -U -c 3 -I eth0 192.0.2.22; " in check.what
    assert "--advertise" in check.what


def test_the_manager_announces_a_classic_start_through_the_start_executor(
    demo_home: Path, service_dir: Path
) -> None:
    classic(service_dir, "sudo /sbin/ifconfig eth0:0 192.0.2.22", "vip.arp.count=1\n")
    db1 = RecordingExecutor()
    with Manager.from_cluster_home(demo_home, "demo", executors={"db1": db1}) as manager:
        assert manager.update_datasource("db1", state="ONLINE").ok
        assert manager.wait_for_announcements(timeout=PATIENCE)
        (sent,) = [event.message for event in manager.history if event.kind == "announce"]
    arping = as_run("arping", "-U", "-c", "1", "-I", "eth0", "192.0.2.22")
    assert sent == f"master on db1: gratuitous ARP sent ({' '.join(arping)})"
    assert arping in db1.calls


def test_a_missing_arping_is_named_with_its_package_and_the_key(
    demo_home: Path, service_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    classic(service_dir, "/sbin/ifconfig eth0:0 192.0.2.22")
    found = checks.resolve_program
    monkeypatch.setattr(checks, "resolve_program", lambda p: None if p == "arping" else found(p))
    checked = {check.what: check for check in run_checks(demo_home, "demo")}
    arping = checked["master start: program 'arping' exists"]
    assert arping.failed
    assert arping.fix == "install iputils-arping (RHEL: iputils), or set vip.arp.count=0"


def test_floatingip_services_shows_the_arping_after_start(
    cluster_home: Path, service_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    classic(service_dir, "sudo /sbin/ifconfig eth0:0 192.0.2.22")
    assert main(["services", "--cluster-home", str(cluster_home), "--cluster", "demo"]) == 0
    shown = capsys.readouterr().out
    assert f"  after each start, gratuitous ARP: {SUDO}arping -U -c 3 -I eth0 192.0.2.22\n" in shown
    classic(service_dir, "/usr/local/bin/vip-up")
    assert main(["services", "--cluster-home", str(cluster_home), "--cluster", "demo"]) == 0
    shown = capsys.readouterr().out
    assert "after each start, gratuitous ARP: none, command.start names no IPv4 address" in shown
