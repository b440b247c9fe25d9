"""floatingip.notify: the sd_notify datagrams, received on real AF_UNIX sockets (a path and an
abstract name), and never an exception for a socket that is gone or an address that is wrong."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip.notify import Notifier


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """(NOTIFY_SOCKET as systemd sets it, the socket bound there)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify")
        sock.bind(address)
    else:
        address = f"@floatingip-test-{uuid.uuid4().hex}"
        sock.bind("\0" + address[1:])
    sock.settimeout(10)
    yield address, sock
    sock.close()


def test_each_message_is_one_datagram_of_lines(receiver: tuple[str, socket.socket]) -> None:
    address, sock = receiver
    notifier = Notifier(address)
    assert notifier.ready("holds master (192.0.2.22) for db1")
    assert sock.recv(4096) == b"READY=1\nSTATUS=holds master (192.0.2.22) for db1"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping("two\nlines")  # a newline would start a new field: kept out
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=two lines"
    notifier.close()
    assert not notifier.status("after close")


def test_from_the_environment_takes_the_variables_out(receiver: tuple[str, socket.socket]) -> None:
    address, sock = receiver
    environ = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "3000000", "PATH": "/bin"}
    notifier = Notifier.from_environment(environ)
    assert environ == {"PATH": "/bin"}  # the commands it runs do not inherit them
    assert notifier.enabled and notifier.watchdog_interval == 1.5
    assert notifier.status("x") and sock.recv(4096) == b"STATUS=x"
    notifier.close()


def test_a_watchdog_for_another_pid_or_none_means_no_pings(tmp_path: Path) -> None:
    other = {"NOTIFY_SOCKET": str(tmp_path / "n"), "WATCHDOG_USEC": "10", "WATCHDOG_PID": "1"}
    mine = {"NOTIFY_SOCKET": str(tmp_path / "n"), "WATCHDOG_PID": str(os.getpid())}
    bad = {"NOTIFY_SOCKET": str(tmp_path / "n"), "WATCHDOG_USEC": "soon"}
    for environ in (other, mine, bad):
        notifier = Notifier.from_environment(environ)
        assert notifier.enabled and notifier.watchdog_interval is None
        notifier.close()


def test_without_systemd_nothing_is_sent_and_nothing_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert not Notifier.from_environment({}).enabled
    assert not Notifier("relative/path").enabled  # neither /path nor @name
    assert "not a socket path" in caplog.text
    gone = Notifier(str(tmp_path / "nobody-listens"))
    assert gone.enabled and not gone.watchdog() and not gone.watchdog()
    assert caplog.text.count("cannot notify systemd") == 1  # warned once, not per ping
    gone.close()
