"""What benchmarks/vip_move.py watches, without starting a process per look: the VIP in each
host's kernel (rtnetlink, every millisecond), the first announcement (gratuitous ARP, unsolicited
neighbour advertisement) from the new holder's MAC seen by the client, and the first TCP answer
from the new holder (a connection attempt every 2 ms, as an impatient client makes).  Also: two
busy loops for ``--load``, and keepalived run in the sandbox."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
_ETH_P_ALL = 0x0003
_RTM_NEWADDR, _RTM_GETADDR = 20, 22


def _die_with_parent() -> None:
    """In a forked child before exec: SIGKILL when the benchmark dies (even by -9), so that no
    busy loop or keepalived outlives it."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def in_namespace(namespace: str, make: Callable[[], T]) -> T:
    """``make()`` run by a thread that entered network namespace ``namespace``: a socket made so
    stays in that namespace, whichever thread uses it."""
    made: list[T | BaseException] = []

    def enter() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {namespace}")
            finally:
                os.close(fd)
            made.append(make())
        except BaseException as exc:
            made.append(exc)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


def _addresses(sock: socket.socket, family: int, seq: int) -> set[bytes]:
    """The addresses of ``family`` in the namespace of rtnetlink socket ``sock`` (packed)."""
    request = struct.pack("=LHHLL", 24, _RTM_GETADDR, 0x301, seq, 0)  # REQUEST | DUMP
    sock.send(request + struct.pack("=BBBBL", family, 0, 0, 0, 0))
    size = 4 if family == socket.AF_INET else 16
    found: set[bytes] = set()
    while True:
        data = sock.recv(65536)
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _, got, _ = struct.unpack_from("=LHHLL", data, offset)
            if got == seq and kind == 3:  # NLMSG_DONE
                return found
            if got == seq and kind == _RTM_NEWADDR:
                attribute = offset + 24
                while attribute + 4 <= offset + length:
                    length_, name = struct.unpack_from("=HH", data, attribute)
                    if name in (1, 2) and length_ == 4 + size:  # IFA_ADDRESS, IFA_LOCAL
                        found.add(data[attribute + 4 : attribute + 4 + size])
                    attribute += (length_ + 3) & ~3
            offset += (length + 3) & ~3


