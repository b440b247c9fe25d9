"""Reading configuration that decides what runs as root: no other user may change it, or swap it.

Checking a path and then opening it by name leaves a window in which a user who can write any
directory on the way swaps in a directory of their own.  So files are reached the way sshd's
StrictModes and ``openat`` walks reach them: every directory from ``/`` down is opened with
``O_NOFOLLOW`` relative to the descriptor of its parent and checked on that descriptor (owned by
root or the current user; not writable by group or others, unless it is a sticky directory owned
by root, like ``/tmp``), and the file is opened relative to the last one and checked with ``fstat``.
Symbolic links among the directories are followed by hand, each checked like the directory that
holds it; a file that is itself a symbolic link is refused.  Reads are bounded: the size is checked
on the descriptor before reading, and no more than the limit is ever read.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from pathlib import Path
from types import TracebackType

from floatingip.errors import ConfigError, Problem

__all__ = [
    "MAX_SYMLINKS",
    "TrustedDirectory",
    "format_limit",
    "format_size",
    "open_directory",
    "read_bounded",
]

MAX_SYMLINKS = 40  # as the kernel's path walk
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def format_size(size: int) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):.1f} MiB"
    if size >= 1 << 10:
        return f"{size / (1 << 10):.1f} KiB"
    return f"{size} bytes"


def format_limit(limit: int) -> str:
    if limit % (1 << 20) == 0:
        return f"{limit >> 20} MiB"
    return f"{limit >> 10} KiB" if limit % 1024 == 0 else f"{limit} bytes"


def _owner_problem(info: os.stat_result, path: Path, what: str) -> Problem | None:
    if info.st_uid in (0, os.geteuid()):
        return None
    return Problem(
        path,
        None,
        f"{what} is owned by uid {info.st_uid}, not by root or the current user "
        f"(uid {os.geteuid()}); what it runs may run as root, so no other user may own it",
    )


def _writable_by_others(info: os.stat_result) -> bool:
    """Writable by anyone but its owner: by others, or by a group other than the owner's user
    private group (umask 002, Ubuntu's default, gives 0775/0664 with a group no one else is in;
    Debian's sshd StrictModes accepts that too)."""
    if info.st_mode & stat.S_IWOTH:
        return True
    return bool(info.st_mode & stat.S_IWGRP) and not _private_group(info.st_uid, info.st_gid)


def _private_group(uid: int, gid: int) -> bool:
    """Whether group ``gid`` is user ``uid``'s primary group and no other account is in it."""
    try:
        owner = pwd.getpwuid(uid)
        members = set(grp.getgrgid(gid).gr_mem)
    except KeyError:
        return False
    if owner.pw_gid != gid or members - {owner.pw_name}:
        return False
    return all(user.pw_uid == uid for user in pwd.getpwall() if user.pw_gid == gid)


def _directory_problem(info: os.stat_result, path: Path, what: str) -> Problem | None:
    problem = _owner_problem(info, path, what)
    if problem is not None:
        return problem
    sticky_root = bool(info.st_mode & stat.S_ISVTX) and info.st_uid == 0
    if _writable_by_others(info) and not sticky_root:
        return Problem(
            path,
            None,
            f"{what} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}) and "
            "is not a sticky directory owned by root (like /tmp): another user could replace "
            f"what is read below it, which may run as root: chmod go-w {path}",
        )
    return None


def _file_problems(info: os.stat_result, path: Path, what: str) -> list[Problem]:
    problems = []
    problem = _owner_problem(info, path, what)
    if problem is not None:
        problems.append(problem)
    if _writable_by_others(info):
        mode = stat.S_IMODE(info.st_mode)
        problems.append(
            Problem(
                path,
                None,
                f"{what} is writable by group or others (mode {mode:04o}); what it runs may run "
                f"as root: chmod go-w {path}",
            )
        )
    return problems


def _refuse(path: Path, message: str) -> ConfigError:
    return ConfigError([Problem(path, None, message)])


def _os_refusal(path: Path, what: str, exc: OSError) -> ConfigError:
    return _refuse(path, f"cannot read {what}: {exc.strerror or exc}")


def _read_limited(fd: int, path: Path, what: str, limit: int) -> bytes:
    """Read the file open on ``fd``: refuse it by its size first, and never read past ``limit``."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(path, "is not a regular file")
    if info.st_size > limit:
        size = format_size(info.st_size)
        raise _refuse(path, f"is {size}; a {what} may have at most {format_limit(limit)}")
    chunks = []
    total = 0
    while total <= limit:
        chunk = os.read(fd, limit + 1 - total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:  # it grew while being read
        raise _refuse(path, f"is larger than {format_limit(limit)}, the most a {what} may have")
    return b"".join(chunks)


def read_bounded(path: Path, what: str, limit: int) -> bytes:
    """Read a regular file of at most ``limit`` bytes (no ownership checks: a plain reader).

    A FIFO or a device is refused without blocking or reading.
    """
    try:
        fd = os.open(path, _FILE_FLAGS & ~os.O_NOFOLLOW)
    except OSError as exc:
        raise _os_refusal(path, what, exc) from exc
    try:
        return _read_limited(fd, path, what, limit)
    except OSError as exc:
        raise _os_refusal(path, what, exc) from exc
    finally:
        os.close(fd)


class TrustedDirectory:
    """A directory opened through a checked walk; files are read relative to its descriptor.

    ``path`` is the path as the caller gave it (for messages and for what is loaded from it).
    """

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def __enter__(self) -> TrustedDirectory:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def names(self, suffix: str) -> list[str]:
        """Sorted names of the entries ending with ``suffix`` that are not directories."""
        found = []
        for name in os.listdir(self.fd):
            if not name.endswith(suffix):
                continue
            try:
                info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(info.st_mode):
                found.append(name)
        return sorted(found)

    def read(self, name: str, what: str, limit: int) -> tuple[bytes, list[Problem]]:
        """Read file ``name``: its content and its ownership or mode problems.

        Raises ConfigError when it cannot be read at all: missing, a symbolic link, not a
        regular file, or larger than ``limit`` bytes.
        """
        path = self.path / name
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _refuse(path, "is a symbolic link; give the file itself") from exc
            raise _os_refusal(path, what, exc) from exc
        try:
            problems = _file_problems(os.fstat(fd), path, what)
            return _read_limited(fd, path, what, limit), problems
        except OSError as exc:
            raise _os_refusal(path, what, exc) from exc
        finally:
            os.close(fd)


def open_directory(path: str | Path, what: str) -> TrustedDirectory:
    """Open directory ``path`` through a walk from ``/`` that checks every directory on the way.

    Raises ConfigError naming the first directory (or symbolic link) another user could change.
    """
    given = Path(path)
    pending = list(reversed(given.absolute().parts[1:]))
    stack: list[tuple[int, Path]] = []
    try:
        fd = os.open("/", _DIRECTORY_FLAGS)
        stack.append((fd, Path("/")))
        links = 0
        while True:
            top_fd, top_path = stack[-1]
            if not pending:
                problem = _directory_problem(os.fstat(top_fd), top_path, what)
                if problem is not None:
                    raise ConfigError([problem])
                stack.pop()
                return TrustedDirectory(top_fd, given)
            name = pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop()[0])
                continue
            here = top_path / name
            problem = _directory_problem(os.fstat(top_fd), top_path, "parent directory")
            if problem is not None:
                raise ConfigError([problem])
            try:
                info = os.stat(name, dir_fd=top_fd, follow_symlinks=False)
            except OSError as exc:
                raise _os_refusal(here, what, exc) from exc
            if stat.S_ISLNK(info.st_mode):
                links += 1
                problem = _owner_problem(info, here, "symbolic link")
                if problem is not None:
                    raise ConfigError([problem])
                if links > MAX_SYMLINKS:
                    raise _refuse(here, f"more than {MAX_SYMLINKS} symbolic links on the way")
                target = os.readlink(name, dir_fd=top_fd)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop()[0])
                pending.extend(reversed(Path(target).parts[1 if target.startswith("/") else 0 :]))
                continue
            try:
                fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=top_fd)
            except OSError as exc:
                raise _os_refusal(here, what, exc) from exc
            stack.append((fd, here))
    except OSError as exc:
        where = stack[-1][1] if stack else Path("/")
        raise _os_refusal(where, what, exc) from exc
    finally:
        for fd, _ in stack:
            os.close(fd)
