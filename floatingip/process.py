"""Running one process so that nothing outlives it or its manager, and its output stays bounded.

- Each command runs in a new session (its own process group), stdin empty, argv only.
- Only the last :data:`OUTPUT_TAIL` bytes of each stream are kept.
- At the timeout the group gets SIGTERM (which sudo relays to the command it runs as root),
  then SIGKILL after a grace.  When the command exits, whatever it left in its group is killed
  the same way; its exit code is reported as soon as it exits, even if a leftover holds stdout.
- A command dies with its manager, even a ``kill -9``'d one: the parent-death signal and the
  watchdog (floatingip.watchdog).
- A command run under a :class:`Cancel` (``with cancel.applies():``, in this thread or a thread
  that copied its context) is stopped the same way as at its timeout when the cancel is given
  (an announcement that must not go on claiming a VIP); it is not reported as timed out, but
  as ended by the signal (a negative exit code).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import logging
import math
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from floatingip import watchdog
from floatingip.errors import CommandStartError

__all__ = ["OUTPUT_TAIL", "Cancel", "Finished", "run_process"]

logger = logging.getLogger(__name__)

OUTPUT_TAIL = 32 * 1024  # bytes kept of each stream: enough for any diagnosis, bounded history
_REAP_WAIT = 5.0  # after SIGKILL, how long to wait for the command before leaving it to a thread
_TICK = 0.05  # how often exit is checked where pidfd_open is missing


@dataclass(frozen=True)
class Finished:
    """What became of a process: exit code (negative: killed by that signal; None: unknown)."""

    exit_code: int | None
    stdout: str
    stderr: str
    duration: float
    timed_out: bool


class _Tail:
    """The last OUTPUT_TAIL bytes of a stream, and how many came before."""

    __slots__ = ("data", "dropped")

    def __init__(self) -> None:
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        excess = len(self.data) - OUTPUT_TAIL
        if excess > 0:
            del self.data[:excess]
            self.dropped += excess

    def text(self) -> str:
        data, dropped = bytes(self.data), self.dropped
        if not dropped:
            return data.decode("utf-8", "replace")
        newline = data.find(b"\n")
        if 0 <= newline < len(data) - 1:  # start on a whole line
            data, dropped = data[newline + 1 :], dropped + newline + 1
        return f"[{dropped} earlier bytes not kept]\n" + data.decode("utf-8", "replace")


class Cancel:
    """Stops the commands run under it (:meth:`applies`) once :meth:`cancel` is called, and
    those started after: SIGTERM to the group (sudo relays it), SIGKILL after the grace.

    Its pipe stays open until :meth:`close` was called and no running command waits on it: a
    command may outlive its owner's interest (hosts.GuardedExecutor gives up on a host), and
    a closed fd in its poller would answer at once (a spin) or, its number reused, wrongly."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()  # readable once cancelled: wakes a waiting run
        os.set_blocking(self._write, False)
        self._lock = threading.Lock()
        self._waiters = 0  # running commands whose pollers hold the read end
        self._closing = False
        self.cancelled = False
        self.why = ""

    def cancel(self, why: str) -> None:
        with self._lock:
            if self.cancelled or self._write < 0:
                return
            self.cancelled, self.why = True, why
            os.write(self._write, b"x")

    @contextlib.contextmanager
    def applies(self) -> Iterator[None]:
        token = _cancel.set(self)
        try:
            yield
        finally:
            _cancel.reset(token)

    def fileno(self) -> int:
        return self._read

    def _attach(self) -> int:
        """The read end, for a command's poller until :meth:`_detach` (-1: closed)."""
        with self._lock:
            if self._closing:
                return -1
            self._waiters += 1
            return self._read

    def _detach(self) -> None:
        with self._lock:
            self._waiters -= 1
            self._close_unused()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._close_unused()

    def _close_unused(self) -> None:
        if self._closing and not self._waiters and self._write >= 0:
            os.close(self._read)
            os.close(self._write)
            self._read = self._write = -1


_cancel: contextvars.ContextVar[Cancel | None] = contextvars.ContextVar("cancel", default=None)


# -- one process ---------------------------------------------------------------------------------


