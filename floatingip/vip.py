"""Built-in VIP services: ``vip.*`` keys instead of ``command.*`` lines.

::

    name=master
    vip.address=192.0.2.22/24
    vip.interface=eth0
    vip.label=eth0:0
    vip.backend=ip
    vip.arp.count=3

floatingip then adds and removes the address itself, the way keepalived and Pacemaker's IPaddr2
do: idempotently (start when present and stop when absent succeed), verified afterwards, and
announced with gratuitous ARP so that clients and switches learn the new MAC address at once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from floatingip import privilege
from floatingip.commands import ipv4_addresses, ipv4_addresses_argv
from floatingip.dad import probe_argv
from floatingip.errors import Problem
from floatingip.vocabulary import Backend, SudoMode

__all__ = ["VIP_KEYS", "VipSpec", "address_problem", "parse_vip"]

VIP_KEYS = (
    "vip.address",
    "vip.interface",
    "vip.label",
    "vip.backend",
    "vip.arp.count",
    "vip.sudo",
    "vip.dad.wait",
)
DEFAULT_DAD_WAIT = 0.2
MAX_DAD_WAIT = 5.0
BACKENDS = tuple(Backend)
SUDO_MODES = tuple(SudoMode)
MAX_ARP_COUNT = 20
IFNAMSIZ = 15  # Linux interface and label names: at most 15 bytes
_IFNAME = re.compile(r"[A-Za-z0-9_.@-]{1,15}")
_LABEL = re.compile(r"[A-Za-z0-9_.@:-]{1,15}")


@dataclass(frozen=True)
class VipSpec:
    """A virtual IPv4 address on an interface, and how to add, remove, check and announce it."""

    address: ipaddress.IPv4Interface
    interface: str
    label: str | None = None
    backend: Backend = Backend.IP
    arp_count: int = 3
    sudo: SudoMode = SudoMode.AUTO
    dad_wait: float = DEFAULT_DAD_WAIT

    def use_sudo(self) -> bool:
        """Whether the privileged commands go through ``sudo -n`` when run now."""
        if self.sudo == SudoMode.AUTO:  # unless root, or the capabilities are inherited
            return privilege.use_sudo()
        return self.sudo == SudoMode.TRUE

    def _privileged(self, argv: tuple[str, ...], sudo: bool | None) -> tuple[str, ...]:
        use = self.use_sudo() if sudo is None else (sudo and self.sudo != SudoMode.FALSE)
        return ("sudo", "-n", *argv) if use else argv

    def add_argv(self, sudo: bool | None = None) -> tuple[str, ...]:
        if self.backend == Backend.IFCONFIG:
            argv: tuple[str, ...] = (
                "/sbin/ifconfig",
                self.alias,
                str(self.address.ip),
                "netmask",
                str(self.address.netmask),
                "up",
            )
        else:
            argv = ("ip", "addr", "add", self.address.with_prefixlen, "dev", self.interface)
            if self.label is not None:
                argv += ("label", self.label)
        return self._privileged(argv, sudo)

    def del_argv(self, sudo: bool | None = None) -> tuple[str, ...]:
        if self.backend == Backend.IFCONFIG:
            argv: tuple[str, ...] = ("/sbin/ifconfig", self.alias, "down")
        else:
            argv = ("ip", "addr", "del", self.address.with_prefixlen, "dev", self.interface)
        return self._privileged(argv, sudo)

    def show_argv(self) -> tuple[str, ...]:
        """Lists the interface's IPv4 addresses; needs no privilege."""
        return ipv4_addresses_argv(self.interface)

    def arping_argv(self, sudo: bool | None = None) -> tuple[str, ...]:
        """Gratuitous ARP (unsolicited), so neighbours map the VIP to this host's MAC at once."""
        argv = (
            "arping",
            "-U",
            "-c",
            str(self.arp_count),
            "-I",
            self.interface,
            str(self.address.ip),
        )
        return self._privileged(argv, sudo)

    def dad_argv(self, sudo: bool | None = None) -> tuple[str, ...]:
        """Duplicate address detection: does another host answer for the VIP?"""
        argv = probe_argv(self.interface, str(self.address.ip), self.dad_wait, sudo=False)
        return self._privileged(argv, sudo)

    @property
    def alias(self) -> str:
        """The ifconfig alias (eth0:0): the label, or the interface's first alias."""
        return self.label if self.label is not None else f"{self.interface}:0"

    def held_in(self, show_output: str) -> bool:
        """Whether ``ip -o -4 addr show`` output lists exactly this address (192.0.2.2 is not
        192.0.2.22)."""
        return any(found.ip == self.address.ip for found in ipv4_addresses(show_output))


