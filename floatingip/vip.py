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

``vip.address`` may be IPv6 (``2001:db8::22/64``), or one IPv4 and one IPv6 address separated by
a comma: a dual-stack unit, added, removed, probed and reported together.  An IPv6 address is
added with ``nodad`` (it answers at once; our own probe ran before) and announced with unsolicited
neighbour advertisements (floatingip/dad.py ``--advertise``), ``vip.na.count`` of them.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from floatingip import privilege
from floatingip.dad import advertise_argv, probe_argv
from floatingip.errors import Problem
from floatingip.vocabulary import Backend, SudoMode

__all__ = [
    "VIP_KEYS",
    "Address",
    "VipSpec",
    "address_problem",
    "addresses_in",
    "parse_count",
    "parse_vip",
]

Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface

VIP_KEYS = (
    "vip.address",
    "vip.interface",
    "vip.label",
    "vip.backend",
    "vip.arp.count",
    "vip.na.count",
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
    """A virtual address (IPv4, IPv6, or one of each: ``second``) on an interface, and how to
    add, remove, check and announce it."""

    address: Address
    interface: str
    label: str | None = None
    backend: Backend = Backend.IP
    arp_count: int = 3
    sudo: SudoMode = SudoMode.AUTO
    dad_wait: float = DEFAULT_DAD_WAIT
    second: Address | None = None  # dual-stack: the other family's address
    na_count: int = 3

    @property
    def addresses(self) -> tuple[Address, ...]:
        return (self.address,) if self.second is None else (self.address, self.second)

    @property
    def spelled(self) -> str:
        """The addresses as the service file gives them (for messages)."""
        return ", ".join(address.with_prefixlen for address in self.addresses)

    def __str__(self) -> str:
        return f"{self.spelled} on {self.interface}"

    def add_argvs(self, sudo: bool | None = None) -> tuple[tuple[str, ...], ...]:
        """:meth:`add_argv` of each address (two for a dual-stack VIP)."""
        return tuple(self.add_argv(sudo, address) for address in self.addresses)

    def del_argvs(self, sudo: bool | None = None) -> tuple[tuple[str, ...], ...]:
        return tuple(self.del_argv(sudo, address) for address in self.addresses)

    def on_host(self, sudo: bool | None) -> VipSpec:
        """This VIP as run where ``vip.sudo=auto`` means ``sudo`` (None: this process decides,
        floatingip.privilege); ``vip.sudo=true`` or ``false`` stays as it is."""
        if sudo is None or self.sudo != SudoMode.AUTO:
            return self
        return _fixed(self, SudoMode.TRUE if sudo else SudoMode.FALSE)

    def use_sudo(self) -> bool:
        """Whether the privileged commands go through ``sudo -n`` when run now."""
        if self.sudo == SudoMode.AUTO:  # unless root, or the capabilities are inherited
            return privilege.use_sudo()
        return self.sudo == SudoMode.TRUE

    def _privileged(self, argv: tuple[str, ...], sudo: bool | None) -> tuple[str, ...]:
        use = self.use_sudo() if sudo is None else (sudo and self.sudo != SudoMode.FALSE)
        return ("sudo", "-n", *argv) if use else argv

    def add_argv(self, sudo: bool | None = None, address: Address | None = None) -> tuple[str, ...]:
        """Adds ``address`` (default: the first); an IPv6 one with ``nodad``, so that it answers
        at once instead of staying "tentative" for the kernel's second of DAD."""
        address = self.address if address is None else address
        if address.version == 6:
            argv: tuple[str, ...] = ("ip", "-6", "addr", "add", address.with_prefixlen)
            return self._privileged((*argv, "dev", self.interface, "nodad"), sudo)
        if self.backend == Backend.IFCONFIG:
            argv = (
                "/sbin/ifconfig",
                self.alias,
                str(address.ip),
                "netmask",
                str(address.netmask),
                "up",
            )
        else:
            argv = ("ip", "addr", "add", address.with_prefixlen, "dev", self.interface)
            if self.label is not None:
                argv += ("label", self.label)
        return self._privileged(argv, sudo)

    def del_argv(self, sudo: bool | None = None, address: Address | None = None) -> tuple[str, ...]:
        address = self.address if address is None else address
        if address.version == 6:
            argv: tuple[str, ...] = ("ip", "-6", "addr", "del", address.with_prefixlen)
            return self._privileged((*argv, "dev", self.interface), sudo)
        if self.backend == Backend.IFCONFIG:
            argv = ("/sbin/ifconfig", self.alias, "down")
        else:
            argv = ("ip", "addr", "del", address.with_prefixlen, "dev", self.interface)
        return self._privileged(argv, sudo)

    def show_argv(self) -> tuple[str, ...]:
        """Lists the interface's addresses of the VIP's families; needs no privilege."""
        return addresses_argv(self.interface, {address.version for address in self.addresses})

    def arping_argv(self, sudo: bool | None = None) -> tuple[str, ...]:
        """Gratuitous ARP (unsolicited), so neighbours map the VIP to this host's MAC at once."""
        ipv4 = next(address for address in self.addresses if address.version == 4)
        argv = ("arping", "-U", "-c", str(self.arp_count), "-I", self.interface, str(ipv4.ip))
        return self._privileged(argv, sudo)

    def advertise_argv(self, sudo: bool | None = None) -> tuple[str, ...]:
        """Unsolicited neighbour advertisements (override flag, to all nodes) for the IPv6 VIP:
        the IPv6 twin of gratuitous ARP."""
        ipv6 = next(address for address in self.addresses if address.version == 6)
        argv = advertise_argv(self.interface, str(ipv6.ip), self.na_count, sudo=False)
        return self._privileged(argv, sudo)

    def announce_argvs(self, sudo: bool | None = None) -> tuple[tuple[str, ...], ...]:
        """The announcements after a start: gratuitous ARP for IPv4, advertisements for IPv6."""
        argvs = []
        for address in self.addresses:
            if address.version == 4 and self.arp_count:
                argvs.append(self.arping_argv(sudo))
            elif address.version == 6 and self.na_count:
                argvs.append(self.advertise_argv(sudo))
        return tuple(argvs)

    def dad_argv(self, sudo: bool | None = None) -> tuple[str, ...]:
        """Duplicate address detection: does another host answer for the VIP (any of them)?"""
        texts = tuple(str(address.ip) for address in self.addresses)
        argv = probe_argv(self.interface, texts, self.dad_wait, sudo=False)
        return self._privileged(argv, sudo)

    @property
    def alias(self) -> str:
        """The ifconfig alias (eth0:0): the label, or the interface's first alias."""
        return self.label if self.label is not None else f"{self.interface}:0"

    def found_in(self, show_output: str) -> tuple[Address, ...]:
        """Which of the VIP's addresses :meth:`show_argv`'s output lists (in any state),
        compared as addresses: 192.0.2.2 is not 192.0.2.22, 2001:db8::0:22 is 2001:db8::22."""
        listed = {found.ip for found, _ in addresses_in(show_output)}
        return tuple(address for address in self.addresses if address.ip in listed)

    def held_in(self, show_output: str) -> bool:
        """Whether the output lists every address of the VIP, each usable: an IPv6 address
        still "tentative" (kernel DAD running) or "dadfailed" does not answer, so is not held."""
        usable = {found.ip for found, up in addresses_in(show_output) if up}
        return all(address.ip in usable for address in self.addresses)


@functools.lru_cache(maxsize=64)
def _fixed(vip: VipSpec, sudo: SudoMode) -> VipSpec:
    # cached: every action through an ssh executor asks for it
    return dataclasses.replace(vip, sudo=sudo)


_NOT_UP = ("tentative", "dadfailed")


def addresses_argv(
    interface: str, versions: set[int] | frozenset[int] = frozenset({4})
) -> tuple[str, ...]:
    """Lists the addresses of ``interface`` (of the families in ``versions``), one a line."""
    family = ("-4",) if versions == {4} else ("-6",) if versions == {6} else ()
    return ("ip", "-o", *family, "addr", "show", "dev", interface)


def addresses_in(show_output: str) -> list[tuple[Address, bool]]:
    """Each address in ``ip -o addr show`` output, and whether it is up (not tentative or
    dadfailed)."""
    found: list[tuple[Address, bool]] = []
    for line in show_output.splitlines():
        fields = line.split()
        for family in ("inet", "inet6"):
            if family in fields[:-1]:
                try:
                    address = ipaddress.ip_interface(fields[fields.index(family) + 1])
                except ValueError:
                    continue
                found.append((address, not any(flag in fields for flag in _NOT_UP)))
    return found


def address_problem(text: str, *, ipv6: bool = True) -> str | None:
    """Why ``text`` is not one VIP with a prefix length, or None (``ipv6``: may it be IPv6)."""
    if "/" not in text:
        example = "64" if ":" in text else "24"
        return f"vip.address {text!r} needs a prefix length, such as {text}/{example}"
    if ":" in text and ipv6:
        try:
            address6 = ipaddress.IPv6Interface(text)
        except ValueError:
            return f"vip.address {text!r} is not an IPv6 address with a prefix length (0-128)"
        ip = address6.ip
        if ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.ipv4_mapped:
            return f"vip.address {text!r} is not a unicast address a host can take"
        if ip.is_link_local:
            return f"vip.address {text!r} is link-local (fe80::/10): a VIP needs a routable one"
        if address6.network.prefixlen < 127 and ip == address6.network.network_address:
            return f"vip.address {text!r} is the network's own (subnet-router anycast) address"
        return None
    try:
        address = ipaddress.IPv4Interface(text)
    except ValueError:
        if not ipv6 and ":" in text:
            return (
                f"vip.address {text!r} is not an IPv4 address with a prefix length (next to "
                "command.* lines; an IPv6 VIP needs the built-in vip.* service)"
            )
        family = "an IPv4 or IPv6" if ipv6 else "an IPv4"
        return f"vip.address {text!r} is not {family} address with a prefix length"
    if address.ip.is_loopback or address.ip.is_multicast or address.ip.is_unspecified:
        return f"vip.address {text!r} is not a unicast address a host can take"
    network = address.network
    if network.prefixlen < 31 and address.ip in (
        network.network_address,
        network.broadcast_address,
    ):
        return f"vip.address {text!r} is the network's own or broadcast address"
    return None


def parse_addresses(text: str) -> tuple[tuple[Address, ...], list[str]]:
    """``vip.address``: one address, or one IPv4 and one IPv6 separated by a comma."""
    words = [word.strip() for word in text.split(",")]
    problems = [why for word in words if (why := address_problem(word)) is not None]
    if problems:
        return (), problems
    addresses = tuple(ipaddress.ip_interface(word) for word in words)
    if len(addresses) > 2 or len({address.version for address in addresses}) != len(addresses):
        return (), [
            f"vip.address {text!r}: give one address, or one IPv4 and one IPv6 address "
            "separated by a comma (a dual-stack VIP)"
        ]
    return addresses, []


def parse_count(values: Mapping[str, str], key: str, problem: Callable[[str, str], None]) -> int:
    """A packet count key (vip.arp.count, vip.na.count): 0 to MAX_ARP_COUNT, default 3."""
    text = values.get(key, "3")
    if not text.isdigit() or int(text) > MAX_ARP_COUNT:
        problem(key, f"{key} must be 0 to {MAX_ARP_COUNT}, not {text!r}")
        return 3
    return int(text)


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
    addresses: tuple[Address, ...] = ()
    if address_text is None:
        problem(None, "missing required key 'vip.address' (such as 192.0.2.22/24)")
    else:
        addresses, whys = parse_addresses(address_text)
        for why in whys:
            problem("vip.address", why)
    if interface is None:
        problem(None, "missing required key 'vip.interface' (such as eth0)")
    elif not _IFNAME.fullmatch(interface) or interface in (".", ".."):
        problem("vip.interface", f"vip.interface {interface!r} is not an interface name")
    if label is not None and addresses and all(address.version == 6 for address in addresses):
        problem("vip.label", "vip.label names an IPv4 alias: an IPv6 vip.address has none")
    elif label is not None:
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
    elif backend == Backend.IFCONFIG and any(address.version == 6 for address in addresses):
        # ifconfig's aliases (eth0:0) carry IPv4 only: `ifconfig eth0:0 down` leaves IPv6 up
        problem(
            "vip.backend",
            "vip.backend=ifconfig handles IPv4 only; an IPv6 vip.address needs vip.backend=ip",
        )
    if sudo not in SUDO_MODES:
        problem("vip.sudo", f"vip.sudo {sudo!r} is not one of: {', '.join(SUDO_MODES)}")
    arp_count = parse_count(values, "vip.arp.count", problem)
    na_count = parse_count(values, "vip.na.count", problem)
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
    if problems or not addresses or interface is None:
        return None, problems
    addresses = tuple(sorted(addresses, key=lambda address: address.version))  # IPv4 first
    spec = VipSpec(
        address=addresses[0],
        second=addresses[1] if len(addresses) > 1 else None,
        na_count=na_count,
        interface=interface,
        label=label,
        backend=Backend(backend),
        arp_count=arp_count,
        sudo=SudoMode(sudo),
        dad_wait=dad_wait,
    )
    return spec, []