class _Process:
    """A started process: reads its output into tails and tells when it has exited, without
    reaping it (so that its pid, its group's id, cannot be reused while it is registered)."""

    def __init__(self, process: subprocess.Popen[bytes], dog: watchdog.Watchdog | None, token: int):
        assert process.stdout is not None and process.stderr is not None
        self.process = process
        self.pid = process.pid
        self.watchdog = dog
        self.token = token
        self.stdout, self.stderr = _Tail(), _Tail()
        self.streams = {process.stdout.fileno(): self.stdout, process.stderr.fileno(): self.stderr}
        self.poller = select.poll()
        for fd in self.streams:
            self.poller.register(fd, select.POLLIN)
        try:
            self.pidfd = os.pidfd_open(self.pid)
            self.poller.register(self.pidfd, select.POLLIN)
        except (AttributeError, OSError):  # before Linux 5.3: check every _TICK
            self.pidfd = -1
        self.exited = False
        self.lost = False
        self.cancel = _cancel.get()
        self.cancelled = False  # stopped by its Cancel: killed, not timed out
        self.cancel_fd = self.cancel._attach() if self.cancel is not None else -1
        if self.cancel_fd >= 0:
            self.poller.register(self.cancel_fd, select.POLLIN)

    def _check_exit(self) -> bool:
        if not self.exited:
            try:
                info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): its status is lost
                self.exited = self.lost = True
            else:
                self.exited = info is not None
            if self.exited and self.pidfd >= 0:
                self.poller.unregister(self.pidfd)  # readable from now on: stop polling it
        return self.exited

    def pump(self, deadline: float, *, until_exit: bool) -> bool:
        """Read output until the process exits (or, ``until_exit`` false, until both streams
        are closed); False if ``deadline`` came first."""
        while True:
            if until_exit and self._check_exit():
                return True
            if not until_exit and not self.streams:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if until_exit and self.pidfd < 0:
                remaining = min(remaining, _TICK)
            for fd, events in self.poller.poll(math.ceil(remaining * 1000)):
                if fd == self.cancel_fd:
                    self._leave_cancel()  # once: the kill that follows waits as usual
                    self.cancelled = True
                    return False
                if events & select.POLLNVAL:  # closed behind our back: would answer forever
                    logger.error("fd %s closed while polled for pid %s", fd, self.pid)
                    self.poller.unregister(fd)
                    self.streams.pop(fd, None)
                elif fd in self.streams:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        self.streams[fd].add(chunk)
                    else:
                        self.poller.unregister(fd)
                        del self.streams[fd]

    def _leave_cancel(self) -> None:
        if self.cancel is not None and self.cancel_fd >= 0:
            self.poller.unregister(self.cancel_fd)
            self.cancel._detach()
        self.cancel, self.cancel_fd = None, -1

    def signal_group(self, number: int) -> None:
        try:
            os.killpg(self.pid, number)
        except ProcessLookupError:
            pass
        except PermissionError:
            logger.warning("cannot signal process group %s (owned by another user)", self.pid)

    def finish(self) -> int | None:
        """Reap it (after the watchdog forgot it) and close everything; its exit code."""
        self._leave_cancel()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
        if not self._check_exit():
            threading.Thread(target=self._reap_later, name="floatingip-reap", daemon=True).start()
            return None
        if self.watchdog is not None:
            self.watchdog.forget(self.token)
        exit_code = self.process.wait()
        if self.lost:  # never report success for a status nobody saw
            logger.warning("exit status of pid %s lost: was SIGCHLD ignored?", self.pid)
            return None
        return exit_code

    def _reap_later(self) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        if self.watchdog is not None:
            self.watchdog.forget(self.token)
        self.process.wait()


def _spawn(
    argv: Sequence[str], program: str, env: Mapping[str, str] | None
) -> tuple[subprocess.Popen[bytes], watchdog.Watchdog | None, int]:
    dog = watchdog.current()
    token, in_child = watchdog.child_setup(dog)
    try:
        with watchdog.spawning():
            process = subprocess.Popen(
                list(argv),
                executable=program,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: a kill reaches its children
                preexec_fn=in_child,
                env=env,
            )
    except BaseException:
        if dog is not None:
            dog.forget(token)
        raise
    return process, dog, token


def run_process(
    argv: Sequence[str],
    program: str,
    *,
    env: Mapping[str, str] | None,
    timeout: float,
    kill_grace: float,
) -> Finished:
    """Run ``program`` with ``argv``; raises CommandStartError if it cannot be executed."""
    started = time.monotonic()
    cancel = _cancel.get()
    if cancel is not None and cancel.cancelled:  # never start what is no longer wanted
        return Finished(None, "", f"not started: {cancel.why}", 0.0, timed_out=False)
    try:
        process, dog, token = _spawn(argv, program, env)
    except OSError as exc:
        reason = _why_not_executable(program, exc)
        raise CommandStartError(
            f"cannot execute {argv[0]!r}: {reason}", argv=argv, reason=reason
        ) from exc
    except subprocess.SubprocessError as exc:  # the preparation in the child failed
        reason = f"could not be prepared: {exc}"
        raise CommandStartError(
            f"cannot execute {argv[0]!r}: {reason}", argv=argv, reason=reason
        ) from exc
    child = _Process(process, dog, token)
    timed_out = False
    try:
        if not child.pump(started + timeout, until_exit=True):
            timed_out = not child.cancelled  # a cancelled one reports the signal that ended it
            child.signal_group(signal.SIGTERM)
            if not child.pump(time.monotonic() + kill_grace, until_exit=True):
                child.signal_group(signal.SIGKILL)
                child.pump(time.monotonic() + _REAP_WAIT, until_exit=True)
        # It has exited: kill what it left in its group (which may still hold its stdout).
        child.signal_group(signal.SIGTERM)
        if not child.pump(time.monotonic() + kill_grace, until_exit=False):
            child.signal_group(signal.SIGKILL)
            child.pump(time.monotonic() + min(kill_grace, 0.5), until_exit=False)
        child.signal_group(signal.SIGKILL)
    except BaseException:
        child.signal_group(signal.SIGKILL)
        raise
    finally:
        exit_code = child.finish()
    return Finished(
        exit_code=exit_code,
        stdout=child.stdout.text(),
        stderr=child.stderr.text(),
        duration=time.monotonic() - started,
        timed_out=timed_out,
    )


def _why_not_executable(program: str, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        try:
            with open(program, "rb") as file:
                first = file.read(256).split(b"\n", 1)[0]
        except OSError:
            return exc.strerror or "no such file or directory"
        if not first.startswith(b"#!"):
            return "its loader (the ELF interpreter) does not exist"
        words = first[2:].lstrip(b" \t").split(b" ")
        interpreter = words[0].decode("utf-8", "replace")
        if first.endswith(b"\r"):
            return (
                f"its #! line ends with a carriage return (CRLF line endings), so its "
                f"interpreter {interpreter!r} does not exist; convert the file with dos2unix"
            )
        return f"its interpreter {interpreter!r} does not exist"
    if exc.errno == errno.ENOEXEC:
        return "not an executable format (a script needs a #! line)"
    if exc.errno == errno.EACCES:
        return "permission denied (not executable, or on a noexec file system)"
    return exc.strerror or str(exc)
