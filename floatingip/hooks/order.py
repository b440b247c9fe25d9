"""Which callback came last, for tools whose next callback cancels the one still running
(Patroni): a cancelled call must never act after the call that replaced it.

Patroni kills the running callback and its children before starting the next one; through
``sudo`` it can kill sudo but not the hook under it, which runs as root ("Failed to kill child
process" in its log).  That hook goes on: it may get the per-host lock after the next one (an
``on_role_change replica`` would then release the VIP the ``on_role_change master`` after it had
just taken on the primary), or hold the lock while it waits for another host to release the VIP
(a cancelled ``master`` would then take the VIP on a host Patroni has since made a replica, and
keep the next call waiting).  So each call registers when its process started (the kernel's start
time, set at fork: a cancelled hook was forked before Patroni killed its sudo, so before the next
call's sudo even started) as soon as it has parsed its arguments, before the lock; a call that
finds a later one registered does nothing, and one waiting for a release stops waiting.  Two calls
forked in the same clock tick (10 ms) both act, as before.

The record lives next to the lock (/run/lock is world-writable and sticky): it is trusted only
when owned by root or by this account and writable by nobody else, else ignored with a
warning, so another local account cannot silence the hooks (a lock directory only root can
write, ``--lock-dir``, keeps other accounts out of both).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CallOrder", "Recorded", "process_start"]

logger = logging.getLogger(__name__)

_MAX_RECORD = 4096  # bytes read of the record: one line


@dataclass(frozen=True)
class Recorded:
    """A call that acted: its process's start (clock ticks since boot) and its event."""

    boot: str
    start: int
    event: str


def process_start(pid: int | str = "self") -> int | None:
    """When process ``pid`` was forked, in clock ticks since boot; None if /proc cannot say."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        return int(text.rsplit(")", 1)[1].split()[19])  # field 22, starttime, after the name
    except (OSError, ValueError, IndexError):
        return None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


class CallOrder:
    """The record at ``path`` of the latest call that acted (read and written under the lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.boot = _boot_id()

    def later_than(self, start: int) -> Recorded | None:
        """The recorded call if it started after ``start`` in this boot, else None."""
        recorded = self._read()
        if recorded is None or recorded.boot != self.boot or recorded.start <= start:
            return None
        return recorded

    def register(self, start: int, event: str) -> None:
        """Record this call unless a later one is recorded (best effort: a record that cannot
        be written is logged).  Under an flock of the record: two calls never interleave."""
        line = f"{self.boot} {start} {' '.join(event.split())}\n".encode()
        try:
            fd = self._open_for_writing()
        except OSError as exc:
            logger.warning("cannot record this call in %s: %s", self.path, exc.strerror or exc)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            recorded = _parse(os.pread(fd, _MAX_RECORD, 0).decode("utf-8", "replace"))
            if recorded is not None and recorded.boot == self.boot and recorded.start > start:
                return
            os.ftruncate(fd, 0)
            os.pwrite(fd, line, 0)
        except OSError as exc:
            logger.warning("cannot record this call in %s: %s", self.path, exc.strerror or exc)
        finally:
            os.close(fd)  # and the flock with it

    def _read(self) -> Recorded | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("ignoring %s: %s", self.path, exc.strerror or exc)
            return None
        try:
            problem = _untrusted(os.fstat(fd))
            if problem is not None:
                logger.warning("ignoring %s: %s", self.path, problem)
                return None
            fcntl.flock(fd, fcntl.LOCK_SH)  # never half a record being rewritten
            text = os.read(fd, _MAX_RECORD).decode("utf-8", "replace")
        finally:
            os.close(fd)
        recorded = _parse(text)
        if recorded is None:
            logger.warning("ignoring %s: not a record of a call: %r", self.path, text[:80])
        return recorded

    def _open_for_writing(self) -> int:
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644)
        if _untrusted(os.fstat(fd)) is None:
            return fd
        os.close(fd)
        # someone else's file: root replaces it (the sticky directory lets root unlink it)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        return os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644)


def _parse(text: str) -> Recorded | None:
    boot, _, rest = text.strip().partition(" ")
    start, _, event = rest.partition(" ")
    return Recorded(boot, int(start), event) if start.isdigit() else None


def _untrusted(info: os.stat_result) -> str | None:
    """Why a record with these attributes cannot be believed; None if it can."""
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_uid not in (0, os.geteuid()):
        return f"owned by uid {info.st_uid}, neither root nor this account"
    if info.st_mode & 0o022:
        return f"writable by other accounts (mode {stat.S_IMODE(info.st_mode):o})"
    return None
