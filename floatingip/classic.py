"""Classic ``command.*`` services: what their start command says about the VIP, and the
gratuitous ARP sent after each successful start.

A classic service's commands are the operator's, but its VIP is usually readable from them
(``ifconfig eth0:0 10.10.12.22 netmask 255.255.255.0``, ``ip addr add 192.0.2.22/24 dev eth0``),
or named by ``vip.address`` and ``vip.interface`` next to them.  When it is known, every
successful start is followed by ``arping -U -c N -I IFACE ADDRESS``, as for a built-in VIP
service, unless ``vip.arp.count=0``: without it clients keep sending to the old host's MAC
until their ARP cache entry expires (about 50 s measured).  IPv6 addresses in a classic command
are not announced (the built-in ``vip.*`` service sends neighbour advertisements for those).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from floatingip.commands import split_sudo
from floatingip.errors import Problem
from floatingip.vip import address_problem, parse_count

__all__ = [
    "CLASSIC_VIP_KEYS",
    "DEFAULT_ARP_COUNT",
    "ArpAnnouncement",
    "StartCommand",
    "announcement",
    "classic_keys",
    "parse_start",
]

# the vip.* keys that may accompany command.* lines (other vip.* keys describe a built-in service)
CLASSIC_VIP_KEYS = ("vip.address", "vip.interface", "vip.arp.count")
DEFAULT_ARP_COUNT = 3

IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d{1,2}))?(?![\d.])")
# words whose next argument is an address that is not the VIP (a mask, a broadcast, a peer)
_NOT_THE_VIP = frozenset(("netmask", "broadcast", "brd", "peer", "pointopoint", "dstaddr"))


@dataclass(frozen=True)
class StartCommand:
    """What a classic start command names: the interface label (``eth0:0``), the IPv4 addresses
    (with a prefix length when one is given: ``/24`` or ``netmask``), and IPv6 ones."""

    label: str | None
    ipv4: tuple[tuple[ipaddress.IPv4Address, int | None], ...]
    ipv6: tuple[str, ...]


def parse_start(argv: Sequence[str]) -> StartCommand:
    """Read the interface and the addresses out of a start command (ifconfig, ip addr add, or a
    script given the address)."""
    split = split_sudo(argv)
    words = list(split[1] if split is not None else argv)
    if not words:
        return StartCommand(None, (), ())
    program = os.path.basename(words[0])
    label: str | None = None
    if program == "ifconfig" and len(words) > 1:
        label = words[1]
    elif program == "ip":
        for flag in ("label", "dev"):
            if flag in words[:-1]:
                label = words[words.index(flag) + 1]
                break
    ipv4: list[tuple[ipaddress.IPv4Address, int | None]] = []
    ipv6: list[str] = []
    mask: int | None = None
    for previous, word in zip(["", *words[1:]], words[1:], strict=False):
        if previous in _NOT_THE_VIP:
            if previous == "netmask":
                mask = _prefix_of_mask(word)
            continue
        for found in IPV4.finditer(word):
            try:
                address = ipaddress.IPv4Address(found.group(1))
            except ValueError:
                continue
            ipv4.append((address, int(found.group(2)) if found.group(2) else None))
        if ":" in word and "." not in word.rpartition(":")[2]:
            with contextlib.suppress(ValueError):  # eth0:0 and other words with a colon
                ipv6.append(str(ipaddress.IPv6Interface(word).ip))
    if len(ipv4) == 1 and ipv4[0][1] is None and mask is not None:
        ipv4 = [(ipv4[0][0], mask)]
    return StartCommand(label, tuple(ipv4), tuple(ipv6))


def _prefix_of_mask(text: str) -> int | None:
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{text}").prefixlen
    except ValueError:
        return None


@dataclass(frozen=True)
class ArpAnnouncement:
    """The gratuitous ARP a classic service sends after each successful start (``address`` and
    ``interface`` set), or why it sends none (``why_not``, and ``fix``; ``off``: turned off by
    ``vip.arp.count=0``).  ``ipv6``: IPv6 addresses of command.start, never announced."""

    address: str | None
    interface: str | None
    count: int
    why_not: str | None = None
    fix: str = ""
    off: bool = False
    ipv6: tuple[str, ...] = ()

    def argv(self, sudo: bool) -> tuple[str, ...] | None:
        """``arping -U -c N -I IFACE ADDRESS`` (through ``sudo -n`` when ``sudo``), or None."""
        if self.address is None or self.interface is None or self.why_not is not None:
            return None
        argv = ("arping", "-U", "-c", str(self.count), "-I", self.interface, self.address)
        return ("sudo", "-n", *argv) if sudo else argv


_OR_OFF = "; or set vip.arp.count=0 to send none"


def announcement(
    start: StartCommand,
    *,
    address: ipaddress.IPv4Address | None,
    interface: str | None,
    count: int,
    where: str,
) -> ArpAnnouncement:
    """What a classic service announces: ``address`` and ``interface`` are its target's (from
    vip.address and vip.interface, or ``start``); ``where``: the file and line of
    ``vip.arp.count``."""
    text = str(address) if address is not None else None
    if count == 0:
        why = f"turned off (vip.arp.count=0 at {where})"
        return ArpAnnouncement(text, interface, 0, why, off=True, ipv6=start.ipv6)
    name_it = "name the VIP with vip.address=ADDRESS/PREFIX next to the command.* lines"
    if address is None and start.ipv6 and not start.ipv4:
        why = (
            f"command.start gives an IPv6 address ({', '.join(start.ipv6)}), which a classic "
            "service does not announce"
        )
        fix = "use a built-in VIP service (vip.* keys): it sends neighbour advertisements"
    elif address is None and len(start.ipv4) > 1:
        listed = ", ".join(str(found) for found, _ in start.ipv4)
        why = f"command.start names more than one IPv4 address ({listed})"
        fix = name_it
    elif address is None:
        why, fix = "command.start names no IPv4 address", name_it
    elif interface is None:
        why = f"no interface for {text}: command.start names none"
        fix = "name it with vip.interface=INTERFACE next to the command.* lines"
    else:
        return ArpAnnouncement(text, interface, count, ipv6=start.ipv6)
    return ArpAnnouncement(text, interface, count, why, fix + _OR_OFF, ipv6=start.ipv6)


def classic_keys(
    path: Path, values: dict[str, str], lines: dict[str, int]
) -> tuple[ipaddress.IPv4Interface | None, int, list[Problem]]:
    """vip.address, vip.interface and vip.arp.count may accompany command.* lines: they name
    what the commands manage (for status, duplicate address detection, preflight and the
    gratuitous ARP after start) and how many ARP packets to send; other vip.* keys may not."""
    problems = [
        Problem(
            path,
            lines[key],
            f"{key} cannot be combined with command.* lines (only {', '.join(CLASSIC_VIP_KEYS)} "
            "can accompany them)",
        )
        for key in values
        if key.startswith("vip.") and key not in CLASSIC_VIP_KEYS
    ]
    count = DEFAULT_ARP_COUNT
    if "vip.arp.count" in values:
        count = parse_count(
            values,
            "vip.arp.count",
            lambda key, why: problems.append(Problem(path, lines[key], why)),
        )
    text = values.get("vip.address")
    if text is None:
        return None, count, problems
    why = address_problem(text.strip(), ipv6=False)
    if why is not None:
        return None, count, [*problems, Problem(path, lines["vip.address"], why)]
    return ipaddress.IPv4Interface(text.strip()), count, problems
