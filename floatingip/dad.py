"""Duplicate address detection: does anyone else answer for an address?  And, for IPv6, the
unsolicited neighbour advertisements that announce a VIP once taken.

Before taking a VIP whose previous holder it cannot confirm gone, a manager probes.  For IPv4 it
sends ARP probes (RFC 5227: sender address 0.0.0.0, so no neighbour's cache changes) and listens
for any ARP packet that claims the address from another MAC address.  For IPv6 it sends the
kernel's own DAD probe (RFC 4862 5.4: a neighbour solicitation from :: to the address's
solicited-node multicast group) and listens for a neighbour advertisement of the address, or any
packet sent from it, by another MAC address.  ``arping -D`` waits a whole second and the kernel's
DAD as long; this waits a fraction of one, so a failover stays well under a second.

``--advertise N`` sends N unsolicited neighbour advertisements (RFC 4861 7.2.6: to all nodes,
override flag set, our MAC as the target's link-layer address), a second apart, the IPv6 twin of
``arping -U``: Debian has no maintained tool that sends them (ndisc6 solicits only; arping is
IPv4 only), and keepalived and IPaddr2's send_ua build them the same way.

Needs CAP_NET_RAW (root): the manager runs this file as a command, through sudo when it is not
root, with an isolated interpreter that imports nothing but the standard library (it starts in
a few milliseconds, where importing floatingip would take a tenth of a second), and only the
modules the interpreter has loaded already plus _socket, select, struct and time: argparse,
ipaddress, pathlib and socket (and the re, enum, functools and selectors they pull in) would
double its start, which comes before the first advertisement of every IPv6 move::

    python -I -S .../floatingip/dad.py --interface eth0 --wait 0.2 192.0.2.22 2001:db8::22
    python -I -S .../floatingip/dad.py --interface eth0 --advertise 3 2001:db8::22

Exit status: 0 nobody else has the addresses (or the advertisements were sent), 10 someone has
one (their MAC is printed), 2 error (10, not 1: sudo's own refusal and Python's crashes exit 1).
"""

from __future__ import annotations

import _socket  # not socket: its import (enum, selectors) costs more than the interpreter
import os
import select
import struct
import sys
import time
from collections.abc import Callable, Sequence

__all__ = [
    "FREE",
    "IN_USE",
    "PROBE_ERROR",
    "PROBE_SCRIPT",
    "advertise",
    "advertise_argv",
    "find_holder",
    "find_holders",
    "main",
    "probe_argv",
]

FREE, IN_USE, PROBE_ERROR = 0, 10, 2
ETH_P_ARP, ETH_P_IPV6 = 0x0806, 0x86DD
ICMPV6, NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT = 58, 135, 136
_BROADCAST = b"\xff" * 6
_ALL_NODES = _socket.inet_pton(_socket.AF_INET6, "ff02::1")

# (the ethertype to listen to, the probe frame, who claims the address in a received frame)
Plan = tuple[int, bytes, Callable[[bytes], bytes | None]]


def _packet_socket(interface: str, ethertype: int) -> _socket.socket:
    sock = _socket.socket(_socket.AF_PACKET, _socket.SOCK_RAW, _socket.htons(ethertype))
    try:
        sock.bind((interface, ethertype))
    except OSError:
        sock.close()
        raise
    return sock


def _mac_of(interface: str) -> bytes:
    with open(f"/sys/class/net/{interface}/address", encoding="ascii") as file:
        text = file.read().strip()
    return bytes.fromhex(text.replace(":", ""))


def _arp_plan(mac: bytes, address: bytes) -> Plan:
    ethernet = _BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    # ARP request for Ethernet/IPv4; sender IP 0.0.0.0 makes it a probe (RFC 5227 2.1.1)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + bytes(4) + bytes(6) + address

    def claimant(frame: bytes) -> bytes | None:
        """The sender MAC if ``frame`` is an ARP packet claiming the address from another host."""
        if len(frame) < 42 or frame[12:14] != struct.pack("!H", ETH_P_ARP):
            return None
        sender_mac, sender_ip = frame[22:28], frame[28:32]
        return sender_mac if sender_ip == address and sender_mac != mac else None

    return ETH_P_ARP, ethernet + arp, claimant


def _checksum(source: bytes, destination: bytes, icmp: bytes) -> int:
    """The ICMPv6 checksum: over the IPv6 pseudo-header and the message (RFC 4443 2.3)."""
    data = source + destination + struct.pack("!I3xB", len(icmp), ICMPV6) + icmp
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _icmpv6_frame(mac: bytes, source: bytes, destination: bytes, message: bytes) -> bytes:
    """An Ethernet frame carrying an ICMPv6 ``message`` (checksum filled in), hop limit 255 as
    neighbour discovery requires."""
    checksum = _checksum(source, destination, message)
    message = message[:2] + struct.pack("!H", checksum) + message[4:]
    ip = struct.pack("!IHBB", 6 << 28, len(message), ICMPV6, 255) + source + destination
    multicast_mac = b"\x33\x33" + destination[12:]  # RFC 2464 7
    return multicast_mac + mac + struct.pack("!H", ETH_P_IPV6) + ip + message


