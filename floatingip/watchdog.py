"""How a command dies with its manager, even a ``kill -9``'d one.

Between fork and exec (:func:`child_setup`) the command's child asks the kernel for SIGTERM when
its parent dies (``PR_SET_PDEATHSIG``) and registers with the watchdog: a process forked once per
manager process that kills every registered process group when the manager's end of its pipe
closes.  The watchdog is what reaches a command run through ``sudo`` by an ordinary account: the
kernel clears the parent-death signal when a set-user-ID program such as sudo starts, and sudo
relays the watchdog's SIGTERM to the command.  The manager tells it to forget a command once the
command is reaped (:meth:`Watchdog.forget`), so that its pid is never signalled after reuse.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import itertools
import logging
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator

__all__ = ["Watchdog", "child_setup", "current", "spawning"]

logger = logging.getLogger(__name__)

_GRACE = 1.0  # SIGTERM, then SIGKILL this much later, when the manager died

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int


class Watchdog:
    """The manager's side of the watchdog: the write end of its pipe."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd
        self.closed = False

    def alive(self) -> bool:
        try:
            return os.waitpid(self.pid, os.WNOHANG) == (0, 0)
        except ChildProcessError:  # reaped by someone else's os.wait()
            return False

    def forget(self, token: int) -> None:
        with _lock:
            if self.closed:
                return
            with contextlib.suppress(OSError):  # it died: the next command starts another
                os.write(self.fd, b"-%d\n" % token)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


_lock = threading.Lock()
_watchdog: Watchdog | None = None
_unavailable_logged = False
_tokens = itertools.count(1)
_spawning = threading.local()


@contextlib.contextmanager
def spawning() -> Iterator[None]:
    """Around the fork of a command: its child keeps the pipe end until exec, to register
    (close-on-exec closes it then)."""
    _spawning.active = True
    try:
        yield
    finally:
        _spawning.active = False


def child_setup(watchdog: Watchdog | None) -> tuple[int, Callable[[], None]]:
    """A token for the next command, and what its child runs between fork and exec."""
    fd = watchdog.fd if watchdog is not None else -1
    token = next(_tokens)
    parent = os.getpid()

    def in_child() -> None:  # between fork and exec: nothing that allocates much or locks
        # The signal comes when the forking *thread* ends; that thread waits in run_process
        # until the command has exited, so it cannot end first (and the watchdog is there).
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the manager died before the line above
            os._exit(1)
        if fd >= 0:  # before exec: the watchdog cannot miss it, even if the manager dies now
            os.write(fd, b"+%d %d\n" % (token, os.getpid()))

    return token, in_child


def _after_fork_in_child() -> None:
    """A forked child is not the manager the watchdog watches: drop the inherited pipe end (so
    the watchdog sees the manager die) and start a watchdog of its own if it runs commands.
    Our own command children keep it until exec, to register (close-on-exec closes it then)."""
    global _watchdog, _lock
    if getattr(_spawning, "active", False):
        return
    _lock = threading.Lock()  # another thread may have held it at the fork
    if _watchdog is not None:
        with contextlib.suppress(OSError):
            _watchdog.close()
        _watchdog = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def _watch(read_fd: int) -> None:
    """The watchdog's life (in the forked child): read registrations until the manager's end of
    the pipe closes, then kill every group still registered."""
    gc.disable()  # no finalizer of the manager's objects may run here
    os.setsid()  # out of the manager's process group and terminal
    for number in signal.valid_signals():
        try:
            if callable(signal.getsignal(number)):
                signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError):
            continue
    for number in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(number, signal.SIG_IGN)  # it ends when its manager does, never before
    name = ctypes.create_string_buffer(b"floatingip-wd")  # what ps and top show
    _prctl(_PR_SET_NAME, ctypes.addressof(name), 0, 0, 0)
    os.dup2(read_fd, 0)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.closerange(3, max(os.sysconf("SC_OPEN_MAX"), 1024))  # the manager's files, sockets
    groups: dict[bytes, int] = {}
    pending = b""
    while True:
        chunk = os.read(0, 4096)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                token, pid = line[1:].split()
                groups[token] = int(pid)
            elif line[:1] == b"-":
                groups.pop(line[1:], None)
    if not groups:
        return
    left = _signal_groups(list(groups.values()), signal.SIGTERM)
    deadline = time.monotonic() + _GRACE
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = _signal_groups(left, 0)
    _signal_groups(left, signal.SIGKILL)


def _signal_groups(groups: list[int], number: int) -> list[int]:
    """Signal each process group; return those that still exist."""
    alive = []
    for group in groups:
        try:
            os.killpg(group, number)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass  # only root-owned members: sudo relays what it got
        alive.append(group)
    return alive


def current() -> Watchdog | None:
    """This process's watchdog, started on first use or when it died; None if it cannot run."""
    global _watchdog, _unavailable_logged
    with _lock:
        if _watchdog is not None and not _watchdog.closed and _watchdog.alive():
            return _watchdog
        if _watchdog is not None:
            _watchdog.close()
            _watchdog = None
        read_fd, write_fd = os.pipe()  # both close-on-exec: commands never inherit them
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: 3.12+
                pid = os.fork()
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            if not _unavailable_logged:
                _unavailable_logged = True
                logger.warning("no command watchdog (%s): only the parent-death signal", exc)
            return None
        if pid == 0:
            try:
                os.close(write_fd)
                _watch(read_fd)
            finally:
                os._exit(0)
        os.close(read_fd)
        _watchdog = Watchdog(pid, write_fd)
        return _watchdog
