"""IPv6 and dual-stack VIPs: the keys, the commands they stand for, status exactness, the probe
and advertisement frames (sending them: tests/integration/test_ipv6_network.py)."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest

from floatingip import load_service, load_services
from floatingip.dad import PROBE_SCRIPT, _checksum, _ns_plan
from floatingip.errors import ServiceDefinitionError
from floatingip.sudoers import sudo_commands, sudoers_lines
from tests.conftest import write_service

DUAL = (
    "name=master\nvip.address=2001:db8::22/64, 192.0.2.22/24\nvip.interface=eth0\n"
    "vip.label=eth0:0\nvip.sudo=true\n"
)
V6 = "name=master\nvip.address=2001:db8::22/64\nvip.interface=eth0\nvip.sudo=true\n"


def shown(*lines: str) -> str:
    return "".join(
        f"2: eth0    {line} \\       valid_lft forever preferred_lft forever\n" for line in lines
    )


def test_a_dual_stack_service_is_one_unit_ipv4_first(service_dir: Path) -> None:
    vip = load_service(write_service(service_dir, "m.properties", DUAL)).vip
    assert vip is not None
    assert vip.spelled == "192.0.2.22/24, 2001:db8::22/64"  # IPv4 first, whatever the order
    assert [vip.add_argv(address=a) for a in vip.addresses] == [
        ("sudo", "-n", "ip", "addr", "add", "192.0.2.22/24", "dev", "eth0", "label", "eth0:0"),
        ("sudo", "-n", "ip", "-6", "addr", "add", "2001:db8::22/64", "dev", "eth0", "nodad"),
    ]
    assert vip.del_argv(address=vip.addresses[1]) == (
        "sudo", "-n", "ip", "-6", "addr", "del", "2001:db8::22/64", "dev", "eth0",
    )  # fmt: skip
    assert vip.show_argv() == ("ip", "-o", "addr", "show", "dev", "eth0")  # both families
    assert [argv[2] if argv[2] == "arping" else argv[-4:] for argv in vip.announce_argvs()] == [
        "arping",
        ("eth0", "--advertise", "3", "2001:db8::22"),
    ]
    assert vip.dad_argv()[-4:] == ("--wait", "0.2", "192.0.2.22", "2001:db8::22")


def test_ipv6_show_and_announcement_counts(service_dir: Path) -> None:
    text = V6 + "vip.na.count=5\nvip.arp.count=0\n"
    vip = load_service(write_service(service_dir, "m.properties", text)).vip
    assert vip is not None
    assert vip.show_argv() == ("ip", "-o", "-6", "addr", "show", "dev", "eth0")
    (advertise,) = vip.announce_argvs()  # vip.arp.count is for IPv4 only
    assert advertise[-5:] == ("--interface", "eth0", "--advertise", "5", "2001:db8::22")
    silent = load_service(write_service(service_dir, "s.properties", V6 + "vip.na.count=0\n")).vip
    assert silent is not None and silent.announce_argvs() == ()


def test_status_compares_parsed_addresses() -> None:
    from floatingip.vip import VipSpec

    vip = VipSpec(address=ipaddress.IPv6Interface("2001:db8::22/64"), interface="eth0")
    assert not vip.held_in(shown("inet6 2001:db8::2/64 scope global"))
    assert not vip.held_in(shown("inet6 2001:db8::222/64 scope global"))
    assert not vip.held_in(shown("inet6 2001:db8::22:0/64 scope global"))
    assert vip.held_in(shown("inet6 2001:db8:0:0:0:0:0:22/64 scope global nodad"))
    assert vip.held_in(shown("inet6 2001:0db8::0022/128 scope global"))  # any prefix length
    spelled = VipSpec(address=ipaddress.IPv6Interface("2001:0DB8:0000::0022/64"), interface="eth0")
    assert spelled.held_in(shown("inet6 2001:db8::22/64 scope global"))


def test_tentative_or_dadfailed_is_not_held_but_is_there() -> None:
    from floatingip.vip import VipSpec

    vip = VipSpec(address=ipaddress.IPv6Interface("2001:db8::22/64"), interface="eth0")
    for flag in ("tentative", "dadfailed tentative"):
        output = shown(f"inet6 2001:db8::22/64 scope global {flag}")
        assert not vip.held_in(output)
        assert vip.found_in(output) == vip.addresses


def test_dual_stack_is_held_only_with_both() -> None:
    from floatingip.vip import VipSpec

    vip = VipSpec(
        address=ipaddress.IPv4Interface("192.0.2.22/24"),
        second=ipaddress.IPv6Interface("2001:db8::22/64"),
        interface="eth0",
    )
    ipv4 = "inet 192.0.2.22/24 scope global secondary eth0:0"
    ipv6 = "inet6 2001:db8::22/64 scope global nodad"
    assert vip.held_in(shown(ipv4, ipv6))
    assert not vip.held_in(shown(ipv4)) and vip.found_in(shown(ipv4)) == vip.addresses[:1]
    assert not vip.held_in(shown(ipv6)) and vip.found_in(shown(ipv6)) == vip.addresses[1:]


@pytest.mark.parametrize(
    ("lines", "key", "message"),
    [
        (V6 + "vip.backend=ifconfig\n", "vip.backend", "vip.backend=ifconfig handles IPv4 only"),
        (V6 + "vip.label=eth0:0\n", "vip.label", "vip.label names an IPv4 alias"),
        (
            "name=m\nvip.address=2001:db8::22/64\nvip.interface=eth0\n"
            "command.start=/usr/local/bin/up\ncommand.stop=/usr/local/bin/down\n",
            "vip.address",
            "an IPv6 VIP needs the built-in vip.* service",
        ),
    ],
)
def test_bad_ipv6_combinations_name_the_file_and_line(
    service_dir: Path, lines: str, key: str, message: str
) -> None:
    path = write_service(service_dir, "m.properties", lines)
    with pytest.raises(ServiceDefinitionError) as caught:
        load_service(path)
    (problem,) = [p for p in caught.value.problems if message in p.message]
    line = next(n for n, text in enumerate(lines.splitlines(), 1) if text.startswith(key + "="))
    assert (problem.path, problem.line) == (path, line)
    assert f"{path}:{line}" in str(caught.value)


def test_sudoers_allows_exactly_the_ipv6_commands(cluster_home: Path, service_dir: Path) -> None:
    write_service(service_dir, "m.properties", DUAL)
    lines = "\n".join(sudoers_lines(sudo_commands(load_services(cluster_home, "demo")), user="t"))
    assert "ip -6 addr add 2001\\:db8\\:\\:22/64 dev eth0 nodad" in lines
    assert "ip -6 addr del 2001\\:db8\\:\\:22/64 dev eth0" in lines
    assert "ip addr add 192.0.2.22/24 dev eth0 label eth0\\:0" in lines
    assert "arping -U -c 3 -I eth0 192.0.2.22" in lines
    assert f"{PROBE_SCRIPT} --interface eth0 --advertise 3 2001\\:db8\\:\\:22" in lines
    probe = f"{PROBE_SCRIPT} --interface eth0 --wait 0.2 192.0.2.22 2001\\:db8\\:\\:22"
    assert probe in lines


def test_the_probe_is_the_kernel_s_dad_probe_and_an_advertisement_claims() -> None:
    mac, other = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    target = ipaddress.IPv6Address("2001:db8::22").packed
    _, frame, claimant = _ns_plan(mac, target)
    assert frame[:6] == bytes.fromhex("3333ff000022")  # the solicited-node group's MAC
    assert frame[22:38] == bytes(16)  # from ::
    assert frame[38:54] == ipaddress.IPv6Address("ff02::1:ff00:22").packed
    assert frame[21] == 255 and frame[54] == 135  # hop limit, neighbour solicitation
    assert _checksum(frame[22:38], frame[38:54], frame[54:]) == 0  # a valid checksum
    assert claimant(frame) is None  # our own probe

    def advertisement(sender: bytes, about: bytes) -> bytes:
        message = struct.pack("!BBHI", 136, 0, 0, 0x60000000) + about
        ip = struct.pack("!IHBB", 6 << 28, len(message), 58, 255)
        ip += ipaddress.IPv6Address("fe80::2").packed + ipaddress.IPv6Address("ff02::1").packed
        return b"\x33\x33\x00\x00\x00\x01" + sender + b"\x86\xdd" + ip + message

    assert claimant(advertisement(other, target)) == other
    assert claimant(advertisement(other, ipaddress.IPv6Address("2001:db8::2").packed)) is None
    assert claimant(advertisement(mac, target)) is None
    someone_else_probing = frame[:6] + other + frame[12:]
    assert claimant(someone_else_probing) is None  # from ::: not a holder
