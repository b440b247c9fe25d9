"""floatingip.vip: the vip.* keys and the commands they stand for (running them: integration)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from floatingip import load_service
from floatingip.errors import ServiceDefinitionError
from floatingip.sudoers import sudo_commands, sudoers_lines
from floatingip.vip import VipSpec
from tests.conftest import write_service

VIP = "name=master\nvip.address=192.0.2.22/24\nvip.interface=eth0\nvip.label=eth0:0\n"


def spec(**fields: object) -> VipSpec:
    values: dict[str, object] = {
        "address": ipaddress.IPv4Interface("192.0.2.22/24"),
        "interface": "eth0",
    }
    values.update(fields)
    return VipSpec(**values)  # type: ignore[arg-type]


def test_vip_service_loads_with_defaults(service_dir: Path) -> None:
    service = load_service(write_service(service_dir, "m.properties", VIP))
    assert service.vip == spec(label="eth0:0")
    assert (service.vip.backend, service.vip.arp_count, service.vip.sudo) == ("ip", 3, "auto")
    assert service.commands["start"] == "ip addr add 192.0.2.22/24 dev eth0 label eth0:0"
    assert service.commands["stop"] == "ip addr del 192.0.2.22/24 dev eth0"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("vip.address=192.0.2.22/33", "is not an IPv4 or IPv6 address with a prefix length"),
        ("vip.address=192.0.2.22", "needs a prefix length, such as 192.0.2.22/24"),
        ("vip.address=192.0.2.0/24", "is the network's own or broadcast address"),
        ("vip.address=192.0.2.255/24", "is the network's own or broadcast address"),
        ("vip.address=127.0.0.2/8", "is not a unicast address a host can take"),
        ("vip.address=2001:db8::22", "needs a prefix length, such as 2001:db8::22/64"),
        ("vip.address=2001:db8::22/129", "is not an IPv6 address with a prefix length (0-128)"),
        ("vip.address=2001:db8::/64", "is the network's own (subnet-router anycast) address"),
        ("vip.address=fe80::22/64", "is link-local (fe80::/10)"),
        ("vip.address=ff02::22/64", "is not a unicast address a host can take"),
        ("vip.address=::1/128", "is not a unicast address a host can take"),
        ("vip.address=192.0.2.22/24,192.0.2.23/24", "one IPv4 and one IPv6 address"),
        ("vip.address=2001:db8::22/64, 2001:db8::23/64", "one IPv4 and one IPv6 address"),
        ("vip.address=192.0.2.22/24,", "vip.address '' needs a prefix length"),
        ("vip.na.count=21", "vip.na.count must be 0 to 20, not '21'"),
        ("vip.label=eth0:averyverylonglabel", "is longer than 15 characters"),
        ("vip.label=eth1:0", "must start with the interface name (eth0:...)"),
        ("vip.backend=nmcli", "vip.backend 'nmcli' is not one of: ip, ifconfig"),
        ("vip.arp.count=many", "vip.arp.count must be 0 to 20"),
        ("vip.sudo=yes", "vip.sudo 'yes' is not one of: auto, true, false"),
    ],
)
def test_bad_vip_keys_are_refused_with_their_line(
    service_dir: Path, line: str, message: str
) -> None:
    key = line.split("=", 1)[0]
    text = "\n".join(entry for entry in VIP.splitlines() if not entry.startswith(key + "=")) + "\n"
    path = write_service(service_dir, "m.properties", text + line + "\n")
    with pytest.raises(ServiceDefinitionError) as caught:
        load_service(path)
    (problem,) = [p for p in caught.value.problems if message in p.message]
    assert problem.line == len(text.splitlines()) + 1


def test_command_lines_take_only_vip_address_and_interface(service_dir: Path) -> None:
    path = write_service(
        service_dir,
        "m.properties",
        VIP + "command.start=ip addr add 192.0.2.22/24 dev eth0\ncommand.stop=true\n",
    )
    with pytest.raises(ServiceDefinitionError) as caught:
        load_service(path)
    (problem,) = caught.value.problems
    assert (
        problem.line == 4 and "vip.label cannot be combined with command.* lines" in problem.message
    )
    hinted = write_service(
        service_dir,
        "h.properties",
        "name=h\nvip.address=192.0.2.22/24\nvip.interface=bond0\n"
        "command.start=/usr/local/bin/vip-up\ncommand.stop=/usr/local/bin/vip-down\n",
    )
    target = load_service(hinted).target
    assert (str(target.address), target.prefixlen, target.interface) == ("192.0.2.22", 24, "bond0")


def test_missing_interface_key(service_dir: Path) -> None:
    path = write_service(service_dir, "m.properties", "name=m\nvip.address=192.0.2.22/24\n")
    with pytest.raises(ServiceDefinitionError, match=r"missing required key 'vip\.interface'"):
        load_service(path)


def test_commands_for_both_backends_and_sudo_modes() -> None:
    ip = spec(label="eth0:vip", sudo="false")
    assert ip.add_argv() == (
        "ip",
        "addr",
        "add",
        "192.0.2.22/24",
        "dev",
        "eth0",
        "label",
        "eth0:vip",
    )
    assert ip.del_argv() == ("ip", "addr", "del", "192.0.2.22/24", "dev", "eth0")
    assert ip.arping_argv(sudo=True) == ("arping", "-U", "-c", "3", "-I", "eth0", "192.0.2.22")
    ifconfig = spec(backend="ifconfig", sudo="true", arp_count=5)
    assert ifconfig.add_argv() == (
        "sudo", "-n", "/sbin/ifconfig", "eth0:0", "192.0.2.22", "netmask", "255.255.255.0", "up",
    )  # fmt: skip
    assert ifconfig.del_argv() == ("sudo", "-n", "/sbin/ifconfig", "eth0:0", "down")
    assert ifconfig.arping_argv()[:5] == ("sudo", "-n", "arping", "-U", "-c")
    assert spec().show_argv() == ("ip", "-o", "-4", "addr", "show", "dev", "eth0")


def test_held_matches_the_exact_address() -> None:
    vip = spec()
    other = "2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\n"
    assert not vip.held_in(other)
    assert not vip.held_in("2: eth0    inet 192.0.2.222/24 scope global secondary eth0:0")
    assert vip.held_in(other + "\n2: eth0    inet 192.0.2.22/24 scope global secondary eth0:0")
    assert vip.held_in("2: eth0    inet 192.0.2.22/32 scope global eth0")  # any prefix length


def test_sudoers_covers_the_vip_procedure(cluster_home: Path, service_dir: Path) -> None:
    from floatingip import load_services

    write_service(service_dir, "m.properties", VIP)
    lines = "\n".join(sudoers_lines(sudo_commands(load_services(cluster_home, "demo")), user="t"))
    assert "ip addr add 192.0.2.22/24 dev eth0 label eth0\\:0" in lines
    assert "ip addr del 192.0.2.22/24 dev eth0" in lines
    assert "arping -U -c 3 -I eth0 192.0.2.22" in lines
    assert "show" not in lines  # reading addresses needs no privilege