def _solicited_node(address: bytes) -> bytes:
    return _socket.inet_pton(_socket.AF_INET6, "ff02::1:ff00:0")[:13] + address[13:]


def _ns_plan(mac: bytes, address: bytes) -> Plan:
    # a DAD probe: from ::, no source link-layer option (RFC 4862 5.4.2)
    message = struct.pack("!BBHI", NEIGHBOR_SOLICITATION, 0, 0, 0) + address
    frame = _icmpv6_frame(mac, bytes(16), _solicited_node(address), message)

    def claimant(frame: bytes) -> bytes | None:
        """The sender MAC if ``frame`` advertises the address, or comes from it, from another
        host (its own DAD probe, from ::, is not a claim: that host does not have it yet)."""
        if len(frame) < 54 or frame[12:14] != struct.pack("!H", ETH_P_IPV6) or frame[6:12] == mac:
            return None
        if frame[22:38] == address:  # sent from the address
            return frame[6:12]
        icmp = frame[54:]
        if frame[20] == ICMPV6 and icmp[:1] == bytes([NEIGHBOR_ADVERTISEMENT]):
            return frame[6:12] if icmp[8:24] == address else None
        return None

    return ETH_P_IPV6, frame, claimant


def _plan(mac: bytes, address: str) -> Plan:
    version, packed = _parse(address)
    return (_ns_plan if version == 6 else _arp_plan)(mac, packed)


def _parse(address: str) -> tuple[int, bytes]:
    """(4 or 6, the packed address); ValueError for anything but one IP address."""
    for version, family in ((4, _socket.AF_INET), (6, _socket.AF_INET6)):
        try:
            return version, _socket.inet_pton(family, address)
        except OSError:
            continue
    raise ValueError(f"{address!r} does not appear to be an IPv4 or IPv6 address")


def find_holders(
    interface: str, addresses: Sequence[str], *, wait: float = 0.2, probes: int = 2
) -> dict[str, str]:
    """The MAC address of another host that answers for each of ``addresses`` that one does.

    Sends ``probes`` probes for each address spread over ``wait`` seconds and listens until
    ``wait`` ends (all addresses at once: a dual-stack VIP takes no longer than one), or until
    every address has answered: that answer cannot change, and a caller waiting for the old
    holder to let go (floatingip hook patroni) asks again at once rather than a window later.
    """
    mac = _mac_of(interface)
    plans = {address: _plan(mac, address) for address in addresses}
    sockets: dict[int, _socket.socket] = {}
    try:
        for ethertype, _, _ in plans.values():
            if ethertype not in sockets:
                sockets[ethertype] = _packet_socket(interface, ethertype)
        return _listen(sockets, plans, wait, probes)
    finally:
        for sock in sockets.values():
            sock.close()


def _listen(
    sockets: dict[int, _socket.socket], plans: dict[str, Plan], wait: float, probes: int
) -> dict[str, str]:
    holders: dict[str, str] = {}
    started = time.monotonic()
    sent = 0
    while True:
        now = time.monotonic() - started
        if sent < probes and now >= sent * wait / probes:
            for ethertype, frame, _ in plans.values():
                sockets[ethertype].send(frame)
            sent += 1
        if now >= wait:
            return holders
        next_probe = sent * wait / probes if sent < probes else wait
        timeout = max(0.0, min(wait, next_probe) - now)
        ready, _, _ = select.select(list(sockets.values()), [], [], timeout)
        for sock in ready:
            frame = sock.recv(2048)
            for address, (_, _, claimant) in plans.items():
                holder = claimant(frame)
                if holder is not None and address not in holders:
                    holders[address] = ":".join(f"{byte:02x}" for byte in holder)
        if len(holders) == len(plans):
            return holders


def find_holder(interface: str, address: str, *, wait: float = 0.2, probes: int = 2) -> str | None:
    """The MAC address of another host that answers for ``address`` on ``interface``, or None."""
    return find_holders(interface, [address], wait=wait, probes=probes).get(address)