def address_problem(text: str) -> str | None:
    """Why ``text`` is not a VIP with a prefix length, or None."""
    if "/" not in text:
        return f"vip.address {text!r} needs a prefix length, such as {text}/24"
    try:
        address = ipaddress.IPv4Interface(text)
    except ValueError:
        return f"vip.address {text!r} is not an IPv4 address with a prefix length (0-32)"
    if address.ip.is_loopback or address.ip.is_multicast or address.ip.is_unspecified:
        return f"vip.address {text!r} is not a unicast address a host can take"
    network = address.network
    if network.prefixlen < 31 and address.ip in (
        network.network_address,
        network.broadcast_address,
    ):
        return f"vip.address {text!r} is the network's own or broadcast address"
    return None


def parse_vip(
    path: Path, values: Mapping[str, str], lines: Mapping[str, int]
) -> tuple[VipSpec | None, list[Problem]]:
    """Validate the ``vip.*`` keys of a service file; every problem, each with its line."""
    problems: list[Problem] = []

    def problem(key: str | None, message: str) -> None:
        problems.append(Problem(path, lines.get(key) if key else None, message))

    address_text = values.get("vip.address")
    interface = values.get("vip.interface")
    label = values.get("vip.label")
    backend = values.get("vip.backend", "ip")
    sudo = values.get("vip.sudo", "auto")
    if address_text is None:
        problem(None, "missing required key 'vip.address' (such as 192.0.2.22/24)")
    elif (why := address_problem(address_text.strip())) is not None:
        problem("vip.address", why)
    if interface is None:
        problem(None, "missing required key 'vip.interface' (such as eth0)")
    elif not _IFNAME.fullmatch(interface) or interface in (".", ".."):
        problem("vip.interface", f"vip.interface {interface!r} is not an interface name")
    if label is not None:
        if len(label) > IFNAMSIZ:
            problem("vip.label", f"vip.label {label!r} is longer than {IFNAMSIZ} characters")
        elif not _LABEL.fullmatch(label):
            problem("vip.label", f"vip.label {label!r} is not a valid label")
        if interface is not None and not (label == interface or label.startswith(interface + ":")):
            problem(
                "vip.label",
                f"vip.label {label!r} must start with the interface name ({interface}:...)",
            )
    if backend not in BACKENDS:
        problem("vip.backend", f"vip.backend {backend!r} is not one of: {', '.join(BACKENDS)}")
    if sudo not in SUDO_MODES:
        problem("vip.sudo", f"vip.sudo {sudo!r} is not one of: {', '.join(SUDO_MODES)}")
    arp_count = 3
    if "vip.arp.count" in values:
        text = values["vip.arp.count"]
        if not text.isdigit() or int(text) > MAX_ARP_COUNT:
            problem("vip.arp.count", f"vip.arp.count must be 0 to {MAX_ARP_COUNT}, not {text!r}")
        else:
            arp_count = int(text)
    dad_wait = DEFAULT_DAD_WAIT
    if "vip.dad.wait" in values:
        text = values["vip.dad.wait"]
        try:
            dad_wait = float(text)
        except ValueError:
            dad_wait = -1.0
        if not 0 <= dad_wait <= MAX_DAD_WAIT:
            problem(
                "vip.dad.wait", f"vip.dad.wait must be 0 to {MAX_DAD_WAIT:g} seconds, not {text!r}"
            )
    if problems or address_text is None or interface is None:
        return None, problems
    spec = VipSpec(
        address=ipaddress.IPv4Interface(address_text.strip()),
        interface=interface,
        label=label,
        backend=Backend(backend),
        arp_count=arp_count,
        sudo=SudoMode(sudo),
        dad_wait=dad_wait,
    )
    return spec, []