class Watch:
    """From the start on: when the first announcement of ``vip`` from ``mac`` reached the
    client (``announced``), when ``expected`` first answered the client on ``vip:port``
    (``answered``), when the VIP was first in the kernel of the last of ``holders``' namespaces
    (``up``), and how often more than one held it (``two_holders``, polled every millisecond);
    seconds after the start, None if it did not happen within ``cap``."""

    def __init__(self, client: str, holders: list[str], vip: str, port: int, mac: str) -> None:
        self.client, self.vip, self.port = client, vip, port
        self.mac = bytes.fromhex(mac.replace(":", ""))
        self.family = socket.AF_INET6 if ":" in vip else socket.AF_INET
        self.packed = socket.inet_pton(self.family, vip)
        self.packets = in_namespace(client, self._packet_socket)
        self.readers = [
            in_namespace(ns, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
            for ns in holders
        ]
        self.result: dict[str, float | int | None] = {
            "announced": None, "answered": None, "up": None, "two_holders": 0
        }  # fmt: skip

    def _packet_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
        sock.bind(("eth0", _ETH_P_ALL))
        sock.setblocking(False)
        return sock

    def _connection(self) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex((self.vip, self.port))
        return sock

    def _announces(self, frame: bytes) -> bool:
        if frame[6:12] != self.mac:
            return False
        if frame[12:14] == b"\x08\x06":  # ARP: the sender's IP address
            return frame[28:32] == self.packed
        # an ICMPv6 neighbour advertisement (136) whose target is the VIP
        return (
            len(frame) >= 78 and frame[12:14] == b"\x86\xdd" and frame[20] == 58
            and frame[54] == 136 and frame[62:78] == self.packed
        )  # fmt: skip

    def _holders(self, seq: int) -> int:
        return sum(self.packed in _addresses(r, self.family, seq) for r in self.readers)

    def run(self, expected: str, started: float, cap: float) -> None:
        result = self.result
        selector = selectors.DefaultSelector()
        selector.register(self.packets, selectors.EVENT_READ)
        tries: dict[socket.socket, float] = {}
        next_try = next_look = started
        seq = 0
        two = False
        while time.monotonic() - started < cap:
            now = time.monotonic()
            if now >= next_look:  # the kernels, every millisecond
                seq += 1
                held = [self.packed in _addresses(r, self.family, seq) for r in self.readers]
                if held[-1] and result["up"] is None:
                    result["up"] = now - started
                if sum(held) > 1 and not two:
                    result["two_holders"] = int(result["two_holders"] or 0) + 1
                two = sum(held) > 1
                next_look = now + 0.001
                if result["answered"] is not None and result["up"] is not None:
                    break
            if now >= next_try and result["answered"] is None:  # a new try every 2 ms
                sock = in_namespace(self.client, self._connection)
                tries[sock] = now
                selector.register(sock, selectors.EVENT_READ)
                next_try = now + 0.002
                for old in [s for s, t in tries.items() if now - t > 0.5]:
                    selector.unregister(old)
                    old.close()
                    del tries[old]
            wake = min(next_look, next_try if result["answered"] is None else next_look)
            for key, _ in selector.select(max(0.0, wake - time.monotonic())):
                sock = key.fileobj  # type: ignore[assignment]
                at = time.monotonic() - started
                if sock is self.packets:
                    with contextlib.suppress(BlockingIOError):
                        while True:
                            frame = sock.recv(4096)
                            if result["announced"] is None and self._announces(frame):
                                result["announced"] = at
                    continue
                try:
                    answer = sock.recv(256).decode().strip()
                except OSError:
                    answer = ""
                if answer == expected and result["answered"] is None:
                    result["answered"] = at
                selector.unregister(sock)
                sock.close()
                del tries[sock]
        for sock in tries:
            sock.close()


class Watcher:
    """:class:`Watch` in a process of its own (this file run as a script), so that its looking
    never competes with the measured manager for the interpreter lock: started before the
    switch, told when the switch started (CLOCK_MONOTONIC is the machine's), then read."""

    def __init__(self, client: str, holders: list[str], vip: str, port: int, mac: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, client, ",".join(holders), vip, str(port), mac],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
        assert self.process.stdout is not None and self.process.stdin is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the watcher did not start")

    def start(self, expected: str, started: float, cap: float) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{expected} {started!r} {cap!r}\n")
        self.process.stdin.flush()

    def result(self) -> dict[str, float | int | None]:
        out, _ = self.process.communicate(timeout=600)
        found: dict[str, float | int | None] = json.loads(out)
        return found


def probe_replies(namespace: str, mac: str, vip: str, rounds: int) -> list[float]:
    """How long the holder of ``vip`` takes to answer floatingip's duplicate address probe (an
    RFC 5227 ARP probe, as floatingip/dad.py sends it) from ``namespace``: seconds, each round;
    what a shorter ``vip.dad.wait`` would have to cover."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from floatingip.dad import _plan

    ethertype, frame, claimant = _plan(bytes.fromhex(mac.replace(":", "")), vip)

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
        sock.bind(("eth0", ethertype))
        return sock

    replies = []
    with in_namespace(namespace, make) as sock:
        for _ in range(rounds):
            sent = time.monotonic()
            sock.send(frame)
            while True:
                ready, _, _ = select.select([sock], [], [], 1.0)
                if not ready:
                    replies.append(float("inf"))
                    break
                if claimant(sock.recv(2048)) is not None:
                    replies.append(time.monotonic() - sent)
                    break
            time.sleep(0.01)
    return replies


@contextlib.contextmanager
def busy_loops(count: int) -> Iterator[None]:
    """``count`` shell busy loops beside the measurement (``--load``), killed afterwards."""
    loops = [
        subprocess.Popen(
            ["sh", "-c", "while :; do :; done"],
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for loop in loops:
            os.killpg(loop.pid, signal.SIGKILL)
            loop.wait()


KEEPALIVED_CONF = """\
global_defs {{
    router_id {host}
    script_user root
    enable_script_security
}}
vrrp_instance VI_fip {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {advert}
    {version}
    unicast_src_ip {me}
    unicast_peer {{
        {peer}
    }}
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
}}
"""


class Keepalived:
    """keepalived (VRRP, unicast peers) in one sandbox namespace, with its configuration, pid
    files and log in a directory of its own: nothing on the machine is touched."""

    def __init__(
        self, namespace: str, host: str, *, me: str, peer: str, vip: str, priority: int,
        advert: float,
    ) -> None:  # fmt: skip
        self.home = Path(tempfile.mkdtemp(prefix=f"floatingip-keepalived-{host}-"))
        conf = self.home / "keepalived.conf"
        version = "version 3" if advert < 1 else ""
        conf.write_text(KEEPALIVED_CONF.format(
            host=host, priority=priority, advert=f"{advert:g}", me=me, peer=peer, vip=vip,
            version=version,
        ))  # fmt: skip
        self.log = (self.home / "log").open("wb")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, "keepalived", "-n", "-l", "-D", "-P",
             "-f", str(conf), "-p", str(self.home / "keepalived.pid"),
             "-r", str(self.home / "vrrp.pid"), "-c", str(self.home / "checkers.pid")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip

    def stop(self) -> None:
        """A planned stop: SIGTERM, on which keepalived sends priority 0 (hand over at once)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()

    def log_text(self) -> str:
        return (self.home / "log").read_text(errors="replace")

    def remove(self) -> None:
        """Its configuration, pid files and log (after :meth:`stop`)."""
        shutil.rmtree(self.home, ignore_errors=True)


def _main() -> None:
    client, holders, vip, port, mac = sys.argv[1:6]
    watch = Watch(client, holders.split(","), vip, int(port), mac)
    print("ready", flush=True)
    expected, started, cap = sys.stdin.readline().split()
    watch.run(expected, float(started), float(cap))
    print(json.dumps(watch.result), flush=True)


if __name__ == "__main__":
    _main()