def advertise(interface: str, address: str, count: int, *, interval: float = 1.0) -> None:
    """Send ``count`` unsolicited neighbour advertisements for the IPv6 ``address``, from it,
    to all nodes, with the override flag: neighbours that have an entry for it switch to our
    MAC (RFC 4861 7.2.6); others are not disturbed."""
    version, target = _parse(address)
    if version != 6:
        raise ValueError(f"{address} is not an IPv6 address (IPv4 is announced with arping)")
    mac = _mac_of(interface)
    flags = 0x20000000  # override; not solicited, not a router
    option = struct.pack("!BB", 2, 1) + mac  # target link-layer address
    message = struct.pack("!BBHI", NEIGHBOR_ADVERTISEMENT, 0, 0, flags) + target + option
    frame = _icmpv6_frame(mac, target, _ALL_NODES, message)
    sock = _packet_socket(interface, ETH_P_IPV6)
    try:
        for sent in range(count):
            if sent:
                time.sleep(interval)
            sock.send(frame)
    finally:
        sock.close()


PROBE_SCRIPT = os.path.realpath(__file__)


def _script_argv(interface: str) -> tuple[str, ...]:
    return (sys.executable, "-I", "-S", PROBE_SCRIPT, "--interface", interface)


def probe_argv(
    interface: str, address: str | Sequence[str], wait: float, *, sudo: bool
) -> tuple[str, ...]:
    """The command that runs this probe: this file, standalone, in an isolated interpreter."""
    addresses = (address,) if isinstance(address, str) else tuple(address)
    argv = (*_script_argv(interface), "--wait", f"{wait:g}", *addresses)
    return ("sudo", "-n", *argv) if sudo else argv


def advertise_argv(interface: str, address: str, count: int, *, sudo: bool) -> tuple[str, ...]:
    """The command that sends ``count`` unsolicited neighbour advertisements for ``address``."""
    argv = (*_script_argv(interface), "--advertise", str(count), address)
    return ("sudo", "-n", *argv) if sudo else argv


_USAGE = (
    "usage: floatingip/dad.py [-h] --interface INTERFACE [--wait WAIT] [--advertise N] "
    "address [address ...]"
)
_HELP = f"""{_USAGE}

{__doc__.splitlines()[0]}

options:
  --interface INTERFACE  the interface to probe or advertise on
  --wait WAIT            seconds to listen (default 0.2)
  --advertise N          send N advertisements (one IPv6 address)
"""


class _UsageError(Exception):
    pass


def _options(argv: Sequence[str]) -> tuple[str, float, int | None, list[str]]:
    """(interface, wait, advertise, addresses) from ``argv``, as argparse would read them (no
    argparse: its import would double this script's start)."""
    values: dict[str, str] = {}
    addresses: list[str] = []
    words = list(argv)
    while words:
        word = words.pop(0)
        if word == "--":
            addresses += words
            break
        if not word.startswith("--") or word == "-":
            addresses.append(word)
            continue
        name, equals, value = word.partition("=")
        if name not in ("--interface", "--wait", "--advertise"):
            raise _UsageError(f"unrecognized arguments: {word}")
        if not equals:
            if not words:
                raise _UsageError(f"argument {name}: expected one argument")
            value = words.pop(0)
        values[name] = value
    if "--interface" not in values:
        raise _UsageError("the following arguments are required: --interface")
    if not addresses:
        raise _UsageError("the following arguments are required: address")
    try:
        wait = float(values.get("--wait", "0.2"))
    except ValueError:
        raise _UsageError(f"argument --wait: invalid float value: {values['--wait']!r}") from None
    advertise = values.get("--advertise")
    try:
        count = None if advertise is None else int(advertise)
    except ValueError:
        raise _UsageError(f"argument --advertise: invalid int value: {advertise!r}") from None
    if count is not None and len(addresses) != 1:
        raise _UsageError("--advertise takes one IPv6 address")
    return values["--interface"], wait, count, addresses


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    if "-h" in words or "--help" in words:
        print(_HELP, end="")
        return FREE
    try:
        interface, wait, advertise_count, addresses = _options(words)
    except _UsageError as exc:
        print(f"{_USAGE}\nfloatingip/dad.py: error: {exc}", file=sys.stderr)
        return PROBE_ERROR  # 2, as argparse exits on a usage error
    where = f"{', '.join(addresses)} on {interface}"
    try:
        if advertise_count is not None:
            advertise(interface, addresses[0], advertise_count)
            print(f"sent {advertise_count} neighbour advertisement(s) for {where}")
            return FREE
        holders = find_holders(interface, addresses, wait=wait)
    except (OSError, ValueError) as exc:
        doing = "advertise" if advertise_count is not None else "probe"
        print(f"cannot {doing} {where}: {exc}", file=sys.stderr)
        return PROBE_ERROR
    if not holders:
        print(f"{', '.join(addresses)} {'is' if len(addresses) == 1 else 'are'} free on "
              f"{interface}")  # fmt: skip
        return FREE
    for address, holder in holders.items():
        print(f"{address} is in use on {interface} by {holder}")
    return IN_USE


if __name__ == "__main__":
    sys.exit(main())
