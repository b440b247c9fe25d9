"""Duplicate address detection (RFC 5227 ARP probes): does anyone else answer for an address?

Before taking a VIP whose previous holder it cannot confirm gone, a manager probes: it sends ARP
probes for the address (sender address 0.0.0.0, so no neighbour's cache changes) and listens for
any ARP packet that claims it from another MAC address.  ``arping -D`` does the same but waits
a whole second; this waits a fraction of one, so a failover stays well under a second.

Needs CAP_NET_RAW (root): the manager runs this file as a command, through sudo when it is not
root, with an isolated interpreter that imports nothing but the standard library (it starts in
a few milliseconds, where importing floatingip would take a tenth of a second)::

    python -I -S .../floatingip/dad.py --interface eth0 --wait 0.2 192.0.2.22

Exit status: 0 nobody else has the address, 10 someone does (their MAC is printed), 2 error
(10, not 1: sudo's own refusal and Python's crashes exit with 1).
"""

from __future__ import annotations

import argparse
import ipaddress
import select
import socket
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["FREE", "IN_USE", "PROBE_ERROR", "PROBE_SCRIPT", "find_holder", "main", "probe_argv"]

FREE, IN_USE, PROBE_ERROR = 0, 10, 2
ETH_P_ARP = 0x0806
_BROADCAST = b"\xff" * 6


def _mac_of(interface: str) -> bytes:
    text = Path(f"/sys/class/net/{interface}/address").read_text().strip()
    return bytes.fromhex(text.replace(":", ""))


def _probe_frame(mac: bytes, address: bytes) -> bytes:
    ethernet = _BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    # ARP request for Ethernet/IPv4; sender IP 0.0.0.0 makes it a probe (RFC 5227 2.1.1)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + bytes(4) + bytes(6) + address
    return ethernet + arp


def _claimant(frame: bytes, mac: bytes, address: bytes) -> bytes | None:
    """The sender MAC if ``frame`` is an ARP packet claiming ``address`` from another host."""
    if len(frame) < 42 or frame[12:14] != struct.pack("!H", ETH_P_ARP):
        return None
    arp = frame[14:42]
    sender_mac, sender_ip = arp[8:14], arp[14:18]
    if sender_ip == address and sender_mac != mac:
        return sender_mac
    return None


def find_holder(interface: str, address: str, *, wait: float = 0.2, probes: int = 2) -> str | None:
    """The MAC address of another host that answers for ``address`` on ``interface``, or None.

    Sends ``probes`` ARP probes spread over ``wait`` seconds and listens until ``wait`` ends.
    """
    target = ipaddress.IPv4Address(address).packed
    mac = _mac_of(interface)
    frame = _probe_frame(mac, target)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((interface, ETH_P_ARP))
        started = time.monotonic()
        sent = 0
        while True:
            now = time.monotonic() - started
            if sent < probes and now >= sent * wait / probes:
                sock.send(frame)
                sent += 1
            if now >= wait:
                return None
            next_probe = sent * wait / probes if sent < probes else wait
            ready, _, _ = select.select([sock], [], [], max(0.0, min(wait, next_probe) - now))
            if ready:
                claimant = _claimant(sock.recv(2048), mac, target)
                if claimant is not None:
                    return ":".join(f"{byte:02x}" for byte in claimant)


PROBE_SCRIPT = str(Path(__file__).resolve())


def probe_argv(interface: str, address: str, wait: float, *, sudo: bool) -> tuple[str, ...]:
    """The command that runs this probe: this file, standalone, in an isolated interpreter."""
    argv: tuple[str, ...] = (sys.executable, "-I", "-S", PROBE_SCRIPT, "--interface", interface)
    argv += ("--wait", f"{wait:g}", address)
    return ("sudo", "-n", *argv) if sudo else argv


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="floatingip/dad.py", description=__doc__.splitlines()[0])
    parser.add_argument("--interface", required=True)
    parser.add_argument("--wait", type=float, default=0.2, help="seconds to listen (default 0.2)")
    parser.add_argument("address")
    args = parser.parse_args(argv)
    try:
        holder = find_holder(args.interface, args.address, wait=args.wait)
    except (OSError, ValueError) as exc:
        print(f"cannot probe {args.address} on {args.interface}: {exc}", file=sys.stderr)
        return PROBE_ERROR
    if holder is None:
        print(f"{args.address} is free on {args.interface}")
        return FREE
    print(f"{args.address} is in use on {args.interface} by {holder}")
    return IN_USE


if __name__ == "__main__":
    sys.exit(main())
