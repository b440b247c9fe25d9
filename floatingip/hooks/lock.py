"""The per-host lock that serializes a host's hook invocations: an flock on a file in a shared
directory, waited for at most a bounded time, naming its holder for whoever waits."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from floatingip.errors import FloatingIPError, UsageError

__all__ = ["DEFAULT_LOCK_TIMEOUT", "HookLock", "HookLockTimeout", "lock_path"]

logger = logging.getLogger(__name__)

DEFAULT_LOCK_TIMEOUT = 30.0


class HookLockTimeout(FloatingIPError):
    """Another hook held the lock for longer than the bounded wait; nothing was changed."""


def lock_path(directory: Path, cluster: str, host: str) -> Path:
    """The lock of the hooks acting on ``host`` for ``cluster``: one per host, so that a hook
    waiting for another host to release the VIP never holds up that host's own hook (they
    share the directory when one machine acts for several hosts).  The default directory,
    /run/lock, is sticky and open to every account on Debian and Red Hat: the database account
    a tool runs its hooks as can take it."""
    return directory / f"floatingip-{cluster}-{host}.lock"


class HookLock:
    """An exclusive flock on ``path``, waited for at most ``timeout`` seconds: one hook of a
    cluster at a time on this machine.  The kernel frees it when the process dies (Patroni kills
    a callback still running when it starts the next), so a killed hook never wedges the next."""

    def __init__(self, path: Path, timeout: float, holder: str) -> None:
        self.path = path
        self.timeout = timeout
        self.holder = holder
        self._fd: int | None = None

    def __enter__(self) -> HookLock:
        fd, writable = self._open()
        try:
            if not _try_lock(fd):
                logger.info("waiting for %s (%s)", self.path, _holder_of(fd))
                _wait_for_lock(fd, self.timeout, self.path)
            if writable:  # who holds it, for the message of a hook that waits in vain
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()}: {self.holder}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def _open(self) -> tuple[int, bool]:
        flags = os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            return os.open(self.path, flags | os.O_RDWR | os.O_CREAT, 0o644), True
        except PermissionError:
            pass  # made by another account: a read-only descriptor locks as well
        except OSError as exc:
            raise UsageError(
                f"cannot open the hook lock file {self.path}: {exc.strerror}"
            ) from None
        try:
            return os.open(self.path, flags | os.O_RDONLY), False
        except OSError as exc:
            raise UsageError(
                f"cannot open the hook lock file {self.path}: {exc.strerror} "
                "(choose another directory with --lock-dir)"
            ) from None


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _holder_of(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 300, 0).decode(errors="replace").strip()
        if text:
            return f"held by {text}"
    return "held by another hook"


class _Expired(Exception):
    pass


def _wait_for_lock(fd: int, timeout: float, path: Path) -> None:
    """A blocking flock (the kernel lists the waiter in /proc/locks) bounded by a timer signal;
    polling where no signal can be used (not the main thread)."""
    if threading.current_thread() is threading.main_thread():

        def expire(signum: int, frame: FrameType | None) -> None:
            raise _Expired

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        except _Expired:
            pass
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    else:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _try_lock(fd):
                return
            time.sleep(0.05)
    raise HookLockTimeout(
        f"another floatingip hook still holds {path} after {timeout:g} s "
        f"({_holder_of(fd)}); nothing was changed"
    )
